// XEP-0045 §7.6 changing nickname: unavailable from the old nick with 303 and the new nick, then
// available from the new one. All sessions of a multi-session occupant move together.
import { RoomError } from "../events.js";
import { nickRewritten, type MucService } from "../service.js";

export function nickChange(muc: MucService): void {
  muc.bus.on("room-nick-change", ({ room, occupant, session, nick, stanza }) => {
    const holder = room.occupants.get(nick);
    if (holder && holder !== occupant) return new RoomError("conflict", "that nickname is in use");
    muc.broadcastPresence(room, occupant, { type: "unavailable", keepRole: true, codes: ["303"], nick });
    room.occupants.delete(occupant.nick);
    occupant.nick = nick;
    room.occupants.set(nick, occupant);
    session.presence = stanza;
    occupant.setPrimary(session.full);
    muc.broadcastPresence(room, occupant, { selfCodes: nickRewritten(stanza.attrs.to, nick) ? ["210"] : [] });
    return true;
  });
}
