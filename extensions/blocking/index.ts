// XEP-0191 Blocking Command: a user's block list, managed over XMPP (blocklist, block, unblock) and by
// other modules through the `blocking` service (the mobile adapter's BlockContact), and enforced for every
// stanza whichever protocol it came from: nothing from a blocked entity reaches the user, nothing of the
// user's reaches it.
import { isThenable } from "../../src/events/hooks.js";
import { defineModule } from "../../src/modules/module.js";
import { tryParseJid, type Jid } from "../../src/jid/jid.js";
import { xml, shallowCopy, type Element } from "../../src/xml/element.js";
import { StanzaError, isAnswerable } from "../../src/xml/stanza.js";
import type { StanzaEvent } from "../../src/events/hooks.js";
import type { Session } from "../../src/sessions/session.js";

export const NS_BLOCKING = "urn:xmpp:blocking";
export const NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors";
/** Session data key: the session asked for the block list, so it gets pushes (XEP-0191 §3.2). */
const REQUESTED = "blocking:requested";

export interface BlockChange {
  owner: string;
  /** The JIDs whose state changed, ascending. */
  jids: string[];
  blocked: boolean;
  /** The session that asked for the change, if any. */
  origin: Session | null;
}

export interface BlockingService {
  /** The owner's blocked JIDs, ascending. */
  list(owner: string): Promise<string[]>;
  /** Whether the owner's list blocks the entity `addr` (an item matches as in XEP-0016 §2.1). */
  blocks(owner: string, addr: Jid): boolean | Promise<boolean>;
  /** Blocks the JIDs; resolves to the ones that were not blocked yet. */
  block(owner: string, jids: readonly string[], origin?: Session | null): Promise<string[]>;
  /** Unblocks the JIDs, or every JID when `jids` is null (§3.4); resolves to the ones that were blocked. */
  unblock(owner: string, jids: readonly string[] | null, origin?: Session | null): Promise<string[]>;
  /** Calls `fn` after each change of a list made on this node; returns the undo. */
  watch(fn: (change: BlockChange) => void): () => void;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { blocking: BlockingService }
}

/** The list items an address matches (XEP-0016 §2.1): its full JID, its bare JID, its domain. */
export function matchingItems(addr: Jid): string[] {
  // Array literals of their exact size: asked twice for every message, presence and iq delivered.
  if (addr.local === "" && addr.resource === "") return [addr.domain];
  if (addr.local === "" || addr.resource === "") return [addr.toString(), addr.domain];
  return [addr.toString(), addr.bareString(), addr.domain];
}

/** The items of a block/unblock payload, each a valid JID in its canonical form (§3.3: jid-malformed otherwise). */
function itemsOf(payload: Element): string[] {
  return payload.getChildren("item").map((item) => {
    const j = tryParseJid(item.attrs.jid);
    if (!j) throw new StanzaError("jid-malformed", `not a JID: ${item.attrs.jid ?? "(none)"}`);
    return j.toString();
  });
}

const blocklist = (name: "block" | "unblock" | "blocklist", jids: readonly string[]) =>
  xml(name, { xmlns: NS_BLOCKING }, ...jids.map((jid) => xml("item", { jid })));

export const blocking = defineModule({
  name: "blocking",
  depends: ["roster", "presence"],
  xep: [{ spec: "XEP-0191", title: "Blocking Command", version: "1.3", status: "complete", note: "domain and full-JID items; enforced for XMPP and mobile clients alike" }],
  setup(api) {
    const { router, sessions } = api;
    const hosts = new Set(api.hosts);
    // One indexed row lookup per question and no cache, so a change made on any node rules every node at once.
    const rows = api.store.blockLists;
    const watchers = new Set<(change: BlockChange) => void>();
    let pushes = 0;

    /** XEP-0191 §3.3/§3.4: pushes to every resource of the user that asked for the list. */
    const push = (owner: string, name: "block" | "unblock", jids: string[], all: boolean, origin: Session | null): void => {
      // §3.4: the push of an unblock-all carries no items.
      const el = blocklist(name, all ? [] : jids);
      for (const s of sessions.resources(owner)) {
        if (s.data.get(REQUESTED) !== true || s.closed) continue;
        s.send(xml("iq", { type: "set", to: s.jid!.toString(), id: `block-push-${(pushes++).toString(36)}` }, el));
      }
      const change: BlockChange = { owner, jids, blocked: name === "block", origin };
      for (const fn of watchers) {
        try { fn(change); } catch (err) { api.log.error({ err }, "a block-list watcher failed"); }
      }
    };

    /** Whether `contact` has a subscription to the owner's presence (RFC 6121 §3: "from" or "both"). */
    const subscribedToUser = async (owner: string, contact: string): Promise<boolean> => {
      const item = await api.store.roster.getItem(owner, contact);
      return item !== null && (item.subscription === "from" || item.subscription === "both");
    };

    const service: BlockingService = {
      list: (owner) => rows.list(owner),
      blocks: (owner, addr) => rows.isBlocked(owner, matchingItems(addr)),
      async block(owner, jids, origin = null) {
        const added = await rows.add(owner, jids);
        if (added.length === 0) return added;
        // §3.3: a blocked contact that sees the user's presence (by subscription or directed presence) sees
        // the user go offline; nobody else learns the user's resources from it.
        for (const jid of added) {
          const j = tryParseJid(jid);
          if (!j || j.local === "") continue;
          const subscribed = await subscribedToUser(owner, j.bareString());
          for (const r of sessions.resources(owner)) {
            if (r.presence === null || !(subscribed || r.directed?.has(jid) || r.directed?.has(j.bareString()))) continue;
            void router.route(xml("presence", { type: "unavailable", from: r.jid!.toString(), to: jid }));
          }
        }
        push(owner, "block", added, false, origin);
        return added;
      },
      async unblock(owner, jids, origin = null) {
        const removed = jids === null ? await rows.clear(owner) : await rows.remove(owner, jids);
        if (removed.length === 0) return removed;
        // §3.4: a contact subscribed to the user's presence sees its current presence again.
        for (const jid of removed) {
          const j = tryParseJid(jid);
          if (!j || j.local === "") continue;
          if (!(await subscribedToUser(owner, j.bareString()))) continue;
          for (const r of sessions.resources(owner)) {
            if (r.presence === null) continue;
            const p = shallowCopy(r.presence);
            p.attrs.from = r.jid!.toString();
            p.attrs.to = jid;
            void router.route(p);
          }
        }
        push(owner, "unblock", removed, jids === null, origin);
        return removed;
      },
      watch(fn) {
        watchers.add(fn);
        return () => { watchers.delete(fn); };
      },
    };
    api.provide("blocking", service);
    // XEP-0191 §3.1: a client asks its server (Conversations, Dino); some ask their own account (slixmpp).
    api.addFeature(NS_BLOCKING);
    api.addFeature(NS_BLOCKING, "account");

    // ---- the protocol (XEP-0191 §3) ----

    api.onIq("get", "self", NS_BLOCKING, "blocklist", async (ev) => {
      ev.origin?.data.set(REQUESTED, true);
      return blocklist("blocklist", await rows.list(ev.from.bareString()));
    });
    api.onIq("set", "self", NS_BLOCKING, "block", async (ev) => {
      const jids = itemsOf(ev.stanza.getChild("block", NS_BLOCKING)!);
      // §3.3: a block without items is a bad request.
      if (jids.length === 0) throw new StanzaError("bad-request", "name at least one JID to block");
      await service.block(ev.from.bareString(), jids, ev.origin);
      return true;
    });
    api.onIq("set", "self", NS_BLOCKING, "unblock", async (ev) => {
      const jids = itemsOf(ev.stanza.getChild("unblock", NS_BLOCKING)!);
      await service.unblock(ev.from.bareString(), jids.length === 0 ? null : jids, ev.origin);
      return true;
    });

    // ---- enforcement ----

    /** Whether `owner` (a local user's bare JID, or null) blocks `addr`; a promise only from a networked store. */
    const blockedBy = (owner: Jid, addr: Jid): boolean | Promise<boolean> =>
      owner.local !== "" && hosts.has(owner.domain) ? rows.isBlocked(owner.bareString(), matchingItems(addr)) : false;

    /**
     * RFC 6120 §10.1: stanzas from one entity to another are delivered in the order they were sent. Deliveries
     * are not awaited one by one (a presence broadcast routes to every contact at once), and on a networked
     * store two lookups can answer out of order: each answer for a (sender, recipient) pair waits for the
     * previous one. The lookups themselves still run at once.
     */
    const pending = new Map<string, Promise<unknown>>();
    const inOrder = <T>(pair: string, answer: Promise<T>): Promise<T> => {
      const prev = pending.get(pair);
      const next = prev === undefined ? answer : prev.then(() => answer, () => answer);
      pending.set(pair, next);
      const done = () => { if (pending.get(pair) === next) pending.delete(pair); };
      next.then(done, done);
      return next;
    };

    /** §3.6: not-acceptable with the <blocked/> application error, for a stanza to an entity the user blocked. */
    const youBlocked = () => new StanzaError("not-acceptable", "you blocked this entity", undefined, xml("blocked", { xmlns: NS_BLOCKING_ERRORS }));

    /**
     * Delivery (on the recipient's bus): "in" when the recipient blocked the sender, "out" when a local sender
     * blocked the recipient (stanzas the server sends on the user's behalf, e.g. presence broadcasts).
     */
    const deliveryFilter = (ev: StanzaEvent): boolean | StanzaError | Promise<boolean | StanzaError> => {
      if (ev.from.bareString() === ev.to.bareString() || (ev.from.local === "" && ev.to.local === "")) return false;
      const inbound = blockedBy(ev.to, ev.from);
      const outbound = blockedBy(ev.from, ev.to);
      // The embedded store answers at once, in order by construction: no promise on the hot path.
      if (!isThenable(inbound) && !isThenable(outbound)) return decide(ev, inbound ? "in" : outbound ? "out" : null);
      const lookups = Promise.all([inbound, outbound]);
      return inOrder(`${ev.from.toString()}\0${ev.to.toString()}`, lookups).then(([i, o]) => decide(ev, i ? "in" : o ? "out" : null));
    };
    const decide = (ev: StanzaEvent, way: "in" | "out" | null): boolean | StanzaError => {
      if (way === null) return false;
      const el = ev.stanza;
      // §3.5: presence is dropped without an error; the user going offline (§3.3) still reaches the blocked entity.
      if (el.name === "presence") return !(way === "out" && el.attrs.type === "unavailable");
      // Errors and results: from the blocked entity dropped; the user's own (e.g. the answer of §3.5) go on.
      if (!isAnswerable(el)) return way === "in";
      // §3.5: service-unavailable to a blocked sender, for messages and iq requests alike.
      return way === "in" ? new StanzaError("service-unavailable") : youBlocked();
    };
    for (const kind of ["message", "presence", "iq"] as const) {
      for (const target of ["bare", "full"] as const) api.on(`${kind}/${target}`, deliveryFilter, "policy");
    }

    // Outbound from a local client: refused before it is stored or routed. A message to a user of a host
    // served here meets the delivery filter above before anything stores it, so it is asked about once, there;
    // iq requests are answered on the addressee's behalf before delivery (vCards), so they are checked here.
    const outboundFilter = (ev: StanzaEvent): false | StanzaError | Promise<false | StanzaError> => {
      if (!ev.origin || !isAnswerable(ev.stanza)) return false;
      const blocked = blockedBy(ev.from, ev.to);
      return isThenable(blocked) ? blocked.then((b) => (b ? youBlocked() : false)) : blocked ? youBlocked() : false;
    };
    const outboundMessageFilter = (ev: StanzaEvent): false | StanzaError | Promise<false | StanzaError> =>
      hosts.has(ev.to.domain) ? false : outboundFilter(ev);
    for (const target of ["bare", "full"] as const) api.on(`pre-message/${target}`, outboundMessageFilter, "policy");
    api.on("pre-message/host", outboundFilter, "policy");
    for (const target of ["bare", "full", "host"] as const) api.on(`pre-iq/${target}`, outboundFilter, "policy");
  },
});
