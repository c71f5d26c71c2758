// XEP-0045 §17.4 iq requests to an occupant JID: relayed to the occupant's (current) session with the
// room as the requester, and the answer relayed back. Only occupants may ask.
import { randomUUID } from "node:crypto";
import { xml, type Element } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { tryParseJid } from "../../../src/jid/jid.js";
import { RoomError } from "../events.js";
import type { MucService } from "../service.js";

interface Pending { id: string; requester: string; responder: string; room: string; at: number }

const TIMEOUT_MS = 120_000;

export function occupantIq(muc: MucService): void {
  const pending = new Map<string, Pending>();
  muc.api.setInterval(() => {
    const old = Date.now() - TIMEOUT_MS;
    for (const [k, p] of pending) if (p.at < old) pending.delete(k);
  }, 30_000);

  const copy = (stanza: Element, attrs: Record<string, string>): Element => {
    const el = xml("iq", attrs);
    for (const c of stanza.children) if (typeof c !== "string") el.children.push(c);
    return el;
  };

  muc.bus.on("room-occupant-iq", ({ room, stanza, from, sender, nick }) => {
    const type = stanza.attrs.type;
    if (type === "result" || type === "error") {
      const p = pending.get(stanza.attrs.id ?? "");
      if (!p || p.responder !== from.toString() || p.room !== room.bare) return true;
      pending.delete(stanza.attrs.id);
      const responder = room.bySession.get(from.toString());
      const requester = tryParseJid(p.requester);
      if (!responder || !requester) return true;
      muc.sendTo(requester, copy(stanza, { from: room.occupantJid(responder.nick), to: p.requester, id: p.id, type }));
      return true;
    }
    if (!sender) {
      // §6.6: disco requests to an occupant JID from outside the room are bad requests.
      const payload = stanza.children.find((c): c is Element => typeof c !== "string");
      if (payload?.attrs.xmlns === NS.discoInfo || payload?.attrs.xmlns === NS.discoItems) return new RoomError("bad-request", "not an occupant of this room");
      return new RoomError("not-acceptable", "only occupants may send requests to occupants");
    }
    const target = room.occupants.get(nick);
    if (!target) return new RoomError("item-not-found", "no occupant has that nickname");
    const to = target.primary;
    const id = `muc-${randomUUID()}`;
    pending.set(id, { id: stanza.attrs.id, requester: from.toString(), responder: to.full, room: room.bare, at: Date.now() });
    muc.sendTo(to.jid, copy(stanza, { from: room.occupantJid(sender.nick), to: to.full, id, type }));
    return true;
  });
}
