// idle: N clients logged in (100 in parallel), then idle for T s; the server's
// RSS growth per connection (VmRSS before connecting vs. after the idle period).
import { performance } from 'node:perf_hooks';
import type { BenchContext, ScenarioResult } from '../context.js';
import { CpuWindow, procRssKiB } from '../stats.js';

export async function idle(ctx: BenchContext): Promise<ScenarioResult> {
  const n = Math.floor(ctx.num('idle-n', 'IDLE_N', 2000, 'n'));
  const t = ctx.num('idle-t', 'IDLE_T', 5, 'duration');
  if (n < 1) throw new Error('idle: N must be >= 1');
  await ctx.ensureAccounts(n);
  const pid = ctx.server.pid;
  const warnings: string[] = [];
  if (pid === null) warnings.push('no server pid (use --pid with --target): no RSS figures');
  if (ctx.server.inProcess) warnings.push('in-process fake server: RSS includes the generator\'s own clients');
  await ctx.sleep(1000); // let the warm-up connections go away
  const rss0 = pid === null ? null : procRssKiB(pid);
  const users = Array.from({ length: n }, (_, i) => i + 1);
  ctx.log(`logging in ${n} clients`);
  const lr = await ctx.loginMany(users, 100);
  let disconnects = 0;
  for (const c of lr.clients) {
    c.setHot(() => {});
    c.onLost = () => disconnects++;
  }
  const rssLoggedIn = pid === null ? null : procRssKiB(pid);
  ctx.log(`${lr.clients.length} connected; idle ${t} s`);
  const cpu = new CpuWindow(pid);
  const t0 = performance.now();
  await ctx.sleep(t * 1000);
  const idleS = (performance.now() - t0) / 1000;
  const connected = lr.clients.length - lr.clients.filter((c) => c.closed).length;
  const cpuSummary = cpu.stop(Math.round(connected * idleS), 'connection-second');
  const rss1 = pid === null ? null : procRssKiB(pid);
  if (disconnects > 0) warnings.push(`${disconnects} idle clients were disconnected`);
  const perConn = rss0 !== null && rss1 !== null && connected > 0 ? Math.round(((rss1 - rss0) / connected) * 10) / 10 : null;
  const res: ScenarioResult = {
    scenario: 'idle',
    ok: lr.failed === 0 && disconnects === 0,
    warnings,
    params: { n, idle_s: t },
    metrics: {
      connected,
      failed: lr.failed,
      rss_before_kib: rss0,
      rss_logged_in_kib: rssLoggedIn,
      rss_after_kib: rss1,
      kib_per_conn: perConn,
      logins_per_s: Math.round(((n - lr.failed) / lr.wall_s) * 10) / 10,
      login_ms: lr.latency.summary(),
      cpu: cpuSummary,
    },
  };
  if (lr.failed > 0) res.error = `${lr.failed} of ${n} logins failed; first: ${lr.firstError}`;
  return res;
}
