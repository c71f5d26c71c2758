// mobile: the protobuf-over-WebSocket adapter (src/mobile) under load, on a hearth child process of its
// own that loads the mobile module (modules.mobile.port on a free loopback port):
//   1. mobile↔mobile: P pairs of mobile clients, closed loop (W messages in flight per client, as in
//      `chat`): delivered messages/s and latency from send to the partner's push;
//   2. mobile↔XMPP: P pairs of one mobile and one XMPP client chatting both ways (same loop);
//   3. sync: one user receives S messages while offline (sent by a mobile client, each acknowledged =
//      stored), then logs in; the time from the login request to SyncState{complete} with all S pushed.
// Bodies start with the send time (µs on this process's monotonic clock) for latency.
// --mobile-target HOST:PORT (with --target) uses a running server's mobile endpoint instead.
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccountPool, BenchContext, USER_PASSWORD, userName, type ScenarioResult } from '../context.js';
import { CpuWindow, Latency, nowUs } from '../stats.js';
import { ChildServer, freePort, hearthConfigYaml, makeTempDir } from '../server-process.js';
import type { Target, XmppClient } from '../client.js';
import { MobileClient, Platform } from '../../helpers/mobile-sdk.js';

const PAD = ' hearth bench message payload, about the size of a short chat line';

interface Loop { pairs: number; window: number; duration: number; warmup: number; drain: number }

export async function mobile(ctx: BenchContext): Promise<ScenarioResult> {
  const loop: Loop = {
    pairs: Math.floor(ctx.num('mobile-n', 'MOBILE_N', 50, 'n')),
    window: Math.floor(ctx.num('mobile-w', 'MOBILE_W', 10, 'window')),
    duration: ctx.num('mobile-t', 'MOBILE_T', 10, 'duration'),
    warmup: ctx.num('warmup', 'WARMUP', 2),
    drain: ctx.num('drain', 'DRAIN', 3),
  };
  const syncN = Math.floor(ctx.num('mobile-sync', 'MOBILE_SYNC', 10_000));
  if (loop.pairs < 1 || loop.window < 1 || loop.duration <= 0) throw new Error('mobile: pairs, window and duration must be > 0');

  // ---- the server: our own child with the mobile module, unless told where one runs ----
  let child: ChildServer | null = null;
  let sub: BenchContext;
  let mobileUrl: string;
  const external = ctx.param('mobile-target', 'MOBILE_TARGET', '');
  if (external !== '') {
    mobileUrl = `ws://${external}/mobile`;
    sub = ctx;
  } else {
    const dir = makeTempDir('hearth-bench-mobile-', false);
    const port = await freePort();
    const mobilePort = await freePort();
    const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
    const yaml = hearthConfigYaml({ domain: ctx.target.domain, dataDir: join(dir, 'data'), port, logLevel: 'warn' })
      .replace('modules: { register: { perIpPerHour: 0 } }',
        `modules: { register: { perIpPerHour: 0 }, mobile: { port: ${mobilePort}, bind: 127.0.0.1, requestsPerSecond: 0, syncBatch: 500, syncWindow: 5000 } }`);
    // The sync part parks syncN messages in one user's offline storage.
    writeFileSync(join(dir, 'hearth.yaml'), `${yaml}offline: { maxPerUser: ${Math.max(1000, syncN + 100)} }\n`);
    const dist = join(repoRoot, 'dist');
    child = new ChildServer({
      name: 'hearth+mobile', args: [join(repoRoot, 'bin/hearth.js'), 'start', '--config', join(dir, 'hearth.yaml')], cwd: dirname(dist),
      host: '127.0.0.1', port, logFile: join(dir, 'server.log'), startTimeoutMs: 30_000, persistent: true,
    });
    ctx.log(`starting hearth with the mobile module (c2s ${port}, mobile ${mobilePort})`);
    await child.start();
    mobileUrl = `ws://127.0.0.1:${mobilePort}/mobile`;
    const target: Target = { host: '127.0.0.1', port, domain: ctx.target.domain };
    sub = new BenchContext('mobile', target, { pid: child.pid, inProcess: false, description: 'hearth+mobile child' }, ctx.opts, new AccountPool(), new Map(), [target]);
    ctx.signal.addEventListener('abort', () => sub.abortNow('aborted'), { once: true });
  }

  const mobiles: MobileClient[] = [];
  const warnings: string[] = [];
  try {
    const p = loop.pairs;
    // user1..2P: mobile↔mobile; 2P+1..3P mobile and 3P+1..4P XMPP for mobile↔XMPP; 4P+1, 4P+2: sync.
    await sub.ensureAccounts(4 * p + 2);
    const domain = ctx.target.domain;
    const jidOf = (u: number) => `${userName(u)}@${domain}`;
    const connect = async (u: number, device = 'bench'): Promise<MobileClient> => {
      const c = await MobileClient.connect(mobileUrl, { keepPushes: false, requestTimeoutMs: 60_000 });
      mobiles.push(c);
      await c.login({ username: userName(u), password: USER_PASSWORD, deviceId: device, platform: Platform.ANDROID });
      return c;
    };

    ctx.log(`mobile↔mobile: ${p} pairs, W=${loop.window}`);
    const mm = await Promise.all(Array.from({ length: 2 * p }, (_, i) => connect(i + 1)));
    const r1 = await closedLoop(sub, loop, mm.map((c, i) => ({
      send: (body: string) => void c.send(jidOf((i ^ 1) + 1), body).catch(() => {}),
      onReceive: (fn: (body: string) => void) => { c.onMessage = (m) => { if (!m.outgoing) fn(m.body); }; },
    })));

    ctx.log(`mobile↔XMPP: ${p} pairs, W=${loop.window}`);
    const mx = await Promise.all(Array.from({ length: p }, (_, i) => connect(2 * p + 1 + i)));
    const lr = await sub.loginMany(Array.from({ length: p }, (_, i) => 3 * p + 1 + i), 50);
    if (lr.failed > 0) throw new Error(`${lr.failed} XMPP logins failed: ${lr.firstError}`);
    const xs: XmppClient[] = lr.clients;
    let msgId = 0;
    const ends = [];
    for (let i = 0; i < p; i++) {
      const m = mx[i]!;
      const x = xs[i]!;
      const mJid = `${jidOf(2 * p + 1 + i)}`;
      const xJid = jidOf(3 * p + 1 + i);
      ends.push({
        send: (body: string) => void m.send(xJid, body).catch(() => {}),
        onReceive: (fn: (body: string) => void) => { m.onMessage = (msg) => { if (!msg.outgoing) fn(msg.body); }; },
      });
      ends.push({
        send: (body: string) => x.send(`<message to='${mJid}' type='chat' id='b${++msgId}'><body>${body}</body></message>`),
        onReceive: (fn: (body: string) => void) => {
          x.setHot((s) => {
            if (!s.startsWith('<message')) return;
            const b = s.indexOf('<body>');
            if (b >= 0) fn(s.slice(b + 6, s.indexOf('</body>', b)));
          });
        },
      });
    }
    const r2 = await closedLoop(sub, loop, ends);

    ctx.log(`sync: ${syncN} messages to an offline user`);
    const sender = await connect(4 * p + 1);
    const to = jidOf(4 * p + 2);
    let inFlight = 0;
    let acked = 0;
    let next = 0;
    await new Promise<void>((resolve, reject) => {
      const pump = () => {
        while (inFlight < 200 && next < syncN) {
          inFlight++;
          sender.send(to, `sync ${next++}${PAD}`).then(() => {
            inFlight--;
            acked++;
            if (acked === syncN) resolve(); else pump();
          }, reject);
        }
      };
      pump();
    });
    const t0 = performance.now();
    const cpu = new CpuWindow(sub.server.pid);
    const reader = await MobileClient.connect(mobileUrl, { keepPushes: false, requestTimeoutMs: 60_000 });
    mobiles.push(reader);
    let received = 0;
    reader.onMessage = () => { received++; };
    await reader.login({ username: userName(4 * p + 2), password: USER_PASSWORD, deviceId: 'sync', platform: Platform.IOS });
    const state = await reader.syncComplete(120_000);
    const syncS = (performance.now() - t0) / 1000;
    const syncCpu = cpu.stop(received, 'message');
    if (received !== syncN) warnings.push(`sync pushed ${received} of ${syncN} messages`);
    warnings.push(...r1.warnings.map((w) => `mobile↔mobile: ${w}`), ...r2.warnings.map((w) => `mobile↔XMPP: ${w}`));
    return {
      scenario: 'mobile',
      ok: r1.ok && r2.ok && received === syncN && state.complete,
      warnings,
      params: { pairs: p, window: loop.window, duration_s: loop.duration, sync_messages: syncN },
      metrics: {
        mm_delivered_per_s: r1.perS,
        mm_latency_ms: r1.latency,
        mx_delivered_per_s: r2.perS,
        mx_latency_ms: r2.latency,
        sync_s: Math.round(syncS * 1000) / 1000,
        sync_msgs_per_s: Math.round(received / syncS),
        mm_cpu: r1.cpu,
        mx_cpu: r2.cpu,
        sync_cpu: syncCpu,
      },
    };
  } finally {
    for (const c of mobiles) c.drop();
    if (sub !== ctx) await sub.clients.closeAll(2000);
    if (child) await child.stop();
  }
}

interface End { send(body: string): void; onReceive(fn: (body: string) => void): void }

/** `chat`'s closed loop over any pair of ends: each delivery to end j makes its partner (j^1) send the next. */
async function closedLoop(ctx: BenchContext, p: Loop, ends: End[]) {
  const lat = new Latency();
  let measuring = false;
  let draining = false;
  let sent = 0;
  let delivered = 0;
  let deliveredWin = 0;
  const send = (i: number) => { sent++; ends[i]!.send(`${nowUs()}${PAD}`); };
  ends.forEach((e, j) => e.onReceive((body) => {
    const t = nowUs();
    delivered++;
    if (measuring) {
      deliveredWin++;
      const ts = parseInt(body.slice(0, 20), 10);
      if (!Number.isNaN(ts)) lat.add(t - ts);
    }
    if (!draining) send(j ^ 1);
  }));
  for (let i = 0; i < ends.length; i++) for (let k = 0; k < p.window; k++) send(i);
  await ctx.sleep(p.warmup * 1000);
  const cpu = new CpuWindow(ctx.server.pid);
  const w0 = performance.now();
  measuring = true;
  await ctx.sleep(p.duration * 1000);
  measuring = false;
  draining = true;
  const winS = (performance.now() - w0) / 1000;
  const cpuSummary = cpu.stop(deliveredWin, 'message');
  const drained = await ctx.waitFor(() => delivered >= sent, p.drain * 1000);
  const warnings = drained ? [] : [`${sent - delivered} messages not delivered after a ${p.drain} s drain`];
  return { perS: Math.round((deliveredWin / winS) * 10) / 10, latency: lat.summary(), cpu: cpuSummary, ok: drained, warnings };
}
