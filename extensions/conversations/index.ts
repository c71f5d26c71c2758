// Per user and conversation, a small state row (DESIGN.md "the timeline"): read seq, unread count, pinned,
// muted, the peer's read/delivered markers and a version for incremental sync. The rows are a view of the
// timeline: messages are folded in lazily (when a list or a row is read), so the message hot path writes
// nothing here, and a crash between a message and its fold loses nothing (the fold resumes after the last
// folded seq). Read state follows XEP-0333 chat markers and XEP-0184 receipts from any client, so XMPP
// clients and mobile devices see one read state.
import { defineModule } from "../../src/modules/module.js";
import type { StanzaEvent } from "../../src/events/hooks.js";
import type { Conversation, ConversationState, TimelineEntry } from "../../src/storage/types.js";
import { findByMessageId, isRetractionXml } from "../../src/im/message-ids.js";
import { NS } from "../../src/xml/ns.js";


/** What the conversations module tells other modules (the mobile adapter pushes it to devices). */
export type ConversationEvent =
  /** The peer received or displayed the owner's message `id` (at `seq` of the owner's timeline, 0 if unknown). */
  | { kind: "peer-marker"; owner: string; peer: string; marker: "displayed" | "delivered"; id: string; seq: number; from: string }
  /** One of the owner's clients marked the conversation read (XEP-0333 displayed). */
  | { kind: "read"; owner: string; conversation: Conversation };

export interface ConversationsService {
  /** The list version and the conversations changed after `since`, newest activity first. */
  list(owner: string, since: number): Promise<{ version: number; items: Conversation[] }>;
  get(owner: string, peer: string): Promise<Conversation | null>;
  /** Moves the read seq forward to `seq` (never back); the unread count is recounted after it. */
  markRead(owner: string, peer: string, seq: number, group?: boolean): Promise<{ conversation: Conversation; changed: boolean }>;
  update(owner: string, peer: string, change: { pinned?: boolean; muted?: boolean }, group?: boolean): Promise<{ conversation: Conversation; changed: boolean }>;
  /** A group message (groups are not folded from the user's timeline: they have their own). */
  groupActivity(owner: string, room: string, seq: number, ts: number, outgoing: boolean): Promise<void>;
  remove(owner: string, peer: string): Promise<void>;
  /** Records that the message at `target` of the owner's timeline was recalled by the event at `event`. */
  recalled(owner: string, target: number, event: number): Promise<void>;
  /** Recalled seqs of the owner's timeline → the recall event's seq. */
  recalls(owner: string): Promise<Map<number, number>>;
  /** The newest row with `peer` that peers refer to by `id` (see findByMessageId). */
  messageById(owner: string, peer: string, id: string, outgoing: boolean): Promise<TimelineEntry | null>;
  /** Calls `fn` for each event on this node; returns the undo. */
  watch(fn: (event: ConversationEvent) => void): () => void;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { conversations: ConversationsService }
}

const FOLD_BATCH = 1000;
/** Unread counts are recounted up to this; beyond it the count is this. */
export const UNREAD_CAP = 9999;

function fresh(group = false): ConversationState {
  return { last: 0, lastTs: 0, read: 0, unread: 0, pinned: false, muted: false, peerRead: 0, peerDelivered: 0, group };
}

function foldRow(c: ConversationState, row: TimelineEntry): ConversationState {
  c.last = row.seq;
  c.lastTs = row.ts;
  if (row.outgoing) {
    // Sending a message marks everything before it read.
    c.read = row.seq;
    c.unread = 0;
  } else if (row.seq > c.read && !isRetractionXml(row.xml)) {
    c.unread++;
  }
  return c;
}

export const conversations = defineModule({
  name: "conversations",
  depends: ["message"],
  xep: [
    { spec: "XEP-0184", title: "Message Delivery Receipts", version: "1.4.0", status: "partial", note: "receipts move the peer-delivered marker of a conversation" },
    { spec: "XEP-0333", title: "Displayed Markers", version: "0.4.2", status: "partial", note: "displayed markers move read state, shared by XMPP clients and mobile devices" },
  ],
  setup(api) {
    const timeline = api.store.timeline;
    // Rows keyed by (owner, peer) with atomic updates: no lock or cache of this node's own.
    const rows = api.store.conversations;
    const watchers = new Set<(event: ConversationEvent) => void>();
    const emit = (event: ConversationEvent) => {
      for (const fn of watchers) {
        try { fn(event); } catch (err) { api.log.error({ err }, "a conversation watcher failed"); }
      }
    };

    /** Folds the owner's timeline rows written since the last fold into the conversation rows. */
    const catchUp = async (owner: string): Promise<void> => {
      for (;;) {
        const head = await rows.head(owner);
        const batch = await timeline.query(owner, { afterSeq: head.foldedUpTo, limit: FOLD_BATCH });
        if (batch.length === 0) return;
        const byPeer = new Map<string, TimelineEntry[]>();
        // Rows with a room are no 1:1 conversation (invitations from the MUC service, when it is loaded).
        const rooms = api.useOptional("rooms");
        for (const row of batch) {
          if (rooms?.isRoom(row.peer)) continue;
          const list = byPeer.get(row.peer);
          if (list) list.push(row); else byPeer.set(row.peer, [row]);
        }
        const changes = new Map([...byPeer].map(([peer, list]) => [peer, (cur: ConversationState | null) => list.reduce(foldRow, { ...(cur ?? fresh()) })]));
        // Another writer folding the same rows first is fine: read the head again and go on from there.
        await rows.fold(owner, head.foldedUpTo, batch[batch.length - 1]!.seq, changes);
        if (batch.length < FOLD_BATCH) return;
      }
    };

    const countUnread = async (owner: string, peer: string, after: number): Promise<number> => {
      const list = await timeline.query(owner, { with: peer, afterSeq: after, limit: UNREAD_CAP });
      let n = 0;
      for (const r of list) if (!r.outgoing && !isRetractionXml(r.xml)) n++;
      return n;
    };

    const updated = async (owner: string, peer: string, fn: (c: ConversationState) => ConversationState | undefined, group = false) => {
      const { conversation, changed } = await rows.update(owner, peer, (cur) => fn({ ...(cur ?? fresh(group)) }));
      return { conversation: conversation ?? { ...fresh(group), peer, version: 0 }, changed };
    };

    const service: ConversationsService = {
      async list(owner, since) {
        await catchUp(owner);
        const { version, items } = await rows.list(owner, since);
        return { version, items };
      },
      async get(owner, peer) {
        await catchUp(owner);
        return rows.get(owner, peer);
      },
      async markRead(owner, peer, seq, group = false) {
        if (!group) await catchUp(owner);
        const last = (await rows.get(owner, peer))?.last ?? 0;
        const unread = group || seq >= last ? 0 : await countUnread(owner, peer, seq);
        return updated(owner, peer, (c) => {
          if (seq <= c.read) return undefined;
          c.read = seq;
          c.unread = seq >= c.last ? 0 : group ? c.last - seq : unread;
          return c;
        }, group);
      },
      async update(owner, peer, change, group = false) {
        await catchUp(owner);
        return updated(owner, peer, (c) => {
          let dirty = false;
          if (change.pinned !== undefined && change.pinned !== c.pinned) { c.pinned = change.pinned; dirty = true; }
          if (change.muted !== undefined && change.muted !== c.muted) { c.muted = change.muted; dirty = true; }
          return dirty ? c : undefined;
        }, group);
      },
      async groupActivity(owner, room, seq, ts, outgoing) {
        await rows.update(owner, room, (cur) => {
          const c = { ...(cur ?? fresh(true)) };
          if (seq <= c.last) return undefined;
          c.last = seq;
          c.lastTs = ts;
          if (outgoing) { c.read = seq; c.unread = 0; } else if (seq > c.read) c.unread++;
          return c;
        });
      },
      async remove(owner, peer) {
        await rows.update(owner, peer, (cur) => (cur ? null : undefined));
      },
      async recalled(owner, target, event) {
        await rows.recall(owner, target, event);
      },
      recalls: (owner) => rows.recalls(owner),
      messageById: (owner, peer, id, outgoing) => findByMessageId(timeline, owner, peer, id, outgoing),
      watch(fn) {
        watchers.add(fn);
        return () => { watchers.delete(fn); };
      },
    };
    api.provide("conversations", service);

    // ---- receipts and markers from peers (XEP-0184 §5, XEP-0333 §4): the peer's read/delivered marker ----
    const inboundMarker = (ev: StanzaEvent): boolean => {
      const el = ev.stanza;
      const type = el.attrs.type;
      if (type === "error" || type === "groupchat" || ev.to.local === "") return false;
      const displayed = el.getChild("displayed", NS.chatMarkers);
      const marker = displayed ?? el.getChild("received", NS.receipts) ?? el.getChild("received", NS.chatMarkers);
      const id = marker?.attrs.id;
      if (!id) return false;
      const owner = ev.to.bareString();
      const peer = ev.from.bareString();
      if (owner === peer) return false;
      const kind = displayed ? "displayed" : "delivered";
      void (async () => {
        const row = await findByMessageId(timeline, owner, peer, id, true);
        const seq = row?.seq ?? 0;
        if (seq > 0) {
          await catchUp(owner);
          const field = kind === "displayed" ? "peerRead" : "peerDelivered";
          await rows.update(owner, peer, (cur) => {
            if (!cur || seq <= cur[field]) return undefined;
            const c = { ...cur, [field]: seq };
            if (kind === "displayed" && c.peerDelivered < seq) c.peerDelivered = seq;
            return c;
          });
        }
        emit({ kind: "peer-marker", owner, peer, marker: kind, id, seq, from: ev.from.toString() });
      })().catch((err) => api.log.error({ err }, "handling a marker failed"));
      return false;
    };
    api.on("message/bare", inboundMarker, "annotate");
    api.on("message/full", inboundMarker, "annotate");

    // XEP-0333 `displayed` from one of the user's own clients moves the user's read state.
    const ownMarker = (ev: StanzaEvent): boolean => {
      if (!ev.origin || ev.stanza.attrs.type === "groupchat") return false;
      const id = ev.stanza.getChild("displayed", NS.chatMarkers)?.attrs.id;
      if (!id) return false;
      const owner = ev.from.bareString();
      const peer = ev.to.bareString();
      void (async () => {
        const row = await findByMessageId(timeline, owner, peer, id, false);
        if (!row) return;
        const { conversation, changed } = await service.markRead(owner, peer, row.seq);
        if (changed) emit({ kind: "read", owner, conversation });
      })().catch((err) => api.log.error({ err }, "handling an own marker failed"));
      return false;
    };
    api.on("pre-message/bare", ownMarker, "annotate");
    api.on("pre-message/full", ownMarker, "annotate");
  },
});
