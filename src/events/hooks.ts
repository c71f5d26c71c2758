// The typed hook bus. Every event name and payload is in HookMap, so a misspelled hook fails `tsc`.
// Event grammar (computed once per stanza by the router):
//   pre-<kind>/<target>             a stanza from a local client, before delivery
//   <kind>/<target>                 delivery of a stanza to its `to`
//   iq-<get|set>/<target>/<ns>:<name>  an iq request, by the namespace and name of its payload
// target: full | bare | host | self (an iq to the sender's own bare JID, or without `to`).
import type { Element } from "../xml/element.js";
import type { Jid } from "../jid/jid.js";
import type { DeliveryMeta, Session } from "../sessions/session.js";
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

export interface LifecycleHooks {
  /** A resource was bound; the session can receive stanzas now. */
  "resource-bind": { session: Session };
  /** A bound session ended (clean close, error or abrupt disconnect). */
  "resource-unbind": { session: Session; reason: string };
  /** The first available presence of a session (RFC 6121 §4.2): time for probes and offline messages. */
  "initial-presence": { session: Session; stanza: Element };
  "account-created": { host: string; username: string };
  "account-deleted": { host: string; username: string };
  "server-started": Record<string, never>;
  "server-stopping": Record<string, never>;
  /** An iq on a stream that has not authenticated yet (XEP-0077 registration). */
  "preauth-iq": { session: Session; stanza: Element; ns: string };
  /** A top-level element of a bound stream that is not a stanza (stream management, CSI…). */
  "stream-element": { session: Session; element: Element };
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
  /** A stanza for a domain that is not served here (federation). */
  "route/remote": StanzaEvent;
}

export type HookMap = StanzaHooks & IqHooks & LifecycleHooks;
export type HookName = keyof HookMap;

/** A handler answers `true` (or a truthy value) to stop the event; anything else lets the next one run. */
export type HookResult = boolean | void | Element | undefined | null;
export type Handler<K extends HookName> = (event: HookMap[K]) => HookResult | Promise<HookResult>;

/** Fold hooks thread a value through every handler (ejabberd's "fold"; e.g. collecting stream features). */
export interface FoldMap {
  "stream-features": { acc: Element[]; ctx: { session: Session; authenticated: boolean } };
  "disco-info": { acc: Element[]; ctx: { host: string; node: string | null; to: Jid; from: Jid } };
  "disco-items": { acc: Element[]; ctx: { host: string; node: string | null; to: Jid; from: Jid } };
}
export type FoldName = keyof FoldMap;
export type Folder<K extends FoldName> = (acc: FoldMap[K]["acc"], ctx: FoldMap[K]["ctx"]) => FoldMap[K]["acc"];

interface Entry { handler: (event: unknown) => unknown; priority: number; seq: number }

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function";
}

let registrationSeq = 0;

export class HookBus {
  private readonly handlers = new Map<string, Entry[]>();
  private readonly folders = new Map<string, Entry[]>();

  on<K extends HookName>(name: K, handler: Handler<K>, priority = 0): () => void {
    return this.add(this.handlers, name, handler as (e: unknown) => unknown, priority);
  }

  fold<K extends FoldName>(name: K, folder: Folder<K>, priority = 0): () => void {
    return this.add(this.folders, name, folder as unknown as (e: unknown) => unknown, priority);
  }

  has(name: string): boolean {
    return (this.handlers.get(name)?.length ?? 0) > 0;
  }

  /**
   * Runs handlers by priority (highest first) until one answers truthy. Returns what it answered
   * (`false` when none did). Returns a promise only if a handler returned one (STYLE: only await thenables).
   */
  fire<K extends HookName>(name: K, event: HookMap[K]): HookResult | Promise<HookResult> {
    const list = this.handlers.get(name);
    if (!list) return false;
    return runFrom(list, 0, event);
  }

  runFold<K extends FoldName>(name: K, acc: FoldMap[K]["acc"], ctx: FoldMap[K]["ctx"]): FoldMap[K]["acc"] {
    const list = this.folders.get(name);
    if (!list) return acc;
    for (const e of list) acc = (e.handler as unknown as Folder<K>)(acc, ctx);
    return acc;
  }

  private add(map: Map<string, Entry[]>, name: string, handler: (e: unknown) => unknown, priority: number): () => void {
    const entry: Entry = { handler, priority, seq: registrationSeq++ };
    const list = (map.get(name) ?? []).concat(entry);
    list.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
    map.set(name, list);
    return () => {
      const cur = map.get(name);
      if (!cur) return;
      const next = cur.filter((e) => e !== entry);
      if (next.length) map.set(name, next);
      else map.delete(name);
    };
  }
}

function runFrom(list: Entry[], start: number, event: unknown): HookResult | Promise<HookResult> {
  for (let i = start; i < list.length; i++) {
    const r = list[i].handler(event);
    if (isThenable(r)) return (r as Promise<HookResult>).then((v) => (v ? v : runFrom(list, i + 1, event)));
    if (r) return r as HookResult;
  }
  return false;
}
