// XEP-0045 §7.5 private messages between occupants, to every session of the recipient's nick, as the
// room allows them (muc#roomconfig_allowpm).
import { xml } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { RoomError } from "../events.js";
import { oneOf } from "../config-fields.js";
import { Fanout } from "../fanout.js";
import type { PmPolicy, Role } from "../room.js";
import type { MucService } from "../service.js";

const POLICIES: readonly PmPolicy[] = ["anyone", "participants", "moderators", "none"];

function mayMessage(policy: PmPolicy, role: Role): boolean {
  switch (policy) {
    case "anyone": return true;
    case "participants": return role === "participant" || role === "moderator";
    case "moderators": return role === "moderator";
    case "none": return false;
  }
}

export function privateMessages(muc: MucService): void {
  muc.addConfigField({
    var: "muc#roomconfig_allowpm", type: "list-single", label: "Who may send private messages?",
    options: [{ value: "anyone", label: "Anyone" }, { value: "participants", label: "Participants" }, { value: "moderators", label: "Moderators" }, { value: "none", label: "Nobody" }],
    read: (c) => [c.allowPm],
    write: (c, v) => { c.allowPm = oneOf(v[0], POLICIES, "muc#roomconfig_allowpm"); },
  });

  muc.bus.on("room-occupant-message", ({ room, stanza, sender, nick }) => {
    const type = stanza.attrs.type ?? "normal";
    if (!sender) return new RoomError("not-acceptable", "only occupants may send private messages");
    // §7.5: a private message is not of type groupchat.
    if (type === "groupchat") return new RoomError("bad-request", "private messages are not of type groupchat");
    const target = room.occupants.get(nick);
    if (!target) return new RoomError("item-not-found", "no occupant has that nickname");
    if (!mayMessage(room.config.allowPm, sender.role)) return new RoomError("forbidden", "private messages are not allowed here");
    const msg = muc.fromOccupant(room, sender, stanza, type);
    msg.cnode(xml("x", { xmlns: NS.mucUser }));
    const fanout = new Fanout(msg);
    for (const s of target.sessions.values()) muc.deliver(s, fanout.to(s.full, s.toAttr));
    return true;
  });
}
