// Timeline write throughput of the SQLite store: group commit against one transaction per message.
// Run: npx tsc -p . && node dist/test/bench/store-bench.js [messages] [users] [both|group|single]
// CPU seconds are printed next to the wall time: on a shared machine they are the steadier comparison.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/storage/sqlite/index.js";
import type { NewTimelineEntry, Store } from "../../src/storage/types.js";

const MESSAGES = Number(process.argv[2] ?? 50_000);
const PER_TICK = 500;
const USERS = Number(process.argv[3] ?? 1_000);
const MODE = process.argv[4] ?? "both";

/** One 1:1 message as the router stores it: a row in the sender's and one in the recipient's timeline. */
function makeMessages(count: number): NewTimelineEntry[][] {
  const messages: NewTimelineEntry[][] = [];
  for (let i = 0; i < count; i++) {
    const from = `user${i % USERS}@bench.example`;
    const to = `user${(i * 7 + 1) % USERS}@bench.example`;
    const originId = `origin-${i.toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const xml = `<message xmlns='jabber:client' from='${from}/phone' to='${to}' type='chat' id='${originId}'>` +
      `<body>message number ${i} of the benchmark run</body><origin-id xmlns='urn:xmpp:sid:0' id='${originId}'/></message>`;
    const ts = Date.now();
    messages.push([
      { owner: from, peer: to, outgoing: true, stanzaId: `s-${i.toString(36)}-a`, originId, ts, xml, pending: false },
      { owner: to, peer: from, outgoing: false, stanzaId: `s-${i.toString(36)}-b`, originId, ts, xml, pending: true },
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

async function measure(label: string, run: (store: Store, messages: NewTimelineEntry[][]) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hearth-bench-"));
  const store = openSqliteStore({ path: join(dir, "bench.db") });
  try {
    const messages = makeMessages(MESSAGES);
    const entries = MESSAGES * 2;
    const started = process.hrtime.bigint();
    const cpuBefore = process.cpuUsage();
    await run(store, messages);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const last = await store.timeline.lastSeq("user1@bench.example");
    console.log(`${label.padEnd(34)} ${entries} entries in ${seconds.toFixed(2)} s: ` +
      `${Math.round(entries / seconds).toLocaleString("en")} entries/s, ` +
      `${Math.round(MESSAGES / seconds).toLocaleString("en")} messages/s; ${cpuSeconds.toFixed(2)} CPU s ` +
      `(${Math.round(entries / cpuSeconds).toLocaleString("en")} entries per CPU s) (check: lastSeq ${last})`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (MODE !== "single") await measure(`group commit (${PER_TICK} appends per tick)`, batched);
if (MODE !== "group") await measure("one append awaited at a time", oneAtATime);
