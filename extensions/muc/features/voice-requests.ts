// XEP-0045 §7.13 requesting voice and §8.6 approving voice requests, with the muc#request data form in a
// message to the room's bare JID. A visitor of a moderated room submits the form; every moderator gets it
// to fill in (with the visitor's nick, and real JID where moderators see JIDs); a moderator who submits it
// back with muc#request_allow true grants voice (role participant), which everyone sees as a presence.
// A visitor's request is forwarded once until it is answered, the visitor leaves or a minute has passed
// (no flooding moderators, also not by changing nick).
import { xml, type Element } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { RoomError } from "../events.js";
import { formElement, formValues, parseBoolean } from "../forms.js";
import type { Occupant, Room } from "../room.js";
import type { MucService } from "../service.js";

export const NS_MUC_REQUEST = "http://jabber.org/protocol/muc#request";
const RESEND_AFTER_MS = 60_000;

/** Bare JID of the visitor → when its request was last forwarded, per room (a nick change does not reset it). */
function pendingOf(room: Room): Map<string, number> {
  let m = room.data.get("voice-requests") as Map<string, number> | undefined;
  if (!m) room.data.set("voice-requests", (m = new Map()));
  return m;
}

function requestForm(x: Element | undefined): boolean {
  if (!x || x.attrs.xmlns !== NS.dataForms) return false;
  return formValues(x).get("FORM_TYPE")?.[0] === NS_MUC_REQUEST;
}

export function voiceRequests(muc: MucService): void {
  muc.bus.on("room-bare-message", ({ room, stanza, from, occupant }) => {
    const x = stanza.getChildren("x").find((c) => c.attrs.xmlns === NS.dataForms);
    if (!x || !requestForm(x)) return;
    // §7.13: requests come from occupants.
    if (!occupant) return new RoomError("not-acceptable", "only occupants may request voice");
    const values = formValues(x);
    const answer = values.get("muc#request_allow");
    if (answer === undefined) return request(room, occupant, from.toString(), values.get("muc#role")?.[0]);
    return approve(room, occupant, values.get("muc#roomnick")?.[0], parseBoolean(answer[0]));
  }, 10);

  const request = (room: Room, occupant: Occupant, full: string, role: string | undefined) => {
    if (role !== undefined && role !== "participant") return new RoomError("bad-request", "voice requests ask for the participant role");
    // Voice only means something in a moderated room.
    if (!room.config.moderated) return new RoomError("not-allowed", "this room is not moderated: everyone has voice");
    if (occupant.role !== "visitor") return true; // has voice already: nothing to ask
    const pending = pendingOf(room);
    const last = pending.get(occupant.bare);
    if (last !== undefined && Date.now() - last < RESEND_AFTER_MS) return true;
    pending.set(occupant.bare, Date.now());
    const showJid = muc.jidVisibleTo(room, "moderator");
    const form = formElement("form", NS_MUC_REQUEST, [
      { var: "muc#role", type: "list-single", label: "Requested role", values: ["participant"], options: [{ value: "participant", label: "Participant" }] },
      ...(showJid ? [{ var: "muc#jid", type: "jid-single" as const, label: "User ID", values: [full] }] : []),
      { var: "muc#roomnick", type: "text-single", label: "Room Nickname", values: [occupant.nick] },
      { var: "muc#request_allow", type: "boolean", label: "Grant voice to this person?", values: ["false"] },
    ], "Voice request", `To grant ${occupant.nick} voice, check the box and submit the form.`);
    for (const mod of room.occupants.values()) {
      if (mod.role !== "moderator") continue;
      for (const s of mod.sessions.values()) muc.deliver(s, xml("message", { from: room.bare, to: s.full }, form));
    }
    return true;
  };

  const approve = (room: Room, actor: Occupant, nick: string | undefined, allow: boolean | undefined) => {
    // §8.6: moderators answer requests.
    if (actor.role !== "moderator") return new RoomError("forbidden", "only moderators answer voice requests");
    if (allow === undefined) return new RoomError("bad-request", "muc#request_allow: expected a boolean");
    if (nick === undefined) return new RoomError("bad-request", "muc#roomnick is required");
    const target = room.occupants.get(nick);
    if (!target) return new RoomError("item-not-found", "no occupant has that nickname");
    pendingOf(room).delete(target.bare);
    if (!allow) return true; // denied: the visitor stays a visitor
    if (target.role === "visitor") muc.setRole(room, target, "participant", actor);
    return true;
  };

  muc.bus.observe("room-left", ({ room, occupant, gone }) => {
    if (gone && room.occupantsOf(occupant.bare).length === 0) pendingOf(room).delete(occupant.bare);
  });
  muc.bus.fold("room-disco-features", (features, { room }) => {
    if (room.config.moderated) features.push(NS_MUC_REQUEST);
    return features;
  });
}
