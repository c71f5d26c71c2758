// XEP-0030: Service Discovery for the server and, on their behalf, for its accounts; XEP-0115: the
// server's entity capabilities in the stream features after authentication.
//
// Other modules add features and identities with api.addFeature/addIdentity, extra info children
// (XEP-0128 forms) through the "disco-info" fold and items through the "disco-items" fold. Folders see
// account queries too (ctx.to has a localpart then) and answer queries for their own nodes (ctx.node);
// a node no folder answers is item-not-found (XEP-0030 §7).
import { moduleOptions, nonEmpty } from "../../src/config/schema.js";
import { defineModule, type Identity } from "../../src/modules/module.js";
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { jid, type Jid } from "../../src/jid/jid.js";
import { StanzaError } from "../../src/xml/stanza.js";
import { capsVer, NS_CAPS, type CapsIdentity } from "./caps.js";



/** XEP-0157 §2: the address kinds of the serverinfo form, as `contactAddresses.<kind>`. */
const CONTACT_KINDS = ["abuse", "admin", "feedback", "sales", "security", "status", "support"] as const;
const NS_SERVERINFO = "http://jabber.org/network/serverinfo";
const contactList = (kind: string) => ({
  kind: "list", default: [], minItems: 0,
  itemExpect: "a URI such as mailto:abuse@example.org, xmpp:admin@example.org or https://example.org/support",
  acceptItem: (v: string) => (/^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(v.trim()) ? v.trim() : undefined),
  description: `XEP-0157 ${kind}-addresses of the server (disco#info form).`,
}) as const;

export const discoOptions = moduleOptions("Service discovery (XEP-0030) and entity capabilities (XEP-0115).", {
  contactAddresses: {
    kind: "section",
    description: "Contact addresses published in the server's disco#info (XEP-0157); kinds left empty are omitted.",
    fields: {
      abuse: contactList("abuse"), admin: contactList("admin"), feedback: contactList("feedback"), sales: contactList("sales"),
      security: contactList("security"), status: contactList("status"), support: contactList("support"),
    },
  },
  capsNode: {
    kind: "string",
    default: "urn:hearth:caps",
    expect: "a non-empty URI",
    accept: nonEmpty,
    description: "XEP-0115 §4: the URI identifying the software in the caps 'node'.",
  },
});

const SERVER_IDENTITY: Identity = { category: "server", type: "im", name: "hearth" };
const ACCOUNT_IDENTITY: CapsIdentity = { category: "account", type: "registered" };

function infoQuery(node: string | null, identities: readonly CapsIdentity[], features: Iterable<string>, extra: Element[]): Element {
  const q = xml("query", { xmlns: NS.discoInfo, node });
  for (const i of identities) q.cnode(xml("identity", { category: i.category, type: i.type, name: i.name, "xml:lang": i.lang }));
  // Identities a folder adds (e.g. PEP's pubsub/pep on accounts) go with the others, before the features.
  for (const x of extra) if (x.name === "identity") q.cnode(x);
  for (const f of [...features].sort()) q.cnode(xml("feature", { var: f }));
  for (const x of extra) if (x.name !== "identity") q.cnode(x);
  return q;
}

/** The node attribute of a disco query; an empty one means none. */
function nodeOf(query: Element | undefined): string | null {
  const node = query?.attrs.node;
  return typeof node === "string" && node !== "" ? node : null;
}

export const disco = defineModule({
  name: "disco",
  xep: [
    { spec: "XEP-0030", title: "Service Discovery", version: "2.5.0", status: "complete" },
    { spec: "XEP-0157", title: "Contact Addresses for XMPP Services", version: "1.1.1", status: "complete", note: "from modules.disco.contactAddresses" },
    { spec: "XEP-0115", title: "Entity Capabilities", version: "1.6.0", status: "complete", note: "server caps in stream features; the caps of clients and of remote contacts (asked over s2s) read from presence, verified and cached by hash (module caps)" },
  ],
  options: discoOptions,
  setup(api) {
    const ctx = api;
    const capsNode = api.options.capsNode;
    api.addIdentity(SERVER_IDENTITY);
    api.addFeature(NS.discoInfo);
    api.addFeature(NS.discoItems);
    // XEP-0115 §7: an entity that advertises caps lists the caps feature.
    api.addFeature(NS_CAPS);
    api.addFeature(NS.discoInfo, "account");
    api.addFeature(NS.discoItems, "account");

    // XEP-0157: the serverinfo form, on the server's own disco#info (and so in its caps hash).
    const contacts = CONTACT_KINDS.filter((k) => api.options.contactAddresses[k].length > 0);
    if (contacts.length > 0) {
      api.fold("disco-info", (acc, c) => {
        if (c.to.local || c.node !== null) return acc;
        acc.push(xml("x", { xmlns: NS.dataForms, type: "result" },
          xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, NS_SERVERINFO)),
          ...contacts.map((k) => xml("field", { var: `${k}-addresses` }, ...api.options.contactAddresses[k].map((v) => xml("value", null, v))))));
        return acc;
      });
    }

    const infoFold = (host: string, node: string | null, to: Jid, from: Jid): Element[] =>
      api.runFold(host, "disco-info", [], { host, node, to, from });
    const itemsFold = (host: string, node: string | null, to: Jid, from: Jid): Element[] =>
      api.runFold(host, "disco-items", [], { host, node, to, from });

    /** The server's own disco#info extensions (forms): what its caps ver is computed from, with the rest. */
    const serverExtra = (host: string): Element[] => {
      const hostJid = jid("", host);
      return infoFold(host, null, hostJid, hostJid);
    };
    // Every login's stream features carry the ver: kept per host until a module registration changes what it
    // is computed from (features, identities, folds: ModuleApi.registryGeneration).
    const verByHost = new Map<string, { generation: number; ver: string }>();
    const serverVer = (host: string): string => {
      const known = verByHost.get(host);
      if (known !== undefined && known.generation === api.registryGeneration) return known.ver;
      const ver = capsVer(ctx.identities, ctx.features.host, serverExtra(host));
      verByHost.set(host, { generation: api.registryGeneration, ver });
      return ver;
    };

    api.fold("stream-features", (acc, { session, authenticated }) => {
      // XEP-0115 §6.3: the server's caps as a stream feature.
      if (authenticated) acc.push(xml("c", { xmlns: NS_CAPS, hash: "sha-1", node: capsNode, ver: serverVer(session.host) }));
      return acc;
    });

    api.onIq("get", "host", NS.discoInfo, "query", (ev) => {
      const host = ev.to.domain;
      const node = nodeOf(ev.stanza.getChild("query", NS.discoInfo));
      if (node === null) return infoQuery(null, ctx.identities, ctx.features.host, infoFold(host, null, ev.to, ev.from));
      // XEP-0115 §6.2: the caps node#ver is answered with the same info the ver was computed from.
      if (node === `${capsNode}#${serverVer(host)}`) return infoQuery(node, ctx.identities, ctx.features.host, serverExtra(host));
      const forNode = infoFold(host, node, ev.to, ev.from);
      if (forNode.length === 0) throw new StanzaError("item-not-found");
      return infoQuery(node, [], [], forNode);
    });

    api.onIq("get", "host", NS.discoItems, "query", (ev) => {
      const node = nodeOf(ev.stanza.getChild("query", NS.discoItems));
      const items = itemsFold(ev.to.domain, node, ev.to, ev.from);
      if (node !== null && items.length === 0) throw new StanzaError("item-not-found");
      return xml("query", { xmlns: NS.discoItems, node }, ...items);
    });

    /** Another user's account is described only if it exists; RFC 6121 §8.5.1 answers service-unavailable otherwise. */
    const requireAccount = async (ev: { to: Jid; from: Jid }): Promise<void> => {
      if (ev.to.local === ev.from.local && ev.to.domain === ev.from.domain) return;
      if (!(await api.accounts.exists(ev.to.domain, ev.to.local))) throw new StanzaError("service-unavailable");
    };

    api.onIq("get", ["self", "bare"], NS.discoInfo, "query", async (ev) => {
      await requireAccount(ev);
      const node = nodeOf(ev.stanza.getChild("query", NS.discoInfo));
      const extra = infoFold(ev.to.domain, node, ev.to, ev.from);
      if (node === null) return infoQuery(null, [ACCOUNT_IDENTITY], ctx.features.account, extra);
      if (extra.length === 0) throw new StanzaError("item-not-found");
      return infoQuery(node, [], [], extra);
    });

    api.onIq("get", ["self", "bare"], NS.discoItems, "query", async (ev) => {
      await requireAccount(ev);
      const node = nodeOf(ev.stanza.getChild("query", NS.discoItems));
      const items = itemsFold(ev.to.domain, node, ev.to, ev.from);
      if (node !== null && items.length === 0) throw new StanzaError("item-not-found");
      return xml("query", { xmlns: NS.discoItems, node }, ...items);
    });
  },
});
