// muc: one room with N occupants, K of them sending groupchat messages in a closed loop (W in flight
// each: a sender sends its next message when its own reflection comes back). Every message is fanned
// out to all N occupants; the figures are fan-out deliveries/s (and messages/s) and the latency from
// sending to each occupant's receipt. Bodies start with the send time (µs, this process's clock) and
// the sender's index.
import { performance } from 'node:perf_hooks';
import type { BenchContext, ScenarioResult } from '../context.js';
import { CpuWindow, Latency, nowUs } from '../stats.js';
import { attr } from '../xml-lite.js';
import type { XmppClient } from '../client.js';

const MUC = 'http://jabber.org/protocol/muc';
const PAD = ' hearth bench groupchat payload, about the size of a short chat line';
const WARMUP = 0;
const MEASURE = 1;
const DRAIN = 2;

export async function muc(ctx: BenchContext): Promise<ScenarioResult> {
  const n = Math.floor(ctx.num('muc-n', 'MUC_N', 100, 'n'));
  const k = Math.floor(ctx.num('muc-k', 'MUC_K', 10));
  const w = Math.floor(ctx.num('muc-w', 'MUC_W', 5, 'window'));
  const duration = ctx.num('muc-t', 'MUC_T', 20, 'duration');
  const warmup = ctx.num('warmup', 'WARMUP', 2);
  const drain = ctx.num('drain', 'DRAIN', 3);
  if (n < 1 || k < 1 || k > n) throw new Error('muc: need 1 <= K <= N');
  if (w < 1 || duration <= 0) throw new Error('muc: window and duration must be > 0');

  await ctx.ensureAccounts(n);
  const users = Array.from({ length: n }, (_, i) => i + 1);
  ctx.log(`logging in ${n} clients`);
  const lr = await ctx.loginMany(users, 100);
  if (lr.failed > 0) throw new Error(`${lr.failed} of ${n} logins failed; first: ${lr.firstError}`);
  const clients: XmppClient[] = lr.clients;
  const room = `bench${Date.now().toString(36)}@conference.${ctx.target.domain}`;
  const timeout = ctx.opts.opTimeoutMs;

  // The first client creates an instant room (XEP-0045 §10.1.2), then everyone enters without history.
  const enter = async (i: number, x: string) => {
    const c = clients[i]!;
    const from = `${room}/u${i}`;
    c.send(`<presence to='${from}'><x xmlns='${MUC}'>${x}</x></presence>`);
    const self = await c.until((s) => s.startsWith('<presence') && attr(s, 'from') === from && (s.includes('code="110"') || attr(s, 'type') === 'error'), `self-presence in ${room}`, timeout);
    if (attr(self, 'type') === 'error') throw new Error(`u${i} could not enter ${room}: ${self.slice(0, 300)}`);
  };
  ctx.log(`creating ${room}; ${n} occupants entering`);
  const tJoin = performance.now();
  await enter(0, '');
  clients[0]!.send(`<iq type='set' id='cfg' to='${room}'><query xmlns='${MUC}#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`);
  await clients[0]!.until((s) => s.startsWith('<iq') && attr(s, 'id') === 'cfg', 'room configuration', timeout);
  let next = 1;
  const joiner = async () => {
    while (next < n && !ctx.signal.aborted) await enter(next++, `<history maxstanzas='0'/>`);
  };
  await Promise.all(Array.from({ length: Math.min(20, n) }, joiner));
  ctx.throwIfAborted();
  const joinS = (performance.now() - tJoin) / 1000;
  // let the presence broadcasts of the last entries settle before measuring
  await ctx.sleep(500);

  const lat = new Latency();
  let phase = WARMUP;
  let sent = 0;
  let sentWin = 0;
  let delivered = 0;
  let deliveredWin = 0;
  let reflectedWin = 0;
  let errors = 0;
  let unparsable = 0;
  let disconnects = 0;
  let firstLost: string | null = null;
  let firstError: string | null = null;
  let seq = 0;
  const head = `<message to='${room}' type='groupchat' id='`;
  const send = (s: number) => {
    clients[s]!.send(`${head}${++seq}'><body>${nowUs()} ${s}${PAD}</body></message>`);
    sent++;
    if (phase === MEASURE) sentWin++;
  };

  for (let j = 0; j < n; j++) {
    const c = clients[j]!;
    c.onLost = (e) => {
      disconnects++;
      firstLost ??= `u${j}: ${e.message}`;
    };
    c.setHot((s) => {
      if (!s.startsWith('<message')) return; // presence: not measured
      const t = nowUs();
      if (attr(s, 'type') === 'error') {
        errors++;
        firstError ??= s.slice(0, 300);
        return;
      }
      const b = s.indexOf('<body>');
      if (b === -1) return; // subject, status codes
      const sp = s.indexOf(' ', b + 6);
      const ts = parseInt(s.slice(b + 6, sp), 10);
      const sender = parseInt(s.slice(sp + 1, sp + 8), 10);
      if (Number.isNaN(ts) || Number.isNaN(sender)) {
        unparsable++;
        return;
      }
      delivered++;
      if (phase === MEASURE) {
        deliveredWin++;
        lat.add(t - ts);
        if (sender === j) reflectedWin++;
      }
      // closed loop: the sender's own reflection releases its next message
      if (sender === j && phase !== DRAIN && !c.closed) send(j);
    });
  }
  for (let s = 0; s < k; s++) for (let i = 0; i < w; i++) send(s);

  let cpuSummary;
  let winS = 0;
  let drained = false;
  ctx.log(`${k} senders x ${w} in flight to ${n} occupants: warm-up ${warmup} s, measuring ${duration} s`);
  await ctx.waitFor(() => disconnects > 0, warmup * 1000, 50);
  const cpu = new CpuWindow(ctx.server.pid);
  const w0 = performance.now();
  phase = MEASURE;
  await ctx.waitFor(() => disconnects > 0, duration * 1000, 50);
  phase = DRAIN;
  winS = (performance.now() - w0) / 1000;
  cpuSummary = cpu.stop(deliveredWin, 'delivery');
  if (disconnects > 0) ctx.log(`measurement stopped after ${winS.toFixed(1)} s: ${firstLost}`);
  drained = await ctx.waitFor(() => delivered + errors >= sent * n || disconnects > 0, drain * 1000);

  const expected = sent * n;
  const lost = expected - delivered;
  const warnings: string[] = [];
  if (lost > 0) warnings.push(`${lost} of ${expected} deliveries missing after a ${drain} s drain${drained ? '' : ' (drain timed out)'}`);
  if (errors > 0) warnings.push(`${errors} error messages; first: ${firstError}`);
  if (unparsable > 0) warnings.push(`${unparsable} received messages without a readable timestamp`);
  if (disconnects > 0) warnings.push(`${disconnects} clients disconnected; first: ${firstLost}`);
  const per = (v: number) => (winS >= 0.1 ? Math.round((v / winS) * 10) / 10 : null);
  return {
    scenario: 'muc',
    ok: lost === 0 && errors === 0 && disconnects === 0 && unparsable === 0,
    warnings,
    params: { occupants: n, senders: k, window: w, duration_s: duration, warmup_s: warmup, drain_s: drain },
    metrics: {
      deliveries_per_s: per(deliveredWin),
      messages_per_s: per(reflectedWin),
      latency_ms: lat.summary(),
      sent,
      delivered,
      lost,
      errors,
      join_s: Math.round(joinS * 10) / 10,
      sent_in_window: sentWin,
      cpu: cpuSummary ?? null,
    },
  };
}
