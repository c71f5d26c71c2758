// V8 settings that depend on the machine the server finds itself on (the fixed ones are node flags in
// bin/hearth.js), and the scheduling of the threads that help the event loop. Applied by `hearth start`
// before the server allocates anything much.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import v8 from "node:v8";

/**
 * The V8 flags for a process that may run on `cpus` CPUs (its affinity: a pinned process or a one-CPU
 * container counts one). On one CPU, V8's parallel young-generation collection splits each collection
 * among helper threads that can only take turns on that CPU with the event loop: the hand-offs cost more
 * than the split saves. Under the rig's archived chat load, pinned to one core, two sets of alternating
 * runs measured +9 % and +7.5 % messages per second, a later check nothing beyond the noise: a few per cent
 * at most. With more CPUs the helpers run beside the event loop and shorten its pauses, so they stay.
 */
export function v8FlagsFor(cpus: number): string[] {
  return cpus <= 1 ? ["--no-parallel-scavenge"] : [];
}

/** Sets v8FlagsFor(the CPUs this process may use); answers the flags set. */
export function tuneV8(cpus = availableParallelism()): string[] {
  const flags = v8FlagsFor(cpus);
  for (const f of flags) v8.setFlagsFromString(f);
  return flags;
}

/**
 * Puts every thread of this process but the event loop's under SCHED_BATCH (Linux; the threads there when it
 * is called: V8's platform workers, which run the optimising compiler and the concurrent collector, and
 * libuv's pool). A batch thread that wakes never preempts the thread running: it waits for the event loop
 * to sleep or for the scheduler's tick. Its share of the CPU is unchanged (nice 0), so under load the
 * compiler and the collector progress as before.
 *
 * Why: on one CPU, the event loop handing a job to a helper (a function to optimise, a marking step) was
 * preempted by it at once and waited out the helper's time slice, 1 to 4 ms, with a message in hand
 * (`perf sched timehist`: the main thread switched out runnable the moment it woke the helper). That was
 * the largest part of the rig's light-load p99 (200 msgs/s, server pinned to one core). Two sets of 5
 * alternating runs, every pair better: median p99 2.15 → 1.26 ms and 1.87 → 1.16 ms. Logins, chat and MUC
 * unchanged.
 * The timeline's writer and checkpointer threads start later and keep the normal policy: the writer is on
 * the commit path, and a batch checkpointer fell behind under the chat load (-20 % msgs/s).
 *
 * No Node API sets a thread's policy: util-linux's `chrt` does, one call per thread. Without it (not Linux,
 * not installed, not permitted) nothing changes. About 17 ms at start for ten threads. Answers the threads set.
 */
export function batchHelperThreads(): number {
  if (process.platform !== "linux") return 0;
  let tids: string[];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    return 0;
  }
  let set = 0;
  for (const tid of tids) {
    if (Number(tid) === process.pid) continue;
    const r = spawnSync("chrt", ["--batch", "--pid", "0", tid], { stdio: "ignore", timeout: 5000 });
    if (r.error !== undefined) return set; // no chrt
    if (r.status === 0) set++;
  }
  return set;
}
