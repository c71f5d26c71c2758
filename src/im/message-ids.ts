// How receipts (XEP-0184), chat markers (XEP-0333) and retractions (XEP-0424) name a message: by its
// origin-id (XEP-0359), else its `id` attribute; and finding that message in a user's timeline. Shared by the
// feature modules and the mobile adapter.
import type { Element } from "../xml/element.js";
import type { TimelineEntry, TimelineStore } from "../storage/types.js";
import { parseFramedElement } from "../xml/parser.js";
import { NS } from "../xml/ns.js";

export const NS_RETRACT = "urn:xmpp:message-retract:1";
export const NS_RETRACT_V0 = "urn:xmpp:message-retract:0";
export const NS_FASTEN = "urn:xmpp:fasten:0";

/** The id an XEP-0424 retraction in `el` names, if it is one (v1, or v0 through XEP-0422 fastening). */
export function retractTarget(el: Element): string | null {
  const v1 = el.getChild("retract", NS_RETRACT);
  if (v1?.attrs.id) return v1.attrs.id;
  const fasten = el.getChild("apply-to", NS_FASTEN);
  if (fasten?.attrs.id && fasten.getChild("retract", NS_RETRACT_V0)) return fasten.attrs.id;
  return null;
}

/** Whether a stored stanza is a retraction (cheaply, without parsing it). */
export function isRetractionXml(xmlText: string): boolean {
  return xmlText.includes(NS_RETRACT) || xmlText.includes(NS_FASTEN);
}

/** The id peers use for a message: its origin-id, else its `id` attribute (XEP-0184/0333 refer to it). */
export function messageIdOf(el: Element): string {
  return el.getChild("origin-id", NS.sid)?.attrs.id ?? el.attrs.id ?? "";
}

/** The id peers use for a stored message. */
export function storedMessageId(row: TimelineEntry): string {
  if (row.originId) return row.originId;
  try { return messageIdOf(parseFramedElement(row.xml)); } catch { return ""; }
}

/** How far back a message is looked for by its id (receipts, markers, retractions name recent messages). */
const LOOKBACK = 500;

/** Whether the stored stanza's own `id` attribute is `id` (only the start tag is looked at). */
function startTagHasId(xmlText: string, id: string): boolean {
  const end = xmlText.indexOf(">");
  const head = end < 0 ? xmlText : xmlText.slice(0, end);
  return head.includes(` id="${id.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;")}"`);
}

/**
 * The newest row of the conversation with `peer` in `owner`'s timeline that peers refer to by `id`, sent by
 * the owner (`outgoing`) or by the peer.
 */
export async function findByMessageId(timeline: TimelineStore, owner: string, peer: string, id: string, outgoing: boolean): Promise<TimelineEntry | null> {
  if (id === "") return null;
  // Receipts and markers name very recent messages: look at a few rows first, then further back.
  let before: number | undefined;
  let seen = 0;
  for (const page of [8, 64, LOOKBACK]) {
    const rows = await timeline.query(owner, { with: peer, beforeSeq: before, reverse: true, limit: Math.min(page, LOOKBACK - seen) });
    for (const r of rows) {
      if (r.outgoing !== outgoing) continue;
      if (r.originId === id || (r.originId === null && startTagHasId(r.xml, id))) return r;
    }
    seen += rows.length;
    if (rows.length < page || seen >= LOOKBACK) break;
    before = rows[rows.length - 1]!.seq;
  }
  return null;
}
