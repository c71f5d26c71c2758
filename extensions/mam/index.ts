// XEP-0313: Message Archive Management, as a query over the timeline (DESIGN.md): the rows the message
// module writes for every 1:1 message are the archive; nothing is stored a second time. The archive id of
// a message is its row's XEP-0359 stanza-id, which the recipient already got with the message.
//
// Archiving preferences (XEP-0441) decide, as each message is written, whether its row is shown by MAM
// (`archived`); full-text search (XEP-0431) matches the body, kept with the row as `searchText`.
// Retention is the timeline's (storage.retention, src/im/retention.ts), not the archive's.
// Running a query (filters, RSM pages, results) is archive.ts, shared with room archives (muc).
import { moduleOptions, type OptionsOf } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { parseFramedElement } from "../../src/xml/parser.js";
import { tryParseJid, type Jid } from "../../src/jid/jid.js";
import type { StanzaEvent } from "../../src/events/hooks.js";
import type { NewTimelineEntry, TimelineEntry } from "../../src/storage/types.js";
import { StanzaError } from "../../src/xml/stanza.js";
import { decodePrefs, parsePrefs, prefsElement, shouldArchive, type Prefs } from "./prefs.js";
import { parseQuery, queryForm } from "./query.js";
import { archiveMetadata, queryArchive, sendPage, type Archive, type WithFilter } from "./archive.js";



/** `modules.mam` (the muc module reads the page limits for room archives from it too). */
export const mamOptions = moduleOptions(
  "Message Archive Management (XEP-0313), over the timeline.",
  {
    defaultPageSize: { kind: "integer", min: 1, max: 10_000, default: 50, description: "Results per page when the query names no RSM <max> (XEP-0059)." },
    maxPageSize: { kind: "integer", min: 1, max: 10_000, default: 250, description: "The largest page served, whatever the query asks (XEP-0313 §4.3.1 \"reasonable limit\")." },
    prefsCacheSeconds: {
      kind: "integer", min: 0, max: 86_400, default: 60,
      description: "How long a user's archiving preferences are cached (a change on another cluster node applies after this).",
    },
  },
  (o) => (o.defaultPageSize > o.maxPageSize ? { key: "defaultPageSize", problem: "must not exceed maxPageSize" } : undefined),
);

export type MamOptions = OptionsOf<typeof mamOptions>;

const PREFS_KEY = "prefs";
const PREFS_CACHE_MAX = 50_000;

/** The searchable text of a message: its bodies (one per language). */
function bodyText(stanza: Element): string | null {
  let text: string | null = null;
  for (const c of stanza.children) {
    if (typeof c === "string" || c.getName() !== "body") continue;
    text = text === null ? c.getText() : `${text}\n${c.getText()}`;
  }
  return text;
}

/** Whether a stored stanza was sent to or from exactly this full JID (XEP-0313 §4.1.1). */
function involves(entry: TimelineEntry, full: Jid): boolean {
  let el: Element;
  try { el = parseFramedElement(entry.xml); } catch { return false; }
  return [el.attrs.from, el.attrs.to].some((a) => tryParseJid(a)?.equals(full) === true);
}

export const mam = defineModule({
  name: "mam",
  xep: [
    { spec: "XEP-0313", title: "Message Archive Management", version: "1.1.3", status: "partial",
      note: "user and MUC room archives (urn:xmpp:mam:2 and #extended) over the timeline" },
    { spec: "XEP-0059", title: "Result Set Management", version: "1.0.0", status: "partial", note: "for MAM: after, before, max, count, first index; no paging by index" },
    { spec: "XEP-0441", title: "Message Archive Management Preferences", version: "0.2.0", status: "complete" },
    { spec: "XEP-0431", title: "Full Text Search in MAM", version: "0.2.0", status: "complete", note: "words or word beginnings, every one required" },
  ],
  options: mamOptions,
  setup(api) {
    const opts = api.options;
    const timeline = api.store.timeline;
    const prefsStore = api.openStore();
    api.addFeature(NS.mam, "account");
    api.addFeature(NS.mamExtended, "account");
    api.addFeature(NS.fulltext, "account");

    // ------------------------------------------------------------------------------------- preferences
    const prefsCache = new Map<string, { prefs: Prefs; until: number }>();
    const cachePrefs = (owner: string, prefs: Prefs): Prefs => {
      if (opts.prefsCacheSeconds === 0) return prefs;
      prefsCache.delete(owner);
      if (prefsCache.size >= PREFS_CACHE_MAX) prefsCache.delete(prefsCache.keys().next().value!);
      prefsCache.set(owner, { prefs, until: Date.now() + opts.prefsCacheSeconds * 1000 });
      return prefs;
    };
    const cachedPrefs = (owner: string): Prefs | undefined => {
      const hit = prefsCache.get(owner);
      if (hit === undefined) return undefined;
      if (hit.until < Date.now()) { prefsCache.delete(owner); return undefined; }
      return hit.prefs;
    };
    const loadPrefs = async (owner: string): Promise<Prefs> => cachePrefs(owner, decodePrefs(await prefsStore.get(owner, PREFS_KEY)));
    api.observe("account-deleted", ({ host, username }) => { prefsCache.delete(`${username}@${host}`); return false; });

    const inRoster = (owner: string, target: Jid): Promise<boolean> =>
      api.store.roster.getItem(owner, target.bareString()).then((item) => item?.inRoster === true);
    const decide = (owner: string, target: Jid): boolean | Promise<boolean> => {
      const prefs = cachedPrefs(owner);
      if (prefs !== undefined) return shouldArchive(prefs, owner, target, inRoster);
      return loadPrefs(owner).then((p) => shouldArchive(p, owner, target, inRoster));
    };
    const apply = (entry: NewTimelineEntry, archived: boolean, text: string | null): void => {
      if (archived) entry.searchText = text;
      else entry.archived = false;
    };

    // Each row of a message being written: archived per its owner's preferences, with its searchable text.
    // Synchronous, with nothing made but the text, when the preferences are cached and need no roster lookup
    // (the common case: this runs for every message).
    api.observe("message-archiving", (ev) => {
      const text = bodyText(ev.stanza);
      let waits: Array<Promise<void>> | null = null;
      for (const entry of ev.entries) {
        const decision = decide(entry.owner, entry.outgoing ? ev.to : ev.from); // XEP-0441 §2.3.2, §2.3.3
        if (typeof decision === "boolean") apply(entry, decision, text);
        else (waits ??= []).push(decision.then((archived) => apply(entry, archived, text)));
      }
      return waits === null ? false : Promise.all(waits).then(() => false);
    });

    api.onIq("get", "self", NS.mam, "prefs", async (ev) => prefsElement(await loadPrefs(ev.from.bareString()), NS.mam));
    api.onIq("set", "self", NS.mam, "prefs", async (ev) => {
      const owner = ev.from.bareString();
      const prefs = parsePrefs(ev.stanza.getChild("prefs", NS.mam)!, NS.mam);
      await prefsStore.set(owner, PREFS_KEY, JSON.stringify(prefs));
      cachePrefs(owner, prefs);
      return prefsElement(prefs, NS.mam);
    });

    // ------------------------------------------------------------------------------------------ queries
    const archiveOf = (ev: StanzaEvent): Archive => ({ timeline, jid: ev.from.bareString() });

    api.onIq("set", "self", NS.mam, "query", async (ev) => {
      const archive = archiveOf(ev);
      const q = parseQuery(ev.stanza.getChild("query", NS.mam)!);
      // XEP-0313 §4.1.1: a bare JID matches both directions of a conversation; a full JID only the
      // messages to or from that resource, which takes reading the stored stanzas.
      const by: WithFilter = {};
      if (q.with !== null) {
        const w = q.with;
        by.peer = w.bareString();
        if (w.resource !== "") by.match = (entry) => involves(entry, w);
      }
      return sendPage(api, ev, archive.jid, q, await queryArchive(archive, q, by, opts));
    });
    api.onIq("get", "self", NS.mam, "query", () => xml("query", { xmlns: NS.mam }, queryForm()));
    api.onIq("get", "self", NS.mam, "metadata", (ev) => archiveMetadata(archiveOf(ev)));

    // XEP-0313 §8.1: a user's archive is the user's alone.
    const forbidden = (): never => { throw new StanzaError("forbidden", "only the owner may use an archive"); };
    for (const name of ["query", "prefs", "metadata"]) {
      api.onIq("set", "bare", NS.mam, name, forbidden);
      api.onIq("get", "bare", NS.mam, name, forbidden);
    }

  },
});
