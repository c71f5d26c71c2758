// XEP-0410 MUC self-ping: a client pings its own occupant JID to learn whether it is still joined. The
// room answers itself (§4 optimisation): result when that session holds that nick, not-acceptable when not.
import { NS } from "../../../src/xml/ns.js";
import { reply } from "../../../src/xml/stanza.js";
import { RoomError } from "../events.js";
import { NS_SELF_PING_OPTIMIZATION } from "../ns.js";
import type { MucService } from "../service.js";

export function selfPing(muc: MucService): void {
  muc.bus.on("room-occupant-iq", ({ room, stanza, from, nick }) => {
    if (stanza.attrs.type !== "get" || !stanza.getChild("ping", NS.ping)) return;
    const own = room.bySession.get(from.toString());
    if (!own) return new RoomError("not-acceptable", "you are not joined to this room");
    if (own.nick !== nick) return; // a ping to someone else: relayed like any request
    muc.sendTo(from, reply(stanza));
    return true;
  }, 10);
  muc.bus.fold("room-disco-features", (features) => { features.push(NS_SELF_PING_OPTIMIZATION); return features; });
}
