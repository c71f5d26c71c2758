// s2s: the chat load (closed loop, W messages in flight per client) across a federated link between two
// hearth processes (s2s-a.bench on 127.0.0.2, s2s-b.bench on 127.0.0.3, routed to each other with
// s2s.routes, dialback over STARTTLS), against the same load between local pairs on s2s-a.bench.
// The scenario starts both servers itself (the benchmark's main server is not used); CPU figures are
// those of s2s-a.bench. s2s.stanzasPerSecond is off on both, so the link is measured, not the limit.
import { fileURLToPath } from 'node:url';
import { AccountPool, BenchContext, type ScenarioResult } from '../context.js';
import type { Target } from '../client.js';
import { freePort, hearthServer, type ChildServer } from '../server-process.js';
import { runChat, type ChatParams } from './chat.js';

const A = { domain: 's2s-a.bench', addr: '127.0.0.2' };
const B = { domain: 's2s-b.bench', addr: '127.0.0.3' };

export async function s2s(ctx: BenchContext): Promise<ScenarioResult> {
  const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
  const params: ChatParams = {
    pairs: Math.floor(ctx.num('s2s-n', 'S2S_N', 50, 'n')),
    window: Math.floor(ctx.num('s2s-w', 'S2S_W', 10, 'window')),
    rate: 0,
    duration: ctx.num('s2s-t', 'S2S_T', 10, 'duration'),
    warmup: ctx.num('warmup', 'WARMUP', 2),
    drain: ctx.num('drain', 'DRAIN', 3),
  };
  const [aPort, bPort] = [await freePort(A.addr), await freePort(B.addr)];
  const routes = `{ ${A.domain}: "${A.addr}:${aPort}", ${B.domain}: "${B.addr}:${bPort}" }`;
  const s2sLine = (addr: string, port: number) => `s2s: { bind: ${addr}, port: ${port}, directTlsPort: null, routes: ${routes}, stanzasPerSecond: 0 }`;
  const servers: ChildServer[] = [];
  const subs: BenchContext[] = [];
  try {
    for (const [side, port] of [[A, aPort], [B, bPort]] as const) {
      const server = await hearthServer(repoRoot, side.domain, false, 'warn', [s2sLine(side.addr, port)], `hearth-${side.domain}`);
      servers.push(server);
      await server.start();
    }
    const [sa, sb] = servers as [ChildServer, ChildServer];
    const ta: Target = { host: sa.spec.host, port: sa.spec.port, domain: A.domain };
    const tb: Target = { host: sb.spec.host, port: sb.spec.port, domain: B.domain };
    const info = { pid: sa.pid, inProcess: false, description: `hearth ${A.domain} (federating with ${B.domain})` };
    /** A context of its own: odd users on A and even ones on B (federated), or everyone on A (local). */
    const sub = (targets: Target[]) => {
      const c = new BenchContext('s2s', ta, info, ctx.opts, new AccountPool(), new Map(), targets);
      ctx.signal.addEventListener('abort', () => c.abortNow('s2s scenario aborted'), { once: true });
      subs.push(c);
      return c;
    };
    ctx.log(`federated: ${params.pairs} pairs, one partner on each server`);
    const federated = await runChat(sub([ta, tb]), 's2s-federated', params);
    ctx.log(`local: ${params.pairs} pairs, both partners on ${A.domain}`);
    const local = await runChat(sub([ta]), 's2s-local', params);
    const rate = (r: ScenarioResult) => r.metrics.delivered_per_s as number | null;
    const fed = rate(federated);
    const loc = rate(local);
    return {
      scenario: 's2s',
      ok: federated.ok && local.ok,
      warnings: [...federated.warnings.map((w) => `federated: ${w}`), ...local.warnings.map((w) => `local: ${w}`)],
      params: { pairs: params.pairs, window: params.window, duration_s: params.duration },
      metrics: {
        federated_per_s: fed,
        local_per_s: loc,
        federated_vs_local: fed !== null && loc !== null && loc > 0 ? Math.round((fed / loc) * 100) / 100 : null,
        federated_latency_ms: federated.metrics.latency_ms ?? null,
        local_latency_ms: local.metrics.latency_ms ?? null,
        federated_lost: federated.metrics.lost ?? null,
        local_lost: local.metrics.lost ?? null,
        federated_cpu_a: federated.metrics.cpu ?? null,
        local_cpu_a: local.metrics.cpu ?? null,
      },
    };
  } finally {
    for (const c of subs) await c.clients.closeAll(3000);
    for (const s of servers) await s.stop();
  }
}
