// XEP-0359 §3: the room stamps each archived groupchat message with its own stanza-id (by = room JID).
// A stanza-id the sender claimed from the room was removed before (service.ts fromOccupant).
import { xml } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import type { MucService } from "../service.js";

export function stanzaId(muc: MucService): void {
  muc.bus.observe("room-message", ({ room, message, stanzaId }) => {
    if (stanzaId !== null) message.cnode(xml("stanza-id", { xmlns: NS.sid, id: stanzaId, by: room.bare }));
  });
  muc.bus.fold("room-disco-features", (features) => { features.push(NS.sid); return features; });
}
