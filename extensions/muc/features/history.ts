// XEP-0045 §7.2.13-§7.2.14 discussion history on entering, from the room timeline (DESIGN.md: one timeline per
// room, read fan-out), limited by the room's history length and the client's <history maxchars
// maxstanzas seconds since/>, each message stamped with an XEP-0203 delay from the room.
//
// Every groupchat message with content is kept in the room timeline: it is what history, members who
// were offline and MUC MAM (mam.ts) read. Rooms are therefore logged, and say so with status 170 (§7.2.12),
// unless the owner turns muc#roomconfig_enablelogging off (§10.2.1: 170/171 announce the change): then
// nothing is written, and history comes from the last messages the room keeps in memory while loaded.
import { shallowCopy, xml, type Element } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { parseFramedElement } from "../../../src/xml/parser.js";
import { booleanField, count } from "../config-fields.js";
import { storable, type MucService } from "../service.js";
import type { Room } from "../room.js";

/** A message for history: from the timeline, or from an unlogged room's memory. */
interface Recent { el: Element; ts: number }

function intAttr(el: Element | undefined, name: string): number | undefined {
  const v = el?.attrs[name];
  if (typeof v !== "string" || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

export function history(muc: MucService): void {
  const { options, api } = muc;
  muc.addConfigField({
    var: "muc#maxhistoryfetch", type: "text-single", label: "Maximum number of history messages returned by the room",
    read: (c) => [String(c.historyLength)],
    write: (c, v) => { c.historyLength = count(v[0], "muc#maxhistoryfetch", 0, options.maxHistory); },
  });
  muc.addConfigField(booleanField("muc#roomconfig_enablelogging", "Keep the room's messages (history, archive)?", "logging"));
  muc.bus.fold("room-self-codes", (codes, { room }) => {
    if (room.config.logging) codes.push("170");
    return codes;
  });
  muc.bus.fold("room-config-codes", (codes, { before, after }) => {
    if (before.logging !== after.logging) codes.push(after.logging ? "170" : "171");
    return codes;
  });
  // An unlogged room's recent messages, in memory (none while logging is on).
  const recentOf = (room: Room): Recent[] => {
    let r = room.data.get("history") as Recent[] | undefined;
    if (!r) room.data.set("history", (r = []));
    return r;
  };
  muc.bus.observe("room-message", ({ room, message }) => {
    if (room.config.logging || !storable(message)) return;
    const recent = recentOf(room);
    recent.push({ el: message, ts: Date.now() });
    if (recent.length > options.maxHistory) recent.splice(0, recent.length - options.maxHistory);
  });
  muc.bus.observe("room-config-changed", ({ room, after }) => {
    if (after.logging) room.data.delete("history");
  });
  muc.bus.fold("room-info-fields", (fields, { room }) => {
    fields.push({ var: "muc#maxhistoryfetch", label: "Maximum number of history messages returned by the room", values: [String(room.config.historyLength)] });
    return fields;
  });

  muc.bus.observe("room-joined", async ({ room, session, stanza, barrier }) => {
    const h = stanza.getChild("x", NS.muc)?.getChild("history");
    let limit = Math.min(room.config.historyLength, options.maxHistory);
    const maxstanzas = intAttr(h, "maxstanzas");
    if (maxstanzas !== undefined) limit = Math.min(limit, maxstanzas);
    const maxchars = intAttr(h, "maxchars");
    if (limit === 0 || maxchars === 0 || (room.config.logging && barrier <= room.floor)) return;
    let start: number | undefined;
    const seconds = intAttr(h, "seconds");
    if (seconds !== undefined) start = Date.now() - seconds * 1000;
    const since = typeof h?.attrs.since === "string" ? Date.parse(h.attrs.since) : NaN;
    if (Number.isFinite(since)) start = Math.max(start ?? since, since);
    // Newest first, so that the limits keep the latest messages; sent oldest first.
    let rows: Recent[];
    if (room.config.logging) {
      const stored = await api.store.timeline.query(room.bare, { afterSeq: room.floor, beforeSeq: barrier + 1, start, limit, reverse: true });
      rows = [];
      for (const row of stored) {
        try { rows.push({ el: parseFramedElement(row.xml), ts: row.ts }); } catch { continue; }
      }
    } else {
      // Taken before any await: exactly the messages sent out before this join (later ones arrive live).
      rows = recentOf(room).filter((r) => start === undefined || r.ts >= start).slice(-limit).reverse()
        .map((r) => ({ el: Object.assign(shallowCopy(r.el), { children: [...r.el.children] }), ts: r.ts }));
    }
    const out: Element[] = [];
    let chars = 0;
    for (const row of rows) {
      const el = row.el;
      el.attrs.to = session.full;
      el.cnode(xml("delay", { xmlns: NS.delay, from: room.bare, stamp: new Date(row.ts).toISOString() }));
      if (maxchars !== undefined) {
        // §7.2.14: maxchars counts the characters of the complete stanzas.
        chars += el.toString().length;
        if (chars > maxchars) break;
      }
      out.push(el);
    }
    for (let i = out.length - 1; i >= 0; i--) muc.sendTo(session.jid, out[i]);
  }, 20);
}
