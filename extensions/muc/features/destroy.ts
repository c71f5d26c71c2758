// XEP-0045 §10.9 an owner destroys the room, optionally naming an alternate venue and a reason.
import { NS } from "../../../src/xml/ns.js";
import { StanzaError } from "../../../src/xml/stanza.js";
import { tryParseJid } from "../../../src/jid/jid.js";
import type { MucService } from "../service.js";

export function destroy(muc: MucService): void {
  muc.onRoomIq("set", NS.mucOwner, "query", async (room, ev) => {
    const d = ev.stanza.getChild("query", NS.mucOwner)?.getChild("destroy");
    if (!d) return;
    if (room.affiliationOf(ev.from.bareString()) !== "owner") throw new StanzaError("forbidden", "only owners may destroy the room");
    const alternate = d.attrs.jid;
    if (alternate !== undefined && !tryParseJid(alternate)) throw new StanzaError("jid-malformed", "the alternate venue is not a valid JID");
    await muc.destroyRoom(room, { alternate, reason: d.getChildText("reason") ?? undefined, password: d.getChildText("password") ?? undefined });
    return true;
  });
}
