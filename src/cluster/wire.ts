// What nodes tell each other through Redis: session records (the replicated part of a Session), directory
// events, bus entries, and the key names. One place, so that every node agrees on the format.
import type { DeliveryMeta, Session, Transport } from "../sessions/session.js";

export const KEYS = {
  /** SET of the ids of the registered nodes. */
  nodes: "hearth:nodes",
  /** Liveness of a node: refreshed every heartbeat, expires after cluster.deadAfterSeconds. */
  alive: (node: string) => `hearth:alive:${node}`,
  /** HASH session id → SessionRecord JSON of the node, plus VERSION_FIELD: bootstraps the replicas. */
  sessions: (node: string) => `hearth:sessions:${node}`,
  /** STREAM of stanzas for the node's sessions (the node-to-node bus). */
  bus: (node: string) => `hearth:bus:${node}`,
  /** Held by the one survivor that cleans up after a dead node. */
  reap: (node: string) => `hearth:reap:${node}`,
  /** HASH key → node id: which node owns a partitioned key (a MUC room), while that node is alive. */
  owners: "hearth:owners",
  /** Pub/sub channel of DirectoryEvents. */
  events: "hearth:events",
};

/** The hash field holding the version of the last event the node published. Session ids never start with "~". */
export const VERSION_FIELD = "~ver";

/** What other nodes know of a bound session. */
export interface SessionRecord {
  id: string;
  jid: string;
  protocol: Transport;
  addr: string;
  secure: boolean;
  host: string;
  /** When it was bound (ms): decides a resource conflict between two nodes that bound at the same time. */
  boundAt: number;
  /** The last available broadcast presence (XML), null while unavailable. */
  presence: string | null;
  priority: number;
  interested: boolean;
  /** RFC 6121 §4.6 directed presence targets: told when a dead node's session goes away. */
  directed: string[] | null;
  /** The small values of Session.data (booleans, numbers, short strings), e.g. carbons enabled. */
  data: Record<string, boolean | number | string>;
}

/**
 * Directory events, published on KEYS.events. `ver` counts the events of one node (1, 2, 3…): a replica
 * that sees a gap re-reads the node's hash, so a lost pub/sub message never leaves it wrong for long.
 */
export type DirectoryEvent =
  | { t: "bind" | "update"; node: string; ver: number; session: SessionRecord }
  | { t: "unbind"; node: string; ver: number; id: string }
  /** The node stopped, or was found dead and cleaned up. */
  | { t: "down"; node: string };

/**
 * One item for a session on another node. The items a node sends to another one in one event-loop turn
 * travel as one stream entry (fewer Redis commands on both sides): fields `n` (sending node), `v` (its
 * directory version when it sent: the receiver catches up before delivering) and `b` (the items, JSON).
 */
export interface BusItem {
  /**
   * "s": a stanza for session s; "c": close session s; "r": a stanza for a key this node owns (s: a
   * request id when the sending node waits for the result, else empty); "a": the result (x, JSON) of
   * the forwarded stanza with request id s.
   */
  k: "s" | "c" | "r" | "a";
  s: string;
  /** The stanza (k=s), or the stream error text (k=c). */
  x: string;
  /** The stream error condition (k=c). */
  e?: string;
  /**
   * An archived message: the recipient's bare JID and its timeline row (seq, stanza id, ts). If the session
   * is gone before it gets it, the row becomes pending (offline) again.
   */
  o?: string;
  q?: number;
  i?: string;
  t?: number;
}

const MAX_SHARED_STRING = 256;

/** The values of Session.data worth replicating: small and plain. */
export function sharedData(data: Map<string, unknown>): Record<string, boolean | number | string> {
  const out: Record<string, boolean | number | string> = {};
  for (const [k, v] of data) {
    if (typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v)) || (typeof v === "string" && v.length <= MAX_SHARED_STRING)) out[k] = v;
  }
  return out;
}

export function recordOf(session: Session, boundAt: number): SessionRecord {
  return {
    id: session.id,
    jid: session.jid!.toString(),
    protocol: session.protocol,
    addr: session.remoteAddress,
    secure: session.secure,
    host: session.host,
    boundAt,
    presence: session.presence ? session.presence.toString() : null,
    priority: session.priority,
    interested: session.interested,
    directed: session.directed && session.directed.size ? [...session.directed] : null,
    data: sharedData(session.data),
  };
}

export function stanzaItem(sessionId: string, xml: string, owner: string, meta: DeliveryMeta | undefined): BusItem {
  return meta ? { k: "s", s: sessionId, x: xml, o: owner, q: meta.seq, i: meta.stanzaId, t: meta.ts } : { k: "s", s: sessionId, x: xml };
}

/** The items of one stream entry (none for an unreadable one). */
export function itemsOf(fields: Record<string, string>): BusItem[] {
  if (fields.b === undefined) return [];
  try {
    const items = JSON.parse(fields.b) as unknown;
    return Array.isArray(items) ? (items as BusItem[]) : [];
  } catch {
    return [];
  }
}

export function metaOf(item: BusItem): DeliveryMeta | undefined {
  return item.q === undefined ? undefined : { seq: item.q, stanzaId: item.i ?? "", ts: item.t ?? 0 };
}
