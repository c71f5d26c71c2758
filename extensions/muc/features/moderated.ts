// XEP-0045 §4.2, §8.3 moderated rooms: occupants without membership enter as visitors and need voice
// (the participant role, granted by a moderator) to speak.
import { RoomError } from "../events.js";
import { booleanField } from "../config-fields.js";
import type { MucService } from "../service.js";

export function moderated(muc: MucService): void {
  muc.addConfigField(booleanField("muc#roomconfig_moderatedroom", "Only occupants with voice may speak?", "moderated"));
  muc.bus.fold("room-default-role", (role, { room, affiliation }) =>
    room.config.moderated && affiliation === "none" && role === "participant" ? "visitor" : role);
  // §7.4: a visitor's message (or subject change) is refused with forbidden.
  muc.bus.on("room-pre-message", ({ occupant }) => {
    if (occupant.role === "visitor") return new RoomError("forbidden", "you need voice to speak in this room");
  }, 100);
  muc.bus.fold("room-disco-features", (features, { room }) => {
    features.push(room.config.moderated ? "muc_moderated" : "muc_unmoderated");
    return features;
  });
}
