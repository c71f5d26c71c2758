// The store contract against PostgreSQL (a private server started for this run, test/helpers/postgres.ts),
// plus what only a networked, shared database has: migrations under concurrency, several store instances
// (server processes) on one database.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import { listMigrations, SchemaOutdatedError, SchemaTooNewError } from "../src/storage/migrate.js";
import { migratePostgres, openPostgresStore } from "../src/storage/postgres/index.js";
import type { NewTimelineEntry, Store } from "../src/storage/types.js";
import { sharedPostgres, type PrivatePostgres } from "./helpers/postgres.js";
import { assertLegacyBlobsMigrated, LEGACY_BLOBS, storeContract } from "./store-contract.js";

let server: PrivatePostgres;
before(async function () {
  this.timeout(60_000);
  server = await sharedPostgres();
});

// Every test of the contract opens the same database, so the suite also runs against a database with history.
storeContract("postgres", () => openPostgresStore({ url: server.url, poolSize: 4 }));

let dbCounter = 0;
const freshDatabase = (): Promise<string> => server.createDatabase(`store_${process.pid}_${dbCounter++}`);

function entry(owner: string, overrides: Partial<NewTimelineEntry> = {}): NewTimelineEntry {
  return {
    owner, peer: "peer@example.org", outgoing: false, stanzaId: `s-${Math.random().toString(36).slice(2)}`,
    originId: null, ts: Date.now(), xml: "<message/>", pending: true, ...overrides,
  };
}

async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

describe("postgres store", function () {
  let url: string;
  const stores: Store[] = [];
  const open = async (opts: { poolSize?: number; migrate?: boolean; maxInFlight?: number } = {}): Promise<Store> => {
    const store = await openPostgresStore({ url, ...opts });
    stores.push(store);
    return store;
  };
  beforeEach(async function () {
    url = await freshDatabase();
  });
  afterEach(async function () {
    for (const store of stores.splice(0)) await store.close();
  });

  it("applies each migration once, records it, and reports what it did", async function () {
    const migrations = listMigrations("postgres");
    assert.deepEqual(migrations.map((m) => m.version), listMigrations("sqlite").map((m) => m.version),
      "one numbering for both engines");
    assert.deepEqual(migrations.map((m) => m.name), listMigrations("sqlite").map((m) => m.name));
    const report = await migratePostgres({ url });
    assert.deepEqual(report, {
      from: 0, to: migrations.length,
      applied: migrations.map((m) => `${String(m.version).padStart(4, "0")}_${m.name}`),
    });
    const recorded = await sql<{ version: number; name: string }>(url, "SELECT version, name FROM schema_version ORDER BY version");
    assert.deepEqual(recorded.map((r) => [r.version, r.name]), migrations.map((m) => [m.version, m.name]));
    assert.deepEqual(await migratePostgres({ url }), { from: migrations.length, to: migrations.length, applied: [] });
    await open({ migrate: false });
  });

  it("migrates once when several processes start together", async function () {
    const reports = await Promise.all([1, 2, 3, 4].map(() => migratePostgres({ url })));
    const applied = reports.flatMap((r) => r.applied);
    assert.equal(applied.length, listMigrations("postgres").length, "every migration applied exactly once");
    assert.equal(new Set(applied).size, applied.length);
  });

  it("moves block lists and conversation documents into rows (migrations 0003, 0004)", async function () {
    await sql(url, "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)");
    for (const migration of listMigrations("postgres").filter((m) => m.version <= 2)) {
      await sql(url, migration.sql);
      await sql(url, "INSERT INTO schema_version VALUES ($1, $2, 0)", [migration.version, migration.name]);
    }
    for (const row of LEGACY_BLOBS) await sql(url, "INSERT INTO key_value (store, owner, key, value) VALUES ($1, $2, $3, $4)", row);
    await assertLegacyBlobsMigrated(await open());
  });

  it("refuses a database written by a newer server, migrating or not", async function () {
    await migratePostgres({ url });
    const known = listMigrations("postgres").length;
    await sql(url, "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, 'from_the_future', 0)", [known + 1]);
    for (const migrate of [true, false]) {
      await assert.rejects(openPostgresStore({ url, migrate }), (err: unknown) => {
        assert.ok(err instanceof SchemaTooNewError);
        assert.equal(err.message,
          `database schema version ${known + 1} is newer than this server knows (${known}); upgrade the server`);
        return true;
      });
    }
    await assert.rejects(migratePostgres({ url }), SchemaTooNewError);
  });

  it("refuses an unmigrated database when migrating is off", async function () {
    await assert.rejects(openPostgresStore({ url, migrate: false }), SchemaOutdatedError);
    await open();
  });

  it("keeps data, seqs and idempotency across close and reopen", async function () {
    let store = await open();
    await store.accounts.create("example.org", "alice", {});
    const first = await store.timeline.append([entry("alice@example.org", { originId: "o1", outgoing: true })]);
    await store.close();
    store = await open();
    assert.ok(await store.accounts.get("example.org", "alice"));
    assert.equal(await store.timeline.lastSeq("alice@example.org"), first[0].seq);
    const [resent] = await store.timeline.append([entry("alice@example.org", { originId: "o1", outgoing: true })]);
    assert.equal(resent.duplicate, true);
    const [next] = await store.timeline.append([entry("alice@example.org")]);
    assert.equal(next.seq, first[0].seq + 1);
  });

  it("never reuses a seq after its rows are deleted", async function () {
    const store = await open();
    assert.deepEqual((await store.timeline.append([entry("a@x"), entry("a@x"), entry("a@x")])).map((r) => r.seq), [1, 2, 3]);
    await sql(url, "DELETE FROM timeline WHERE owner = 'a@x'");
    assert.equal(await store.timeline.lastSeq("a@x"), 3);
    assert.equal((await store.timeline.append([entry("a@x")]))[0].seq, 4);
  });

  it("gives distinct seqs, without gaps, to stores (processes) appending to one owner concurrently", async function () {
    const a = await open({ poolSize: 4 });
    const b = await open({ poolSize: 4 });
    const owners = ["shared@x", "other@x"];
    const perStore = 400;
    const run = async (store: Store, name: string): Promise<number[]> => {
      const calls: Array<Promise<Array<{ owner: string; seq: number }>>> = [];
      for (let i = 0; i < perStore; i++) {
        // Each call writes to both owners, in an order that differs between the stores.
        const pair = name === "a" ? owners : [...owners].reverse();
        calls.push(store.timeline.append(pair.map((owner) => entry(owner, { stanzaId: `${name}-${owner}-${i}` }))));
        if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
      }
      return (await Promise.all(calls)).flat().filter((r) => r.owner === "shared@x").map((r) => r.seq);
    };
    const [seqsA, seqsB] = await Promise.all([run(a, "a"), run(b, "b")]);
    // Batches of one store run concurrently too, so call order is not seq order across batches; per owner,
    // commit order is (the counter row stays locked until the statement commits).
    const all = [...seqsA, ...seqsB].sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 2 * perStore }, (_, i) => i + 1), "no seq twice, none skipped");
    assert.equal(await a.timeline.lastSeq("shared@x"), 2 * perStore);
    assert.equal((await b.timeline.query("shared@x", { limit: 10_000 })).length, 2 * perStore);
  });

  it("stores a resend once when two stores (processes) write it at the same moment", async function () {
    const a = await open();
    const b = await open();
    for (let i = 0; i < 20; i++) {
      const make = (): NewTimelineEntry[] => [
        entry("alice@x", { outgoing: true, originId: `race-${i}`, peer: "bob@x" }),
        entry("bob@x", { outgoing: false, originId: `race-${i}`, peer: "alice@x" }),
      ];
      const [ra, rb] = await Promise.all([a.timeline.append(make()), b.timeline.append(make())]);
      assert.deepEqual([...ra, ...rb].map((r) => r.duplicate).sort(), [false, false, true, true]);
      assert.equal(ra[0].seq, rb[0].seq, "both see the one stored row");
      assert.equal(ra[1].stanzaId, rb[1].stanzaId);
    }
    assert.equal((await a.timeline.query("alice@x", { limit: 100 })).length, 20);
    assert.equal(await a.timeline.lastSeq("alice@x"), 20, "no seq spent on the losing write");
    assert.equal(await b.timeline.lastSeq("bob@x"), 20);
  });

  it("rejects every caller of a failing batch, and writes none of it", async function () {
    const store = await open();
    const [before] = await store.timeline.append([entry("a@x", { stanzaId: "taken" })]);
    const good = store.timeline.append([entry("a@x"), entry("b@x")]);
    const alsoGood = store.timeline.append([entry("c@x")]);
    const bad = store.timeline.append([entry("a@x", { stanzaId: "taken" })]); // unique per owner
    const outcomes = await Promise.allSettled([good, alsoGood, bad]);
    assert.deepEqual(outcomes.map((o) => o.status), ["rejected", "rejected", "rejected"]);
    const reasons = outcomes.map((o) => (o as PromiseRejectedResult).reason as Error);
    assert.ok(reasons.every((r) => r === reasons[0]), "one error for the one statement");
    assert.match(reasons[0].message, /unique/i);
    assert.equal(await store.timeline.lastSeq("a@x"), before.seq, "the failed batch spent no seq");
    assert.equal(await store.timeline.lastSeq("b@x"), 0);
    assert.equal((await store.timeline.append([entry("a@x")]))[0].seq, before.seq + 1);
  });

  it("rejects a malformed entry alone, before it can fail a batch", async function () {
    const store = await open();
    const good = store.timeline.append([entry("a@x")]);
    await assert.rejects(store.timeline.append([entry("a@x", { xml: undefined as unknown as string })]), TypeError);
    assert.equal((await good)[0].seq, 1);
  });

  it("lets reads see appends issued before them", async function () {
    const store = await open();
    const appended = store.timeline.append([entry("a@x"), entry("a@x", { pending: false })]);
    assert.equal(await store.timeline.countPending("a@x"), 1);
    assert.equal(await store.timeline.lastSeq("a@x"), 2);
    assert.equal((await appended).length, 2);
  });

  it("writes the appends of one turn in one batch, and more batches while one is in flight", async function () {
    const store = await open({ poolSize: 2, maxInFlight: 1 });
    const calls = Array.from({ length: 500 }, (_, i) => store.timeline.append([entry(`u${i % 7}@x`)]));
    const results = (await Promise.all(calls)).flat();
    const byOwner = new Map<string, number[]>();
    for (const r of results) byOwner.set(r.owner, [...(byOwner.get(r.owner) ?? []), r.seq]);
    for (const seqs of byOwner.values()) assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
  });

  it("deletes an account after its queued appends, not before", async function () {
    const store = await open();
    await store.accounts.create("x", "a", {});
    const appended = store.timeline.append([entry("a@x")]);
    assert.equal(await store.accounts.delete("x", "a"), true);
    await appended;
    assert.deepEqual(await store.timeline.query("a@x", { limit: 10 }), []);
  });

  it("commits the appends still queued when it closes, then refuses more", async function () {
    const store = await open();
    const appended = store.timeline.append([entry("a@x")]);
    await store.close();
    assert.equal((await appended)[0].seq, 1);
    await assert.rejects(store.timeline.append([entry("a@x")]), /closed/);
    await store.close();
    const again = await open();
    assert.equal(await again.timeline.lastSeq("a@x"), 1);
  });

  it("answers full-text queries from the text index", async function () {
    const store = await open();
    const rows: NewTimelineEntry[] = [];
    for (let i = 0; i < 2000; i++) rows.push(entry(`u${i % 50}@x`, { searchText: `message number ${i} ${i % 100 === 0 ? "needle" : "hay"}` }));
    await store.timeline.append(rows);
    await sql(url, "ANALYZE timeline");
    const plan = (await sql<{ "QUERY PLAN": string }>(url,
      "EXPLAIN SELECT seq FROM timeline WHERE search_text IS NOT NULL AND hearth_search_vector(search_text) @@ to_tsquery('simple', $1)",
      ["'needle':*"])).map((r) => r["QUERY PLAN"]).join("\n");
    assert.match(plan, /timeline_search/, plan);
    assert.equal(await store.timeline.count("u0@x", { fulltext: "needle" }), 20);
  });
});

describe("hearth migrate", function () {
  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const { main } = await import("../src/cli/main.js");
    let out = "", err = "";
    const sink = (write: (s: string) => void) => new Writable({ write(chunk, _enc, done) { write(String(chunk)); done(); } });
    const code = await main(argv, { extensions: [], stdout: sink((s) => { out += s; }), stderr: sink((s) => { err += s; }) });
    return { code, out, err };
  };
  const configFile = (yaml: string): string => {
    const dir = mkdtempSync(path.join(tmpdir(), "hearth-migrate-"));
    const file = path.join(dir, "hearth.yaml");
    writeFileSync(file, `dataDir: ${dir}\n${yaml}`);
    return file;
  };
  const known = listMigrations("postgres").length;

  it("migrates a PostgreSQL database, then finds nothing to do", async function () {
    const url = await server.createDatabase(`migrate_cli_${process.pid}`);
    const config = configFile(`storage:\n  driver: postgres\n  postgres:\n    url: ${url}\n`);
    const first = await run(["migrate", "--config", config]);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, new RegExp(`^postgres schema version 0 → ${known} \\(applied 0001_init, `));
    assert.deepEqual(await run(["migrate", "--config", config]), { code: 0, out: `postgres schema already at version ${known}\n`, err: "" });
    await sql(url, "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, 'from_the_future', 0)", [known + 1]);
    assert.deepEqual(await run(["migrate", "--config", config]), {
      code: 1, out: "",
      err: `hearth: database schema version ${known + 1} is newer than this server knows (${known}); upgrade the server\n`,
    });
  });

  it("migrates the SQLite database of the configuration", async function () {
    const config = configFile("storage:\n  driver: sqlite\n");
    const first = await run(["migrate", "--config", config]);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, new RegExp(`^sqlite schema version 0 → ${listMigrations("sqlite").length} \\(applied 0001_init, `));
    assert.match((await run(["migrate", "--config", config])).out, /^sqlite schema already at version \d+\n$/);
  });

  it("names the missing URL of the postgres driver", async function () {
    const result = await run(["migrate", "--config", configFile("storage:\n  driver: postgres\n")]);
    assert.deepEqual(result, { code: 1, out: "", err: "hearth: storage.postgres.url: must be set when storage.driver is postgres\n" });
  });
});

describe("config: storage.postgres", function () {
  it("reads the driver, URL and pool size, from the environment too", async function () {
    const { loadConfig } = await import("../src/config/config.js");
    const config = loadConfig({
      file: null, cwd: tmpdir(),
      env: { HEARTH_STORAGE__DRIVER: "postgres", HEARTH_STORAGE__POSTGRES__URL: "postgresql://hearth@db.example:5433/hearth", HEARTH_STORAGE__POSTGRES__POOL_SIZE: "3" },
    });
    assert.deepEqual(config.storage.postgres, { url: "postgresql://hearth@db.example:5433/hearth", poolSize: 3 });
    assert.equal(config.storage.driver, "postgres");
  });

  it("refuses a URL of another scheme, and a pool of no connections", async function () {
    const { loadConfig, ConfigError } = await import("../src/config/config.js");
    for (const [env, key] of [
      [{ HEARTH_STORAGE__POSTGRES__URL: "mysql://db/hearth" }, "HEARTH_STORAGE__POSTGRES__URL"],
      [{ HEARTH_STORAGE__POSTGRES__POOL_SIZE: "0" }, "HEARTH_STORAGE__POSTGRES__POOL_SIZE"],
    ] as const) {
      assert.throws(() => loadConfig({ file: null, cwd: tmpdir(), env }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.key, key);
        return true;
      });
    }
  });
});
