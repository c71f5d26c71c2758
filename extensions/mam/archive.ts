// Running a MAM query (XEP-0313 §4) on one archive of the timeline. Every archive the server answers for
// uses this: a user's (index.ts) and a room's (extensions/muc/features/mam.ts). The caller decides who may
// ask and what `with` means for its archive; this file applies the other filters and the RSM (XEP-0059)
// page, and sends the results.
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { parseFramedElement } from "../../src/xml/parser.js";
import type { ModuleApi } from "../../src/modules/module.js";
import type { StanzaEvent } from "../../src/events/hooks.js";
import type { TimelineEntry, TimelineFilter, TimelineStore } from "../../src/storage/types.js";
import { StanzaError } from "../../src/xml/stanza.js";
import { NS_RSM, type MamQuery } from "./query.js";


/** Rows read at a time when a `with` has to be matched against the stored stanzas. */
const SCAN_CHUNK = 200;

export interface PageLimits {
  /** Results per page when the query names no RSM <max>. */
  defaultPageSize: number;
  /** The largest page served, whatever the query asks (XEP-0313 §4.3.1 "reasonable limit"). */
  maxPageSize: number;
}

/** One archive: the timeline of `jid`, from after `floor` on. */
export interface Archive {
  timeline: TimelineStore;
  /** The archive's JID: its timeline owner, and the sender of the results. */
  jid: string;
  /** Rows up to this seq are not part of the archive (a room re-created under an old name). */
  floor?: number;
}

/** What the query's `with` means for this archive (XEP-0313 §4.1.1). */
export interface WithFilter {
  /** Rows whose peer is this bare JID. */
  peer?: string;
  /** Rows whose stored stanza passes this test. Costly (the rows are read): no count is given then. */
  match?: (entry: TimelineEntry) => boolean;
}

export interface Page { items: TimelineEntry[]; complete: boolean; count: number | null; index: number | null }

/** The seq of an archived message, or item-not-found (XEP-0313 §4.1.3, §4.3.2). */
async function seqOf(archive: Archive, id: string, what: string): Promise<number> {
  const entry = await archive.timeline.byStanzaId(archive.jid, id);
  if (entry === null || !entry.archived || entry.seq <= (archive.floor ?? 0)) {
    throw new StanzaError("item-not-found", `${what}: no message ${id} in the archive`);
  }
  return entry.seq;
}

/** The page of the archive a query asks for; throws StanzaError for what the XEPs answer with an error. */
export async function queryArchive(archive: Archive, q: MamQuery, by: WithFilter, limits: PageLimits): Promise<Page> {
  const { timeline, jid: owner } = archive;
  const base: TimelineFilter = { archivedOnly: true };
  if (archive.floor !== undefined && archive.floor > 0) base.afterSeq = archive.floor;
  if (by.peer !== undefined) base.with = by.peer;
  if (q.start !== null) base.start = q.start;
  if (q.end !== null) base.end = q.end;
  if (q.fulltext !== null) base.fulltext = q.fulltext;
  if (q.afterId !== null) base.afterSeq = Math.max(base.afterSeq ?? 0, await seqOf(archive, q.afterId, "after-id"));
  if (q.beforeId !== null) base.beforeSeq = await seqOf(archive, q.beforeId, "before-id");
  if (q.ids !== null) {
    const ids = [...new Set(q.ids)];
    const floor = archive.floor !== undefined && archive.floor > 0 ? { afterSeq: archive.floor } : {};
    if (await timeline.count(owner, { archivedOnly: true, stanzaIds: ids, ...floor }) !== ids.length) {
      throw new StanzaError("item-not-found", "ids: not every message is in the archive");
    }
    base.stanzaIds = ids;
  }
  // The RSM cursor narrows the result set to one side of a known message (XEP-0059 §2.2, §2.3).
  const page: TimelineFilter = { ...base };
  if (q.after !== null) page.afterSeq = Math.max(page.afterSeq ?? 0, await seqOf(archive, q.after, "after"));
  if (q.before !== null && q.before !== "") {
    const seq = await seqOf(archive, q.before, "before");
    page.beforeSeq = page.beforeSeq === undefined ? seq : Math.min(page.beforeSeq, seq);
  }
  // <before/> (with or without an id) pages backwards from the end (XEP-0059 §2.3, §2.5).
  const backward = q.before !== null && q.after === null;
  const limit = Math.min(q.max ?? limits.defaultPageSize, limits.maxPageSize);
  // One more than the page: whether it is there tells whether the page is the last in its direction.
  const rows = await fetchRows(archive, page, limit + 1, backward, by.match);
  const complete = rows.length <= limit;
  const items = rows.slice(0, limit);
  if (backward) items.reverse();
  // An exact count needs the stored stanzas read when `with` tests them: not cheap, so not given then.
  const count = by.match === undefined ? await timeline.count(owner, base) : null;
  const index = count !== null && items.length !== 0 ? await timeline.count(owner, { ...base, beforeSeq: items[0].seq }) : null;
  return { items, complete, count, index };
}

async function fetchRows(archive: Archive, filter: TimelineFilter, want: number, backward: boolean, match: WithFilter["match"]): Promise<TimelineEntry[]> {
  const { timeline, jid: owner } = archive;
  if (match === undefined) return timeline.query(owner, { ...filter, limit: want, reverse: backward });
  const out: TimelineEntry[] = [];
  const cursor = { ...filter };
  for (;;) {
    const chunk = await timeline.query(owner, { ...cursor, limit: SCAN_CHUNK, reverse: backward });
    for (const entry of chunk) {
      if (match(entry)) out.push(entry);
      if (out.length === want) return out;
    }
    if (chunk.length < SCAN_CHUNK) return out;
    if (backward) cursor.beforeSeq = chunk[chunk.length - 1].seq;
    else cursor.afterSeq = chunk[chunk.length - 1].seq;
  }
}

/** The stored stanza as the archive shows it to this requester (it may be changed in place). */
export type Present = (stored: Element, entry: TimelineEntry) => Element;

/**
 * Sends the page's result messages (XEP-0313 §4.2: each stored stanza forwarded, XEP-0297, with its time)
 * to the requester, on the path the iq reply takes, and returns the <fin/> that the reply carries.
 */
export function sendPage(api: ModuleApi<any>, ev: StanzaEvent, archiveJid: string, q: MamQuery, page: Page, present?: Present): Element {
  const to = ev.from.toString();
  const send = (el: Element): void => {
    const s = ev.origin;
    if (s && !s.closed) s.send(el);
    else api.send(el);
  };
  // XEP-0313 §4.3.5: a flipped page is sent newest first; the page itself (and first/last) is unchanged.
  const order = q.flip ? [...page.items].reverse() : page.items;
  for (const entry of order) {
    let stored: Element;
    try { stored = parseFramedElement(entry.xml); } catch (err) {
      api.log.warn({ err, seq: entry.seq }, "MAM: skipped a stored stanza that does not parse");
      continue;
    }
    stored.attrs.xmlns = NS.client;
    if (present) stored = present(stored, entry);
    send(xml("message", { from: archiveJid, to, id: `${entry.stanzaId}.${entry.seq}` },
      xml("result", { xmlns: NS.mam, queryid: q.queryId, id: entry.stanzaId },
        xml("forwarded", { xmlns: NS.forward },
          xml("delay", { xmlns: NS.delay, stamp: new Date(entry.ts).toISOString() }),
          stored))));
  }
  const set = xml("set", { xmlns: NS_RSM });
  if (page.items.length !== 0) {
    set.cnode(xml("first", { index: page.index ?? undefined }, page.items[0].stanzaId));
    set.cnode(xml("last", null, page.items[page.items.length - 1].stanzaId));
  }
  if (page.count !== null) set.cnode(xml("count", null, String(page.count)));
  // XEP-0313 §4.3.2: the result iq (carrying this) goes after the last result message, on the same path.
  return xml("fin", { xmlns: NS.mam, complete: page.complete ? "true" : undefined }, set);
}

/** XEP-0313 §5: the first and last message of the archive. */
export async function archiveMetadata(archive: Archive): Promise<Element> {
  const filter: TimelineFilter = { archivedOnly: true };
  if (archive.floor !== undefined && archive.floor > 0) filter.afterSeq = archive.floor;
  const [first] = await archive.timeline.query(archive.jid, { ...filter, limit: 1 });
  const [last] = await archive.timeline.query(archive.jid, { ...filter, limit: 1, reverse: true });
  const point = (name: string, e: TimelineEntry | undefined) =>
    e === undefined ? null : xml(name, { id: e.stanzaId, timestamp: new Date(e.ts).toISOString() });
  return xml("metadata", { xmlns: NS.mam }, point("start", first), point("end", last));
}
