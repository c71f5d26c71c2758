// XEP-0045 §7.2.13-§7.2.14 discussion history on entering, from the room timeline (DESIGN.md: one timeline per
// room, read fan-out), limited by the room's history length and the client's <history maxchars
// maxstanzas seconds since/>, each message stamped with an XEP-0203 delay from the room.
//
// Every groupchat message with content is kept in the room timeline: it is what history, members who
// were offline and MUC MAM (mam.ts) read. Rooms are therefore logged, and say so with status 170 (§7.2.12).
import { xml, type Element } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { parseFramedElement } from "../../../src/xml/parser.js";
import { count } from "../config-fields.js";
import type { MucService } from "../service.js";

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
  muc.bus.fold("room-self-codes", (codes) => { codes.push("170"); return codes; });
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
    if (limit === 0 || maxchars === 0 || barrier <= room.floor) return;
    let start: number | undefined;
    const seconds = intAttr(h, "seconds");
    if (seconds !== undefined) start = Date.now() - seconds * 1000;
    const since = typeof h?.attrs.since === "string" ? Date.parse(h.attrs.since) : NaN;
    if (Number.isFinite(since)) start = Math.max(start ?? since, since);
    // Newest first, so that the limits keep the latest messages; sent oldest first.
    const rows = await api.store.timeline.query(room.bare, { afterSeq: room.floor, beforeSeq: barrier + 1, start, limit, reverse: true });
    const out: Element[] = [];
    let chars = 0;
    for (const row of rows) {
      let el: Element;
      try { el = parseFramedElement(row.xml); } catch { continue; }
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
