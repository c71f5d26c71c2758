// chat (closed loop) and chatlight (open loop): one-to-one <message/>s between
// fixed pairs of clients, addressed to the partner's bare JID. Each body starts
// with the send time (µs on this process's monotonic clock) for latency.
//
//  chat:      every client keeps W messages in flight to its partner: when one of
//             its messages is delivered it sends the next one (throughput).
//  chatlight: a fixed total offered rate spread round-robin over the clients,
//             independent of deliveries (latency without queueing).
//  chatnostore: chat with a XEP-0334 <no-store/> hint on every message, so the server
//             archives nothing: chat ÷ chatnostore is what the archive costs.
import { performance } from 'node:perf_hooks';
import type { BenchContext, ScenarioResult } from '../context.js';
import { CpuWindow, Latency, nowUs } from '../stats.js';
import { attr } from '../xml-lite.js';
import type { XmppClient } from '../client.js';

export interface ChatParams {
  pairs: number;
  /** closed loop: messages in flight per client (0 = open loop) */
  window: number;
  /** open loop: total offered msgs/s (0 = closed loop) */
  rate: number;
  duration: number;
  warmup: number;
  drain: number;
  /** XEP-0334 no-store hint: the server keeps no timeline rows */
  noStore?: boolean;
}

const PAD = ' hearth bench message payload, about the size of a short chat line';
const WARMUP = 0;
const MEASURE = 1;
const DRAIN = 2;

export async function chat(ctx: BenchContext): Promise<ScenarioResult> {
  return runChat(ctx, 'chat', closedLoop(ctx));
}

export async function chatnostore(ctx: BenchContext): Promise<ScenarioResult> {
  return runChat(ctx, 'chatnostore', { ...closedLoop(ctx), noStore: true });
}

function closedLoop(ctx: BenchContext): ChatParams {
  return {
    pairs: Math.floor(ctx.num('chat-n', 'CHAT_N', 200, 'n')),
    window: Math.floor(ctx.num('chat-w', 'CHAT_W', 10, 'window')),
    rate: 0,
    duration: ctx.num('chat-t', 'CHAT_T', 20, 'duration'),
    warmup: ctx.num('warmup', 'WARMUP', 2),
    drain: ctx.num('drain', 'DRAIN', 3),
  };
}

export async function chatlight(ctx: BenchContext): Promise<ScenarioResult> {
  return runChat(ctx, 'chatlight', {
    pairs: Math.floor(ctx.num('light-n', 'LIGHT_N', 10)), // not --n: chatlight stays light
    window: 0,
    rate: ctx.num('light-rate', 'LIGHT_RATE', 1000, 'rate'),
    duration: ctx.num('light-t', 'LIGHT_T', 10, 'duration'),
    warmup: ctx.num('warmup', 'WARMUP', 2),
    drain: ctx.num('drain', 'DRAIN', 3),
  });
}

export async function runChat(ctx: BenchContext, name: string, p: ChatParams): Promise<ScenarioResult> {
  const open = p.window === 0;
  if (p.pairs < 1) throw new Error(`${name}: need at least one pair`);
  if (open ? p.rate <= 0 : p.window < 1) throw new Error(`${name}: rate / window must be > 0`);
  if (p.duration <= 0) throw new Error(`${name}: duration must be > 0`);
  const nc = p.pairs * 2;
  await ctx.ensureAccounts(nc);
  const users = Array.from({ length: nc }, (_, i) => i + 1);
  ctx.log(`logging in ${nc} clients`);
  const lr = await ctx.loginMany(users, 100);
  if (lr.failed > 0) throw new Error(`${lr.failed} of ${nc} logins failed; first: ${lr.firstError}`);
  const clients: XmppClient[] = lr.clients;
  // the partner's domain: the same one, except across a federated link (the s2s scenario)
  const toJid = users.map((_, i) => `user${(i ^ 1) + 1}@${ctx.targetFor((i ^ 1) + 1).domain}`);
  const head = toJid.map((j) => `<message to='${j}' type='chat' id='`);
  const tail = p.noStore ? `</body><no-store xmlns='urn:xmpp:hints'/></message>` : '</body></message>';

  const lat = new Latency();
  let phase = WARMUP;
  let seq = 0;
  let sent = 0;
  let delivered = 0;
  let bounced = 0;
  let deliveredWin = 0;
  let sentWin = 0;
  let unparsable = 0;
  let disconnects = 0;
  let firstLost: string | null = null;

  const send = (i: number) => {
    clients[i]!.send(`${head[i]}${++seq}'><body>${nowUs()}${PAD}${tail}`);
    sent++;
    if (phase === MEASURE) sentWin++;
  };

  for (let j = 0; j < nc; j++) {
    const c = clients[j]!;
    const sender = j ^ 1; // the partner: the only one sending to j
    c.onLost = (e) => {
      disconnects++;
      firstLost ??= `user${j + 1}: ${e.message}`;
    };
    c.setHot((s) => {
      if (!s.startsWith('<message')) return; // presence, iq, ...: not measured
      const t = nowUs();
      if (attr(s, 'type') === 'error') {
        bounced++;
        return;
      }
      const b = s.indexOf('<body>');
      const ts = b === -1 ? NaN : parseInt(s.slice(b + 6, b + 26), 10);
      if (Number.isNaN(ts)) {
        unparsable++;
        return;
      }
      delivered++;
      if (phase === MEASURE) {
        deliveredWin++;
        lat.add(t - ts);
      }
      if (!open && phase !== DRAIN && !clients[sender]!.closed) send(sender);
    });
  }

  let ticker: NodeJS.Timeout | null = null;
  let behind = 0;
  const tStart = performance.now();
  if (open) {
    let scheduled = 0;
    let rr = 0;
    ticker = setInterval(() => {
      if (phase === DRAIN) return;
      const due = Math.floor(((performance.now() - tStart) / 1000) * p.rate);
      if (due - scheduled > p.rate) {
        // more than 1 s behind schedule: the generator cannot keep up; skip rather than burst
        behind += due - scheduled;
        scheduled = due;
      }
      for (; scheduled < due; scheduled++) {
        const i = rr;
        rr = rr + 1 === nc ? 0 : rr + 1;
        if (!clients[i]!.closed) send(i);
      }
    }, 1);
  } else {
    for (let i = 0; i < nc; i++) for (let k = 0; k < p.window; k++) send(i);
  }

  let cpuSummary;
  let winS = 0;
  let drained = false;
  try {
    ctx.log(`${open ? `open loop ${p.rate} msgs/s` : `closed loop W=${p.window}`}: warm-up ${p.warmup} s, measuring ${p.duration} s`);
    await ctx.waitFor(() => disconnects > 0, p.warmup * 1000, 50);
    const cpu = new CpuWindow(ctx.server.pid);
    const w0 = performance.now();
    phase = MEASURE;
    // a lost connection ends the measurement early: the figures would be meaningless anyway
    await ctx.waitFor(() => disconnects > 0, p.duration * 1000, 50);
    phase = DRAIN;
    winS = (performance.now() - w0) / 1000;
    cpuSummary = cpu.stop(deliveredWin, 'message');
    if (disconnects > 0) ctx.log(`measurement stopped after ${winS.toFixed(1)} s: ${firstLost}`);
    drained = await ctx.waitFor(() => delivered + bounced >= sent || disconnects === nc, p.drain * 1000);
  } finally {
    if (ticker) clearInterval(ticker);
  }

  const lost = sent - delivered;
  const warnings: string[] = [];
  if (lost > 0) warnings.push(`${lost} messages not delivered after a ${p.drain} s drain${drained ? '' : ' (drain timed out)'}`);
  if (bounced > 0) warnings.push(`${bounced} messages bounced with type='error'`);
  if (unparsable > 0) warnings.push(`${unparsable} received messages without a readable timestamp`);
  if (disconnects > 0) warnings.push(`${disconnects} clients disconnected; first: ${firstLost}`);
  if (behind > 0) warnings.push(`generator fell behind the offered rate by ${behind} messages`);
  const metrics: ScenarioResult['metrics'] = {
    delivered_per_s: winS >= 0.1 ? Math.round((deliveredWin / winS) * 10) / 10 : null,
    latency_ms: lat.summary(),
    sent,
    delivered,
    lost,
    bounced,
  };
  const res: ScenarioResult = {
    scenario: name,
    ok: lost === 0 && bounced === 0 && disconnects === 0 && unparsable === 0,
    warnings,
    params: open
      ? { pairs: p.pairs, rate: p.rate, duration_s: p.duration, warmup_s: p.warmup, drain_s: p.drain }
      : { pairs: p.pairs, window: p.window, duration_s: p.duration, warmup_s: p.warmup, drain_s: p.drain },
    metrics,
  };
  if (open) {
    const offered = p.rate * winS;
    metrics.offered_per_s = p.rate;
    metrics.sent_per_s = Math.round((sentWin / winS) * 10) / 10;
    metrics.kept_up = deliveredWin >= 0.95 * offered;
    if (!metrics.kept_up) warnings.push(`saturated: delivered ${deliveredWin} of ${Math.round(offered)} offered in the window (< 95 %); latency includes queueing`);
  }
  metrics.cpu = cpuSummary ?? null;
  return res;
}
