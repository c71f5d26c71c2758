// Timeline write throughput of the PostgreSQL store, on the workload of store-bench.ts (SQLite): 1:1 messages
// of 1,000 users, each a row in the sender's and one in the recipient's timeline, appended 500 per event-loop
// turn (group commit) or one awaited at a time. It starts a private PostgreSQL (test/helpers/postgres.ts)
// with durable settings (fsync, synchronous_commit on) unless --fast, and runs SQLite on the same workload
// for the ratio.
// Run: npx tsc -p . && node dist/test/bench/store-bench-pg.js [messages] [--fast] [--in-flight 1,2,4] [--pool N]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openPostgresStore } from "../../src/storage/postgres/index.js";
import { openSqliteStore } from "../../src/storage/sqlite/index.js";
import type { NewTimelineEntry, Store } from "../../src/storage/types.js";
import { startPostgres } from "../helpers/postgres.js";

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const FAST = args.includes("--fast") ? (args.splice(args.indexOf("--fast"), 1), true) : false;
const IN_FLIGHT = (flag("--in-flight") ?? "1,2,4").split(",").map(Number);
const POOL = Number(flag("--pool") ?? 10);
const MESSAGES = Number(args[0] ?? 50_000);
const ONE_AT_A_TIME = Math.min(MESSAGES, 5_000);
const PER_TICK = 500;
const USERS = 1_000;

/** One 1:1 message as the router stores it: a row in the sender's and one in the recipient's timeline. */
function makeMessages(count: number, withText: boolean): NewTimelineEntry[][] {
  const messages: NewTimelineEntry[][] = [];
  for (let i = 0; i < count; i++) {
    const from = `user${i % USERS}@bench.example`;
    const to = `user${(i * 7 + 1) % USERS}@bench.example`;
    const originId = `origin-${i.toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const body = `message number ${i} of the benchmark run`;
    const xml = `<message xmlns='jabber:client' from='${from}/phone' to='${to}' type='chat' id='${originId}'>` +
      `<body>${body}</body><origin-id xmlns='urn:xmpp:sid:0' id='${originId}'/></message>`;
    const ts = Date.now();
    const searchText = withText ? body : null;
    messages.push([
      { owner: from, peer: to, outgoing: true, stanzaId: `s-${i.toString(36)}-a`, originId, ts, xml, pending: false, searchText },
      { owner: to, peer: from, outgoing: false, stanzaId: `s-${i.toString(36)}-b`, originId, ts, xml, pending: true, searchText },
    ]);
  }
  return messages;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function batched(store: Store, messages: NewTimelineEntry[][]): Promise<void> {
  const appends: Array<Promise<unknown>> = [];
  for (let i = 0; i < messages.length; i++) {
    appends.push(store.timeline.append(messages[i]));
    if ((i + 1) % PER_TICK === 0) await nextTurn();
  }
  await Promise.all(appends);
}

async function oneAtATime(store: Store, messages: NewTimelineEntry[][]): Promise<void> {
  for (const message of messages) await store.timeline.append(message);
}

type Run = (store: Store, messages: NewTimelineEntry[][]) => Promise<void>;

async function measure(label: string, open: () => Promise<{ store: Store; dispose(): Promise<void> }>, run: Run, count: number, withText = false): Promise<number> {
  const { store, dispose } = await open();
  try {
    const messages = makeMessages(count, withText);
    const entries = count * 2;
    const started = process.hrtime.bigint();
    await run(store, messages);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const rate = entries / seconds;
    const last = await store.timeline.lastSeq("user1@bench.example");
    console.log(`${label.padEnd(52)} ${entries} entries in ${seconds.toFixed(2)} s: ` +
      `${Math.round(rate).toLocaleString("en")} entries/s (check: lastSeq ${last})`);
    return rate;
  } finally {
    await store.close();
    await dispose();
  }
}

const server = await startPostgres({ durable: !FAST });
console.log(`PostgreSQL: private server on 127.0.0.1:${server.port}, ${FAST ? "fsync and synchronous_commit off" : "durable settings (fsync, synchronous_commit on)"}; pool ${POOL}`);
let db = 0;
const pgStore = (maxInFlight: number) => async () => {
  const name = `bench_${db++}`;
  const url = await server.createDatabase(name);
  return { store: await openPostgresStore({ url, poolSize: POOL, maxInFlight }), dispose: () => server.dropDatabase(name) };
};
const sqliteStore = async () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-bench-"));
  return { store: openSqliteStore({ path: join(dir, "bench.db") }), dispose: async () => rmSync(dir, { recursive: true, force: true }) };
};

try {
  const sqliteBatched = await measure(`sqlite: group commit (${PER_TICK} appends per tick)`, sqliteStore, batched, MESSAGES);
  const sqliteOne = await measure("sqlite: one append awaited at a time", sqliteStore, oneAtATime, ONE_AT_A_TIME);
  for (const inFlight of IN_FLIGHT) {
    const rate = await measure(`postgres: group commit, ${inFlight} batch(es) in flight`, pgStore(inFlight), batched, MESSAGES);
    console.log(`${"".padEnd(52)} = ${(rate / sqliteBatched).toFixed(2)} × sqlite`);
  }
  const withText = await measure(`postgres: group commit, ${IN_FLIGHT[0]} in flight, with search text`, pgStore(IN_FLIGHT[0]), batched, MESSAGES, true);
  console.log(`${"".padEnd(52)} = ${(withText / sqliteBatched).toFixed(2)} × sqlite`);
  const pgOne = await measure("postgres: one append awaited at a time", pgStore(1), oneAtATime, ONE_AT_A_TIME);
  console.log(`${"".padEnd(52)} = ${(pgOne / sqliteOne).toFixed(2)} × sqlite (one at a time)`);
} finally {
  await server.stop();
}
