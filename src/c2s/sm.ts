// Stream management (XEP-0198) state of one client session: the counters, the unacknowledged queue and
// the resumption ids of a server. A queued message that has a timeline row is kept as its row (DeliveryMeta),
// not as a copy: a resumption reads it back from the timeline, and a session that ends makes exactly those
// rows pending again (offline delivery at the next login).
import { randomBytes } from "node:crypto";
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { parseFramedElement } from "../xml/parser.js";
import type { DeliveryMeta } from "../sessions/session.js";
import type { TimelineStore } from "../storage/types.js";

export const NS_SM = "urn:xmpp:sm:3";

/** XEP-0198 §4: h is an unsigned 32-bit integer that wraps to 0. */
const MOD = 2 ** 32;
/** More unacknowledged stanzas than this end the session (XEP-0198 §6 lets the server bound the queue). */
export const MAX_UNACKED = 10_000;
/** Expired resumption ids remembered, so that a late resume gets `<failed h=…/>` (XEP-0198 §5). */
const MAX_EXPIRED = 10_000;
const ID_QUERY_CHUNK = 500;

/** A stanza waiting for the client's ack: its timeline row, or the text as written. */
export type QueuedStanza = DeliveryMeta | string;

export class StreamManagement {
  /** Stanzas handled from the client (h sent in `<a/>`), mod 2^32. */
  inbound = 0;
  /** The last h the client acknowledged; queue[i] is stanza number acked + i + 1. */
  acked = 0;
  queue: QueuedStanza[] = [];
  /** An `<r/>` is out and not answered yet: at most one per round trip. */
  requested = false;
  hibernateTimer: NodeJS.Timeout | null = null;

  /** `id`: the resumption id, or null when the client did not ask for resumption. */
  constructor(readonly id: string | null, readonly max: number) {}

  countInbound(): void {
    this.inbound = (this.inbound + 1) % MOD;
  }

  /** The number of stanzas `h` acknowledges beyond the last ack, or -1 when it is more than were sent. */
  newlyAcked(h: number): number {
    const n = (h - this.acked + MOD) % MOD;
    return n > this.queue.length ? -1 : n;
  }

  ack(h: number, n: number): void {
    if (n > 0) this.queue.splice(0, n);
    this.acked = h;
  }

  /** How many stanzas were sent since SM was enabled, mod 2^32 (for handled-count-too-high). */
  get sent(): number {
    return (this.acked + this.queue.length) % MOD;
  }

  /** The seqs of the queued messages that have a timeline row. */
  rows(): number[] {
    const seqs: number[] = [];
    for (const q of this.queue) if (typeof q !== "string") seqs.push(q.seq);
    return seqs;
  }
}

/** Parses an h attribute: an integer in 0..2^32-1, else null. */
export function parseH(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,10}$/.test(value)) return null;
  const h = Number(value);
  return h < MOD ? h : null;
}

export function smFailed(condition: string, h?: number): Element {
  return xml("failed", { xmlns: NS_SM, ...(h !== undefined ? { h: String(h) } : {}) }, xml(condition, { xmlns: NS.stanzas }));
}

export function handledCountTooHigh(h: number, sent: number): Element {
  return xml("handled-count-too-high", { xmlns: NS_SM, h: String(h), "send-count": String(sent) });
}

interface Expired { owner: string; h: number }

/** The resumable sessions of one server, by resumption id. */
export class ResumeRegistry<S> {
  readonly live = new Map<string, S>();
  private readonly expired = new Map<string, Expired>();

  newId(): string {
    return randomBytes(18).toString("base64url");
  }

  /** The session ended: a later resume with its id learns the h it had reached. */
  ended(id: string, owner: string, h: number): void {
    this.live.delete(id);
    this.expired.set(id, { owner, h });
    if (this.expired.size > MAX_EXPIRED) this.expired.delete(this.expired.keys().next().value!);
  }

  expiredH(id: string, owner: string): number | undefined {
    const e = this.expired.get(id);
    return e && e.owner === owner ? e.h : undefined;
  }
}

const registries = new WeakMap<object, ResumeRegistry<unknown>>();

/** The registry of the server that `ctx` (its C2sContext) belongs to. */
export function resumeRegistry<S>(ctx: object): ResumeRegistry<S> {
  let r = registries.get(ctx);
  if (!r) registries.set(ctx, (r = new ResumeRegistry<unknown>()));
  return r as ResumeRegistry<S>;
}

/**
 * The queued stanzas as elements to resend, in order. Rows are read back from the owner's timeline and
 * carry their stanza-id and a XEP-0203 delay with the original time; a row that is gone (retention, a
 * deleted account) is left out, and so is a stored stanza that no longer parses.
 */
export async function materialize(queue: readonly QueuedStanza[], timeline: TimelineStore, owner: string, host: string): Promise<Array<{ queued: QueuedStanza; stanza: Element | string }>> {
  const ids: string[] = [];
  for (const q of queue) if (typeof q !== "string") ids.push(q.stanzaId);
  const rows = new Map<string, string>();
  for (let i = 0; i < ids.length; i += ID_QUERY_CHUNK) {
    const chunk = ids.slice(i, i + ID_QUERY_CHUNK);
    for (const e of await timeline.query(owner, { stanzaIds: chunk, limit: chunk.length })) rows.set(e.stanzaId, e.xml);
  }
  const out: Array<{ queued: QueuedStanza; stanza: Element | string }> = [];
  for (const q of queue) {
    if (typeof q === "string") { out.push({ queued: q, stanza: q }); continue; }
    const text = rows.get(q.stanzaId);
    if (text === undefined) continue;
    let el: Element;
    try { el = parseFramedElement(text); } catch { continue; }
    el.cnode(xml("stanza-id", { xmlns: NS.sid, id: q.stanzaId, by: owner }));
    el.cnode(xml("delay", { xmlns: NS.delay, from: host, stamp: new Date(q.ts).toISOString() }));
    out.push({ queued: q, stanza: el });
  }
  return out;
}
