// login: N logins (connect → stream → SASL → restart → bind → presence → ping reply),
// C in parallel, every client kept connected until the end of the scenario.
import type { BenchContext, ScenarioResult } from '../context.js';
import { CpuWindow } from '../stats.js';

export async function login(ctx: BenchContext): Promise<ScenarioResult> {
  const n = Math.floor(ctx.num('login-n', 'LOGIN_N', 2000, 'n'));
  const c = Math.floor(ctx.num('login-c', 'LOGIN_C', 100, 'concurrency'));
  if (n < 1 || c < 1) throw new Error('login: N and concurrency must be >= 1');
  await ctx.ensureAccounts(n);
  await ctx.sleep(500); // let the server finish closing the warm-up connections
  const users = Array.from({ length: n }, (_, i) => i + 1);
  const pbkdf0 = ctx.accounts.scram.derivations;
  const cpu = new CpuWindow(ctx.server.pid);
  const r = await ctx.loginMany(users, c);
  const ok = n - r.failed;
  const cpuSummary = cpu.stop(ok, 'login');
  const pbkdf = ctx.accounts.scram.derivations - pbkdf0;
  const warnings: string[] = [];
  if (pbkdf > 0) warnings.push(`${pbkdf} client-side PBKDF2 derivations inside the measured window (server changed salts?)`);
  let lost = 0;
  for (const cl of r.clients) if (cl.closed) lost++;
  if (lost > 0) warnings.push(`${lost} logged-in clients were disconnected before the end`);
  const res: ScenarioResult = {
    scenario: 'login',
    ok: r.failed === 0 && lost === 0,
    warnings,
    params: { n, concurrency: c, auth: [...r.mechanisms].join(',') || ctx.opts.auth },
    metrics: {
      logins: ok,
      failed: r.failed,
      logins_per_s: Math.round((ok / r.wall_s) * 10) / 10,
      login_ms: r.latency.summary(),
      connected_at_end: r.clients.length - lost,
      pbkdf2_in_window: pbkdf,
      cpu: cpuSummary,
    },
  };
  if (r.failed > 0) res.error = `${r.failed} of ${n} logins failed; first: ${r.firstError}`;
  return res;
}
