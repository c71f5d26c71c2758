// RFC 6121 §3 (subscriptions) and §4 (availability): the subscription state machine with pre-approval
// and persisted pending requests, probes, initial/broadcast/directed presence, unavailable on disconnect.
import { defineModule } from "../modules/module.js";
import { compact, shallowCopy, xml, type Element } from "../xml/element.js";
import { parseFramedElement } from "../xml/parser.js";
import type { StanzaEvent } from "../events/hooks.js";
import type { Session } from "../sessions/session.js";
import { emptyItem, saveItem, subscribedFrom, subscribedTo, withRoster } from "./roster-util.js";

const SUBSCRIPTION_TYPES = new Set(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);

export const presenceModule = defineModule({
  name: "presence",
  depends: ["roster"],
  xep: [{ spec: "RFC 6121", title: "XMPP Instant Messaging and Presence", status: "complete", note: "subscriptions with pre-approval (§3), presence (§4)" }],
  setup(api) {
    const { store, sessions, router } = api;

    const itemOf = async (owner: string, contact: string) => (await store.roster.getItem(owner, contact)) ?? emptyItem(contact);
    const available = (bare: string) => sessions.resources(bare).filter((s) => s.presence !== null);

    /** A copy of `stanza` addressed from/to; stanzas are never shared between recipients that rewrite them. */
    const addressed = (stanza: Element, from: string, to: string): Element => {
      const el = shallowCopy(stanza);
      el.attrs.from = from;
      el.attrs.to = to;
      return el;
    };

    // ---- outbound: from a local client ----

    const outbound = async (ev: StanzaEvent): Promise<boolean> => {
      const type = ev.stanza.attrs.type;
      const session = ev.origin!;
      if (type === undefined || type === "unavailable") {
        if (ev.to.isBare && ev.to.equals(ev.from.bare()) && ev.stanza.attrs.to === undefined) return broadcast(session, ev.stanza);
        return directed(session, ev);
      }
      if (type === "probe") return true; // clients don't probe (RFC 6121 §4.3)
      if (type === "error") { router.deliver(ev); return true; }
      if (!SUBSCRIPTION_TYPES.has(type)) return true;
      if (ev.to.local === "" ) return true;
      const user = ev.from.bareString();
      const contact = ev.to.bare().toString();
      if (contact === user) return true;
      return withRoster(store, user, () => outboundSubscription(ev, type, user, contact));
    };

    const outboundSubscription = async (ev: StanzaEvent, type: string, user: string, contact: string): Promise<boolean> => {
      const item = await itemOf(user, contact);
      // RFC 6121 §3.1.2: subscription stanzas leave with the user's bare JID.
      const out = addressed(ev.stanza, user, contact);
      switch (type) {
        case "subscribe":
          if (!subscribedTo(item)) { item.askOut = true; item.inRoster = true; await saveItem(store, sessions, user, item); }
          break;
        case "subscribed":
          if (item.pendingIn) {
            // §3.1.5: approve a pending request.
            item.subscription = item.subscription === "to" ? "both" : "from";
            item.pendingIn = null;
            item.inRoster = true;
            await saveItem(store, sessions, user, item);
            router.route(out);
            sendCurrentPresence(user, contact);
            return true;
          }
          if (!subscribedFrom(item)) {
            // §3.4: pre-approval; nothing is sent to the contact.
            item.approved = true;
            item.inRoster = true;
            await saveItem(store, sessions, user, item);
            return true;
          }
          break;
        case "unsubscribe":
          if (subscribedTo(item) || item.askOut) {
            item.subscription = item.subscription === "both" ? "from" : "none";
            item.askOut = false;
            await saveItem(store, sessions, user, item);
          }
          break;
        case "unsubscribed":
          if (subscribedFrom(item) || item.pendingIn || item.approved) {
            const wasFrom = subscribedFrom(item);
            item.subscription = item.subscription === "both" ? "to" : "none";
            item.pendingIn = null;
            item.approved = false;
            await saveItem(store, sessions, user, item);
            // §3.2.2: the contact stops seeing the user.
            if (wasFrom) for (const s of available(user)) router.route(xml("presence", { type: "unavailable", from: s.jid!.toString(), to: contact }));
          }
          break;
      }
      router.route(out);
      return true;
    };

    /** §3.1.5: after approving, the contact gets the user's current presence. */
    const sendCurrentPresence = (user: string, contact: string) => {
      for (const s of available(user)) router.route(addressed(s.presence!, s.jid!.toString(), contact));
    };

    const broadcast = async (session: Session, stanza: Element): Promise<boolean> => {
      const user = session.jid!.bareString();
      const full = session.jid!.toString();
      const unavailable = stanza.attrs.type === "unavailable";
      const initial = !unavailable && session.presence === null;
      if (unavailable && session.presence === null) return true;
      const prio = Number(stanza.getChildText("priority") ?? "0");
      session.priority = Number.isInteger(prio) && prio >= -128 && prio <= 127 ? prio : 0;
      session.presence = unavailable ? null : compact(stanza);
      sessions.changed(session);
      const roster = await store.roster.get(user);
      for (const item of roster.items) {
        // §4.2.2 / §4.4.2: to every contact subscribed to the user.
        if (subscribedFrom(item)) router.route(addressed(stanza, full, item.jid));
        // §4.3.1: probe the contacts the user is subscribed to.
        if (initial && subscribedTo(item)) router.route(xml("presence", { type: "probe", from: user, to: item.jid }));
      }
      // The user's own resources, including this one (an entity is subscribed to itself).
      for (const s of sessions.resources(user)) if (s.presence !== null || s === session) s.send(addressed(stanza, full, s.jid!.toString()));
      if (unavailable && session.directed) {
        for (const to of session.directed) router.route(addressed(stanza, full, to));
        session.directed = null;
      }
      if (initial) {
        // §3.1.3: subscription requests that waited for the user to come online.
        for (const item of roster.items) {
          if (item.pendingIn) {
            const req = parseStored(item.pendingIn, item.jid, user);
            session.send(req);
          }
        }
        await api.notify(session.host, "initial-presence", { session, stanza });
      }
      return true;
    };

    const parseStored = (xmlText: string, from: string, to: string): Element => {
      const el = xml("presence", { type: "subscribe", from, to });
      // The stored request may carry a status text or nick (XEP-0172); keep its children.
      try {
        const stored = parseFramedElement(xmlText);
        for (const c of stored.children) if (typeof c !== "string") el.cnode(c);
      } catch { /* a damaged row still yields the bare request */ }
      return el;
    };

    const directed = (session: Session, ev: StanzaEvent): boolean => {
      // §4.6: directed presence goes as is; remember it so unavailable reaches the same entity.
      const to = ev.to.toString();
      if (ev.stanza.attrs.type === "unavailable") session.directed?.delete(to);
      else if (session.presence !== null) (session.directed ??= new Set()).add(to);
      sessions.changed(session);
      router.deliver(ev);
      return true;
    };

    for (const t of ["bare", "full", "self", "host"] as const) api.on(`pre-presence/${t}`, outbound);

    // ---- inbound: to a local user ----

    const inboundSubscription = (ev: StanzaEvent): Promise<boolean> => withRoster(store, ev.to.bareString(), () => inboundSubscriptionLocked(ev));
    const inboundSubscriptionLocked = async (ev: StanzaEvent): Promise<boolean> => {
      const type = ev.stanza.attrs.type!;
      const user = ev.to.bareString();
      const contact = ev.from.bareString();
      if (!(await api.accounts.exists(ev.to.domain, ev.to.local))) {
        if (type === "subscribe") router.route(xml("presence", { type: "unsubscribed", from: user, to: contact }));
        return true;
      }
      const item = await itemOf(user, contact);
      const stanza = addressed(ev.stanza, contact, user);
      const toInterested = () => { for (const s of available(user)) if (s.interested) s.send(addressed(stanza, contact, s.jid!.toString())); };
      switch (type) {
        case "subscribe":
          if (subscribedFrom(item)) {
            // §3.1.3: already approved: answer for the user.
            router.route(xml("presence", { type: "subscribed", from: user, to: contact }));
            return true;
          }
          if (item.approved) {
            item.subscription = item.subscription === "to" ? "both" : "from";
            item.approved = false;
            item.inRoster = true;
            await saveItem(store, sessions, user, item);
            router.route(xml("presence", { type: "subscribed", from: user, to: contact }));
            sendCurrentPresence(user, contact);
            return true;
          }
          item.pendingIn = stanza.toString();
          await saveItem(store, sessions, user, item);
          toInterested();
          return true;
        case "subscribed":
          if (!item.askOut) return true; // §3.1.6: unsolicited: ignored
          item.subscription = item.subscription === "from" ? "both" : "to";
          item.askOut = false;
          item.inRoster = true;
          await saveItem(store, sessions, user, item);
          toInterested();
          return true;
        case "unsubscribe":
          if (!subscribedFrom(item) && !item.pendingIn) return true;
          {
            const wasFrom = subscribedFrom(item);
            item.subscription = item.subscription === "both" ? "to" : "none";
            item.pendingIn = null;
            await saveItem(store, sessions, user, item);
            toInterested();
            // §3.3.3: the contact no longer sees the user.
            if (wasFrom) for (const s of available(user)) router.route(xml("presence", { type: "unavailable", from: s.jid!.toString(), to: contact }));
          }
          return true;
        case "unsubscribed":
          if (!subscribedTo(item) && !item.askOut) return true;
          item.subscription = item.subscription === "both" ? "from" : "none";
          item.askOut = false;
          await saveItem(store, sessions, user, item);
          toInterested();
          return true;
      }
      return true;
    };

    const hosts = new Set(api.hosts);
    const inbound = async (ev: StanzaEvent): Promise<boolean> => {
      // Only accounts of the served hosts; components handle their own domains.
      if (!hosts.has(ev.to.domain)) return false;
      const type = ev.stanza.attrs.type;
      if (type !== undefined && SUBSCRIPTION_TYPES.has(type)) return inboundSubscription(ev);
      const user = ev.to.bareString();
      if (type === "probe") {
        // §4.3.2: answer only contacts with an approved subscription.
        const item = await store.roster.getItem(user, ev.from.bareString());
        if (!subscribedFrom(item)) return true;
        const online = available(user);
        if (online.length === 0) router.route(xml("presence", { type: "unavailable", from: user, to: ev.from.toString() }));
        for (const s of online) router.route(addressed(s.presence!, s.jid!.toString(), ev.from.toString()));
        return true;
      }
      if (ev.to.resource) {
        const s = sessions.get(ev.to);
        if (s) s.send(ev.stanza);
        return true;
      }
      // §4.2.3 / §8.5.2.1.3: available and unavailable presence go to every available resource.
      for (const s of available(user)) s.send(ev.stanza);
      return true;
    };

    api.on("presence/bare", inbound);
    api.on("presence/full", (ev) => {
      const type = ev.stanza.attrs.type;
      // §3: subscription stanzas and probes to a full JID are handled as if sent to the bare JID.
      if (type === "probe" || (type !== undefined && SUBSCRIPTION_TYPES.has(type))) return inbound({ ...ev, to: ev.to.bare() });
      return inbound(ev);
    });

    // §4.5.2 and RFC 6120 §4.3: an abrupt disconnect is an unavailable presence.
    api.observe("resource-unbind", (ev) => {
      const s = ev.session;
      if (s.presence === null && !s.directed) return;
      const stanza = xml("presence", { type: "unavailable", from: s.jid!.toString() });
      return broadcastAfterClose(s, stanza);
    });

    const broadcastAfterClose = async (session: Session, stanza: Element): Promise<void> => {
      const user = session.jid!.bareString();
      const full = session.jid!.toString();
      const roster = await store.roster.get(user);
      if (session.presence !== null) {
        for (const item of roster.items) if (subscribedFrom(item)) router.route(addressed(stanza, full, item.jid));
        for (const s of available(user)) s.send(addressed(stanza, full, s.jid!.toString()));
      }
      if (session.directed) for (const to of session.directed) router.route(addressed(stanza, full, to));
      session.presence = null;
      session.directed = null;
    };
  },
});
