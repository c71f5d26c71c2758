// XEP-0045 §7.8.2 mediated invitations and declines through the room. In a members-only room an
// invitation by an admin (or by a member when muc#roomconfig_allowinvites) makes the invitee a member
// (§7.8.2, §9.3). XEP-0249 direct invitations go from client to client as ordinary messages; nothing to do here.
import { xml } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { tryParseJid } from "../../../src/jid/jid.js";
import { RoomError } from "../events.js";
import { booleanField } from "../config-fields.js";
import { affiliationRank } from "../room.js";
import type { MucService } from "../service.js";

export function invitations(muc: MucService): void {
  muc.addConfigField(booleanField("muc#roomconfig_allowinvites", "Allow members to invite others?", "allowInvites"));

  muc.bus.on("room-bare-message", async ({ room, stanza, from, occupant }) => {
    const x = stanza.getChild("x", NS.mucUser);
    if (!x) return;
    const invites = x.getChildren("invite");
    const decline = x.getChild("decline");
    if (invites.length > 0) {
      if (!occupant) return new RoomError("not-acceptable", "only occupants may invite");
      const rank = affiliationRank(room.affiliationOf(occupant.bare));
      const mayInvite = !room.config.membersOnly || rank >= affiliationRank("admin") || (room.config.allowInvites && rank >= affiliationRank("member"));
      if (!mayInvite) return new RoomError("forbidden", "you may not invite others to this room");
      const invitees = invites.map((i) => tryParseJid(i.attrs.to));
      if (invitees.some((j) => j === null)) return new RoomError("jid-malformed", "an invitation needs a valid 'to'");
      // §7.8.2: an invitee that does not exist (as far as this server can tell) is item-not-found.
      for (const j of invitees) {
        if (muc.api.hosts.includes(j!.domain) && !(j!.local && await muc.api.accounts.exists(j!.domain, j!.local))) {
          return new RoomError("item-not-found", `${j!.toString()} does not exist`);
        }
      }
      for (let k = 0; k < invites.length; k++) {
        const to = invitees[k]!;
        const reason = invites[k].getChildText("reason");
        if (room.config.membersOnly && affiliationRank(room.affiliationOf(to.bareString())) < affiliationRank("member")) {
          await muc.setAffiliation(room, to.bareString(), "member", occupant);
        }
        muc.sendTo(to, xml("message", { from: room.bare, to: to.toString(), id: stanza.attrs.id },
          xml("x", { xmlns: NS.mucUser },
            xml("invite", { from: from.toString() }, reason ? xml("reason", null, reason) : null),
            room.config.passwordProtected ? xml("password", null, room.config.password) : null),
          xml("body", null, `${from.bareString()} invites you to the room ${room.bare}${reason ? `: ${reason}` : ""}`)));
      }
      return true;
    }
    if (decline) {
      const to = tryParseJid(decline.attrs.to);
      if (!to) return new RoomError("jid-malformed", "a decline needs a valid 'to'");
      const reason = decline.getChildText("reason");
      muc.sendTo(to, xml("message", { from: room.bare, to: to.toString(), id: stanza.attrs.id },
        xml("x", { xmlns: NS.mucUser }, xml("decline", { from: from.bareString() }, reason ? xml("reason", null, reason) : null))));
      return true;
    }
  });
}
