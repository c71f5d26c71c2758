// Latency recording and /proc readers (server CPU time, RSS).
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface LatencySummary {
  n: number;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
  /** set when more samples were seen than kept: percentiles come from a uniform random sample */
  sampled?: boolean;
}

/**
 * Latency samples in microseconds. Keeps every sample up to `cap` (exact
 * percentiles), beyond that a uniform reservoir sample of `cap` values; n, mean
 * and max always cover every sample.
 */
export class Latency {
  private buf: Float64Array;
  private len = 0;
  n = 0;
  private sum = 0;
  private maxV = 0;

  constructor(private readonly cap = 4_000_000) {
    this.buf = new Float64Array(Math.min(cap, 65536));
  }

  add(us: number): void {
    if (us < 0) us = 0;
    this.n++;
    this.sum += us;
    if (us > this.maxV) this.maxV = us;
    if (this.len < this.buf.length) {
      this.buf[this.len++] = us;
      return;
    }
    if (this.len < this.cap) {
      const nb = new Float64Array(Math.min(this.cap, this.buf.length * 2));
      nb.set(this.buf);
      this.buf = nb;
      this.buf[this.len++] = us;
      return;
    }
    const j = Math.floor(Math.random() * this.n);
    if (j < this.cap) this.buf[j] = us;
  }

  /** Summary in milliseconds (3 decimals). */
  summary(): LatencySummary {
    if (this.n === 0) return { n: 0, mean: null, p50: null, p90: null, p99: null, max: null };
    const a = this.buf.subarray(0, this.len).slice().sort();
    const pct = (p: number) => a[Math.min(a.length - 1, Math.max(0, Math.ceil((a.length * p) / 100) - 1))]!;
    const ms = (us: number) => Math.round(us) / 1000;
    const s: LatencySummary = {
      n: this.n,
      mean: ms(this.sum / this.n),
      p50: ms(pct(50)),
      p90: ms(pct(90)),
      p99: ms(pct(99)),
      max: ms(this.maxV),
    };
    if (this.n > this.len) s.sampled = true;
    return s;
  }
}

/** Monotonic clock in integer microseconds (shared by all clients of this process). */
export function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

let clkTck = 0;
function clockTicks(): number {
  if (clkTck === 0) {
    try {
      clkTck = parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }), 10) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** utime + stime of a process in seconds (all its threads), or null if unreadable. */
export function procCpuSeconds(pid: number): number | null {
  const s = readOrNull(`/proc/${pid}/stat`);
  if (s === null) return null;
  // fields after "(comm)": state(3) ppid(4) ... utime(14) stime(15)
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const ut = Number(f[11]);
  const st = Number(f[12]);
  if (!Number.isFinite(ut) || !Number.isFinite(st)) return null;
  return (ut + st) / clockTicks();
}

/** VmRSS of a process in KiB, or null. */
export function procRssKiB(pid: number): number | null {
  const s = readOrNull(`/proc/${pid}/status`);
  if (s === null) return null;
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
  return m ? Number(m[1]) : null;
}

/** Whole-machine CPU time from /proc/stat: [busy seconds, total seconds] over all CPUs, or null. */
export function machineCpuSeconds(): [number, number] | null {
  const s = readOrNull('/proc/stat');
  if (s === null) return null;
  const line = s.slice(0, s.indexOf('\n')).trim().split(/\s+/);
  if (line[0] !== 'cpu') return null;
  // user nice system idle iowait irq softirq steal (guest* are already in user/nice)
  const v = line.slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0) + (v[7] ?? 0);
  return [(total - idle) / clockTicks(), total / clockTicks()];
}

export interface CpuSummary {
  window_s: number;
  /** server process CPU (user+system) during the window, seconds; null without a pid */
  server_cpu_s: number | null;
  /** same, in % of one core */
  server_cpu_pct: number | null;
  /** server CPU per operation in µs (operation named by `per`) */
  server_us_per_op: number | null;
  per: string;
  /** this generator process's CPU in % of one core */
  gen_cpu_pct: number;
  /** whole machine busy (all CPUs, excluding steal), in % of one core */
  machine_busy_pct: number | null;
  /** CPU used by everything except the server and this generator, in % of one core: > 10 means a disturbed run */
  foreign_cpu_pct: number | null;
  /** the "server" is this very process (in-process fake server): its CPU includes the generator */
  in_process?: boolean;
}

/** Server and generator CPU over a measured window. */
export class CpuWindow {
  private readonly t0 = performance.now();
  private readonly s0: number | null;
  private readonly g0 = process.cpuUsage();
  private readonly m0 = machineCpuSeconds();

  constructor(private readonly pid: number | null) {
    this.s0 = pid === null ? null : procCpuSeconds(pid);
  }

  stop(ops: number, per: string): CpuSummary {
    const wall = (performance.now() - this.t0) / 1000;
    const s1 = this.pid === null ? null : procCpuSeconds(this.pid);
    const g = process.cpuUsage(this.g0);
    const m1 = machineCpuSeconds();
    const server = this.s0 !== null && s1 !== null ? s1 - this.s0 : null;
    const r2 = (v: number) => Math.round(v * 100) / 100;
    const pct = (sec: number) => (wall <= 0 ? 0 : Math.round((sec / wall) * 1000) / 10);
    const genS = (g.user + g.system) / 1e6;
    const machine = this.m0 !== null && m1 !== null ? m1[0] - this.m0[0] : null;
    const inProcess = this.pid === process.pid;
    const ours = genS + (server !== null && !inProcess ? server : 0);
    const out: CpuSummary = {
      window_s: r2(wall),
      server_cpu_s: server === null ? null : r2(server),
      server_cpu_pct: server === null || wall <= 0 ? null : Math.round((server / wall) * 1000) / 10,
      server_us_per_op: server === null || ops <= 0 ? null : Math.round((server * 1e7) / ops) / 10,
      per,
      gen_cpu_pct: pct(genS),
      machine_busy_pct: machine === null ? null : pct(machine),
      foreign_cpu_pct: machine === null || server === null ? null : Math.max(0, pct(machine - ours)),
    };
    if (inProcess) out.in_process = true;
    return out;
  }
}
