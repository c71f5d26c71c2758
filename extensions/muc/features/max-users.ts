// XEP-0045 §7.2.9: a room with a maximum number of occupants refuses more (service-unavailable);
// admins and owners still enter.
import { RoomError } from "../events.js";
import { count } from "../config-fields.js";
import { affiliationRank } from "../room.js";
import type { MucService } from "../service.js";

export function maxUsers(muc: MucService): void {
  muc.addConfigField({
    var: "muc#roomconfig_maxusers", type: "list-single", label: "Maximum number of occupants",
    options: ["10", "20", "30", "50", "100", "none"].map((value) => ({ value })),
    read: (c) => [c.maxUsers === 0 ? "none" : String(c.maxUsers)],
    write: (c, v) => { c.maxUsers = count(v[0], "muc#roomconfig_maxusers", 0, 100_000); },
  });
  muc.bus.on("room-pre-join", ({ room, affiliation, occupant }) => {
    const max = room.config.maxUsers;
    if (max === 0 || occupant !== undefined || affiliationRank(affiliation) >= affiliationRank("admin")) return;
    if (room.occupants.size >= max) return new RoomError("service-unavailable", "the room is full");
  }, 50);
}
