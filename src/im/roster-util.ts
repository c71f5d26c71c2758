// Roster helpers shared by the roster and presence modules (RFC 6121 §2).
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import type { RosterItem, Store } from "../storage/types.js";
import type { SessionRegistry } from "../sessions/registry.js";

export function emptyItem(jid: string): RosterItem {
  return { jid, name: null, subscription: "none", askOut: false, pendingIn: null, approved: false, inRoster: false, groups: [] };
}

export function itemElement(item: RosterItem, remove = false): Element {
  const el = xml("item", {
    jid: item.jid,
    name: item.name ?? undefined,
    subscription: remove ? "remove" : item.subscription,
    ask: !remove && item.askOut ? "subscribe" : undefined,
    approved: !remove && item.approved ? "true" : undefined,
  });
  if (!remove) for (const g of item.groups) el.cnode(xml("group", null, g));
  return el;
}

/**
 * One roster change of a user at a time, on every node. Subscription handling and roster sets read an item,
 * change it and write it back; two of them for the same user (the contact's `subscribed` and `subscribe`
 * sent back to back, a roster remove and the contact's `unsubscribe`, two clients on different nodes) would
 * otherwise both start from the old item, and the second write would undo the first.
 */
export function withRoster<T>(store: Store, owner: string, fn: () => Promise<T>): Promise<T> {
  return store.roster.lock(owner, fn);
}

let pushId = 0;

/** RFC 6121 §2.1.6: a roster push to every interested resource of the owner. */
export function pushItem(sessions: SessionRegistry, owner: string, item: RosterItem, version: number, remove = false): void {
  for (const s of sessions.resources(owner)) {
    if (!s.interested) continue;
    s.send(xml("iq", { type: "set", id: `push${(pushId++).toString(36)}`, to: s.jid!.toString() },
      xml("query", { xmlns: NS.roster, ver: String(version) }, itemElement(item, remove))));
  }
}

/** Saves an item and pushes it when it is (or was) visible in the roster. */
export async function saveItem(store: Store, sessions: SessionRegistry, owner: string, item: RosterItem): Promise<void> {
  if (!item.inRoster && item.subscription === "none" && !item.askOut && !item.pendingIn && !item.approved) {
    await store.roster.remove(owner, item.jid);
    return;
  }
  const version = await store.roster.put(owner, item);
  if (item.inRoster) pushItem(sessions, owner, item, version);
}

export function subscribedFrom(item: RosterItem | null): boolean {
  return !!item && (item.subscription === "from" || item.subscription === "both");
}

export function subscribedTo(item: RosterItem | null): boolean {
  return !!item && (item.subscription === "to" || item.subscription === "both");
}
