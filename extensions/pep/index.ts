// XEP-0163 Personal Eventing Protocol on a XEP-0060 subset: every account is a pubsub service at its bare
// JID. Nodes are created on first publish (or explicitly), configured by their owner (access model,
// max_items, persistence, notifications), read by whoever the access model admits, and every publish goes
// as a headline to each available resource of the owner and of its presence subscribers whose entity
// capabilities (XEP-0115, the caps module) carry `<node>+notify` (XEP-0163 §4.3.2 filtered notifications).
// The last item goes to such a resource when it comes online (§4.3.3). Remote contacts are served the same
// way over s2s, their +notify learned from the caps of the presence they send here; events their servers
// send to a local bare JID go to the resources with +notify only. In a cluster, a remote contact's resource
// is known on the node that routed its presence and on the node holding the user's session it was relayed
// to (the caps module), so a publish from the owner's session notifies it whichever node the session is
// on (remoteRecipients reads the features from the shared cache). Publish-options (XEP-0060 §7.1.5) are
// preconditions, which OMEMO, avatars and bookmarks rely on. The owner may name members (who read a
// whitelist node) and outcasts (who read none).
import { randomUUID } from "node:crypto";
import * as ltx from "ltx";
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { clone, xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { StanzaError } from "../../src/xml/stanza.js";
import { parseJid, type Jid } from "../../src/jid/jid.js";
import type { Session } from "../../src/sessions/session.js";
import type { RosterItem } from "../../src/storage/types.js";
import { subscribedFrom, subscribedTo } from "../../src/im/roster-util.js";
import {
  type Affiliation, DEFAULT_CONFIG, NODE_CONFIG, NS_PUBSUB, NS_PUBSUB_ERRORS, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER, PUBLISH_OPTIONS,
  checkPreconditions, configForm, configFromForm, formFields, parseNode, trimmed, withItem,
  type NodeConfig, type StoredItem, type StoredNode,
} from "./node.js";

export { NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER } from "./node.js";

/** What decides who sees a node: its configuration and the owner's affiliations. */
type Access = Pick<StoredNode, "config" | "affiliations">;

/** Items of a node changed (published or retracted) through the iq API or the service. */
export type PepListener = (owner: string, node: string) => void;

/** PEP for other modules (bookmarks and avatar conversion): the same rules and notifications as the iq API. */
export interface PepService {
  /** Publishes an item; `options` are publish-options (precondition, or the configuration of a new node). Throws StanzaError. */
  publish(owner: string, node: string, id: string, payload: Element, options?: Record<string, string>): Promise<void>;
  /** Retracts items, notifying the node's subscribers. */
  retract(owner: string, node: string, ids: readonly string[]): Promise<void>;
  /** The node's items, oldest first; null when there is no such node. */
  items(owner: string, node: string): Promise<Array<{ id: string; payload: Element }> | null>;
  onChange(listener: PepListener): () => void;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { pep: PepService }
}

export const pepOptions = moduleOptions("Personal Eventing Protocol (XEP-0163) and its pubsub subset (XEP-0060).", {
  maxItemsPerNode: {
    kind: "integer",
    min: 1,
    max: 10_000,
    default: 256,
    description: "Most items a node keeps; what max_items 'max' means, and the highest value a node may be configured with.",
  },
  maxItemBytes: {
    kind: "integer",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: 262_144,
    description: "Largest item payload accepted, serialized, in bytes.",
  },
  maxNodeBytes: {
    kind: "integer",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: 2_097_152,
    description: "Largest node (configuration and every item) kept, in bytes: a publish beyond it is refused.",
  },
  maxNodesPerUser: {
    kind: "integer",
    min: 1,
    max: 1_000_000,
    default: 1_000,
    description: "Most nodes one account may have.",
  },
});

/** What an account's disco#info lists (XEP-0060 §10, XEP-0163 §7): clients enable OMEMO and bookmarks on these. */
const FEATURES = [
  "", "#publish", "#publish-options", "#persistent-items", "#retrieve-items", "#retract-items", "#delete-items",
  "#create-nodes", "#instant-nodes", "#config-node", "#create-and-configure", "#delete-nodes", "#purge-nodes", "#auto-create",
  "#access-open", "#access-presence", "#access-roster", "#access-whitelist", "#item-ids", "#last-published",
  "#presence-notifications", "#filtered-notifications", "#retrieve-default", "#multi-items",
  "#auto-subscribe", "#config-node-max", "#retrieve-affiliations", "#modify-affiliations", "#member-affiliation", "#outcast-affiliation",
].map((f) => `${NS_PUBSUB}${f}`);

function pubsubError(condition: ConstructorParameters<typeof StanzaError>[0], app: string, text?: string, type?: "cancel" | "auth" | "modify" | "wait"): StanzaError {
  return new StanzaError(condition, text, type, xml(app, { xmlns: NS_PUBSUB_ERRORS }));
}

/** Most affiliations (members and outcasts) one node keeps. */
const MAX_AFFILIATIONS = 1000;

const unsupported = (feature: string) =>
  new StanzaError("feature-not-implemented", undefined, "cancel", xml("unsupported", { xmlns: NS_PUBSUB_ERRORS, feature }));

function nodeAttr(el: Element, required = true): string {
  const node = el.attrs.node;
  if (typeof node === "string" && node !== "") {
    if (node.length > 1024) throw new StanzaError("not-acceptable", "the node name is too long");
    return node;
  }
  if (required) throw pubsubError("bad-request", "nodeid-required");
  return "";
}

export const pep = defineModule({
  name: "pep",
  depends: ["roster", "disco", "caps"],
  xep: [
    {
      spec: "XEP-0060", title: "Publish-Subscribe", version: "1.26.0", status: "partial",
      note: "the PEP subset: publish (with publish-options), retract, items, create, configure, delete, purge, member and outcast affiliations (whitelist members); subscriptions are implicit (presence and +notify): no explicit subscriptions or subscription options, no collections, no pubsub service component",
    },
    {
      spec: "XEP-0163", title: "Personal Eventing Protocol", version: "1.2.2", status: "complete",
      note: "notifications and last-item delivery to local and remote (s2s) contacts by their caps; incoming events of remote contacts go to the resources with +notify",
    },
    { spec: "XEP-0223", title: "Persistent Storage of Private Data via PubSub", version: "1.1.1", status: "complete" },
  ],
  options: pepOptions,
  setup(api) {
    const { sessions, store, router } = api;
    const nodes = store.map("pep");
    const caps = api.use("caps");
    const limit = api.options.maxItemsPerNode;
    const listeners = new Set<PepListener>();
    const changed = (owner: string, node: string) => {
      for (const l of listeners) {
        try { l(owner, node); } catch (err) { api.log.error({ err }, "PEP change listener failed"); }
      }
    };

    for (const f of FEATURES) api.addFeature(f, "account");
    // XEP-0163 §6: the account is a pubsub service of type pep (disco lists extra identities first).
    api.fold("disco-info", (acc, ctx) => {
      if (ctx.node === null && ctx.to.local !== "") acc.push(xml("identity", { category: "pubsub", type: "pep" }));
      return acc;
    });

    const load = async (owner: string, node: string): Promise<StoredNode | null> => {
      const text = await nodes.get(owner, node);
      return text === null ? null : parseNode(text);
    };

    /**
     * XEP-0060 §6.1.3 / §6.5.9: may `requester` (a bare JID) see the owner's node? Throws the standard
     * refusal. The owner's affiliations come first: an outcast never, a member always (§4.1).
     */
    const checkAccess = (n: Access, owner: string, requester: string, item: RosterItem | null): void => {
      if (requester === owner) return;
      const affiliation = n.affiliations?.[requester];
      if (affiliation === "outcast") throw new StanzaError("forbidden", "the owner blocked this entity", "auth");
      if (affiliation === "member") return;
      switch (n.config.accessModel) {
        case "open": return;
        case "presence":
          if (!subscribedFrom(item)) throw pubsubError("not-authorized", "presence-subscription-required", undefined, "auth");
          return;
        case "roster":
          if (!item?.inRoster || !item.groups.some((g) => n.config.rosterGroupsAllowed.includes(g))) {
            throw pubsubError("not-authorized", "not-in-roster-group", undefined, "auth");
          }
          return;
        case "whitelist":
          throw pubsubError("not-allowed", "closed-node", undefined, "cancel");
      }
    };
    const mayAccess = (n: Access, owner: string, requester: string, item: RosterItem | null): boolean => {
      try { checkAccess(n, owner, requester, item); return true; } catch { return false; }
    };

    const interested = (s: Session, node: string): boolean => s.presence !== null && (caps.featuresOf(s)?.has(`${node}+notify`) ?? false);

    /** Where one notification goes: a local session or a remote contact's full JID (sent over s2s). */
    type Recipient = Session | string;

    /**
     * The resources an event on the owner's node goes to (XEP-0163 §4.3): the owner's own and those of each
     * contact with a presence subscription to the owner whom the access model admits, with +notify: local
     * sessions by their caps, remote resources by the caps of the presence they sent here.
     */
    const recipients = async (owner: string, node: string, n: Access): Promise<Recipient[]> => {
      const out: Recipient[] = sessions.resources(owner).filter((s) => interested(s, node));
      // A whitelist without members is the owner's alone (XEP-0223): no roster to read.
      if (n.config.accessModel === "whitelist" && !Object.values(n.affiliations ?? {}).includes("member")) return out;
      const roster = await store.roster.get(owner);
      for (const item of roster.items) {
        if (!subscribedFrom(item) || !mayAccess(n, owner, item.jid, item)) continue;
        if (isRemote(item.jid)) {
          for (const r of await caps.remoteRecipients(item.jid)) if (r.features?.has(`${node}+notify`)) out.push(r.jid);
          continue;
        }
        for (const s of sessions.resources(item.jid)) if (interested(s, node)) out.push(s);
      }
      return out;
    };

    const isRemote = (jid: string): boolean => {
      const at = jid.indexOf("@");
      return at > 0 && !router.isLocalDomain(jid.slice(at + 1).split("/")[0]);
    };

    const eventMessage = (owner: string, to: string, items: Element): Element =>
      xml("message", { from: owner, to, type: "headline", id: randomUUID() }, xml("event", { xmlns: NS_PUBSUB_EVENT }, items));

    const itemElement = (item: StoredItem): Element => {
      const el = xml("item", { id: item.id, publisher: item.publisher });
      el.cnode(ltx.parse(item.xml) as Element);
      return el;
    };

    const broadcast = async (owner: string, node: string, n: Access, build: () => Element): Promise<void> => {
      for (const r of await recipients(owner, node, n)) {
        if (typeof r === "string") api.send(eventMessage(owner, r, build()));
        else r.send(eventMessage(owner, r.jid!.toString(), build()));
      }
    };

    // ---- publish, retract, items, create (XEP-0060 §7, §6.5, §8.1) ----

    const publish = async (owner: string, publishEl: Element, optionsEl: Element | undefined): Promise<Element> => {
      const node = nodeAttr(publishEl);
      const itemEls = publishEl.getChildren("item");
      if (itemEls.length > 1) throw pubsubError("bad-request", "invalid-payload", "one item per publish");
      const itemEl = itemEls[0];
      const payloads = itemEl?.getChildElements() ?? [];
      if (payloads.length === 0) throw pubsubError("bad-request", "payload-required");
      if (payloads.length > 1) throw pubsubError("bad-request", "invalid-payload", "an item holds exactly one payload");
      const given = itemEl.attrs.id;
      if (typeof given === "string" && given.length > 1024) throw new StanzaError("not-acceptable", "the item id is too long");
      const id = typeof given === "string" && given !== "" ? given : randomUUID();
      let options: Map<string, string[]> | null = null;
      const x = optionsEl?.getChild("x", NS.dataForms);
      if (x) {
        options = formFields(x);
        if (options.get("FORM_TYPE")?.[0] !== PUBLISH_OPTIONS) throw new StanzaError("bad-request", "publish-options need the FORM_TYPE " + PUBLISH_OPTIONS);
      }
      await publishItem(owner, node, id, payloads[0], options);
      return xml("pubsub", { xmlns: NS_PUBSUB }, xml("publish", { node }, xml("item", { id })));
    };

    /** Publishes one item (XEP-0060 §7.1), creating the node with `options` or checking them as preconditions. */
    const publishItem = async (owner: string, node: string, id: string, payload: Element, options: Map<string, string[]> | null): Promise<void> => {
      const payloadXml = standaloneXml(payload);
      if (Buffer.byteLength(payloadXml, "utf8") > api.options.maxItemBytes) {
        throw pubsubError("not-acceptable", "payload-too-big", `an item is limited to ${api.options.maxItemBytes} bytes`, "modify");
      }
      const item: StoredItem = { id, publisher: owner, xml: payloadXml };
      const existing = await load(owner, node);
      if (existing === null) await checkNodeCount(owner);
      let refused: unknown = null;
      let stored: StoredNode | null = null;
      await nodes.update(owner, node, (current) => {
        refused = null;
        try {
          let base: StoredNode;
          if (current === null) {
            // §7.1.5: the options configure the node this publish creates (XEP-0163 §3: auto-create).
            const config = options ? configFromForm(DEFAULT_CONFIG, formOf(options), limit) : DEFAULT_CONFIG;
            base = { config, items: [] };
          } else {
            base = parseNode(current);
            if (options) checkPreconditions(base.config, options);
          }
          stored = withItem(base, item, limit);
          const text = JSON.stringify(stored);
          if (Buffer.byteLength(text, "utf8") > api.options.maxNodeBytes) {
            throw new StanzaError("resource-constraint", `a node is limited to ${api.options.maxNodeBytes} bytes`, "wait");
          }
          return text;
        } catch (err) {
          refused = err;
          return undefined;
        }
      });
      if (refused) throw refused;
      void broadcast(owner, node, (stored as StoredNode | null)!, () => xml("items", { node }, itemElement(item))).catch((err) => api.log.warn({ err }, "PEP notification failed"));
      changed(owner, node);
    };

    /** A publish-options form again as an element, for configFromForm. */
    const formOf = (fields: Map<string, string[]>): Element =>
      xml("x", { xmlns: NS.dataForms, type: "submit" },
        ...[...fields].map(([v, values]) => xml("field", { var: v }, ...values.map((x) => xml("value", null, x)))));

    const checkNodeCount = async (owner: string): Promise<void> => {
      if ((await nodes.list(owner)).size >= api.options.maxNodesPerUser) {
        throw new StanzaError("resource-constraint", `an account may have ${api.options.maxNodesPerUser} nodes`, "wait");
      }
    };

    const retract = async (owner: string, el: Element): Promise<true> => {
      const node = nodeAttr(el);
      const ids = el.getChildren("item").map((i) => i.attrs.id).filter((x): x is string => typeof x === "string" && x !== "");
      if (ids.length === 0) throw pubsubError("bad-request", "item-required");
      const notify = el.attrs.notify === "true" || el.attrs.notify === "1";
      const r = await retractItems(owner, node, ids, notify);
      if (r === "no-node" || r === 0) throw new StanzaError("item-not-found");
      return true;
    };

    /** Removes items (XEP-0060 §7.2); resolves to how many went, or "no-node". */
    const retractItems = async (owner: string, node: string, ids: readonly string[], notify: boolean): Promise<number | "no-node"> => {
      let removed = 0;
      let found: StoredNode | null = null;
      await nodes.update(owner, node, (current) => {
        if (current === null) { found = null; return undefined; }
        const n = parseNode(current);
        found = n;
        const kept = n.items.filter((i) => !ids.includes(i.id));
        removed = n.items.length - kept.length;
        return removed === 0 ? undefined : JSON.stringify({ ...n, items: kept });
      });
      if (found === null) return "no-node";
      if (removed === 0) return 0;
      const n = found as StoredNode;
      if (notify || n.config.notifyRetract) {
        void broadcast(owner, node, n, () => xml("items", { node }, ...ids.map((id) => xml("retract", { id }))))
          .catch((err) => api.log.warn({ err }, "PEP notification failed"));
      }
      changed(owner, node);
      return removed;
    };

    const create = async (owner: string, el: Element, configure: Element | undefined): Promise<Element | true> => {
      const node = nodeAttr(el, false);
      if (node === "") throw unsupported("instant-nodes");
      const x = configure?.getChild("x", NS.dataForms);
      const config = x ? configFromForm(DEFAULT_CONFIG, x, limit) : DEFAULT_CONFIG;
      await checkNodeCount(owner);
      let existed = false;
      await nodes.update(owner, node, (current) => {
        existed = current !== null;
        return existed ? undefined : JSON.stringify({ config, items: [] } satisfies StoredNode);
      });
      if (existed) throw new StanzaError("conflict", "the node exists", "cancel");
      return true;
    };

    const items = async (owner: string, requester: Jid, el: Element): Promise<Element> => {
      const node = nodeAttr(el);
      const n = await load(owner, node);
      if (!n) throw new StanzaError("item-not-found");
      const r = requester.bareString();
      checkAccess(n, owner, r, r === owner ? null : await store.roster.getItem(owner, r));
      let list = n.items;
      const ids = el.getChildren("item").map((i) => i.attrs.id).filter((x): x is string => typeof x === "string");
      if (ids.length > 0) list = list.filter((i) => ids.includes(i.id));
      const max = el.attrs.max_items;
      if (max !== undefined) {
        const m = Number(max);
        if (!Number.isInteger(m) || m < 0) throw new StanzaError("bad-request", "invalid max_items");
        // §6.5.7: the most recent items; they are listed newest first.
        list = list.slice(-m || list.length);
        if (m === 0) list = [];
      }
      return xml("pubsub", { xmlns: NS_PUBSUB }, xml("items", { node }, ...[...list].reverse().map(itemElement)));
    };

    api.onIq("set", "self", NS_PUBSUB, "pubsub", (ev) => {
      const ps = ev.stanza.getChild("pubsub", NS_PUBSUB)!;
      const owner = ev.from.bareString();
      const publishEl = ps.getChild("publish");
      if (publishEl) return publish(owner, publishEl, ps.getChild("publish-options"));
      const retractEl = ps.getChild("retract");
      if (retractEl) return retract(owner, retractEl);
      const createEl = ps.getChild("create");
      if (createEl) return create(owner, createEl, ps.getChild("configure"));
      if (ps.getChild("subscribe") || ps.getChild("unsubscribe")) throw unsupported("subscribe");
      if (ps.getChild("options")) throw unsupported("subscription-options");
      throw new StanzaError("bad-request");
    });

    // XEP-0060 §7.1.3.1: only the owner publishes to a PEP node.
    api.onIq("set", "bare", NS_PUBSUB, "pubsub", async (ev) => {
      const ps = ev.stanza.getChild("pubsub", NS_PUBSUB)!;
      if (ps.getChild("subscribe") || ps.getChild("unsubscribe")) throw unsupported("subscribe");
      throw new StanzaError("forbidden", "only the owner changes a personal node");
    });

    api.onIq("get", ["self", "bare"], NS_PUBSUB, "pubsub", async (ev) => {
      const ps = ev.stanza.getChild("pubsub", NS_PUBSUB)!;
      const owner = ev.to.bareString();
      const itemsEl = ps.getChild("items");
      if (itemsEl) {
        // RFC 6121 §8.5.1: an account that does not exist is not a service either.
        if (owner !== ev.from.bareString() && !(await api.accounts.exists(ev.to.domain, ev.to.local))) throw new StanzaError("service-unavailable");
        return items(owner, ev.from, itemsEl);
      }
      if (ps.getChild("subscriptions")) throw unsupported("retrieve-subscriptions");
      const affs = ps.getChild("affiliations");
      if (affs) return ownAffiliations(owner, ev.from.bareString(), affs.attrs.node);
      if (ps.getChild("options")) throw unsupported("subscription-options");
      throw new StanzaError("bad-request");
    });

    // ---- owner use cases (XEP-0060 §8) ----

    api.onIq("get", "self", NS_PUBSUB_OWNER, "pubsub", async (ev) => {
      const ps = ev.stanza.getChild("pubsub", NS_PUBSUB_OWNER)!;
      const configure = ps.getChild("configure");
      if (configure) {
        const node = nodeAttr(configure);
        const n = await load(ev.from.bareString(), node);
        if (!n) throw new StanzaError("item-not-found");
        return xml("pubsub", { xmlns: NS_PUBSUB_OWNER }, xml("configure", { node }, configForm(n.config)));
      }
      if (ps.getChild("default")) return xml("pubsub", { xmlns: NS_PUBSUB_OWNER }, xml("default", null, configForm(DEFAULT_CONFIG)));
      if (ps.getChild("subscriptions")) throw unsupported("manage-subscriptions");
      const affs = ps.getChild("affiliations");
      if (affs) {
        const owner = ev.from.bareString();
        const node = nodeAttr(affs);
        const n = await load(owner, node);
        if (!n) throw new StanzaError("item-not-found");
        return xml("pubsub", { xmlns: NS_PUBSUB_OWNER }, xml("affiliations", { node },
          xml("affiliation", { jid: owner, affiliation: "owner" }),
          ...Object.entries(n.affiliations ?? {}).map(([jid, affiliation]) => xml("affiliation", { jid, affiliation }))));
      }
      throw new StanzaError("bad-request");
    });

    api.onIq("set", "self", NS_PUBSUB_OWNER, "pubsub", async (ev) => {
      const ps = ev.stanza.getChild("pubsub", NS_PUBSUB_OWNER)!;
      const owner = ev.from.bareString();
      const configure = ps.getChild("configure");
      if (configure) {
        const node = nodeAttr(configure);
        const x = configure.getChild("x", NS.dataForms);
        if (!x) throw new StanzaError("bad-request", "a configuration form is needed");
        if (x.attrs.type !== "cancel" && formFields(x).get("FORM_TYPE")?.[0] !== NODE_CONFIG) throw new StanzaError("bad-request", "the form needs the FORM_TYPE " + NODE_CONFIG);
        let refused: unknown = null;
        let found = false;
        await nodes.update(owner, node, (current) => {
          refused = null;
          found = current !== null;
          if (current === null) return undefined;
          try {
            const n = parseNode(current);
            return JSON.stringify(trimmed({ ...n, config: configFromForm(n.config, x, limit) }, limit));
          } catch (err) { refused = err; return undefined; }
        });
        if (!found) throw new StanzaError("item-not-found");
        if (refused) throw refused;
        return true;
      }
      const affs = ps.getChild("affiliations");
      if (affs) return modifyAffiliations(owner, affs);
      const del = ps.getChild("delete") ?? ps.getChild("purge");
      if (del) {
        const node = nodeAttr(del);
        const n = await load(owner, node);
        if (!n) throw new StanzaError("item-not-found");
        if (del.name === "delete") {
          await nodes.delete(owner, node);
          if (n.config.notifyDelete) void broadcast(owner, node, n, () => xml("delete", { node })).catch((err) => api.log.warn({ err }, "PEP notification failed"));
        } else {
          await nodes.update(owner, node, (current) => current === null ? undefined : JSON.stringify({ ...parseNode(current), items: [] }));
          void broadcast(owner, node, n, () => xml("purge", { node })).catch((err) => api.log.warn({ err }, "PEP notification failed"));
        }
        return true;
      }
      if (ps.getChild("subscriptions")) throw unsupported("manage-subscriptions");
      throw new StanzaError("bad-request");
    });

    /**
     * XEP-0060 §8.9.2: the owner sets members (who may read a whitelist node, or any node) and outcasts (who
     * may read none); "none" removes an affiliation. Only the owner publishes to a PEP node, so publisher
     * affiliations are refused. All changes apply, or none.
     */
    const modifyAffiliations = async (owner: string, el: Element): Promise<true> => {
      const node = nodeAttr(el);
      const changes = new Map<string, Affiliation | "none">();
      for (const a of el.getChildren("affiliation")) {
        let jid: string;
        try { jid = parseJid(a.attrs.jid ?? "").bareString(); } catch { throw new StanzaError("jid-malformed", "an affiliation needs a valid jid"); }
        const affiliation = a.attrs.affiliation;
        if (jid === owner) throw new StanzaError("not-acceptable", "the owner's affiliation cannot change");
        if (affiliation !== "member" && affiliation !== "outcast" && affiliation !== "none") {
          throw new StanzaError("not-acceptable", "a personal node has members and outcasts only");
        }
        changes.set(jid, affiliation);
      }
      let found = false;
      let refused: unknown = null;
      await nodes.update(owner, node, (current) => {
        found = current !== null;
        refused = null;
        if (current === null) return undefined;
        const n = parseNode(current);
        const affiliations = { ...n.affiliations };
        for (const [jid, a] of changes) {
          if (a === "none") delete affiliations[jid];
          else affiliations[jid] = a;
        }
        if (Object.keys(affiliations).length > MAX_AFFILIATIONS) {
          refused = new StanzaError("resource-constraint", `a node has at most ${MAX_AFFILIATIONS} affiliations`, "wait");
          return undefined;
        }
        return JSON.stringify({ ...n, affiliations });
      });
      if (!found) throw new StanzaError("item-not-found");
      if (refused) throw refused;
      return true;
    };

    /** XEP-0060 §5.7: the requester's affiliations with the owner's nodes (all of them, or `node`). */
    const ownAffiliations = async (owner: string, requester: string, only: string | undefined): Promise<Element> => {
      const list: Element[] = [];
      for (const [node, text] of await nodes.list(owner)) {
        if (only !== undefined && node !== only) continue;
        const affiliation = requester === owner ? "owner" : parseNode(text).affiliations?.[requester];
        if (affiliation) list.push(xml("affiliation", { node, affiliation }));
      }
      return xml("pubsub", { xmlns: NS_PUBSUB }, xml("affiliations", only !== undefined ? { node: only } : null, ...list));
    };

    for (const type of ["get", "set"] as const) {
      api.onIq(type, "bare", NS_PUBSUB_OWNER, "pubsub", () => { throw new StanzaError("forbidden", "only the owner manages a personal node"); });
    }

    api.provide("pep", {
      publish: (owner, node, id, payload, options) => publishItem(owner, node, id, payload, options ? new Map(Object.entries(options).map(([k, v]) => [k, [v]])) : null),
      retract: async (owner, node, ids) => { await retractItems(owner, node, ids, true); },
      items: async (owner, node) => {
        const n = await load(owner, node);
        return n ? n.items.map((i) => ({ id: i.id, payload: ltx.parse(i.xml) as Element })) : null;
      },
      onChange: (l) => { listeners.add(l); return () => listeners.delete(l); },
    });

    // ---- last published item (XEP-0163 §4.3.3): when a resource's +notify interest becomes known ----

    const sendLastItems = async (s: Session, wanted: Set<string>): Promise<void> => {
      const user = s.jid!.bareString();
      const owners: Array<{ owner: string; item: RosterItem | null }> = [{ owner: user, item: null }];
      for (const ri of (await store.roster.get(user)).items) {
        const domain = ri.jid.slice(ri.jid.indexOf("@") + 1);
        if (subscribedTo(ri) && ri.jid.includes("@") && router.isLocalDomain(domain) && api.hosts.includes(domain)) owners.push({ owner: ri.jid, item: null });
      }
      for (const { owner } of owners) {
        const all = await nodes.list(owner);
        let rosterItem: RosterItem | null | undefined;
        for (const [node, text] of all) {
          if (!wanted.has(node)) continue;
          const n = parseNode(text);
          const last = n.items[n.items.length - 1];
          if (!last || n.config.sendLastPublishedItem !== "on_sub_and_presence") continue;
          if (owner !== user) {
            if (rosterItem === undefined) rosterItem = await store.roster.getItem(owner, user);
            if (!subscribedFrom(rosterItem) || !mayAccess(n, owner, user, rosterItem)) continue;
          }
          if (s.closed || s.presence === null) return;
          s.send(eventMessage(owner, s.jid!.toString(), xml("items", { node }, itemElement(last))));
        }
      }
    };

    api.onUnload(caps.onFeatures((s, features, previous, initial) => {
      const wanted = new Set<string>();
      for (const f of features) {
        if (!f.endsWith("+notify")) continue;
        if (initial || !previous?.has(f)) wanted.add(f.slice(0, -"+notify".length));
      }
      if (wanted.size === 0 || !s.jid || !api.hosts.includes(s.host)) return;
      void sendLastItems(s, wanted).catch((err) => api.log.warn({ err }, "last published item delivery failed"));
    }));

    // ---- remote contacts (XEP-0163 over federation) ----

    /** §4.3.3: a remote contact's resource said it wants `wanted` nodes: the owner's last items, if it may see them. */
    const sendLastItemsRemote = async (owner: string, remote: string, wanted: Set<string>): Promise<void> => {
      const bare = remote.slice(0, remote.indexOf("/"));
      const rosterItem = await store.roster.getItem(owner, bare);
      if (!subscribedFrom(rosterItem)) return;
      for (const [node, text] of await nodes.list(owner)) {
        if (!wanted.has(node)) continue;
        const n = parseNode(text);
        const last = n.items[n.items.length - 1];
        if (!last || n.config.sendLastPublishedItem !== "on_sub_and_presence") continue;
        if (!mayAccess(n, owner, bare, rosterItem)) continue;
        // Gone meanwhile (unavailable arrived while the store was read): nothing to send.
        if (!caps.remoteResources(bare).some((r) => r.jid === remote)) return;
        api.send(eventMessage(owner, remote, xml("items", { node }, itemElement(last))));
      }
    };

    api.onUnload(caps.onRemoteFeatures((remote, user, features, previous, initial) => {
      const wanted = new Set<string>();
      for (const f of features) {
        if (!f.endsWith("+notify")) continue;
        if (initial || !previous?.has(f)) wanted.add(f.slice(0, -"+notify".length));
      }
      const domain = user.slice(user.indexOf("@") + 1);
      if (wanted.size === 0 || !api.hosts.includes(domain)) return;
      void sendLastItemsRemote(user, remote, wanted).catch((err) => api.log.warn({ err }, "last published item delivery failed"));
    }));

    /**
     * A PEP event from another account's service (a remote contact's server sends these, RFC 6121 headlines
     * to the bare JID): it goes to the user's resources that asked for the node with +notify (XEP-0163
     * §4.3.2), never to the offline store or to resources that did not ask. Runs before the IM rules.
     */
    api.on("message/bare", (ev) => {
      const type = ev.stanza.attrs.type ?? "normal";
      if ((type !== "headline" && type !== "normal") || ev.from.local === "" || ev.from.resource || !api.hosts.includes(ev.to.domain)) return false;
      const event = ev.stanza.getChild("event", NS_PUBSUB_EVENT);
      const node = event?.getChildElements()[0]?.attrs.node;
      if (!event || typeof node !== "string" || node === "") return false;
      for (const s of sessions.resources(ev.to.bareString())) if (interested(s, node)) s.send(ev.stanza);
      return true;
    }, "annotate");
  },
});

/** A payload as a standalone document: it keeps the namespace it inherited from the request. */
function standaloneXml(el: Element): string {
  const copy = clone(el);
  const ns = el.getNS();
  if (ns && copy.attrs.xmlns === undefined && !el.name.includes(":")) copy.attrs.xmlns = ns;
  return copy.toString();
}
