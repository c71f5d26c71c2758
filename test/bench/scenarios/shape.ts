// shape: what the cluster costs per session and per message (issue 14, "scale shape"). Needs --nodes 2
// or more. N users log in on the first node only; the figures are the first node's RSS per session (its
// own sessions), every other node's RSS per session (the directory replica), Redis memory per session,
// and Redis commands per login; then a closed-loop chat between partners on different nodes gives the
// Redis commands per message. Redis figures come from INFO commandstats / memory of the private Redis.
import { createClient } from 'redis';
import type { BenchContext, ScenarioResult } from '../context.js';
import { USER_PASSWORD, userName } from '../context.js';
import { procRssKiB } from '../stats.js';
import { runChat } from './chat.js';

type Redis = ReturnType<typeof createClient>;

async function redisCalls(r: Redis): Promise<number> {
  const info = await r.info('commandstats');
  let total = 0;
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) total += Number(m[1]);
  return total;
}

async function redisMemory(r: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await r.info('memory'))?.[1] ?? 0);
}

export async function shape(ctx: BenchContext): Promise<ScenarioResult> {
  const url = ctx.server.redisUrl;
  const others = ctx.server.otherPids ?? [];
  if (!url || ctx.targets.length < 2 || others.length === 0) throw new Error('shape: run it with --nodes 2 (or more)');
  const n = Math.floor(ctx.num('shape-n', 'SHAPE_N', 2000, 'n'));
  await ctx.ensureAccounts(n);
  const r = createClient({ url });
  await r.connect();
  try {
    await ctx.sleep(1000);
    const first = ctx.server.pid!;
    const rss0 = [procRssKiB(first), ...others.map((p) => (p === null ? null : procRssKiB(p)))];
    const calls0 = await redisCalls(r);
    const mem0 = await redisMemory(r);
    // Every session on the first node: the others hold only replicas of them.
    let next = 1;
    let failed = 0;
    const worker = async () => {
      while (next <= n) {
        const u = next++;
        const c = ctx.clients.open(ctx.targets[0]!);
        try {
          await c.login(userName(u), USER_PASSWORD, { auth: ctx.opts.auth, cache: ctx.accounts.scram, timeoutMs: ctx.opts.opTimeoutMs });
          c.setHot(() => {});
        } catch {
          failed++;
          c.destroy();
        }
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    await ctx.sleep(2000);
    const logins = n - failed;
    const calls1 = await redisCalls(r);
    const mem1 = await redisMemory(r);
    const rss1 = [procRssKiB(first), ...others.map((p) => (p === null ? null : procRssKiB(p)))];
    const perSession = (i: number) => {
      const a = rss0[i], b = rss1[i];
      return a === null || a === undefined || b === null || b === undefined ? null : Math.round(((b - a) * 1024) / logins);
    };
    await ctx.clients.closeAll();
    await ctx.sleep(2000);
    // Messages between partners on different nodes (user 2k-1 on one node, user 2k on the next).
    const pairs = Math.floor(ctx.num('shape-pairs', 'SHAPE_PAIRS', 50));
    const callsChat0 = await redisCalls(r);
    const chat = await runChat(ctx, 'shape-chat', { pairs, window: 5, rate: 0, duration: ctx.num('shape-t', 'SHAPE_T', 5), warmup: 1, drain: 2 });
    const callsChat1 = await redisCalls(r);
    const delivered = Number(chat.metrics.delivered ?? 0);
    // Logins and logouts of the chat clients are in the window too: about (login + logout) per client.
    const loginCost = (calls1 - calls0) / Math.max(1, logins);
    const perMessage = delivered > 0 ? (callsChat1 - callsChat0 - loginCost * pairs * 2) / delivered : null;
    return {
      scenario: 'shape',
      ok: failed === 0 && chat.ok,
      warnings: chat.warnings,
      params: { n, pairs, nodes: ctx.targets.length },
      metrics: {
        logins,
        first_node_bytes_per_session: perSession(0),
        replica_bytes_per_session: perSession(1),
        redis_bytes_per_session: Math.round((mem1 - mem0) / Math.max(1, logins)),
        redis_commands_per_login: Math.round(loginCost * 10) / 10,
        chat_delivered: delivered,
        redis_commands_per_message: perMessage === null ? null : Math.round(perMessage * 100) / 100,
      },
    };
  } finally {
    await r.quit().catch(() => {});
  }
}
