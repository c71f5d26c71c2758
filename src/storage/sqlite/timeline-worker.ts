// The timeline's threads, each on a connection of its own. The writer commits the batches the main thread
// hands it (timeline.ts) and answers each batch, in order, after its commit; the checkpointer runs the WAL
// checkpoints. So neither a commit nor a checkpoint ever stalls the event loop, and no commit waits for a
// checkpoint.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { ROWS_COMMITTED, rowsOf, timelineWriter, unpackKv, WAL_FRAMES, WAL_RESTART_PENDING, type KvResult, type PackedBatch, type PackedKv, type WrittenBatch } from "./timeline-write.js";

/**
 * Timeline appends, and compare-and-sets of map stores (committed in the same transaction); `forget`: owners
 * the main thread wrote rows for since the last request (their cached counters are stale).
 */
export interface WriterRequest { id: number; batch: PackedBatch; kv: PackedKv; forget: string[] }
export type WriterAnswer =
  | { id: number; results: WrittenBatch; kv: KvResult[] }
  | { id: number; error: string };

/** How often the checkpointer looks at the writer's progress. */
const POLL_MS = 200;
/**
 * Checkpoint once the writer has committed this many rows since the last checkpoint (under load about 2,500
 * WAL frames, 10 MB), or after CHECKPOINT_IDLE_MS for what fewer rows and the main connection's own writes
 * left in the WAL: few checkpoints (each ends in fsyncs) at light load, a bounded WAL under load. Each
 * checkpoint copies every page written since the last once, however often it was written: an owner's index
 * leaves are written by every batch, so checkpoints every 5,000 rows instead of 2,000 cost the checkpointer
 * thread about a third less (15 → 11 % of the core in the rig's chat load) for a point more in the writer;
 * every 20,000 the writer's share grew as much as the checkpointer's fell.
 */
const CHECKPOINT_ROWS = 5000;
const CHECKPOINT_IDLE_MS = 10_000;
/**
 * The WAL (in frames of a page) beyond which the writer copies what a checkpoint left before its next commit,
 * so that the commit starts the WAL over: 64 MiB of 4 KiB pages.
 */
const WAL_BOUND_FRAMES = 16_384;
/** At most this many checkpoints after one, for the frames committed while it ran. */
const FOLLOW_UPS = 3;

const port = parentPort!;
const { path, role, progress, checkpointRows, walBoundFrames } = workerData as {
  path: string; role: "writer" | "checkpointer"; progress: SharedArrayBuffer; checkpointRows?: number; walBoundFrames?: number;
};
// ROWS_COMMITTED, WAL_RESTART_PENDING and WAL_FRAMES (timeline-write.ts), shared with the main thread.
const shared = new Int32Array(progress);
const db = new Database(path);
db.pragma("busy_timeout = 5000");
db.pragma("synchronous = NORMAL");
// No connection checkpoints inside its commits: the checkpointer thread does, alongside the writer (WAL
// lets a checkpoint run while a transaction commits), so no commit anyone waits for includes one, nor
// its fsyncs.
db.pragma("wal_autocheckpoint = 0");

/**
 * Copies the WAL into the database as far as no reader needs it; answers the frames the WAL had, and whether
 * they were all copied (the next commit then starts the WAL over).
 */
const checkpoint = (): { log: number; whole: boolean } => {
  const [r] = db.pragma("wal_checkpoint(PASSIVE)") as Array<{ busy: number; log: number; checkpointed: number }>;
  const whole = r.busy === 0 && r.log > 0 && r.checkpointed === r.log;
  if (whole) Atomics.store(shared, WAL_RESTART_PENDING, 1);
  Atomics.store(shared, WAL_FRAMES, r.log);
  return { log: r.log, whole };
};

if (role === "checkpointer") {
  const everyRows = checkpointRows ?? CHECKPOINT_ROWS;
  let rowsAtLast = 0; // the rows committed since the store opened, this thread started or not
  let lastAt = Date.now();
  const timer = setInterval(() => {
    const rows = Atomics.load(shared, ROWS_COMMITTED);
    if (((rows - rowsAtLast) | 0) < everyRows && Date.now() - lastAt < CHECKPOINT_IDLE_MS) return;
    rowsAtLast = rows;
    lastAt = Date.now();
    try {
      // Commits made during a checkpoint leave frames after it: the WAL is then never wholly copied when a
      // transaction starts, so SQLite never starts it over and under a steady load the file only grows.
      // Short follow-ups copy what arrived meanwhile, so that the next commit can start it over.
      let log = checkpoint().log;
      for (let i = 0; i < FOLLOW_UPS; i++) {
        const next = checkpoint().log;
        if (next <= log) break;
        log = next;
      }
    } catch {
      // Busy (another checkpoint, or the database is being closed): the next round catches up.
    }
  }, POLL_MS);
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
      if (msg.forget.length !== 0) write.forget(msg.forget);
      // A checkpoint copied the whole WAL as it was when it began. Under a steady load this thread committed
      // meanwhile, and the frames of those commits keep SQLite from starting the WAL over: in the rig's MUC
      // load (a thousand small commits a second) it never did, and the file grew by 1.6 GB in 10 s. Past its
      // bound, the rest (a few commits' frames) is copied here, where no commit can come between, and this
      // commit starts the WAL over. Below it, the checkpointer's rounds suffice: the copy and its two fsyncs
      // here, at every round, cost the chat load about 2 % of its messages.
      const pending = Atomics.load(shared, WAL_RESTART_PENDING) === 1;
      const caughtUp = !pending || Atomics.load(shared, WAL_FRAMES) < (walBoundFrames ?? WAL_BOUND_FRAMES) || checkpoint().whole;
      const written = write(msg.batch, unpackKv(msg.kv));
      answer = { id: msg.id, results: written.results, kv: written.kv };
      Atomics.add(shared, ROWS_COMMITTED, rowsOf(msg.batch));
      // Not caught up (the checkpointer was busy copying): the next commit tries again.
      if (pending && caughtUp) Atomics.store(shared, WAL_RESTART_PENDING, 0);
    } catch (err) {
      answer = { id: msg.id, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(answer);
  });
}
