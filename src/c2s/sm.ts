// Stream management (XEP-0198) state of one client session: the counters, the unacknowledged queue and
// the resumption ids of a server. A queued message that has a timeline row is kept as its row (DeliveryMeta),
// not as a copy: a resumption reads it back from the timeline, and a session that ends makes exactly those
// rows pending again (offline delivery at the next login).
import { randomBytes } from "node:crypto";
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { parseFramedElement } from "../xml/parser.js";
import type { DeliveryMeta } from "../sessions/session.js";
import type { MapStore, TimelineStore } from "../storage/types.js";
import type { Logger } from "../log.js";
import type { C2sContext } from "./context.js";
import { AuthThrottle } from "../auth/throttle.js";
import { NetworkList } from "../auth/networks.js";

export const NS_SM = "urn:xmpp:sm:3";

/** XEP-0198 §4: h is an unsigned 32-bit integer that wraps to 0. */
const MOD = 2 ** 32;
/** More unacknowledged stanzas than this end the session (XEP-0198 §6 lets the server bound the queue). */
export const MAX_UNACKED = 10_000;
/** Expired resumption ids remembered, so that a late resume gets `<failed h=…/>` (XEP-0198 §5). */
const MAX_EXPIRED = 10_000;
/** The widest seq range one resend query reads. */
const SEQ_SPAN = 2000;

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
  /** Who holds the session (see SmRecord.epoch). */
  epoch = randomBytes(9).toString("base64url");
  /** The durable record of a resumable session, null without resumption. */
  journal: SmJournal | null = null;

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

/**
 * Resumes naming an id that is not a session of the user (a guessed previd) one address may make in
 * `RESUME_WINDOW_MS`; further resumes from it are answered `<failed>` with policy-violation, without a lookup.
 */
export const MAX_RESUME_FAILURES = 10;
const RESUME_WINDOW_MS = 10 * 60_000;

/** The resumable sessions of one server, by resumption id. */
export class ResumeRegistry<S> {
  readonly live = new Map<string, S>();
  private readonly expired = new Map<string, Expired>();
  private readonly guesses = new AuthThrottle({
    perPair: 0, perAddress: MAX_RESUME_FAILURES, windowMs: RESUME_WINDOW_MS, delayMs: 0, maxDelayMs: 0, exempt: new NetworkList([]), maxKeys: 10_000,
  });

  /** Whether `address` made too many resumes of unknown ids lately: ms until it may try again, else 0. */
  refusedFor(address: string): number {
    const v = this.guesses.addressVerdict(address);
    return v.allowed ? 0 : Math.max(1, v.retryAfterMs);
  }

  /** A resume from `address` named an id that is no session of its user. */
  unknownId(address: string): void {
    this.guesses.failed(address, null);
  }

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
 * The queued stanzas as elements to resend, in order. Rows are read back from the owner's timeline by seq
 * and carry their stanza-id and a XEP-0203 delay with the original time; a row that is gone (retention, a
 * deleted account) is left out, and so is a stored stanza that no longer parses.
 */
export async function materialize(queue: readonly QueuedStanza[], timeline: TimelineStore, owner: string, host: string): Promise<Array<{ queued: QueuedStanza; stanza: Element | string }>> {
  const seqs: number[] = [];
  for (const q of queue) if (typeof q !== "string") seqs.push(q.seq);
  seqs.sort((a, b) => a - b);
  const rows = new Map<number, { xml: string; stanzaId: string; ts: number }>();
  // Seq ranges of at most SEQ_SPAN: a range query reads the rows between as well, a bounded number.
  for (let i = 0; i < seqs.length;) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] - seqs[i] < SEQ_SPAN) j++;
    const from = seqs[i], to = seqs[j];
    for (const e of await timeline.query(owner, { afterSeq: from - 1, beforeSeq: to + 1, limit: to - from + 1 })) {
      rows.set(e.seq, { xml: e.xml, stanzaId: e.stanzaId, ts: e.ts });
    }
    i = j + 1;
  }
  const out: Array<{ queued: QueuedStanza; stanza: Element | string }> = [];
  for (const q of queue) {
    if (typeof q === "string") { out.push({ queued: q, stanza: q }); continue; }
    const row = rows.get(q.seq);
    if (row === undefined) continue;
    let el: Element;
    try { el = parseFramedElement(row.xml); } catch { continue; }
    el.cnode(xml("stanza-id", { xmlns: NS.sid, id: row.stanzaId, by: owner }));
    el.cnode(xml("delay", { xmlns: NS.delay, from: host, stamp: new Date(row.ts).toISOString() }));
    out.push({ queued: q, stanza: el });
  }
  return out;
}

// ---- durable resumption ----
//
// A resumable session keeps a small record in the store (map "sm-resume", owner = the host, key = the
// resumption id), so that a client can resume it after the node died or on another node. The record holds
// the counters, the bound resource, the presence to re-establish and the unacknowledged queue as timeline
// seqs numbered with their XEP-0198 stanza number (flat pairs of numbers: the stanza-id and time are read
// back from the timeline on a resumption, so a record stays small and cheap to write); stanzas without a
// row (presence, iq, unstored messages) are counted but not kept, so they are not resent after a
// resumption from the record.
//
// When what must be durable is written:
// - A row reaches the socket only after a record that lists it was written (output waits for that one
//   write; the writes of one session are coalesced, never one per stanza): whatever the client can have
//   received is in the record with its number, so a client's h after a crash maps exactly onto rows.
// - Acks and inbound counts ride on the next write (coalesced): after a crash the record may be behind the
//   client's h, which only means the client's h (authoritative, and checked against `sent`) is used.
// - Losing the connection (hibernation) writes the record with the time it was detached.
// - A live session without output refreshes its record every `max`/2 seconds, so that a record nobody
//   refreshes (its node died) is known to be abandoned `max` seconds after the last write at the latest.

export const SM_STORE = "sm-resume";
/** How late an ack may reach the record. */
const LAZY_MS = 1000;

/**
 * The unacknowledged messages of a record: stanza number and timeline seq of each, one pair after the other
 * ([n0, seq0, n1, seq1, …]).
 */
export type SmRows = number[];

export interface SmRecord {
  /** The owner's bare JID. */
  user: string;
  resource: string;
  max: number;
  /** Stanzas handled from the client (the h the server answers). */
  inbound: number;
  /** The last h the client acknowledged. */
  acked: number;
  /** Stanzas sent to the client, mod 2^32. */
  sent: number;
  rows: SmRows;
  /** The client's last available presence, re-established on resumption from the record. */
  presence: string | null;
  /** Who holds the session: a resumption from the record claims it with a new epoch. */
  epoch: string;
  /** Last write (ms since epoch). */
  at: number;
  /** When the connection was lost, null while it is attached. */
  detachedAt: number | null;
  /** The session is over (timeout, clean close): a resume learns its h and nothing else. */
  ended?: boolean;
}

/** When an abandoned record may no longer be resumed: max after the connection was lost, or after the last refresh of a live one. */
export function resumableUntil(r: SmRecord): number {
  return r.detachedAt !== null ? r.detachedAt + r.max * 1000 : r.at + 2 * r.max * 1000;
}

export function parseRecord(text: string | null): SmRecord | null {
  if (text === null) return null;
  try {
    const r = JSON.parse(text) as SmRecord;
    if (typeof r !== "object" || r === null || typeof r.user !== "string" || !Array.isArray(r.rows)) return null;
    // Records written before the pairs were flat: [[n, seq, stanzaId, ts], …].
    if (r.rows.length > 0 && Array.isArray(r.rows[0])) r.rows = (r.rows as unknown as number[][]).flatMap(([n, seq]) => [n, seq]);
    return r;
  } catch { return null; }
}

/** The queued rows of `sm` with their stanza numbers. */
export function numberedRows(sm: StreamManagement): SmRows {
  const rows: SmRows = [];
  const queue = sm.queue, base = sm.acked + 1;
  for (let i = 0; i < queue.length; i++) {
    const q = queue[i];
    if (typeof q !== "string") rows.push((base + i) % MOD, q.seq);
  }
  return rows;
}

/** What a journal keeps of the record it wrote. */
export interface RecordText { text: string; at: number; sent: number; detachedAt: number | null }

/** The presence as a JSON string, made once per presence element (it changes far less often than the record). */
const presenceJsons = new WeakMap<Element, string>();

/**
 * The record (SmRecord) of `sm` as it stands now, as JSON text, built without an intermediate object (it is
 * written for every resumable session that received something since its last write).
 * `userJson`/`resourceJson`: the JSON strings of the user and resource, which the caller keeps.
 */
export function snapshotText(sm: StreamManagement, userJson: string, resourceJson: string, presence: Element | null, detached: boolean, previousDetachedAt: number | null): RecordText {
  const at = Date.now();
  const detachedAt = detached ? (previousDetachedAt ?? at) : null;
  let p = "null";
  if (presence !== null) {
    const cached = presenceJsons.get(presence);
    if (cached !== undefined) p = cached;
    else presenceJsons.set(presence, (p = JSON.stringify(presence.toString())));
  }
  const sent = sm.sent;
  const text = `{"user":${userJson},"resource":${resourceJson},"max":${sm.max},"inbound":${sm.inbound},"acked":${sm.acked},"sent":${sent},` +
    `"rows":[${numberedRows(sm).join(",")}],"presence":${p},"epoch":${JSON.stringify(sm.epoch)},"at":${at},"detachedAt":${detachedAt === null ? "null" : detachedAt}}`;
  return { text, at, sent, detachedAt };
}

/**
 * The record writes of one node, batched: every journal that changed in a tick is written in the next
 * one, all of them in one compare-and-set call to the store (on SQLite committed by the timeline's writer
 * thread with that turn's appends: the event loop never waits for SQLite's write lock). The writes of a
 * busy node cost about one share of a commit per tick, whatever the number of sessions.
 */
export class JournalWriter {
  private readonly dirty = new Set<SmJournal>();
  private scheduled = false;

  constructor(private readonly store: MapStore, private readonly log: Logger) {}

  add(journal: SmJournal): void {
    this.dirty.add(journal);
    if (this.scheduled) return;
    this.scheduled = true;
    // At the end of this turn's microtasks, not in the check phase: the timeline's next batch (flushed by
    // setImmediate) then carries these records, so held output waits for one commit rather than two.
    process.nextTick(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = [...this.dirty];
    this.dirty.clear();
    const entries = batch.map((j) => j.begin());
    this.store.putIfMany(entries).then(
      (stored) => { for (let i = 0; i < batch.length; i++) batch[i].complete(stored[i], false); },
      (err: unknown) => {
        // The store failed: the output goes out anyway (it is in the archive); a resumption from the record
        // may then miss it, as it would have without durable resumption.
        this.log.error({ err, sessions: batch.length }, "could not write the stream management records");
        for (const j of batch) j.complete(null, true);
      },
    );
  };
}

const writers = new WeakMap<MapStore, JournalWriter>();

/** The batched writer of the records in `store` (one per store, so per node). */
export function journalWriter(store: MapStore, log: Logger): JournalWriter {
  let w = writers.get(store);
  if (!w) writers.set(store, (w = new JournalWriter(store, log)));
  return w;
}

/**
 * The store side of one resumable session: coalesced writes of its record (batched with the other
 * sessions' by the node's JournalWriter), and output held until the write that makes its rows durable is done.
 */
export class SmJournal {
  private scheduled = false;
  /** A write is pending or running (no promise per write: `idle()` waits on `idleWaiters`). */
  private writing = false;
  private idleWaiters: Array<() => void> | null = null;
  private again = false;
  private lazy: NodeJS.Timeout | null = null;
  private held: string[] = [];
  /** Bumped when held output is dropped (the connection went): a running write must not release it. */
  private generation = 0;
  /** The record last written: the stored value is still ours when it is exactly its text. */
  private last: RecordText | null = null;
  /** The write under way: its record, the output it releases and the generation it belongs to. */
  private inFlight: { record: RecordText; out: string[]; generation: number } | null = null;
  /** Another node resumed the session from its record: this copy must end without touching it. */
  lost = false;
  /** `sent` as of the last record written: rows numbered above it are in no record. */
  persistedSent: number;

  constructor(
    private readonly store: MapStore,
    private readonly host: string,
    readonly id: string,
    private readonly epoch: string,
    /** The record as it stands now; `previousDetachedAt`: when the connection was lost, as last written. */
    private readonly current: (previousDetachedAt: number | null) => RecordText,
    /** Writes output that waited for a record. */
    private readonly release: (texts: string[]) => void,
    private readonly onLost: () => void,
    private readonly log: Logger,
    persistedSent = 0,
    private readonly writer: JournalWriter = journalWriter(store, log),
  ) {
    this.persistedSent = persistedSent;
  }

  /** Whether output must queue behind held output to keep its order. */
  get holding(): boolean { return this.held.length > 0; }

  /** When the record was last written (0: never). */
  get writtenAt(): number { return this.last?.at ?? 0; }

  /** `text` (with a row in it) goes out once a record listing that row is written. */
  hold(text: string): void {
    this.held.push(text);
    this.touch();
  }

  /** The connection went: held output is in the queue and goes out with the resend of a resumption. */
  dropHeld(): void {
    this.held = [];
    this.generation++;
  }

  /**
   * Something that may be written late changed (an ack): written at once when the record is older than
   * `LAZY_MS`, else with the next write or `LAZY_MS` after the last one. Until then a crash leaves the record's ack behind the client's, which a resumption
   * corrects (the client's h rules) and only a timeout after a crash turns into a repeat at the next login.
   */
  touchLater(): void {
    if (this.lost || this.scheduled || this.writing || this.lazy) return;
    const wait = this.writtenAt + LAZY_MS - Date.now();
    if (wait <= 0) return this.touch();
    this.lazy = setTimeout(() => { this.lazy = null; this.touch(); }, wait);
    this.lazy.unref();
  }

  /** Something in the record changed: one write soon, shared with every other change until it starts. */
  touch(): void {
    if (this.lost || this.scheduled) return;
    if (this.writing) { this.again = true; return; }
    if (this.lazy) { clearTimeout(this.lazy); this.lazy = null; }
    this.scheduled = true;
    this.writing = true;
    this.writer.add(this);
  }

  /** Resolves once no write is pending or running. */
  async idle(): Promise<void> {
    while (this.writing) await new Promise<void>((resolve) => (this.idleWaiters ??= []).push(resolve));
  }

  /** The writer starts this journal's write: the entry for the batch (set if the stored record is the one we wrote last). */
  begin(): { owner: string; key: string; value: string; expect: string | null } {
    this.scheduled = false;
    const record = this.current(this.last?.detachedAt ?? null);
    this.inFlight = { record, out: this.held, generation: this.generation };
    this.held = [];
    return { owner: this.host, key: this.id, value: record.text, expect: this.last?.text ?? null };
  }

  /** The batch is done: `stored` is the value now in the store (`failed`: the store failed). */
  complete(stored: string | null, failed: boolean): void {
    const text = this.inFlight!.record.text;
    if (failed || stored === text) return this.finish(failed ? "failed" : "written");
    // The stored record is not the one we wrote last (our first write over a claimed record, or another
    // node's claim): written when it is still ours, by its epoch.
    this.store.update(this.host, this.id, (cur) => {
      const r = parseRecord(cur);
      return r === null || (r.epoch === this.epoch && !r.ended) ? text : undefined;
    }).then(
      (now) => this.finish(now === text ? "written" : "lost"),
      (err: unknown) => {
        this.log.error({ err, id: this.id }, "could not write the stream management record");
        this.finish("failed");
      },
    );
  }

  private finish(outcome: "written" | "lost" | "failed"): void {
    const { record, out, generation } = this.inFlight!;
    this.inFlight = null;
    const waiters = this.idleWaiters;
    this.idleWaiters = null;
    this.writing = false;
    if (outcome === "lost") {
      this.lost = true;
      if (waiters !== null) for (const w of waiters) w();
      return this.onLost();
    }
    if (outcome === "written") {
      this.last = record;
      this.persistedSent = record.sent;
    }
    if (out.length && generation === this.generation) this.release(out);
    if (waiters !== null) for (const w of waiters) w();
    if (this.again) { this.again = false; this.touch(); }
  }

  /**
   * The session is over here: unless another node took it, the record becomes a tombstone with the h a
   * late resume learns. Resolves to the stanza number above which queued rows are in no record another
   * node took (all of them when none did).
   */
  async end(inbound: number): Promise<number | null> {
    this.held = [];
    if (this.lazy) { clearTimeout(this.lazy); this.lazy = null; }
    await this.idle();
    if (this.lost) return this.persistedSent;
    let stolen = false;
    await this.store.update(this.host, this.id, (cur) => {
      const r = parseRecord(cur);
      stolen = r !== null && r.epoch !== this.epoch;
      const base = r ?? parseRecord(this.last?.text ?? null);
      if (stolen || base === null) return undefined;
      return JSON.stringify({ ...base, ended: true, inbound, rows: [], at: Date.now() });
    });
    return stolen ? this.persistedSent : null;
  }
}

export type DurableResume =
  | { kind: "unknown" }
  | { kind: "ended"; h: number }
  | { kind: "claimed"; record: SmRecord; epoch: string };

/**
 * A resume whose session is not on this node: the record, claimed for this node with a new epoch (so the
 * node that held it learns it lost it), or why not. An expired record is settled on the way: its rows
 * that `h` does not acknowledge become offline messages again, and it becomes a tombstone.
 */
export async function claimRecord(store: MapStore, timeline: TimelineStore, host: string, id: string, user: string, h: number): Promise<DurableResume> {
  const epoch = randomBytes(9).toString("base64url");
  let seen: SmRecord | null = null;
  const now = Date.now();
  const stored = await store.update(host, id, (cur) => {
    const r = parseRecord(cur);
    seen = r;
    if (r === null || r.user !== user) return undefined;
    if (r.ended) return undefined;
    if (now > resumableUntil(r)) return JSON.stringify({ ...r, ended: true, rows: [], at: now });
    return JSON.stringify({ ...r, epoch, at: now, detachedAt: null });
  });
  const r = seen as SmRecord | null;
  if (r === null || r.user !== user) return { kind: "unknown" };
  if (r.ended) return { kind: "ended", h: r.inbound };
  const claimed = parseRecord(stored);
  if (claimed?.ended) {
    await settleRows(timeline, r, h);
    return { kind: "ended", h: r.inbound };
  }
  if (claimed?.epoch !== epoch) return { kind: "unknown" };
  return { kind: "claimed", record: r, epoch };
}

/** Rows of an abandoned record that the client did not acknowledge go back to offline delivery. */
async function settleRows(timeline: TimelineStore, r: SmRecord, h: number | null): Promise<void> {
  const acked = h !== null && ackable(r, h) ? h : r.acked;
  const seqs = seqsAbove(r.rows, acked, r.sent);
  if (seqs.length) await timeline.markPending(r.user, seqs);
}

/** Whether `h` is between the record's acked and sent counts (mod 2^32). */
export function ackable(r: SmRecord, h: number): boolean {
  return (h - r.acked + MOD) % MOD <= (r.sent - r.acked + MOD) % MOD;
}

/** Whether stanza number `n` comes after `h` within the record's window of unacknowledged stanzas. */
function after(n: number, h: number, r: Pick<SmRecord, "sent">): boolean {
  return (n - h + MOD) % MOD !== 0 && (n - h + MOD) % MOD <= (r.sent - h + MOD) % MOD;
}

/**
 * The rows of a claimed record the client did not acknowledge with `h`, as a queue (acked = h). Their
 * stanza-id and time are filled in from the timeline when they are resent (`materialize`).
 */
export function queueAfter(r: SmRecord, h: number): QueuedStanza[] {
  return seqsAbove(r.rows, h, r.sent).map((seq) => ({ seq, stanzaId: "", ts: 0 }));
}

/**
 * Periodic work over the records of a host: abandoned records (their node died and nobody resumed them)
 * give their unacknowledged rows back to offline delivery; tombstones older than a day go.
 */
export async function sweepRecords(store: MapStore, timeline: TimelineStore, host: string, log: Logger): Promise<void> {
  const now = Date.now();
  for (const [id, text] of await store.list(host)) {
    const r = parseRecord(text);
    if (r === null) { await store.delete(host, id); continue; }
    if (r.ended) {
      if (now - r.at > 86_400_000) await store.delete(host, id);
      continue;
    }
    if (now <= resumableUntil(r)) continue;
    let settled = false;
    await store.update(host, id, (cur) => {
      const c = parseRecord(cur);
      settled = c !== null && !c.ended && c.epoch === r.epoch && c.at === r.at;
      return settled ? JSON.stringify({ ...c, ended: true, rows: [], at: now }) : undefined;
    });
    if (settled) {
      await settleRows(timeline, r, null);
      log.debug({ id, user: r.user }, "an abandoned resumable session ended; its unacknowledged messages are offline again");
    }
  }
}

/** The seqs of `rows` numbered above `h` (all of them when `h` is null), in order. */
export function seqsAbove(rows: SmRows, h: number | null, sent: number): number[] {
  const seqs: number[] = [];
  for (let i = 0; i + 1 < rows.length; i += 2) if (h === null || after(rows[i], h, { sent })) seqs.push(rows[i + 1]);
  return seqs;
}

/**
 * One timer per node for durable resumption: refreshes the records of live resumable sessions here, and
 * ends the abandoned records of every node (any node may; the store serializes them).
 */
export function startResumeSweep(ctx: C2sContext): NodeJS.Timeout {
  const every = Math.max(500, Math.min(30_000, (ctx.config.c2s.smResumeSeconds * 1000) / 4));
  let running = false;
  const t = setInterval(() => {
    if (running) return;
    running = true;
    const now = Date.now();
    for (const s of ctx.tracker) s.refreshResumable(now);
    const map = ctx.store.map(SM_STORE);
    Promise.all(ctx.config.hosts.map((host) => sweepRecords(map, ctx.store.timeline, host, ctx.log)))
      .catch((err: unknown) => ctx.log.warn({ err }, "stream management records: sweep failed"))
      .finally(() => { running = false; });
  }, every);
  t.unref();
  return t;
}
