// V8 settings that depend on the machine the server finds itself on (the fixed ones are node flags in
// bin/hearth.js). Applied by `hearth start` before the server allocates anything much.
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
