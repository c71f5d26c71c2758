// XEP-0045 §7.2.6 members-only rooms: only members (and admins, owners) enter. Whoever loses membership
// leaves (321, §9.4), and making a room members-only removes the non-members present (322, §9.4, §12).
import { RoomError } from "../events.js";
import { booleanField } from "../config-fields.js";
import { affiliationRank } from "../room.js";
import type { MucService } from "../service.js";

export function membersOnly(muc: MucService): void {
  muc.addConfigField(booleanField("muc#roomconfig_membersonly", "Only members may enter?", "membersOnly"));
  muc.bus.on("room-pre-join", ({ room, affiliation }) => {
    if (room.config.membersOnly && affiliationRank(affiliation) < affiliationRank("member")) {
      return new RoomError("registration-required", "this room is for members only");
    }
  }, 70);
  muc.bus.observe("room-affiliation-changed", ({ room, jid, actor, reason }) => {
    if (!room.config.membersOnly) return;
    for (const occ of [...room.occupants.values()]) {
      if ((occ.bare === jid || occ.bare.endsWith("@" + jid)) && affiliationRank(room.affiliationOf(occ.bare)) < affiliationRank("member")) {
        muc.removeOccupant(room, occ, { codes: ["321"], actor, reason });
      }
    }
  });
  muc.bus.observe("room-config-changed", ({ room, before, after }) => {
    if (before.membersOnly || !after.membersOnly) return;
    for (const occ of [...room.occupants.values()]) {
      if (affiliationRank(room.affiliationOf(occ.bare)) < affiliationRank("member")) muc.removeOccupant(room, occ, { codes: ["322"] });
    }
  });
  muc.bus.fold("room-disco-features", (features, { room }) => {
    features.push(room.config.membersOnly ? "muc_membersonly" : "muc_open");
    return features;
  });
}
