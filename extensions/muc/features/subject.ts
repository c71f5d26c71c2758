// XEP-0045 §8.1 room subject: set by moderators (and participants when muc#roomconfig_changesubject),
// broadcast, kept with a persistent room, and sent last when entering (§7.2.15), empty if none.
import { xml } from "../../../src/xml/element.js";
import { RoomError } from "../events.js";
import { booleanField } from "../config-fields.js";
import { booleanValue } from "../forms.js";
import type { MucService } from "../service.js";

export function subject(muc: MucService): void {
  muc.addConfigField(booleanField("muc#roomconfig_changesubject", "Allow occupants to change the subject?", "changeSubject"));

  muc.bus.on("room-pre-message", ({ room, occupant, stanza }) => {
    const subjectEl = stanza.getChild("subject");
    if (!subjectEl || stanza.getChild("body")) return;
    const allowed = occupant.role === "moderator" || (room.config.changeSubject && occupant.role === "participant");
    if (!allowed) return new RoomError("forbidden", "you may not change the subject of this room");
    room.subject = { text: subjectEl.getText(), nick: occupant.nick, ts: Date.now() };
    const msg = xml("message", { from: room.occupantJid(occupant.nick), type: "groupchat", id: stanza.attrs.id }, xml("subject", null, room.subject.text));
    muc.broadcast(room, muc.bus.runFold("room-occupant-stanza", msg, { room, occupant }));
    void muc.registry.save(room).catch((err) => muc.api.log.error({ err, room: room.bare }, "saving the subject failed"));
    return true;
  }, 50);

  muc.bus.observe("room-joined", ({ room, session }) => {
    const s = room.subject;
    const from = s && s.nick ? room.occupantJid(s.nick) : room.bare;
    muc.sendTo(session.jid, xml("message", { from, to: session.full, type: "groupchat" }, xml("subject", null, s ? s.text : null)));
  }, 10);

  muc.bus.fold("room-info-fields", (fields, { room }) => {
    fields.push({ var: "muc#roominfo_subject", label: "Current subject", values: [room.subject?.text ?? ""] });
    fields.push({ var: "muc#roominfo_subjectmod", type: "boolean", label: "Occupants may change the subject", values: [booleanValue(room.config.changeSubject)] });
    return fields;
  });
}
