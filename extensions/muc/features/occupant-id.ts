// XEP-0421 occupant identifiers: a stable, opaque id per room and real bare JID on everything the room
// sends for an occupant, an HMAC of the bare JID with the room's secret (so it reveals nothing and
// survives nick changes, reconnects and restarts). Ids sent by clients are removed (service.ts).
import { createHmac } from "node:crypto";
import { xml } from "../../../src/xml/element.js";
import { NS_OCCUPANT_ID } from "../ns.js";
import type { Room } from "../room.js";
import type { MucService } from "../service.js";

const KEY = "occupant-id";

export function occupantIdOf(room: Room, bare: string): string {
  let cache = room.data.get(KEY) as Map<string, string> | undefined;
  if (!cache) room.data.set(KEY, (cache = new Map()));
  let id = cache.get(bare);
  if (id === undefined) {
    id = createHmac("sha256", room.secret).update(bare).digest("base64");
    if (cache.size > 10_000) cache.clear();
    cache.set(bare, id);
  }
  return id;
}

export function occupantId(muc: MucService): void {
  muc.bus.fold("room-occupant-stanza", (el, { room, occupant }) => {
    el.cnode(xml("occupant-id", { xmlns: NS_OCCUPANT_ID, id: occupantIdOf(room, occupant.bare) }));
    return el;
  });
  muc.bus.fold("room-disco-features", (features) => { features.push(NS_OCCUPANT_ID); return features; });
}
