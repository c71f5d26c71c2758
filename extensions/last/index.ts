// XEP-0012: Last Activity. The server's uptime, and for a user the time since the last logout with the
// status of the last unavailable presence, shown only to those who may see the user's presence.
import { defineModule } from "../../src/modules/module.js";
import { xml } from "../../src/xml/element.js";
import type { Jid } from "../../src/jid/jid.js";
import { StanzaError } from "../../src/xml/stanza.js";

export const NS_LAST = "jabber:iq:last";
const KEY = "logout";
const STATUS = "status";

interface Logout { at: number; status: string }

export const last = defineModule({
  name: "last",
  xep: [{ spec: "XEP-0012", title: "Last Activity", version: "2.0", status: "complete" }],
  setup(api) {
    const store = api.openStore();
    const startedAt = Date.now();
    const seconds = (since: number) => Math.max(0, Math.floor((Date.now() - since) / 1000));
    const query = (secs: number, text?: string) => xml("query", { xmlns: NS_LAST, seconds: secs }, text || null);

    /** XEP-0012 §3, §8: only the user and entities subscribed to the user's presence may know. */
    const mayKnow = async (user: Jid, requester: Jid): Promise<boolean> => {
      const owner = user.bareString();
      const asker = requester.bareString();
      if (owner === asker) return true;
      const item = await api.store.roster.getItem(owner, asker);
      return item !== null && (item.subscription === "from" || item.subscription === "both");
    };

    api.addFeature(NS_LAST);

    // XEP-0012 §5: the uptime of the server.
    api.onIq("get", "host", NS_LAST, "query", () => query(seconds(startedAt)));

    // XEP-0012 §3: a user's last logout, answered by the server on the user's behalf.
    api.onIq("get", ["self", "bare"], NS_LAST, "query", async (ev) => {
      const user = ev.to;
      // RFC 6121 §8.5.1: no such account is service-unavailable, whoever asks.
      if (!(await api.accounts.exists(user.domain, user.local))) throw new StanzaError("service-unavailable");
      if (!(await mayKnow(user, ev.from))) throw new StanzaError("forbidden");
      // XEP-0012 §3: a user with a connected resource has been active 0 seconds ago.
      if (api.sessions.hasResources(user.bareString())) return query(0);
      const text = await store.get(user.bareString(), KEY);
      if (text === null) throw new StanzaError("item-not-found", "no logout recorded");
      const logout = JSON.parse(text) as Logout;
      return query(seconds(logout.at), logout.status);
    });

    // XEP-0012 §4: a query to a resource is not delivered to requesters without the right to know.
    api.onIq("get", "full", NS_LAST, "query", async (ev) => {
      if (!(await mayKnow(ev.to, ev.from))) throw new StanzaError("forbidden");
      return undefined;
    });

    // The status of the session's last unavailable broadcast presence (XEP-0012 §3), for its logout.
    api.on("pre-presence/self", (ev) => {
      const type = ev.stanza.attrs.type;
      if (ev.origin && type === "unavailable") ev.origin.data.set(`${api.name}:${STATUS}`, ev.stanza.getChildText("status") ?? "");
      else if (ev.origin && type === undefined) ev.origin.data.delete(`${api.name}:${STATUS}`);
      return false;
    }, "annotate");

    api.observe("resource-unbind", async ({ session }) => {
      const jid = session.jid;
      if (!jid || api.sessions.hasResources(jid.bareString())) return false;
      // Removing an account ends its sessions after the account is gone: nothing to record then.
      if (!(await api.accounts.exists(jid.domain, jid.local))) return false;
      const status = (session.data.get(`${api.name}:${STATUS}`) as string | undefined) ?? "";
      const logout: Logout = { at: Date.now(), status };
      await store.set(jid.bareString(), KEY, JSON.stringify(logout));
      return false;
    });

    api.observe("account-deleted", ({ host, username }) => store.set(`${username}@${host}`, KEY, null).then(() => false));
  },
});
