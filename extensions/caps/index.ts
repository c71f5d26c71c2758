// XEP-0115 (clients' side): the entity capabilities clients put in their presence. The first time a
// verification string is seen, the server asks that client for its disco#info (§6.3), checks the hash
// (§5.4) and keeps the features by hash, in memory and in the store, so every session (and every node
// sharing the store) with the same ver is known without asking again. Other modules (PEP's +notify
// filtering, XEP-0163 §4.2) read the features of a full JID and hear when they become known.
// Remote contacts' resources are learned the same way from the presence they send to local users over
// federation: the server asks the remote full JID over s2s, and the answer is cached by the same hash.
// In a cluster, that presence is routed (and these hooks run) on the node whose s2s stream it arrived on,
// which may not be where the user's sessions are, nor where the user publishes. So the node that hands
// such a presence to a local session of the user (the cluster's `presence-relayed` event) remembers the
// remote resource as well, without asking it anything (the answer would come back to the routing node):
// its features come from the verified-hash cache in the shared store, read when PEP needs them. The
// table lives where the user's sessions are, as on one node, and dies with its node; a user whose
// session moves to another node sends probes from there, and the answers teach that node.
import { randomBytes } from "node:crypto";
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import type { Session } from "../../src/sessions/session.js";
import type { StanzaEvent } from "../../src/events/hooks.js";
import { capsVer, NS_CAPS, type CapsIdentity } from "../disco/caps.js";
import { subscribedTo } from "../../src/im/roster-util.js";
import { parseJid, type Jid } from "../../src/jid/jid.js";

/** A session's features became known or changed (`initial`: with its initial presence). */
export type CapsListener = (session: Session, features: ReadonlySet<string>, previous: ReadonlySet<string> | null, initial: boolean) => void;

/**
 * A remote resource's features became known or changed, as seen by the local user `user` its presence
 * went to (`initial`: the first available presence that user got from it).
 */
export type RemoteCapsListener = (remote: string, user: string, features: ReadonlySet<string>, previous: ReadonlySet<string> | null, initial: boolean) => void;

export interface CapsService {
  /** The disco#info features of a local session, from its caps; null while unknown. */
  featuresOf(session: Session): ReadonlySet<string> | null;
  onFeatures(listener: CapsListener): () => void;
  /** The available resources of a remote bare JID (seen through presence to local users), with their features (null while unknown). */
  remoteResources(bare: string): Array<{ jid: string; features: ReadonlySet<string> | null }>;
  onRemoteFeatures(listener: RemoteCapsListener): () => void;
  /**
   * remoteResources with the features of a verified hash that another cluster node learned read from the
   * shared cache (what PEP notifications use).
   */
  remoteRecipients(bare: string): Promise<Array<{ jid: string; features: ReadonlySet<string> | null }>>;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { caps: CapsService }
}

export const capsOptions = moduleOptions("Clients' entity capabilities (XEP-0115), read from their presence.", {
  cacheSize: {
    kind: "integer",
    min: 1,
    max: 1_000_000,
    default: 10_000,
    description: "Verification strings whose features are kept in memory (the store keeps every verified one); also the most available resources of remote contacts remembered for PEP.",
  },
  queryTimeoutMs: {
    kind: "integer",
    min: 1000,
    max: 600_000,
    default: 30_000,
    description: "How long the server waits for a client's answer to its disco#info query about a new caps hash.",
  },
});

const KEY = "features";
/** Where a session's state lives in Session.data. */
const STATE = "caps";
const QUERIES = "caps-queries";
/**
 * Questions one session may cause. A client can make any number of valid hashes (each set of features has
 * one): a bound keeps one session from filling the cache or keeping the server busy asking.
 */
const MAX_QUERIES_PER_SESSION = 16;
/**
 * Questions to remote entities in flight at once: any server can make up resources and hashes in presence
 * to its users' contacts here, and each new one would be asked.
 */
const MAX_REMOTE_PENDING = 1000;

interface SessionCaps { ver: string; features: ReadonlySet<string> | null }

/**
 * An available resource of a remote contact. `seenBy`: the local users its available presence reached;
 * `announced`: those the listeners were told its features.
 */
interface RemoteCaps { bare: string; ver: string | null; features: ReadonlySet<string> | null; seenBy: Set<string>; announced: Set<string>; queries: number }

/**
 * In a cluster: an available remote resource whose presence another node routed to local sessions of the
 * users `seenBy`. `ver`: its verified caps hash (null: none, or one only the routing node can ask about).
 */
interface RelayedCaps { bare: string; ver: string | null; features: ReadonlySet<string> | null; seenBy: Set<string> }

/**
 * A disco#info question in flight: the sessions waiting for it, each with whether its presence was
 * initial, and the remote full JIDs waiting for it.
 */
interface Pending { ver: string; verified: boolean; sessions: Map<Session, boolean>; remotes: Set<string> }

/** Remote resources by full JID, with their full JIDs by bare JID; at most `max()` of them, the oldest out first. */
class ResourceTable<T extends { bare: string }> {
  private readonly byFull = new Map<string, T>();
  private readonly byBare = new Map<string, Set<string>>();

  constructor(private readonly max: () => number) {}

  get(full: string): T | undefined { return this.byFull.get(full); }

  /** The entry of `full`; a new one from `make` when there is none. */
  obtain(full: string, make: () => T): T {
    let r = this.byFull.get(full);
    if (r) return r;
    if (this.byFull.size >= this.max()) this.delete(this.byFull.keys().next().value!);
    this.byFull.set(full, r = make());
    let set = this.byBare.get(r.bare);
    if (!set) this.byBare.set(r.bare, set = new Set());
    set.add(full);
    return r;
  }

  delete(full: string): void {
    const r = this.byFull.get(full);
    if (!r) return;
    this.byFull.delete(full);
    const set = this.byBare.get(r.bare);
    set?.delete(full);
    if (set?.size === 0) this.byBare.delete(r.bare);
  }

  fullsOf(bare: string): Iterable<string> { return this.byBare.get(bare) ?? []; }
}

/** §5.4: the identities, features and forms of a disco#info answer. */
function parseInfo(query: Element): { identities: CapsIdentity[]; features: string[]; forms: Element[] } {
  const identities = query.getChildren("identity").map((i) => ({
    category: i.attrs.category ?? "", type: i.attrs.type ?? "", name: i.attrs.name, lang: i.attrs["xml:lang"],
  }));
  const features = query.getChildren("feature").map((f) => f.attrs.var).filter((v): v is string => typeof v === "string");
  const forms = query.getChildren("x", NS.dataForms);
  return { identities, features, forms };
}

/** §5.4 step 3: duplicate identities, features or form types make the answer unusable for caching. */
function wellFormed(info: ReturnType<typeof parseInfo>): boolean {
  const ids = info.identities.map((i) => `${i.category}/${i.type}/${i.lang ?? ""}`);
  return new Set(ids).size === ids.length && new Set(info.features).size === info.features.length;
}

export const caps = defineModule({
  name: "caps",
  depends: ["disco"],
  options: capsOptions,
  setup(api) {
    const store = api.openStore();
    const known = new Map<string, ReadonlySet<string>>();
    const pending = new Map<string, Pending>(); // by iq id
    const listeners = new Set<CapsListener>();
    const remoteListeners = new Set<RemoteCapsListener>();
    /** Remote resources, bounded by cacheSize. */
    const remotes = new ResourceTable<RemoteCaps>(() => api.options.cacheSize);
    /** The same for remote resources heard of through other nodes (`presence-relayed`), bounded alike. */
    const relayed = new ResourceTable<RelayedCaps>(() => api.options.cacheSize);

    const remember = (ver: string, features: ReadonlySet<string>) => {
      if (known.size >= api.options.cacheSize) known.delete(known.keys().next().value!);
      known.set(ver, features);
    };
    const lookup = async (ver: string): Promise<ReadonlySet<string> | null> => {
      const hit = known.get(ver);
      if (hit) return hit;
      const stored = await store.get("", `${KEY}:${ver}`);
      if (stored === null) return null;
      const features = new Set(JSON.parse(stored) as string[]);
      remember(ver, features);
      return features;
    };

    const stateOf = (s: Session) => s.data.get(STATE) as SessionCaps | undefined;
    const setFeatures = (s: Session, ver: string, features: ReadonlySet<string>, initial: boolean) => {
      const st = stateOf(s);
      if (!st || st.ver !== ver || s.closed) return;
      const previous = st.features;
      st.features = features;
      for (const l of listeners) {
        try { l(s, features, previous, initial); } catch (err) { api.log.error({ err }, "caps listener failed"); }
      }
    };

    const query = (s: Session, ver: string, node: string, verified: boolean, initial: boolean) => {
      const asked = (s.data.get(QUERIES) as number | undefined) ?? 0;
      if (asked >= MAX_QUERIES_PER_SESSION) return;
      s.data.set(QUERIES, asked + 1);
      for (const p of pending.values()) {
        // One question per hash at a time: later sessions with the same hash wait for the same answer.
        if (p.ver === ver && p.verified && verified) { p.sessions.set(s, initial); return; }
      }
      const id = `caps-${randomBytes(6).toString("hex")}`;
      pending.set(id, { ver, verified, sessions: new Map([[s, initial]]), remotes: new Set() });
      api.setTimeout(() => { pending.delete(id); }, api.options.queryTimeoutMs);
      api.send(xml("iq", { type: "get", id, from: s.host, to: s.jid!.toString() }, xml("query", { xmlns: NS.discoInfo, node: `${node}#${ver}` })));
    };

    // Presence a client broadcasts (RFC 6121 §4.2, §4.4): read its <c/> before the IM rules send it on.
    api.on("pre-presence/self", (ev: StanzaEvent) => {
      const s = ev.origin;
      if (!s || ev.stanza.attrs.to !== undefined) return false;
      const type = ev.stanza.attrs.type;
      if (type === "unavailable") { s.data.delete(STATE); return false; }
      if (type !== undefined) return false;
      const initial = s.presence === null;
      const c = ev.stanza.getChild("c", NS_CAPS);
      const ver = c?.attrs.ver;
      const node = c?.attrs.node;
      if (!c || !ver || !node || ver.length > 128) { s.data.delete(STATE); return false; }
      // §5.4: only a hash this server can check is cached for everyone; legacy or unknown ones are asked per session.
      const verified = c.attrs.hash === "sha-1";
      const key = verified ? ver : `${s.jid!.toString()} ${ver}`;
      const prev = stateOf(s);
      if (prev && prev.ver === key) return false;
      s.data.set(STATE, { ver: key, features: prev?.features ?? null } satisfies SessionCaps);
      if (!verified) { query(s, ver, node, false, initial); return false; }
      void lookup(ver).then((features) => {
        // Another session's answer may have arrived while the store was read.
        features ??= known.get(ver) ?? null;
        if (features) setFeatures(s, key, features, initial);
        else query(s, ver, node, true, initial);
      }, (err) => api.log.warn({ err }, "reading the caps cache failed"));
      return false;
    }, "annotate");

    // ---- remote contacts' resources (XEP-0163 §4.3 over federation) ----

    const setRemoteFeatures = (full: string, ver: string, features: ReadonlySet<string>) => {
      const r = remotes.get(full);
      if (!r || r.ver !== ver) return;
      const previous = r.features;
      r.features = features;
      for (const user of r.seenBy) {
        const initial = !r.announced.has(user);
        r.announced.add(user);
        for (const l of remoteListeners) {
          try { l(full, user, features, initial ? null : previous, initial); } catch (err) { api.log.error({ err }, "caps listener failed"); }
        }
      }
    };

    const queryRemote = (host: string, full: string, ver: string, node: string, verified: boolean) => {
      const r = remotes.get(full)!;
      if (r.queries >= MAX_QUERIES_PER_SESSION) return;
      let remotePending = 0;
      for (const p of pending.values()) if (p.remotes.size > 0) remotePending++;
      if (remotePending >= MAX_REMOTE_PENDING) return;
      r.queries++;
      for (const p of pending.values()) {
        if (p.ver === ver && p.verified && verified) { p.remotes.add(full); return; }
      }
      const id = `caps-${randomBytes(6).toString("hex")}`;
      pending.set(id, { ver, verified, sessions: new Map(), remotes: new Set([full]) });
      api.setTimeout(() => { pending.delete(id); }, api.options.queryTimeoutMs);
      api.send(xml("iq", { type: "get", id, from: host, to: full }, xml("query", { xmlns: NS.discoInfo, node: `${node}#${ver}` })));
    };

    /**
     * Presence from a remote contact's resource to a local user's bare JID (RFC 6121 §4.2.2 broadcast, §4.3.2
     * probe answers): remember it while it is available and learn its caps. Only contacts the user is
     * subscribed to count, so that presence of occupants of remote rooms (to full JIDs) or from strangers
     * cannot crowd the contacts out of the bounded table.
     */
    const remotePresence = (ev: StanzaEvent): false | Promise<false> => {
      if (!ev.from.resource || ev.from.local === "" || ev.to.local === "" || api.router.isLocalDomain(ev.from.domain)) return false;
      const type = ev.stanza.attrs.type;
      const full = ev.from.toString();
      const user = ev.to.bareString();
      if (type === "unavailable" || type === "error") {
        const r = remotes.get(full);
        if (r) {
          r.seenBy.delete(user);
          r.announced.delete(user);
          if (r.seenBy.size === 0) remotes.delete(full);
        }
        return false;
      }
      if (type !== undefined) return false;
      if (remotes.get(full)?.seenBy.has(user)) { available(ev, full, user); return false; }
      return api.store.roster.getItem(user, ev.from.bareString()).then((item) => {
        if (subscribedTo(item)) available(ev, full, user);
        return false as const;
      }, (err) => { api.log.warn({ err }, "reading the roster for a remote contact's caps failed"); return false as const; });
    };

    const available = (ev: StanzaEvent, full: string, user: string): void => {
      const r = remotes.obtain(full, () => ({ bare: ev.from.bareString(), ver: null, features: null, seenBy: new Set(), announced: new Set(), queries: 0 }));
      r.seenBy.add(user);
      const c = ev.stanza.getChild("c", NS_CAPS);
      const ver = c?.attrs.ver;
      const node = c?.attrs.node;
      if (!c || !ver || !node || ver.length > 128) { r.ver = null; r.features = null; r.announced.clear(); return; }
      const verified = c.attrs.hash === "sha-1";
      const key = verified ? ver : `${full} ${ver}`;
      if (r.ver === key) {
        // The same caps again: only a user that had not seen this resource yet hears of it.
        if (r.features && !r.announced.has(user)) setRemoteFeatures(full, key, r.features);
        return;
      }
      r.ver = key;
      if (!verified) { queryRemote(ev.to.domain, full, ver, node, false); return; }
      void lookup(ver).then((features) => {
        features ??= known.get(ver) ?? null;
        if (features) setRemoteFeatures(full, key, features);
        else queryRemote(ev.to.domain, full, ver, node, true);
      }, (err) => api.log.warn({ err }, "reading the caps cache failed"));
    };
    api.on("presence/bare", remotePresence, "annotate");

    // ---- in a cluster: remote contacts' presence another node routed to a user's session here ----

    const relayedAvailable = (bare: string, full: string, user: string, stanza: Element): void => {
      const r = relayed.obtain(full, () => ({ bare, ver: null, features: null, seenBy: new Set() }));
      r.seenBy.add(user);
      const c = stanza.getChild("c", NS_CAPS);
      const ver = c?.attrs.ver;
      // Only a verified hash is in the shared cache; the routing node asks about the others for itself.
      if (!c || !ver || c.attrs.hash !== "sha-1" || ver.length > 128) { r.ver = null; r.features = null; return; }
      if (r.ver === ver) return;
      r.ver = ver;
      r.features = known.get(ver) ?? null;
    };

    api.observe("presence-relayed", ({ session, stanza }) => {
      let from: Jid, to: Jid;
      try { from = parseJid(stanza.attrs.from ?? ""); to = parseJid(stanza.attrs.to ?? ""); } catch { return; }
      // As presence/bare above: a remote contact's resource to the user's bare JID.
      if (!from.resource || from.local === "" || to.resource || to.local === "" || api.router.isLocalDomain(from.domain)) return;
      const user = to.bareString();
      if (session.jid?.bareString() !== user) return;
      const full = from.toString();
      const type = stanza.attrs.type;
      if (type === "unavailable" || type === "error") {
        const r = relayed.get(full);
        if (r) { r.seenBy.delete(user); if (r.seenBy.size === 0) relayed.delete(full); }
        return;
      }
      if (type !== undefined) return;
      // Every session of the user on this node gets the same presence: the roster is read once.
      if (relayed.get(full)?.seenBy.has(user)) { relayedAvailable(from.bareString(), full, user, stanza); return; }
      return api.store.roster.getItem(user, from.bareString()).then((item) => {
        if (subscribedTo(item)) relayedAvailable(from.bareString(), full, user, stanza);
      }, (err) => api.log.warn({ err }, "reading the roster for a remote contact's caps failed"));
    });

    const remoteResources = (bare: string): Array<{ jid: string; features: ReadonlySet<string> | null }> => {
      const out = new Map<string, ReadonlySet<string> | null>();
      for (const jid of remotes.fullsOf(bare)) out.set(jid, remotes.get(jid)?.features ?? null);
      for (const jid of relayed.fullsOf(bare)) {
        if (!out.get(jid)) out.set(jid, relayed.get(jid)?.features ?? null);
      }
      return [...out].map(([jid, features]) => ({ jid, features }));
    };

    const remoteRecipients = async (bare: string): Promise<Array<{ jid: string; features: ReadonlySet<string> | null }>> => {
      const list = remoteResources(bare);
      for (const entry of list) {
        const r = entry.features === null ? relayed.get(entry.jid) : undefined;
        if (!r || r.ver === null) continue;
        const ver = r.ver;
        const features = await lookup(ver).catch((err) => { api.log.warn({ err }, "reading the caps cache failed"); return null; });
        if (features && r.ver === ver) r.features = entry.features = features;
      }
      return list;
    };

    // The client's answer comes to the server's address (iq results are never answered).
    api.on("iq/host", (ev) => {
      const id = ev.stanza.attrs.id;
      const p = id !== undefined ? pending.get(id) : undefined;
      if (!p) return false;
      const type = ev.stanza.attrs.type;
      if (type !== "result" && type !== "error") return false;
      const from = ev.from.toString();
      if (![...p.sessions.keys()].some((s) => s.jid?.toString() === from) && !p.remotes.has(from)) return false;
      pending.delete(id!);
      const q = ev.stanza.getChild("query", NS.discoInfo);
      if (type === "error" || !q) return true;
      const info = parseInfo(q);
      const features: ReadonlySet<string> = new Set(info.features);
      if (!p.verified) {
        for (const [s, initial] of p.sessions) setFeatures(s, `${s.jid!.toString()} ${p.ver}`, features, initial);
        for (const full of p.remotes) setRemoteFeatures(full, `${full} ${p.ver}`, features);
        return true;
      }
      if (wellFormed(info) && capsVer(info.identities, info.features, info.forms) === p.ver) {
        remember(p.ver, features);
        void store.set("", `${KEY}:${p.ver}`, JSON.stringify([...features]));
        for (const [s, initial] of p.sessions) setFeatures(s, p.ver, features, initial);
        for (const full of p.remotes) setRemoteFeatures(full, p.ver, features);
      } else {
        // §5.4 step 4: a hash that does not match is not cached; the answering entity still gets its features.
        api.log.info({ from, ver: p.ver }, "an entity's caps hash does not match its disco#info");
        const local = [...p.sessions].find(([x]) => x.jid?.toString() === from);
        if (local) {
          const [s, initial] = local;
          const st = stateOf(s);
          if (st) { st.ver = `${from} ${p.ver}`; setFeatures(s, st.ver, features, initial); }
        } else {
          const r = remotes.get(from);
          if (r && r.ver === p.ver) { r.ver = `${from} ${p.ver}`; setRemoteFeatures(from, r.ver, features); }
        }
      }
      return true;
    }, "annotate");

    api.provide("caps", {
      featuresOf: (s) => stateOf(s)?.features ?? null,
      onFeatures: (l) => { listeners.add(l); return () => listeners.delete(l); },
      remoteResources,
      onRemoteFeatures: (l) => { remoteListeners.add(l); return () => remoteListeners.delete(l); },
      remoteRecipients,
    });
  },
});
