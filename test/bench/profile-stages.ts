// CPU per message by stage, from a V8 .cpuprofile of the server (`node --cpu-prof`, see README.md).
//
//   node dist/test/bench/profile-stages.js PROFILE.cpuprofile... US_PER_MESSAGE [--window-fn NAME]
//
// Only the samples of the busy window count: from the first to the last sample whose stack contains
// the function NAME (default `deliverArchived`: it runs once per archived 1:1 message, so server start,
// registration and logins are left out). Each sample goes to the stage of the innermost frame that a
// rule below recognises; native leaves (writev, the SQLite engine, string encoding) so go to the
// JavaScript that called them. A sample's duration is wall time while the thread was busy, which a
// loaded machine inflates, so the table gives each stage's share of the busy samples and scales it to
// US_PER_MESSAGE, the server CPU per message that the bench measured from /proc in the same run.
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export const STAGES = [
  'read+parse', 'session/rate', 'router+hooks', 'IM rules', 'timeline append', 'carbons/MAM hooks',
  'other extensions', 'serialize+write', 'promises/ticks', 'GC', 'other',
] as const;
type Stage = (typeof STAGES)[number];

/** Rules tried on each frame from the leaf up; the first that matches names the stage. */
const RULES: [Stage, (f: CallFrame) => boolean][] = [
  ['GC', (f) => f.functionName === '(garbage collector)'],
  ['timeline append', (f) => /better-sqlite3|\/storage\//.test(f.url)],
  ['serialize+write', (f) => /ltx\/src\/(Element|escape)|\/xml\/element\.js/.test(f.url) && /write|toString|escape/i.test(f.functionName)],
  ['serialize+write', (f) => /node:net|stream_base_commons|internal\/streams\/writable|\/c2s\/listeners\.js|\/sessions\/outbound\.js/.test(f.url) ||
    /^(writev|writeUtf8String|writeBuffer)$/.test(f.functionName)],
  ['read+parse', (f) => /\/xml\/parser\.js|internal\/streams\/readable|onStreamRead/.test(f.url + f.functionName)],
  ['carbons/MAM hooks', (f) => /extensions\/(carbons|mam)\//.test(f.url)],
  ['other extensions', (f) => /\/extensions\//.test(f.url)],
  ['IM rules', (f) => /\/src\/im\//.test(f.url)],
  ['router+hooks', (f) => /\/src\/(router|events|modules|jid)\//.test(f.url)],
  ['session/rate', (f) => /\/src\/(c2s|sessions|mobile)\//.test(f.url)],
  ['promises/ticks', (f) => /task_queues|processTicksAndRejections|runMicrotasks|promise/i.test(f.url + f.functionName)],
];

/**
 * Stage times of the samples of `profile` inside the window: [from, to] on the profiles' clock (V8's
 * monotonic clock, shared by the threads of one process), or, when not given, the span of the samples
 * whose stack contains `windowFn`.
 */
export function stagesOf(profile: Profile, windowFn = 'deliverArchived', window?: { from: number; to: number }):
  { ms: Map<Stage, number>; window: { from: number; to: number } | null } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stageOf = new Map<number, Stage | null>();
  const inWindow = new Map<number, boolean>();
  const classify = (id: number): Stage | null => {
    const known = stageOf.get(id);
    if (known !== undefined) return known;
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') {
      stageOf.set(id, null);
      return null;
    }
    let stage: Stage | null = null;
    for (const [s, match] of RULES) if (match(f)) { stage = s; break; }
    if (stage === null) {
      const up = parent.get(id);
      stage = up === undefined ? 'other' : classify(up) ?? 'other';
    }
    stageOf.set(id, stage);
    return stage;
  };
  const marks = (id: number): boolean => {
    const known = inWindow.get(id);
    if (known !== undefined) return known;
    const up = parent.get(id);
    const v = byId.get(id)!.callFrame.functionName === windowFn || (up !== undefined && marks(up));
    inWindow.set(id, v);
    return v;
  };
  const times: number[] = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) times.push(t += d);
  if (window === undefined) {
    let first = -1, last = -1;
    profile.samples.forEach((id, i) => { if (marks(id)) { if (first < 0) first = i; last = i; } });
    if (first >= 0) window = { from: times[first], to: times[last] };
  }
  const ms = new Map<Stage, number>(STAGES.map((s) => [s, 0]));
  if (window === undefined) return { ms, window: null };
  for (let i = 0; i + 1 < times.length; i++) {
    if (times[i] < window.from || times[i] > window.to) continue;
    const stage = classify(profile.samples[i]);
    if (stage === null) continue;
    ms.set(stage, ms.get(stage)! + (times[i + 1] - times[i]) / 1000);
  }
  return { ms, window };
}

function main(): void {
  const wi = process.argv.indexOf('--window-fn');
  const positional = process.argv.slice(2).filter((a, i) => !a.startsWith('--') && (wi < 0 || i + 2 !== wi + 1));
  const perMessage = Number(positional.pop());
  if (positional.length === 0 || !(perMessage > 0)) {
    process.stderr.write('usage: profile-stages PROFILE.cpuprofile... US_PER_MESSAGE [--window-fn NAME]\n');
    process.exit(2);
  }
  // The main thread's profile (the one with windowFn) sets the window; the other threads' profiles
  // (the timeline writer and checkpointer) are cut to it.
  const profiles = positional.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Profile);
  const windowFn = wi > 0 ? process.argv[wi + 1] : undefined;
  let window: { from: number; to: number } | undefined;
  for (const p of profiles) window ??= stagesOf(p, windowFn).window ?? undefined;
  if (window === undefined) throw new Error('no profile has samples of the window function');
  const ms = new Map<Stage, number>(STAGES.map((s) => [s, 0]));
  for (const p of profiles) for (const [stage, v] of stagesOf(p, windowFn, window).ms) ms.set(stage, ms.get(stage)! + v);
  const windowMs = (window.to - window.from) / 1000;
  let total = 0;
  for (const v of ms.values()) total += v;
  const lines = ['| stage | µs CPU / message | share |', '|---|--:|--:|'];
  for (const s of STAGES) {
    const v = ms.get(s)!;
    lines.push(`| ${s} | ${(perMessage * v / total).toFixed(1)} | ${(100 * v / total).toFixed(1)} % |`);
  }
  lines.push(`| **total (measured; window ${(windowMs / 1000).toFixed(1)} s)** | **${perMessage.toFixed(1)}** | 100 % |`);
  process.stdout.write(lines.join('\n') + '\n');
}

if (process.argv[1]?.endsWith('profile-stages.js')) main();
