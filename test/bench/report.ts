// Human-readable output of scenario results.
import type { MetricValue, ScenarioResult } from './context.js';
import type { CpuSummary, LatencySummary } from './stats.js';

const LABELS: Record<string, string> = {
  logins: 'logins',
  failed: 'failed',
  logins_per_s: 'logins/s',
  login_ms: 'login time (ms)',
  connected_at_end: 'connected at end',
  pbkdf2_in_window: 'client PBKDF2 in window',
  delivered_per_s: 'delivered msgs/s',
  latency_ms: 'latency (ms)',
  sent: 'sent',
  delivered: 'delivered',
  lost: 'lost',
  bounced: 'bounced (type=error)',
  offered_per_s: 'offered msgs/s',
  sent_per_s: 'sent msgs/s',
  kept_up: 'kept up (>= 95 %)',
  connected: 'connected',
  rss_before_kib: 'server RSS before (KiB)',
  rss_logged_in_kib: 'server RSS logged in (KiB)',
  rss_after_kib: 'server RSS after idle (KiB)',
  kib_per_conn: 'RSS growth KiB/conn',
  cpu: 'CPU in window',
};

function isLatency(v: MetricValue): v is LatencySummary {
  return typeof v === 'object' && v !== null && 'p50' in v;
}
function isCpu(v: MetricValue): v is CpuSummary {
  return typeof v === 'object' && v !== null && 'gen_cpu_pct' in v;
}

function fmtNum(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v.toLocaleString('en-US', { maximumFractionDigits: v >= 100 ? 1 : 3 });
}

export function formatValue(v: MetricValue): string {
  if (v === null) return '-';
  if (typeof v === 'number') return fmtNum(v);
  if (typeof v === 'boolean') return v ? 'yes' : 'NO';
  if (typeof v === 'string') return v;
  if (isLatency(v)) {
    if (v.n === 0) return 'no samples';
    const f = (x: number | null) => (x === null ? '-' : x.toFixed(x < 10 ? 3 : 1));
    return `p50 ${f(v.p50)}  p90 ${f(v.p90)}  p99 ${f(v.p99)}  max ${f(v.max)}  (mean ${f(v.mean)}, n=${fmtNum(v.n)}${v.sampled ? ', sampled' : ''})`;
  }
  if (isCpu(v)) {
    const gen = `generator ${v.gen_cpu_pct} %`;
    if (v.server_cpu_s === null) return `server: unknown (no pid); ${gen}; window ${v.window_s} s`;
    const who = v.in_process ? 'server+generator (in-process)' : 'server';
    const per = v.server_us_per_op === null ? '' : `, ${fmtNum(v.server_us_per_op)} µs/${v.per}`;
    const foreign = v.foreign_cpu_pct === null ? '' : `; other processes ${v.foreign_cpu_pct} %${v.foreign_cpu_pct > 10 ? ' (disturbed run!)' : ''}`;
    return `${who} ${v.server_cpu_s} s = ${v.server_cpu_pct} % of a core${per}; ${v.in_process ? '' : `${gen}; `}window ${v.window_s} s${foreign}`;
  }
  return JSON.stringify(v);
}

export function formatResult(r: ScenarioResult): string {
  const lines: string[] = [];
  const params = Object.entries(r.params)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const status = r.error ? 'ERROR' : r.ok ? 'ok' : 'NOT OK';
  lines.push(`== ${r.scenario} [${status}] ${params}${r.elapsed_s !== undefined ? ` (${r.elapsed_s} s)` : ''}`);
  const rows = Object.entries(r.metrics).map(([k, v]) => [LABELS[k] ?? k.replace(/_/g, ' '), formatValue(v)] as const);
  const w = Math.max(10, ...rows.map(([l]) => l.length));
  for (const [l, v] of rows) lines.push(`  ${l.padEnd(w)}  ${v}`);
  for (const x of r.warnings) lines.push(`  warning: ${x}`);
  if (r.error) lines.push(`  error: ${r.error}`);
  return lines.join('\n');
}
