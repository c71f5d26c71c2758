// A session is one authenticated endpoint of a user: an XMPP stream (TCP, TLS, WebSocket) or a mobile
// connection. Nothing downstream of the router knows which; it only calls send().
import type { Element } from "../xml/element.js";
import type { Jid } from "../jid/jid.js";
import type { StanzaError, StreamErrorCondition } from "../xml/stanza.js";

export type Transport = "tcp" | "tls" | "websocket" | "bosh" | "mobile";

/** What the store knows about a delivered message: lets a mobile session push it with its seq. */
export interface DeliveryMeta {
  /** The recipient's timeline seq of this message. */
  seq: number;
  stanzaId: string;
  ts: number;
}

/**
 * What submitting a 1:1 message came to (DESIGN.md "delivery result"): the timeline rows written for it
 * (the sender's and the recipient's; null when the message was not stored), `duplicate` for a resend of an
 * origin-id stored before (the rows of the first write), or the stanza error the sender was sent. The
 * mobile SendAck, XEP-0198 acks and receipts map it directly.
 */
export interface Delivered {
  readonly sender: DeliveryMeta | null;
  readonly recipient: DeliveryMeta | null;
  readonly duplicate: boolean;
}
export type DeliveryResult = Delivered | StanzaError;

export interface Session {
  readonly id: string;
  readonly protocol: Transport;
  readonly remoteAddress: string;
  readonly secure: boolean;
  /** The served domain this session belongs to. */
  readonly host: string;
  /** Set by SASL. */
  username: string | null;
  /** The full JID, set once a resource is bound. */
  jid: Jid | null;
  /** RFC 6121 presence state: the last available broadcast presence, null while unavailable. */
  presence: Element | null;
  priority: number;
  /** Requested the roster (RFC 6121 §2.1.6 "interested resource"). */
  interested: boolean;
  /** Full/bare JIDs this session sent directed presence to while available (RFC 6121 §4.6). */
  directed: Set<string> | null;
  /** Per-module state, keyed by the module. */
  readonly data: Map<string, unknown>;
  send(stanza: Element, meta?: DeliveryMeta): void;
  /**
   * For a session that handles its stanzas one at a time: the handler of `stanza`, the message it is handling,
   * takes it over once its timeline write is queued (its place in the order is fixed). The session may go on
   * with its next messages meanwhile, and no longer waits for the handler's answer: the handler ends the turn
   * itself (MessageTurn.end) when the message is done. undefined: `stanza` is not the session's current
   * message, and the handler's answer is what the session waits for, as for any stanza.
   */
  takeTurn?(stanza: Element): MessageTurn | undefined;
  /** Ends the session, with a stream error when given. */
  close(error?: StreamErrorCondition, text?: string): void;
  readonly closed: boolean;
}

/** A message a handler took over from its session (Session.takeTurn), from its append to its end. */
export interface MessageTurn {
  /**
   * Runs `next.run()` once every message the session handed over before this one has ended (at once when they
   * have): a handler delivers from there, so that deliveries keep the order the client sent in. An object
   * rather than a function, so that the message's own state can be the continuation (no closure per message).
   */
  afterEarlier(next: { run(): void }): void;
  /** The message is done (delivered, refused or failed): the session counts it out. Once. */
  end(): void;
}

/**
 * A Map that allocates its table on the first write. Nearly every session's per-module state stays empty
 * (no module has set anything), and an empty Map is about 180 bytes of every idle connection.
 */
export class LazyMap<K, V> implements Map<K, V> {
  private map: Map<K, V> | null = null;

  get size(): number { return this.map === null ? 0 : this.map.size; }
  get(key: K): V | undefined { return this.map === null ? undefined : this.map.get(key); }
  has(key: K): boolean { return this.map !== null && this.map.has(key); }
  set(key: K, value: V): this {
    (this.map ??= new Map()).set(key, value);
    return this;
  }
  delete(key: K): boolean {
    if (this.map === null || !this.map.delete(key)) return false;
    if (this.map.size === 0) this.map = null;
    return true;
  }
  clear(): void { this.map = null; }
  forEach(fn: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
  entries(): IterableIterator<[K, V]> { return (this.map ?? EMPTY).entries() as IterableIterator<[K, V]>; }
  keys(): IterableIterator<K> { return (this.map ?? EMPTY).keys() as IterableIterator<K>; }
  values(): IterableIterator<V> { return (this.map ?? EMPTY).values() as IterableIterator<V>; }
  [Symbol.iterator](): IterableIterator<[K, V]> { return this.entries(); }
  get [Symbol.toStringTag](): string { return "LazyMap"; }
}
const EMPTY: ReadonlyMap<unknown, unknown> = new Map();

let nextId = 1;
export function newSessionId(): string {
  return (nextId++).toString(36) + Math.random().toString(36).slice(2, 8);
}

/**
 * The RFC 6121 state every kind of session keeps (its binding, presence, priority, roster interest and
 * directed presence), in one place for c2s, mobile and remote sessions.
 */
export abstract class SessionState {
  readonly id: string = newSessionId();
  /** Per-module state, keyed by the module. */
  readonly data: Map<string, unknown> = new LazyMap<string, unknown>();
  username: string | null = null;
  jid: Jid | null = null;
  presence: Element | null = null;
  priority = 0;
  interested = false;
  directed: Set<string> | null = null;
  closed = false;
}
