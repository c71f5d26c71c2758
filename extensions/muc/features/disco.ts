// XEP-0045 §6 service discovery: the service among the server's items (identity conference/text), the
// public rooms as the service's items, and each room's features and muc#roominfo form (§6.4); the asker's
// registered nick at node x-roomuser-item (§7.12, registration.ts).
import { xml, type Element } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { StanzaError } from "../../../src/xml/stanza.js";
import { formElement, type FormField } from "../forms.js";
import { NS_ROOMINFO } from "../ns.js";
import type { Room } from "../room.js";
import type { MucService } from "../service.js";
import { NODE_ROOMUSER_ITEM, roomUserItem } from "./registration.js";

const SERVICE_NAME = "Chatrooms";

export function disco(muc: MucService): void {
  const { api, registry } = muc;
  const nodeOf = (ev: { stanza: Element }, ns: string) => ev.stanza.getChild("query", ns)?.attrs.node || null;

  api.fold("disco-items", (acc, ctx) => {
    if (ctx.to.local || ctx.node !== null) return acc;
    for (const [domain, hosts] of muc.services) if (hosts.includes(ctx.host)) acc.push(xml("item", { jid: domain, name: SERVICE_NAME }));
    return acc;
  });

  muc.onServiceIq("get", NS.discoInfo, "query", (ev) => {
    if (nodeOf(ev, NS.discoInfo)) throw new StanzaError("item-not-found");
    const q = xml("query", { xmlns: NS.discoInfo }, xml("identity", { category: "conference", type: "text", name: SERVICE_NAME }));
    for (const f of [NS.discoInfo, NS.discoItems, NS.muc, NS.ping, NS.conference]) q.cnode(xml("feature", { var: f }));
    return q;
  });
  muc.onServiceIq("get", NS.ping, "ping", () => true);

  muc.onServiceIq("get", NS.discoItems, "query", async (ev) => {
    if (nodeOf(ev, NS.discoItems)) throw new StanzaError("item-not-found");
    const domain = ev.to.domain;
    const items = new Map<string, string>();
    for (const [local, e] of await registry.index(domain)) if (e.public) items.set(`${local}@${domain}`, e.name || local);
    for (const room of registry.liveRooms()) {
      if (room.jid.domain !== domain) continue;
      if (room.config.public && !room.locked) items.set(room.bare, room.title);
      else items.delete(room.bare);
    }
    const q = xml("query", { xmlns: NS.discoItems });
    for (const [jid, name] of [...items].sort()) q.cnode(xml("item", { jid, name }));
    return q;
  });

  /** XEP-0045 §10.1.1: a locked room does not exist for anyone but its owner. */
  const visible = (room: Room, bare: string) => !room.locked || room.affiliationOf(bare) === "owner";

  muc.onRoomIq("get", NS.discoInfo, "query", (room, ev) => {
    const node = nodeOf(ev, NS.discoInfo);
    if (!visible(room, ev.from.bareString()) || (node && node !== NODE_ROOMUSER_ITEM)) throw new StanzaError("item-not-found");
    if (node === NODE_ROOMUSER_ITEM) return roomUserItem(room, ev.from.bareString());
    const c = room.config;
    const features = [NS.muc, NS.discoInfo, NS.discoItems, c.persistent ? "muc_persistent" : "muc_temporary", c.public ? "muc_public" : "muc_hidden"];
    const q = xml("query", { xmlns: NS.discoInfo }, xml("identity", { category: "conference", type: "text", name: room.title }));
    for (const f of [...new Set(muc.bus.runFold("room-disco-features", features, { room }))].sort()) q.cnode(xml("feature", { var: f }));
    const fields: FormField[] = [
      { var: "muc#roomconfig_roomname", label: "Name", values: [c.name] },
      { var: "muc#roominfo_description", label: "Description", values: [c.description] },
      { var: "muc#roominfo_occupants", label: "Number of occupants", values: [String(room.occupants.size)] },
    ];
    if (c.language) fields.push({ var: "muc#roominfo_lang", label: "Language", values: [c.language] });
    q.cnode(formElement("result", NS_ROOMINFO, muc.bus.runFold("room-info-fields", fields, { room })));
    return q;
  });

  // §6.5: the occupant list is not disclosed through disco.
  muc.onRoomIq("get", NS.discoItems, "query", (room, ev) => {
    if (!visible(room, ev.from.bareString()) || nodeOf(ev, NS.discoItems)) throw new StanzaError("item-not-found");
    return xml("query", { xmlns: NS.discoItems });
  });
}
