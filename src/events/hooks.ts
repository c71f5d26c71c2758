// The typed event buses. Every event name and payload is in a map type, so a misspelled hook fails `tsc`.
// Event grammar (computed once per stanza by the router):
//   pre-<kind>/<target>             a stanza from a local client, before delivery (on the sender's host bus)
//   <kind>/<target>                 delivery of a stanza to its `to` (on the bus of the `to` domain)
//   iq-<get|set>/<target>/<ns>:<name>  an iq request, by the namespace and name of its payload
// target: full | bare | host | self (an iq to the sender's own bare JID, or without `to`).
//
// Three kinds of events (ejabberd's run/fold, plus notifications):
//   run      handlers by phase, the first to answer truthy wins (stanza events, iq requests);
//   fold     a value threaded through every handler (stream features, disco);
//   observe  every handler runs, each inside its own error boundary: a failure is logged, never fatal,
//            and never stops the next handler (lifecycle events: resource-unbind, message-delivered…).
import type { Element } from "../xml/element.js";
import type { Jid } from "../jid/jid.js";
import type { Delivered, DeliveryMeta, Session } from "../sessions/session.js";
import type { StanzaError } from "../xml/stanza.js";
import type { NewTimelineEntry } from "../storage/types.js";

export type StanzaKind = "message" | "presence" | "iq";
export type Target = "full" | "bare" | "host" | "self";

export interface StanzaEvent {
  stanza: Element;
  from: Jid;
  to: Jid;
  /** The local client session it came from, or null (server-generated, other node, s2s). */
  origin: Session | null;
}

type StanzaHooks = { [K in `${"pre-" | ""}${StanzaKind}/${Target}`]: StanzaEvent };
type IqHooks = { [K in `iq-${"get" | "set"}/${Target}/${string}`]: StanzaEvent };

/** Run events: the first handler to answer truthy wins. */
export type RunMap = StanzaHooks & IqHooks & {
  /** An iq on a stream that has not authenticated yet (XEP-0077 registration). */
  "preauth-iq": { session: Session; stanza: Element; ns: string };
  /** A top-level element of a bound stream that is not a stanza (stream management, CSI…). */
  "stream-element": { session: Session; element: Element };
  /** A stanza for a domain that is not served here (federation). On the server bus. */
  "route/remote": StanzaEvent;
  /**
   * An inline feature request in a Bind2 `<bind/>` (XEP-0386 §2.3), after the resource was bound: the module
   * that owns its namespace applies it and answers true, or an element to put in `<bound/>`.
   */
  "bind2-inline": { session: Session; element: Element };
};

/** Observe events: every handler runs in its own error boundary. */
export interface ObserveMap {
  /** A resource was bound; the session can receive stanzas now. */
  "resource-bind": { session: Session };
  /** A bound session ended (clean close, error or abrupt disconnect). */
  "resource-unbind": { session: Session; reason: string };
  /** The first available presence of a session (RFC 6121 §4.2): time for probes and offline messages. */
  "initial-presence": { session: Session; stanza: Element };
  /**
   * Messages of `owner` that had been handed to a session which then vanished (a cluster node died) are
   * pending again: an available resource of the owner, if any, takes them now rather than at the next login.
   */
  "messages-requeued": { owner: string };
  /**
   * In a cluster: a presence another node routed was handed to a local session (the routing node ran the
   * presence hooks; this is how the session's node hears of it, e.g. a remote contact's caps for PEP).
   */
  "presence-relayed": { session: Session; stanza: Element };
  "account-created": { host: string; username: string };
  "account-deleted": { host: string; username: string };
  /** On the server bus. */
  "server-started": Record<string, never>;
  /** On the server bus. */
  "server-stopping": Record<string, never>;
  /**
   * A 1:1 message was delivered (or stored) by the IM rules: `delivered` lists the sessions that got it,
   * `meta` its timeline row when archived. Carbons and the mobile adapter build on this.
   */
  "message-delivered": {
    stanza: Element; from: Jid; to: Jid; origin: Session | null; delivered: Session[];
    /** The recipient's row, when archived. */
    meta: DeliveryMeta | null;
    /** The sender's own row, when the sender is local and the message archived (the first one for a resend). */
    senderMeta: DeliveryMeta | null;
    /** A resend with an origin-id stored before: nothing was delivered again. */
    duplicate: boolean;
  };
  /**
   * A 1:1 message is about to be written to the timelines (`entries`: the sender's row when local, then the
   * recipient's). Every handler runs and may adjust the rows: MAM (XEP-0313) clears `archived` by the
   * owner's preferences and sets `searchText`.
   */
  "message-archiving": { stanza: Element; from: Jid; to: Jid; entries: NewTimelineEntry[] };
  /**
   * A 1:1 message to a local user was written to the timelines and is about to reach the recipient's
   * sessions. Delivery waits for an observer that returns a promise, so what it records (a retraction's
   * tombstones) is in the store before the recipient can see the message and ask for history.
   */
  "message-archived": { stanza: Element; from: Jid; to: Jid; meta: DeliveryMeta; senderMeta: DeliveryMeta | null };
  /**
   * On the bus of `user`'s host: a group chat (MUC) message was archived that `user` cannot take now and
   * should hear of (XEP-0357 push): it names the user's nick while every room session of theirs is
   * hibernated (XEP-0198), or the room is members-only and the user is a member with no online resource.
   */
  "groupchat-missed": { user: string; room: string; from: string; stanza: Element; stanzaId: string; seq: number; mention: boolean };
}

/** Fold events thread a value through every handler (ejabberd's "fold"; e.g. collecting stream features). */
export interface FoldMap {
  "stream-features": { acc: Element[]; ctx: { session: Session; authenticated: boolean } };
  /** Namespaces a Bind2 request may enable inline (XEP-0386 §2.2), next to SM and CSI (see "bind2-inline"). */
  "bind2-features": { acc: string[]; ctx: { session: Session } };
  "disco-info": { acc: Element[]; ctx: { host: string; node: string | null; to: Jid; from: Jid } };
  "disco-items": { acc: Element[]; ctx: { host: string; node: string | null; to: Jid; from: Jid } };
}

/** Events of the whole server rather than of one domain: they fire on the server bus only. */
export const SERVER_EVENTS: ReadonlySet<string> = new Set(["server-started", "server-stopping", "route/remote"]);

export type RunName = keyof RunMap & string;
export type ObserveName = keyof ObserveMap;
export type FoldName = keyof FoldMap;

/**
 * A handler answers a truthy value to stop the event; anything else lets the next one run. A `StanzaError`
 * answer stops it too: the router sends that error to the sender. The IM rules answer a message with what
 * its delivery came to (`Delivered`).
 */
export type HookResult = boolean | void | Element | undefined | null | StanzaError | Delivered;
export type Handler<K extends RunName> = (event: RunMap[K]) => HookResult | Promise<HookResult>;
export type Observer<K extends ObserveName> = (event: ObserveMap[K]) => unknown;
export type Folder<K extends FoldName> = (acc: FoldMap[K]["acc"], ctx: FoldMap[K]["ctx"]) => FoldMap[K]["acc"];

/**
 * Where a handler runs among the others of one event, highest first; order within a phase is the order of
 * registration (modules load in dependency order). Named so that modules never quote each other's numbers.
 *   policy    may refuse the stanza before anything else sees it (blocking, retraction window)
 *   annotate  looks at or adjusts the stanza and lets it go on (forged ids stripped, read markers, carbons)
 *   handle    the feature that answers (the default)
 *   fallback  the RFC default behaviour, installed by the core
 */
export const PHASES = { policy: 300, annotate: 200, handle: 100, fallback: 0 } as const;
export type Phase = keyof typeof PHASES;

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function";
}

interface Entry<H> { handler: H; order: number; seq: number }

let registrationSeq = 0;

function add<H>(map: Map<string, Entry<H>[]>, name: string, handler: H, order: number): () => void {
  const entry: Entry<H> = { handler, order, seq: registrationSeq++ };
  const list = (map.get(name) ?? []).concat(entry);
  list.sort((a, b) => b.order - a.order || a.seq - b.seq);
  map.set(name, list);
  return () => {
    const cur = map.get(name);
    if (!cur) return;
    const next = cur.filter((e) => e !== entry);
    if (next.length) map.set(name, next);
    else map.delete(name);
  };
}

/**
 * One bus with the three kinds of events. Generic so that a feature with events of its own (MUC rooms)
 * uses the same machinery. Every registration returns its undo.
 */
export class EventBus<R extends object, F extends { [K in keyof F]: { acc: unknown; ctx: unknown } }, O extends object, Res = HookResult> {
  private readonly runs = new Map<string, Entry<(e: unknown) => unknown>[]>();
  private readonly folds = new Map<string, Entry<(acc: unknown, ctx: unknown) => unknown>[]>();
  private readonly observers = new Map<string, Entry<(e: unknown) => unknown>[]>();

  /** `onError` hears every failure of an observer; it must not throw. */
  constructor(private readonly onError: (event: string, err: unknown) => void = () => {}) {}

  on<K extends keyof R & string>(name: K, handler: (ev: R[K]) => Res | Promise<Res>, order = 0): () => void {
    return add(this.runs, name, handler as (e: unknown) => unknown, order);
  }

  fold<K extends keyof F & string>(name: K, folder: (acc: F[K]["acc"], ctx: F[K]["ctx"]) => F[K]["acc"], order = 0): () => void {
    return add(this.folds, name, folder as (acc: unknown, ctx: unknown) => unknown, order);
  }

  observe<K extends keyof O & string>(name: K, observer: (ev: O[K]) => unknown, order = 0): () => void {
    return add(this.observers, name, observer as (e: unknown) => unknown, order);
  }

  has(name: string): boolean {
    return this.runs.has(name) || this.observers.has(name);
  }

  /**
   * Runs handlers in order until one answers truthy and returns that answer (undefined when none did).
   * Returns a promise only if a handler returned one (STYLE: only await thenables). A throw propagates:
   * the caller (the router) owns the error answer of a run event.
   */
  run<K extends keyof R & string>(name: K, event: R[K]): Res | undefined | Promise<Res | undefined> {
    const list = this.runs.get(name);
    return list ? runFrom<Res>(list, 0, event) : undefined;
  }

  runFold<K extends keyof F & string>(name: K, acc: F[K]["acc"], ctx: F[K]["ctx"]): F[K]["acc"] {
    const list = this.folds.get(name);
    if (list) for (const e of list) acc = e.handler(acc, ctx) as F[K]["acc"];
    return acc;
  }

  /**
   * Runs every observer, one after the other, each in its own error boundary. Never throws and never
   * rejects; returns a promise only when an observer returned one, so callers may await it for order.
   */
  notify<K extends keyof O & string>(name: K, event: O[K]): void | Promise<void> {
    const list = this.observers.get(name);
    if (list) return notifyFrom(list, 0, event, name, this.onError);
  }
}

function runFrom<Res>(list: Entry<(e: unknown) => unknown>[], start: number, event: unknown): Res | undefined | Promise<Res | undefined> {
  for (let i = start; i < list.length; i++) {
    const r = list[i].handler(event);
    if (isThenable(r)) return (r as Promise<Res>).then((v) => (v ? v : runFrom<Res>(list, i + 1, event)));
    if (r) return r as Res;
  }
  return undefined;
}

function notifyFrom(list: Entry<(e: unknown) => unknown>[], start: number, event: unknown, name: string, onError: (event: string, err: unknown) => void): void | Promise<void> {
  for (let i = start; i < list.length; i++) {
    let r: unknown;
    try {
      r = list[i].handler(event);
    } catch (err) {
      onError(name, err);
      continue;
    }
    if (isThenable(r)) {
      return Promise.resolve(r).then(
        () => notifyFrom(list, i + 1, event, name, onError),
        (err) => { onError(name, err); return notifyFrom(list, i + 1, event, name, onError); },
      );
    }
  }
}

/** The server's own events: one bus per served domain (hosts and components) and one for the server. */
export type HookBus = EventBus<RunMap, FoldMap, ObserveMap>;

/**
 * The buses of one server (Prosody's per-host events, ejabberd's per-host hooks). Delivery events fire on
 * the bus of the `to` domain, client events on the bus of the sender's host, so a handler never asks
 * "is this my domain": the bus it is on answers that. A domain is served here exactly when it has a bus.
 */
export class HookBuses {
  readonly server: HookBus;
  private readonly domains = new Map<string, HookBus>();
  private readonly created: Array<(domain: string, bus: HookBus) => void> = [];

  constructor(private readonly onError: (event: string, err: unknown) => void) {
    this.server = new EventBus(onError);
  }

  /** The bus of a served domain, or undefined when the domain is not served here. */
  of(domain: string): HookBus | undefined {
    return this.domains.get(domain);
  }

  get served(): IterableIterator<string> {
    return this.domains.keys();
  }

  /** Starts serving a domain; returns the undo. */
  addDomain(domain: string): () => void {
    if (this.domains.has(domain)) throw new Error(`domain ${domain} is served already`);
    const bus: HookBus = new EventBus(this.onError);
    this.domains.set(domain, bus);
    for (const fn of this.created) fn(domain, bus);
    return () => { if (this.domains.get(domain) === bus) this.domains.delete(domain); };
  }

  /** Calls `fn` for every domain bus, now and when one is added (the router's RFC defaults). */
  onEveryBus(fn: (domain: string, bus: HookBus) => void): void {
    this.created.push(fn);
    for (const [d, b] of this.domains) fn(d, b);
  }

  /** Runs a run event on a domain's bus (the server bus for server events); undefined when not served. */
  run<K extends RunName>(domain: string, name: K, event: RunMap[K]): HookResult | Promise<HookResult> {
    return (SERVER_EVENTS.has(name) ? this.server : this.domains.get(domain))?.run(name, event);
  }

  /** Folds over a domain's bus; `acc` unchanged for a domain not served here. */
  runFold<K extends FoldName>(domain: string, name: K, acc: FoldMap[K]["acc"], ctx: FoldMap[K]["ctx"]): FoldMap[K]["acc"] {
    const bus = this.domains.get(domain);
    return bus ? bus.runFold(name, acc, ctx) : acc;
  }

  /** Fires an observe event on a domain's bus (a no-op for a domain not served here). */
  notify<K extends ObserveName>(domain: string, name: K, event: ObserveMap[K]): void | Promise<void> {
    return (SERVER_EVENTS.has(name) ? this.server : this.domains.get(domain))?.notify(name, event);
  }
}
