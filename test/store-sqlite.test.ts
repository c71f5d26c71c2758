import assert from "node:assert/strict";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { listMigrations, SchemaOutdatedError, SchemaTooNewError } from "../src/storage/migrate.js";
import { openSqliteStore } from "../src/storage/sqlite/index.js";
import { workerCommits } from "../src/storage/sqlite/timeline.js";
import { packBatch } from "../src/storage/sqlite/timeline-write.js";
import type { NewTimelineEntry, Store } from "../src/storage/types.js";
import { assertLegacyBlobsMigrated, LEGACY_BLOBS, storeContract } from "./store-contract.js";

const dir = mkdtempSync(join(tmpdir(), "hearth-store-"));
after(function () {
  rmSync(dir, { recursive: true, force: true });
});

// Every test of the contract reopens one file, so the suite also runs against a database with history.
storeContract("sqlite", () => openSqliteStore({ path: join(dir, "contract.db") }));

let fileCounter = 0;
const freshPath = (): string => join(dir, `db-${fileCounter++}`, "hearth.db");

function entry(owner: string, overrides: Partial<NewTimelineEntry> = {}): NewTimelineEntry {
  return {
    owner, peer: "peer@example.org", outgoing: false, stanzaId: `s-${Math.random().toString(36).slice(2)}`,
    originId: null, ts: Date.now(), xml: "<message/>", pending: true, ...overrides,
  };
}

describe("sqlite store", function () {
  let path: string;
  let store: Store | undefined;
  beforeEach(function () {
    path = freshPath();
  });
  afterEach(async function () {
    await store?.close();
    store = undefined;
  });

  it("creates the parent directories of its file", function () {
    store = openSqliteStore({ path });
    assert.ok(existsSync(path));
  });

  it("runs in memory", async function () {
    store = openSqliteStore({ path: ":memory:" });
    const [r] = await store.timeline.append([entry("a@example.org")]);
    assert.equal(r.seq, 1);
  });

  it("keeps data, seqs and roster versions across close and reopen", async function () {
    store = openSqliteStore({ path });
    await store.accounts.create("example.org", "alice", {});
    await store.keyValue("private").set("alice@example.org", "k", "v");
    const version = await store.roster.put("alice@example.org", {
      jid: "bob@example.org", name: "Bob", subscription: "both", askOut: false, pendingIn: null, approved: false,
      inRoster: true, groups: ["g"],
    });
    const first = await store.timeline.append([entry("alice@example.org", { originId: "o1", outgoing: true })]);
    await store.close();

    store = openSqliteStore({ path });
    assert.ok(await store.accounts.get("example.org", "alice"));
    assert.equal(await store.keyValue("private").get("alice@example.org", "k"), "v");
    assert.deepEqual(await store.roster.get("alice@example.org"), {
      version,
      items: [{
        jid: "bob@example.org", name: "Bob", subscription: "both", askOut: false, pendingIn: null, approved: false,
        inRoster: true, groups: ["g"],
      }],
    });
    assert.equal(await store.timeline.lastSeq("alice@example.org"), first[0].seq);
    const [resent] = await store.timeline.append([entry("alice@example.org", { originId: "o1", outgoing: true })]);
    assert.equal(resent.duplicate, true, "idempotency survives a restart");
    const [next] = await store.timeline.append([entry("alice@example.org")]);
    assert.equal(next.seq, first[0].seq + 1);
    assert.ok(await store.roster.put("alice@example.org", { ...(await store.roster.getItem("alice@example.org", "bob@example.org"))! }) > version);
  });

  it("never reuses a seq after its rows are deleted", async function () {
    store = openSqliteStore({ path });
    const results = await store.timeline.append([entry("a@x"), entry("a@x"), entry("a@x")]);
    assert.deepEqual(results.map((r) => r.seq), [1, 2, 3]);
    await store.close();
    store = undefined;

    const raw = new Database(path);
    raw.prepare("DELETE FROM timeline WHERE owner = ?").run("a@x");
    raw.close();

    store = openSqliteStore({ path });
    assert.equal(await store.timeline.lastSeq("a@x"), 3);
    const [r] = await store.timeline.append([entry("a@x")]);
    assert.equal(r.seq, 4);
  });

  it("applies each migration once and records it", async function () {
    const migrations = listMigrations("sqlite");
    assert.ok(migrations.length >= 1);
    assert.deepEqual(migrations.map((m) => m.version), migrations.map((_, i) => i + 1));
    assert.equal(migrations[0].name, "init");
    assert.match(migrations[0].sql, /CREATE TABLE timeline/);

    store = openSqliteStore({ path });
    await store.close();
    const recorded = (): Array<{ version: number; name: string; applied_at: number }> => {
      const raw = new Database(path, { readonly: true });
      try {
        return raw.prepare("SELECT version, name, applied_at FROM schema_version ORDER BY version").all() as never;
      } finally {
        raw.close();
      }
    };
    const first = recorded();
    assert.deepEqual(first.map((r) => [r.version, r.name]), migrations.map((m) => [m.version, m.name]));

    store = openSqliteStore({ path });
    await store.close();
    store = openSqliteStore({ path, migrate: false });
    assert.deepEqual(recorded(), first, "reopening applies nothing again");
  });

  it("moves block lists and conversation documents into rows (migrations 0003, 0004)", async function () {
    mkdirSync(dirname(path), { recursive: true });
    const raw = new Database(path);
    raw.exec("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
    for (const migration of listMigrations("sqlite").filter((m) => m.version <= 2)) {
      raw.exec(migration.sql);
      raw.prepare("INSERT INTO schema_version VALUES (?, ?, 0)").run(migration.version, migration.name);
    }
    const insert = raw.prepare("INSERT INTO key_value (store, owner, key, value) VALUES (?, ?, ?, ?)");
    for (const row of LEGACY_BLOBS) insert.run(...row);
    raw.close();

    store = openSqliteStore({ path });
    await assertLegacyBlobsMigrated(store);
  });

  it("refuses a database written by a newer server", async function () {
    store = openSqliteStore({ path });
    await store.close();
    store = undefined;
    const known = listMigrations("sqlite").length;
    const raw = new Database(path);
    raw.prepare("INSERT INTO schema_version (version, name, applied_at) VALUES (?, 'from_the_future', 0)").run(known + 1);
    raw.close();

    assert.throws(() => openSqliteStore({ path }), (err: unknown) => {
      assert.ok(err instanceof SchemaTooNewError);
      assert.equal(err.message,
        `database schema version ${known + 1} is newer than this server knows (${known}); upgrade the server`);
      return true;
    });
    assert.throws(() => openSqliteStore({ path, migrate: false }), SchemaTooNewError);
  });

  it("refuses an unmigrated database when migrating is off", function () {
    assert.throws(() => openSqliteStore({ path, migrate: false }), SchemaOutdatedError);
    store = openSqliteStore({ path });
  });

  it("rejects every caller of a failing batch, and writes none of it", async function () {
    store = openSqliteStore({ path });
    const [before] = await store.timeline.append([entry("a@x", { stanzaId: "taken" })]);
    const good = store.timeline.append([entry("a@x"), entry("b@x")]);
    const alsoGood = store.timeline.append([entry("c@x")]);
    const bad = store.timeline.append([entry("a@x", { stanzaId: "taken" })]); // unique per owner
    const outcomes = await Promise.allSettled([good, alsoGood, bad]);
    assert.deepEqual(outcomes.map((o) => o.status), ["rejected", "rejected", "rejected"]);
    const reasons = outcomes.map((o) => (o as PromiseRejectedResult).reason as Error);
    assert.ok(reasons.every((r) => r === reasons[0]), "one error for the one transaction");
    assert.match(reasons[0].message, /UNIQUE/);

    assert.equal(await store.timeline.lastSeq("a@x"), before.seq, "the failed batch spent no seq");
    assert.equal(await store.timeline.lastSeq("b@x"), 0);
    assert.equal(await store.timeline.lastSeq("c@x"), 0);
    assert.equal((await store.timeline.query("a@x", { limit: 10 })).length, 1);
    const [after] = await store.timeline.append([entry("a@x")]);
    assert.equal(after.seq, before.seq + 1);
    const [b] = await store.timeline.append([entry("b@x")]);
    assert.equal(b.seq, 1);
  });

  it("rejects a malformed entry alone, before it can fail a batch", async function () {
    store = openSqliteStore({ path });
    const good = store.timeline.append([entry("a@x")]);
    const bad = store.timeline.append([entry("a@x", { xml: undefined as unknown as string })]);
    await assert.rejects(bad, TypeError);
    assert.equal((await good)[0].seq, 1);
  });

  it("lets reads see appends issued before them", async function () {
    store = openSqliteStore({ path });
    const appended = store.timeline.append([entry("a@x"), entry("a@x", { pending: false })]);
    assert.equal(await store.timeline.countPending("a@x"), 1);
    assert.equal(await store.timeline.lastSeq("a@x"), 2);
    assert.equal((await appended).length, 2);
  });

  it("binds no LIMIT as a bare parameter, which SQLite would prepare again on every run", async function () {
    // SQLite plans ORDER BY ... LIMIT with the value bound to a bare `LIMIT ?`, so each binding expires the
    // statement: the pending query of every login was prepared anew (9.7 instead of 1.6 µs).
    const prepared: string[] = [];
    const prepare = Database.prototype.prepare;
    Database.prototype.prepare = function (this: Database.Database, sql: string) {
      prepared.push(sql);
      return prepare.call(this, sql);
    } as typeof prepare;
    try {
      store = openSqliteStore({ path });
      await store.timeline.append([entry("a@x"), entry("a@x", { pending: false, peer: "b@x" })]);
      assert.equal((await store.timeline.pending("a@x", 1)).length, 1);
      for (const reverse of [false, true]) {
        assert.equal((await store.timeline.query("a@x", { limit: 1, reverse })).length, 1);
        assert.equal((await store.timeline.query("a@x", { limit: 5, with: "b@x", afterSeq: 0, fulltext: "x", reverse })).length, 0);
      }
      await store.timeline.expire({ before: Date.now() - 60_000, unarchivedBefore: Date.now() - 60_000 });
    } finally {
      Database.prototype.prepare = prepare;
    }
    const limited = prepared.filter((sql) => /\bLIMIT\b/i.test(sql));
    assert.ok(limited.length >= 4, `the pending, query and expiry statements were seen: ${limited.length}`);
    for (const sql of limited) assert.doesNotMatch(sql, /\b(LIMIT|OFFSET)\s+\?/i);
  });

  it("runs no statement for the offline check of an owner with nothing pending, and still finds every pending row", async function () {
    const sample = new Database(":memory:").prepare("SELECT 1");
    const proto = Object.getPrototypeOf(sample) as { all: (...a: unknown[]) => unknown[]; get: (...a: unknown[]) => unknown };
    const { all, get } = proto;
    let runs = 0;
    type Statement = { source: string; database: { name: string } };
    // This store's statements only: other tests' servers may still be winding down in this process.
    const counted = (s: Statement) => { if (s.database.name === path && /pending = 1/.test(s.source)) runs++; };
    proto.all = function (this: Statement, ...a: unknown[]) { counted(this); return all.apply(this, a); };
    proto.get = function (this: Statement, ...a: unknown[]) { counted(this); return get.apply(this, a); };
    try {
      store = openSqliteStore({ path });
      runs = 0; // the store reads the owners with pending rows once, at open
      assert.deepEqual(await store.timeline.pending("nobody@x", 10), []);
      assert.equal(await store.timeline.countPending("nobody@x"), 0);
      assert.equal(runs, 0);
      const [row] = await store.timeline.append([entry("a@x")]);
      assert.equal((await store.timeline.pending("a@x", 10)).length, 1);
      assert.equal(await store.timeline.countPending("a@x"), 1);
      await store.timeline.markDelivered("a@x", [row.seq]);
      assert.deepEqual(await store.timeline.pending("a@x", 10), []);
      const before = runs;
      assert.deepEqual(await store.timeline.pending("a@x", 10), []);
      assert.equal(runs, before, "an owner whose pending rows were all delivered runs no statement either");
      await store.timeline.markPending("a@x", [row.seq]);
      assert.equal((await store.timeline.pending("a@x", 10)).length, 1);
      // A query that finds nothing while an append of the same owner waits to commit keeps the owner checked.
      const [d] = await store.timeline.append([entry("d@x")]);
      await store.timeline.markDelivered("d@x", [d.seq]);
      // Two batches for the writer thread in flight (a read issues the first), so the query waits for the
      // second, and d@x's append queues behind both and commits after the query ran.
      const batch = () => store!.timeline.append(Array.from({ length: 10 }, () => entry("b@x")));
      const first = batch();
      const read = store.timeline.lastSeq("b@x");
      const second = batch();
      const empty = store.timeline.pending("d@x", 10);
      const third = store.timeline.append([entry("d@x")]);
      assert.deepEqual(await empty, []);
      await Promise.all([first, read, second, third]);
      assert.equal((await store.timeline.pending("d@x", 10)).length, 1);
      await store.close();
      store = openSqliteStore({ path });
      assert.equal((await store.timeline.pending("a@x", 10)).length, 1, "the owners with pending rows are read at open");
      assert.equal((await store.timeline.pending("b@x", 30)).length, 20);
    } finally {
      proto.all = all;
      proto.get = get;
    }
  });

  it("deletes an account after its queued appends, not before", async function () {
    store = openSqliteStore({ path });
    await store.accounts.create("x", "a", {});
    const appended = store.timeline.append([entry("a@x")]);
    assert.equal(await store.accounts.delete("x", "a"), true);
    await appended;
    assert.deepEqual(await store.timeline.query("a@x", { limit: 10 }), []);
  });

  it("commits the appends still queued when it closes, then refuses more", async function () {
    store = openSqliteStore({ path });
    const appended = store.timeline.append([entry("a@x")]);
    await store.close();
    assert.equal((await appended)[0].seq, 1);
    await assert.rejects(store.timeline.append([entry("a@x")]), /closed/);
    await store.close(); // twice is fine
    store = openSqliteStore({ path });
    assert.equal(await store.timeline.lastSeq("a@x"), 1);
  });

  it("allocates seqs in order whether a batch commits on the event loop (small) or in the writer (large)", async function () {
    store = openSqliteStore({ path });
    const seqs: number[] = [];
    const many = (n: number) => Array.from({ length: n }, () => entry("a@x", { stanzaId: undefined }));
    // Small batches while the writer is idle commit on the main connection, large ones in the writer
    // thread, which caches each owner's counter: each must see the seqs the other allocated.
    for (const size of [1, 20, 1, 1, 20, 2, 20, 20, 1]) {
      for (const row of await store.timeline.append(many(size))) seqs.push(row.seq);
    }
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
    const stored = await store.timeline.query("a@x", { limit: 200 });
    assert.deepEqual(stored.map((r) => r.seq), seqs);
  });

  it("stores every field of a batch as given, in the writer thread and on the event loop", async function () {
    store = openSqliteStore({ path });
    // Texts shared by consecutive rows (a message's two rows) cross to the writer once: mixed here with
    // texts that differ, no origin-id, no search text, empty strings and characters beyond the BMP.
    const rows = (tag: string): NewTimelineEntry[] => [
      entry("romeo@x", { peer: "juliet@x", outgoing: true, stanzaId: undefined, originId: `o-${tag}`, xml: `<m>${tag} 🌹 é</m>`, searchText: "🌹 rose", pending: false }),
      entry("juliet@x", { peer: "romeo@x", outgoing: false, stanzaId: undefined, originId: `o-${tag}`, xml: `<m>${tag} 🌹 é</m>`, searchText: "🌹 rose", pending: true }),
      entry("juliet@x", { peer: "romeo@x", stanzaId: `muc-${tag}`, originId: tag === "a" ? "" : `p-${tag}`, xml: "<m/>", searchText: null, archived: false, pending: false }),
      entry("nurse@x", { peer: "", originId: null, xml: "<m/>", searchText: "", ts: 1_700_000_000_123 }),
      entry("nurse@x", { peer: "romeo@x", originId: null, xml: `<m>${"x".repeat(5000)}</m>`, searchText: "🌹 rose" }),
    ];
    const batches = [rows("a"), rows("b"), Array.from({ length: 6 }, () => rows("c")).flat().map((e, i) => ({
      ...e, originId: e.originId === null ? null : `${e.originId}-${i}`, stanzaId: e.stanzaId === undefined ? undefined : `${e.stanzaId}-${i}`,
    }))];
    for (const batch of batches) {
      const results = await store.timeline.append(batch);
      for (let i = 0; i < batch.length; i++) {
        const [stored] = await store.timeline.query(batch[i].owner, { afterSeq: results[i].seq - 1, limit: 1 });
        const want = batch[i];
        assert.deepEqual(
          { owner: stored.owner, peer: stored.peer, outgoing: stored.outgoing, originId: stored.originId, ts: stored.ts, xml: stored.xml, pending: stored.pending, archived: stored.archived, searchText: stored.searchText },
          { owner: want.owner, peer: want.peer, outgoing: want.outgoing, originId: want.originId, ts: want.ts, xml: want.xml, pending: want.pending, archived: want.archived ?? true, searchText: want.searchText ?? null },
          `row ${i} of a batch of ${batch.length}`);
        assert.equal(stored.stanzaId, results[i].stanzaId);
        if (want.stanzaId !== undefined) assert.equal(stored.stanzaId, want.stanzaId);
      }
    }
  });

  /** The timeline's writer and checkpointer threads over a fresh file, without the store around them. */
  async function bareWorkerCommits(options: Parameters<typeof workerCommits>[2]) {
    store = openSqliteStore({ path }); // the schema
    await store.close();
    store = undefined;
    const db = new Database(path);
    db.pragma("busy_timeout = 5000");
    db.pragma("synchronous = NORMAL");
    db.pragma("wal_autocheckpoint = 0");
    return { db, commits: workerCommits(path, db, options) };
  }

  it("leaves the commit that starts the WAL over after a checkpoint to the writer thread, not the event loop", async function () {
    const { db, commits } = await bareWorkerCommits({ checkpointRows: 5 });
    try {
      /** Commits `n` rows; answers whether they were committed on this thread (answered before submit returned). */
      const commit = (n: number) => new Promise<boolean>((resolve, reject) => {
        let returned = false;
        const rows = Array.from({ length: n }, () => entry("a@x", { stanzaId: undefined }));
        commits.submit(packBatch([rows]), [], (err) => (err === null ? resolve(!returned) : reject(err)));
        returned = true;
      });
      assert.equal(await commit(1), true, "a small batch at idle commits on the event loop");
      assert.equal(await commit(20), false, "a large one in the writer");
      // The checkpointer (every 200 ms) copies the whole WAL: the next commit will start it over.
      const until = Date.now() + 10_000;
      while (!commits.walRestartPending() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.equal(commits.walRestartPending(), true, "a checkpoint copied the whole WAL");
      assert.equal(await commit(1), false, "the commit after it went to the writer");
      assert.equal(commits.walRestartPending(), false);
      assert.equal(await commit(1), true, "and the next small one commits on the event loop again");
    } finally {
      await commits.close();
      db.close();
    }
  });

  it("starts the WAL over under a steady stream of commits, so that it stays bounded", async function () {
    const { db, commits } = await bareWorkerCommits({ checkpointRows: 200, walBoundFrames: 100 });
    /** The WAL header's checkpoint sequence number: SQLite adds one each time a commit starts the WAL over. */
    const walRestarts = (): number => {
      const fd = openSync(`${path}-wal`, "r");
      try {
        const header = Buffer.alloc(16);
        return readSync(fd, header, 0, 16, 0) === 16 ? header.readUInt32BE(12) : 0;
      } finally {
        closeSync(fd);
      }
    };
    try {
      const commit = () => new Promise<void>((resolve, reject) => {
        // Too many rows to commit on the event loop: every batch goes to the writer thread.
        const rows = Array.from({ length: 20 }, (_, i) => entry(`u${i}@x`, { stanzaId: undefined }));
        commits.submit(packBatch([rows]), [], (err) => (err === null ? resolve() : reject(err)));
      });
      const first = walRestarts();
      // Two batches always out, as under load: the writer commits back to back while the checkpointer
      // copies the WAL, so a commit nearly always lands during a checkpoint.
      const until = Date.now() + 3000;
      const stream = async () => { while (Date.now() < until) await commit(); };
      await Promise.all([stream(), stream()]);
      const restarts = walRestarts() - first;
      assert.ok(restarts >= 3, `the WAL was started over ${restarts} times in 3 s of commits with a checkpoint every 200 rows and a bound of 100 frames`);
    } finally {
      await commits.close();
      db.close();
    }
  });

  it("does not block the event loop on another connection's write lock", async function () {
    store = openSqliteStore({ path });
    await store.timeline.append([entry("a@x")]);
    const other = new Database(path);
    other.pragma("busy_timeout = 5000");
    other.exec("BEGIN IMMEDIATE");
    let committed = false;
    const appended = store.timeline.append([entry("a@x")]).then((rows) => { committed = true; return rows; });
    // The append waits for the lock off the event loop: timers still fire meanwhile.
    const loopStart = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(Date.now() - loopStart < 1000, "the event loop kept turning");
    assert.equal(committed, false, "not answered before its commit");
    other.exec("COMMIT");
    other.close();
    assert.equal((await appended)[0].seq, 2);
  });

  it("returns one key-value object per store name", function () {
    store = openSqliteStore({ path });
    assert.equal(store.keyValue("a"), store.keyValue("a"));
    assert.notEqual(store.keyValue("a"), store.keyValue("b"));
  });
});
