// src/cli/tuning.ts: V8 settings by the CPUs the process may use, checked on V8 itself in processes of
// their own pinned to one CPU with taskset; the scheduling policy of the event loop's helper threads,
// read back from the kernel.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { v8FlagsFor } from "../src/cli/tuning.js";

/**
 * Runs tuneV8() and a young-generation workload in a child process; answers the scavenges V8 ran and the
 * scavenger tasks it traced (one line per task of each scavenge).
 */
function scavenges(): { collections: number; tasks: number; cpus: number } {
  const script = `
    const { tuneV8 } = await import(${JSON.stringify(new URL("../src/cli/tuning.js", import.meta.url).href)});
    const { availableParallelism } = await import("node:os");
    tuneV8();
    let keep = [];
    for (let i = 0; i < 1500000; i++) { keep.push({ a: i, b: "x" + i }); if (keep.length > 40000) keep = keep.slice(20000); }
    console.log("cpus=" + availableParallelism());`;
  const args = ["--trace-gc", "--trace-parallel-scavenge", "--input-type=module", "-e", script];
  const out = execFileSync("taskset", ["-c", "0", process.execPath, ...args], { encoding: "utf8" });
  const lines = out.split("\n");
  return {
    collections: lines.filter((l) => / Scavenge /.test(l)).length,
    tasks: lines.filter((l) => /\] scavenge\[/.test(l)).length,
    cpus: Number(/cpus=(\d+)/.exec(out)![1]),
  };
}

/** Runs batchHelperThreads() in a child process, then starts a worker; answers each thread's policy. */
function policies(): { set: number; main: number; helpers: number[]; worker: number } {
  const script = `
    const { batchHelperThreads } = await import(${JSON.stringify(new URL("../src/cli/tuning.js", import.meta.url).href)});
    const { readdirSync, readFileSync } = await import("node:fs");
    const { Worker } = await import("node:worker_threads");
    // field 41 of /proc/PID/task/TID/stat (1-based), counted after the parenthesised name
    const policy = (tid) => Number(readFileSync("/proc/self/task/" + tid + "/stat", "utf8").split(") ")[1].split(" ")[38]);
    const before = readdirSync("/proc/self/task");
    const set = batchHelperThreads();
    const w = new Worker("import('node:worker_threads').then((m) => m.parentPort.postMessage(1)); setTimeout(() => {}, 2000)", { eval: true });
    await new Promise((r) => w.once("message", r));
    const workerTid = readdirSync("/proc/self/task").find((t) => !before.includes(t));
    console.log(JSON.stringify({
      set,
      main: policy(process.pid),
      helpers: before.filter((t) => Number(t) !== process.pid).map(policy),
      worker: policy(workerTid),
    }));
    await w.terminate();`;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }));
}

const SCHED_OTHER = 0, SCHED_BATCH = 3;

describe("V8 tuning by CPUs", function () {
  this.timeout(60_000);

  it("turns parallel young-generation collection off on one CPU only", () => {
    assert.deepEqual(v8FlagsFor(1), ["--no-parallel-scavenge"]);
    assert.deepEqual(v8FlagsFor(2), []);
    assert.deepEqual(v8FlagsFor(64), []);
  });

  it("pinned to one CPU, every scavenge runs as one task", () => {
    const r = scavenges();
    assert.equal(r.cpus, 1);
    assert.ok(r.collections >= 5, `${r.collections} scavenges`);
    assert.equal(r.tasks, r.collections, `${r.tasks} scavenger tasks for ${r.collections} scavenges`);
  });

  it("puts the event loop's helper threads under SCHED_BATCH, and neither the event loop nor later threads", () => {
    const r = policies();
    assert.ok(r.helpers.length >= 4, `${r.helpers.length} helper threads`); // V8's platform workers at least
    assert.equal(r.set, r.helpers.length);
    assert.deepEqual(r.helpers, r.helpers.map(() => SCHED_BATCH));
    assert.equal(r.main, SCHED_OTHER);
    assert.equal(r.worker, SCHED_OTHER); // the timeline's writer is a worker started later
  });
});
