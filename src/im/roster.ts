// RFC 6121 §2: roster get/set/remove with pushes; XEP-0237 versioning (whole roster when stale).
import { defineModule } from "../modules/module.js";
import { xml } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { StanzaError } from "../xml/stanza.js";
import { tryParseJid } from "../jid/jid.js";
import { emptyItem, itemElement, pushItem, subscribedFrom, subscribedTo, withRoster } from "./roster-util.js";

const MAX_NAME = 1024;
const MAX_GROUPS = 64;

export const rosterModule = defineModule({
  name: "roster",
  xep: [
    { spec: "RFC 6121", title: "XMPP Instant Messaging and Presence", status: "complete", note: "roster (§2)" },
    { spec: "XEP-0237", title: "Roster Versioning", version: "1.3", status: "complete", note: "the whole roster is returned when the version is stale" },
  ],
  setup(api) {
    const { store, sessions } = api;
    api.fold("stream-features", (acc, ctx) => (ctx.authenticated ? [...acc, xml("ver", { xmlns: NS.rosterver })] : acc));

    api.onIq("get", "self", NS.roster, "query", async (ev) => {
      const owner = ev.from.bareString();
      if (ev.origin && !ev.origin.interested) {
        ev.origin.interested = true;
        sessions.changed(ev.origin);
      }
      const roster = await store.roster.get(owner);
      const ver = String(roster.version);
      const asked = ev.stanza.getChild("query")?.attrs.ver;
      // XEP-0237 §2.3: an up-to-date client gets an empty result and nothing else.
      if (asked !== undefined && asked === ver) return true;
      return xml("query", { xmlns: NS.roster, ver }, ...roster.items.filter((i) => i.inRoster).map((i) => itemElement(i)));
    });

    api.onIq("set", "self", NS.roster, "query", async (ev) => {
      const owner = ev.from.bareString();
      const items = ev.stanza.getChild("query")!.getChildren("item");
      // RFC 6121 §2.3.3: exactly one item per roster set.
      if (items.length !== 1) throw new StanzaError("bad-request", "a roster set carries exactly one item");
      const el = items[0];
      const contact = tryParseJid(el.attrs.jid);
      if (!contact || contact.resource) throw new StanzaError("bad-request", "the item needs a bare JID");
      const jid = contact.toString();
      if (jid === owner) throw new StanzaError("not-allowed", "you cannot add yourself");
      return withRoster(store, owner, async () => {
        const existing = await store.roster.getItem(owner, jid);
        if (el.attrs.subscription === "remove") {
          if (!existing || !existing.inRoster) throw new StanzaError("item-not-found");
          await removeItem(owner, existing);
          return true;
        }
        const groups = el.getChildren("group").map((g) => g.getText());
        if (new Set(groups).size !== groups.length) throw new StanzaError("bad-request", "duplicate group");
        if (groups.some((g) => g === "" || g.length > MAX_NAME)) throw new StanzaError("not-acceptable", "invalid group name");
        if (groups.length > MAX_GROUPS) throw new StanzaError("policy-violation", "too many groups");
        const name = el.attrs.name ?? null;
        if (name !== null && name.length > MAX_NAME) throw new StanzaError("not-acceptable", "name too long");
        // The subscription and ask attributes of a roster set are ignored (RFC 6121 §2.1.2.5, §2.1.5).
        const item = { ...(existing ?? emptyItem(jid)), name, groups, inRoster: true };
        const version = await store.roster.put(owner, item);
        pushItem(sessions, owner, item, version);
        return true;
      });
    });

    // RFC 6121 §2.1.5: nobody reads or writes another user's roster.
    const forbidden = (): never => { throw new StanzaError("forbidden"); };
    api.onIq("get", "bare", NS.roster, "query", forbidden);
    api.onIq("set", "bare", NS.roster, "query", forbidden);

    /** RFC 6121 §2.5.2: removing an item also cancels the subscriptions both ways. */
    async function removeItem(owner: string, item: import("../storage/types.js").RosterItem): Promise<void> {
      const version = await store.roster.remove(owner, item.jid);
      pushItem(sessions, owner, item, version, true);
      const from = owner;
      if (subscribedTo(item) || item.askOut) api.send(xml("presence", { type: "unsubscribe", from, to: item.jid }));
      if (subscribedFrom(item) || item.pendingIn) api.send(xml("presence", { type: "unsubscribed", from, to: item.jid }));
    }
  },
});
