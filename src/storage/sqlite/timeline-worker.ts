// The timeline's threads, each on a connection of its own. The writer commits the batches the main thread
// hands it (timeline.ts) and answers each batch, in order, after its commit; the checkpointer runs the WAL
// checkpoints. So neither a commit nor a checkpoint ever stalls the event loop, and no commit waits for a
// checkpoint.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { NewTimelineEntry } from "../types.js";
import { timelineWriter } from "./timeline-write.js";

export interface WriterRequest { id: number; batch: NewTimelineEntry[][] }
export type WriterAnswer =
  | { id: number; results: ReturnType<ReturnType<typeof timelineWriter>> }
  | { id: number; error: string };

/** How often the checkpointer thread copies the WAL back into the database (PASSIVE: never waits). */
const CHECKPOINT_EVERY_MS = 200;

const port = parentPort!;
const { path, role } = workerData as { path: string; role: "writer" | "checkpointer" };
const db = new Database(path);
db.pragma("busy_timeout = 5000");
db.pragma("synchronous = NORMAL");
// No connection checkpoints inside its commits: the checkpointer thread does, alongside the writer (WAL
// lets a checkpoint run while a transaction commits), so no commit anyone waits for includes one, nor
// its fsyncs.
db.pragma("wal_autocheckpoint = 0");

if (role === "checkpointer") {
  const timer = setInterval(() => {
    try {
      db.pragma("wal_checkpoint(PASSIVE)");
    } catch {
      // Busy (another checkpoint, or the database is being closed): the next round catches up.
    }
  }, CHECKPOINT_EVERY_MS);
  port.on("message", () => {
    clearInterval(timer);
    db.close();
    process.exit(0);
  });
} else {
  // Timeline writes land in the index pages of every owner a batch touches; keeping those pages cached
  // (48 MiB instead of SQLite's 2 MiB) saves reading them back on the next batch.
  db.pragma("cache_size = -49152");
  const write = timelineWriter(db);
  port.on("message", (msg: WriterRequest | "close") => {
    if (msg === "close") {
      db.close();
      process.exit(0);
    }
    let answer: WriterAnswer;
    try {
      answer = { id: msg.id, results: write(msg.batch) };
    } catch (err) {
      answer = { id: msg.id, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(answer);
  });
}
