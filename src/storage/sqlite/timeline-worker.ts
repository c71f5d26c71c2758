// The timeline writer thread: commits the batches the main thread hands it (timeline.ts) on a connection of
// its own, answers each batch after its commit, and runs the WAL checkpoints, so that neither a commit nor a
// checkpoint ever stalls the event loop. Answers go back in the order the batches came.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { NewTimelineEntry } from "../types.js";
import { timelineWriter } from "./timeline-write.js";

export interface WriterRequest { id: number; batch: NewTimelineEntry[][] }
export type WriterAnswer =
  | { id: number; results: ReturnType<ReturnType<typeof timelineWriter>> }
  | { id: number; error: string };

/** Checkpoint (PASSIVE: never waits for readers) at most this often, after an answer or when idle. */
const CHECKPOINT_EVERY_MS = 250;

const port = parentPort!;
const db = new Database((workerData as { path: string }).path);
db.pragma("busy_timeout = 5000");
db.pragma("synchronous = NORMAL");
db.pragma("cache_size = -65536");
// Checkpoints are ours to run, after the answers, never inside a commit that someone waits for.
db.pragma("wal_autocheckpoint = 0");
const write = timelineWriter(db);

let dirty = false;
let lastCheckpoint = Date.now();
const checkpoint = (): void => {
  dirty = false;
  lastCheckpoint = Date.now();
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch {
    // Busy: the next one catches up.
  }
};
// The main thread's own writes (roster, read markers, …) land in the WAL too; checkpoint them when idle.
setInterval(checkpoint, 1000);

port.on("message", (msg: WriterRequest | "close") => {
  if (msg === "close") {
    db.close();
    process.exit(0);
  }
  let answer: WriterAnswer;
  try {
    answer = { id: msg.id, results: write(msg.batch) };
    dirty = true;
  } catch (err) {
    answer = { id: msg.id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(answer);
  if (dirty && Date.now() - lastCheckpoint >= CHECKPOINT_EVERY_MS) checkpoint();
});
