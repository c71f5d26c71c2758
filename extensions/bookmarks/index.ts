// XEP-0402 PEP Native Bookmarks with its #compat: the bookmarks live once, as items of the PEP node
// urn:xmpp:bookmarks:1 (one item per room, id = the room's JID), and a client still on XEP-0048 bookmarks in
// private XML storage (XEP-0049, <storage xmlns='storage:bookmarks'/>) reads and writes the same items:
// a read is built from the node, a write becomes publishes and retractions on it, so clients of both kinds
// see each other's changes (the PEP ones with +notify events) and nothing can drift apart. The mobile
// protocol's groups (members-only rooms) are bookmarked for their members through the `bookmarks` service,
// so the user's XMPP clients list and join the same groups.
import { defineModule } from "../../src/modules/module.js";
import { xml, type Element } from "../../src/xml/element.js";
import { StanzaError } from "../../src/xml/stanza.js";
import { tryParseJid } from "../../src/jid/jid.js";

export const NS_BOOKMARKS2 = "urn:xmpp:bookmarks:1";
export const NS_LEGACY_BOOKMARKS = "storage:bookmarks";

/** Bookmarks kept for other modules (the mobile groups): the same items the clients see. */
export interface BookmarksService {
  /** Bookmarks a room for a local user (autojoin), unless the user has bookmarked it already. */
  add(owner: string, room: string, name: string): Promise<void>;
  /** Removes the user's bookmark of a room, if any. */
  remove(owner: string, room: string): Promise<void>;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { bookmarks: BookmarksService }
}

/** XEP-0402 §3: the node's publish-options (XEP-0223: a private, persistent node). */
const NODE_OPTIONS = {
  "pubsub#persist_items": "true",
  "pubsub#max_items": "max",
  "pubsub#send_last_published_item": "never",
  "pubsub#access_model": "whitelist",
};

const truthy = (v: string | undefined) => v === "true" || v === "1";

/** A XEP-0048 <conference/> as the XEP-0402 payload; null when its jid is not a JID. */
function toNative(legacy: Element): { id: string; payload: Element } | null {
  const room = tryParseJid(legacy.attrs.jid);
  if (!room) return null;
  const nick = legacy.getChildText("nick");
  const password = legacy.getChildText("password");
  const payload = xml("conference", { xmlns: NS_BOOKMARKS2, name: legacy.attrs.name, autojoin: truthy(legacy.attrs.autojoin) ? "true" : undefined },
    nick ? xml("nick", null, nick) : null,
    password ? xml("password", null, password) : null);
  return { id: room.toString(), payload };
}

function toLegacy(id: string, native: Element): Element {
  const nick = native.getChildText("nick");
  const password = native.getChildText("password");
  return xml("conference", { jid: id, name: native.attrs.name, autojoin: truthy(native.attrs.autojoin) ? "true" : "false" },
    nick ? xml("nick", null, nick) : null,
    password ? xml("password", null, password) : null);
}

/** The same bookmark, ignoring attribute order: an unchanged room is not published again. */
const same = (a: Element, b: Element) => a.toString() === b.toString();

export const bookmarks = defineModule({
  name: "bookmarks",
  depends: ["pep", "private"],
  xep: [
    { spec: "XEP-0402", title: "PEP Native Bookmarks", version: "1.2.0", status: "complete", note: "with #compat: XEP-0048 bookmarks in private XML storage are the same items; mobile groups are bookmarked for their members" },
    { spec: "XEP-0048", title: "Bookmarks", version: "1.2", status: "partial", note: "in private XML storage (XEP-0049), kept as XEP-0402 items; URL bookmarks are not kept, and the XEP-0048 PEP node is not converted" },
  ],
  setup(api) {
    const pep = api.use("pep");
    api.addFeature(`${NS_BOOKMARKS2}#compat`, "account");

    // COMPAT: a node a client created with other options than XEP-0402's still takes the bookmark.
    const publish = async (owner: string, id: string, payload: Element): Promise<void> => {
      try {
        await pep.publish(owner, NS_BOOKMARKS2, id, payload, NODE_OPTIONS);
      } catch (err) {
        if (!(err instanceof StanzaError) || err.app?.getName() !== "precondition-not-met") throw err;
        await pep.publish(owner, NS_BOOKMARKS2, id, payload);
      }
    };

    api.use("privateXml").delegate(NS_LEGACY_BOOKMARKS, "storage", {
      get: async (owner) => {
        const items = (await pep.items(owner, NS_BOOKMARKS2)) ?? [];
        const storage = xml("storage", { xmlns: NS_LEGACY_BOOKMARKS });
        for (const i of items) if (i.payload.getName() === "conference" && i.payload.getNS() === NS_BOOKMARKS2) storage.cnode(toLegacy(i.id, i.payload));
        return storage;
      },
      set: async (owner, storage) => {
        const wanted = new Map<string, Element>();
        for (const c of storage.getChildren("conference")) {
          const b = toNative(c);
          if (!b) throw new StanzaError("bad-request", `not a room JID: ${c.attrs.jid ?? ""}`);
          wanted.set(b.id, b.payload);
        }
        const current = new Map(((await pep.items(owner, NS_BOOKMARKS2)) ?? []).map((i) => [i.id, i.payload]));
        for (const [id, payload] of wanted) {
          const had = current.get(id);
          if (!had || !same(had, payload)) await publish(owner, id, payload);
        }
        const gone = [...current.keys()].filter((id) => !wanted.has(id));
        if (gone.length > 0) await pep.retract(owner, NS_BOOKMARKS2, gone);
      },
    });

    const local = (owner: string) => api.hosts.includes(owner.slice(owner.indexOf("@") + 1));
    const has = async (owner: string, room: string) => ((await pep.items(owner, NS_BOOKMARKS2)) ?? []).some((i) => i.id === room);
    api.provide("bookmarks", {
      add: async (owner, room, name) => {
        // A bookmark the user keeps (nick, autojoin off) is theirs to change.
        if (!local(owner) || await has(owner, room)) return;
        await publish(owner, room, xml("conference", { xmlns: NS_BOOKMARKS2, name: name || undefined, autojoin: "true" }));
      },
      remove: async (owner, room) => {
        if (local(owner) && await has(owner, room)) await pep.retract(owner, NS_BOOKMARKS2, [room]);
      },
    });
  },
});
