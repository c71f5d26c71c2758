// XEP-0280: Message Carbons. A session that enables carbons gets a copy of every IM message its user sends
// from another resource (<sent/>) and of every one delivered to another resource of its user (<received/>),
// each forwarded (XEP-0297) in a message from the user's bare JID.
import { defineModule } from "../../src/modules/module.js";
import { clone, xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import type { StanzaEvent } from "../../src/events/hooks.js";
import type { Session } from "../../src/sessions/session.js";
import type { Jid } from "../../src/jid/jid.js";

export const NS_CARBONS = "urn:xmpp:carbons:2";
const ENABLED = "carbons";

// XEP-0280 §6: payloads of instant messaging that make a message of type normal without a body eligible.
const IM_PAYLOADS: ReadonlyArray<readonly [string, string | null]> = [
  [NS.receipts, null],                               // XEP-0184
  ["http://jabber.org/protocol/chatstates", null],   // XEP-0085
  [NS.chatMarkers, null],                            // XEP-0333
  [NS.conference, "x"],                              // XEP-0249 direct invitation
];

function hasChildIn(stanza: Element, ns: string, name: string | null): boolean {
  return stanza.children.some((c) => typeof c !== "string" && c.attrs.xmlns === ns && (name === null || c.name === name));
}

/** XEP-0280 §6 and §7: the messages that are copied, before the MUC rules of §6.1. */
function eligible(stanza: Element): boolean {
  if (stanza.getChild("private", NS_CARBONS) || stanza.getChild("no-copy", NS.hints)) return false; // §7, XEP-0334 §4.4
  const type = stanza.attrs.type ?? "normal";
  if (type === "chat") return true;
  if (type !== "normal") return false; // groupchat (§6.1), headline, error
  return stanza.getChild("body") !== undefined || IM_PAYLOADS.some(([ns, name]) => hasChildIn(stanza, ns, name));
}

/** §6.1: a private message from a MUC occupant; the MUC already sends it to every joined client of the user. */
function isMucPrivateMessage(stanza: Element, from: Jid): boolean {
  const x = stanza.getChild("x", NS.mucUser);
  return from.resource !== "" && x !== undefined && x.getChild("invite") === undefined;
}

/** A carbons wrapper around an element another entity put in a message: a forgery (§11). */
function carriesCarbon(stanza: Element): boolean {
  return stanza.getChild("sent", NS_CARBONS) !== undefined || stanza.getChild("received", NS_CARBONS) !== undefined;
}

export const carbons = defineModule({
  name: "carbons",
  xep: [
    { spec: "XEP-0280", title: "Message Carbons", version: "1.0.1", status: "complete" },
    { spec: "XEP-0334", title: "Message Processing Hints", version: "0.3.0", status: "partial", note: "no-copy (for carbons)" },
  ],
  setup(api) {
    api.addFeature(NS_CARBONS);
    const hosts = new Set(api.hosts);
    const enabled = (s: Session): boolean => s.data.get(ENABLED) === true;

    // §4, §5, §10.1: enabling or disabling twice is fine. Only the session itself decides.
    const toggle = (on: boolean) => (ev: StanzaEvent) => {
      const session = ev.origin;
      if (!session) return false;
      if (on) session.data.set(ENABLED, true);
      else session.data.delete(ENABLED);
      api.sessions.changed(session);
      return true;
    };
    api.onIq("set", "self", NS_CARBONS, "enable", toggle(true));
    api.onIq("set", "self", NS_CARBONS, "disable", toggle(false));
    // XEP-0280 §4 inline in a Bind2 login (XEP-0386 §2.3): the new session starts with carbons on.
    api.fold("bind2-features", (acc) => [...acc, NS_CARBONS]);
    api.on("bind2-inline", ({ session, element }) => {
      if (element.attrs.xmlns !== NS_CARBONS || element.name !== "enable") return false;
      session.data.set(ENABLED, true);
      api.sessions.changed(session);
      return true;
    });

    /**
     * A copy for one carbons-enabled session: from the user's bare JID (§8.1, §9.1; the one address a client
     * accepts carbons from, §11), to the session's full JID, with the original message's type.
     */
    const copyTo = (kind: "sent" | "received", owner: string, session: Session, original: Element): void => {
      session.send(xml("message", { from: owner, to: session.jid!.toString(), type: original.attrs.type },
        xml(kind, { xmlns: NS_CARBONS }, xml("forwarded", { xmlns: NS.forward }, original))));
    };
    const forwardable = (stanza: Element): Element => {
      const copy = clone(stanza);
      copy.attrs.xmlns = NS.client;
      return copy;
    };

    // Stanzas that carried <private/>: stripped before delivery (§7), still never copied.
    const privateStanzas = new WeakSet<Element>();

    // §9: a message sent by a client goes to the user's other carbons-enabled resources, not to the sender.
    const copySent = (origin: Session, owner: string, stanza: Element, senderStanzaId: string | null): void => {
      let copy: Element | null = null;
      for (const other of api.sessions.resources(owner)) {
        if (other === origin || !enabled(other)) continue;
        copyTo("sent", owner, other, copy ??= sentCopy(stanza, owner, senderStanzaId));
      }
    };
    /** The sender's view: without the recipient's stanza-id, with the sender's own archive id (XEP-0359). */
    const sentCopy = (stanza: Element, owner: string, senderStanzaId: string | null): Element => {
      const copy = forwardable(stanza);
      copy.children = copy.children.filter((c) => typeof c === "string" || !(c.name === "stanza-id" && c.attrs.xmlns === NS.sid));
      if (senderStanzaId) copy.cnode(xml("stanza-id", { xmlns: NS.sid, id: senderStanzaId, by: owner }));
      return copy;
    };
    // Messages to local users are copied once the IM rules have handled them (message-delivered below),
    // which knows a resend of a stored message (not copied again) and the sender's archive id. Messages to
    // other domains (remote users, MUC private messages) are copied here, before they leave.
    const sent = (ev: StanzaEvent): boolean => {
      const origin = ev.origin;
      const stanza = ev.stanza;
      if (stanza.getChild("private", NS_CARBONS)) privateStanzas.add(stanza);
      if (!origin || hosts.has(ev.to.domain) || !eligible(stanza)) return false;
      const owner = ev.from.bareString();
      copySent(origin, owner, stanza, null);
      return false;
    };
    // After the message module strips forged stanza-ids (it loads first), before delivery stamps the
    // recipient's own stanza-id, which the sender's devices must not see.
    api.on("pre-message/bare", sent, "annotate");
    api.on("pre-message/full", sent, "annotate");

    // Before the IM rules deliver a message to a local user: drop forged carbons, strip <private/> (§7).
    const inbound = (ev: StanzaEvent): boolean => {
      const stanza = ev.stanza;
      if (carriesCarbon(stanza) && ev.from.bareString() !== ev.to.bareString()) {
        api.log.debug({ from: ev.from.toString(), to: ev.to.toString() }, "dropped a message carrying a carbon not from the user's account");
        return true;
      }
      const privateHint = stanza.getChild("private", NS_CARBONS);
      if (privateHint) {
        privateStanzas.add(stanza);
        stanza.remove(privateHint);
      }
      return false;
    };
    api.on("message/bare", inbound, "annotate");
    api.on("message/full", inbound, "annotate");

    // §8: a message delivered to some resources of its recipient goes to the other carbons-enabled ones.
    api.observe("message-delivered", (ev) => {
      const stanza = ev.stanza;
      if (ev.duplicate || privateStanzas.has(stanza) || !eligible(stanza) || isMucPrivateMessage(stanza, ev.from)) return false;
      const owner = ev.to.bareString();
      if (ev.from.bareString() === owner) return false; // between the user's own resources
      if (ev.origin && !ev.origin.closed && hosts.has(ev.from.domain)) copySent(ev.origin, ev.from.bareString(), stanza, ev.senderMeta?.stanzaId ?? null);
      let copy: Element | null = null;
      for (const session of api.sessions.resources(owner)) {
        if (ev.delivered.includes(session) || !enabled(session)) continue;
        copyTo("received", owner, session, copy ??= forwardable(stanza));
      }
      return false;
    });
  },
});
