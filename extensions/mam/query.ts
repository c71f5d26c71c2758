// Reading a MAM query (XEP-0313 §4): the data form of filters and the RSM (XEP-0059) page.
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { tryParseJid, type Jid } from "../../src/jid/jid.js";
import { StanzaError } from "../../src/xml/stanza.js";

export const NS_RSM = "http://jabber.org/protocol/rsm";

// XEP-0431: the full-text field, in Clark notation, advertised with the urn:xmpp:fulltext:0 feature (the
// field Prosody, Openfire and Smack use). COMPAT: ejabberd names it `withtext`, MongooseIM
// `full-text-search`, M-Link `search`; clients written for those servers send their names, so these are
// read as aliases (not advertised in the form).
export const FULLTEXT_FIELD = `{${NS.fulltext}}fulltext`;
const FULLTEXT_ALIASES = new Set([FULLTEXT_FIELD, "withtext", "full-text-search", "search"]);

export interface MamQuery {
  queryId: string | undefined;
  with: Jid | null;
  start: number | null;
  end: number | null;
  beforeId: string | null;
  afterId: string | null;
  ids: string[] | null;
  fulltext: string | null;
  /** RSM: the page size asked for, or null. */
  max: number | null;
  /** RSM <after>: the id, or null. */
  after: string | null;
  /** RSM <before>: the id, "" for an empty <before/> (the last page), or null. */
  before: string | null;
  flip: boolean;
}

// XEP-0082 DateTime: 1969-07-21T02:56:15Z or with an offset, optional fractions of a second.
const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function dateTime(field: string, value: string): number {
  const ms = DATE_TIME.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new StanzaError("bad-request", `${field}: not an XEP-0082 date and time: ${value}`);
  return ms;
}

function fieldValues(field: Element): string[] {
  return field.getChildren("value").map((v) => v.getText());
}

/** XEP-0313 §4.1, §4.2 and XEP-0059 §2. Throws StanzaError for what the XEPs answer with an error. */
export function parseQuery(query: Element): MamQuery {
  const q: MamQuery = {
    queryId: query.attrs.queryid, with: null, start: null, end: null, beforeId: null, afterId: null, ids: null,
    fulltext: null, max: null, after: null, before: null, flip: query.getChild("flip-page") !== undefined,
  };
  const form = query.getChild("x", NS.dataForms);
  if (form) {
    if (form.attrs.type !== undefined && form.attrs.type !== "submit") throw new StanzaError("bad-request", "the form must be submitted");
    for (const field of form.getChildren("field")) {
      const name = field.attrs.var;
      const values = fieldValues(field);
      const value = values[0]?.trim() ?? "";
      if (name === "FORM_TYPE") {
        if (value !== NS.mam) throw new StanzaError("bad-request", `FORM_TYPE must be ${NS.mam}`);
        continue;
      }
      if (name === "ids") {
        q.ids = values.map((v) => v.trim()).filter((v) => v !== "");
        continue;
      }
      if (value === "" && name !== undefined && (KNOWN_FIELDS.has(name) || FULLTEXT_ALIASES.has(name))) continue;
      switch (name) {
        case "with": {
          const parsed = tryParseJid(value);
          if (!parsed) throw new StanzaError("jid-malformed", `with: not a JID: ${value}`);
          q.with = parsed;
          break;
        }
        case "start": q.start = dateTime("start", value); break;
        case "end": q.end = dateTime("end", value); break;
        case "before-id": q.beforeId = value; break;
        case "after-id": q.afterId = value; break;
        default:
          if (name !== undefined && FULLTEXT_ALIASES.has(name)) { q.fulltext = values.join(" "); break; }
          // XEP-0313 §4.1.5: a field the server does not recognise.
          throw new StanzaError("feature-not-implemented", `unknown field: ${name ?? "(no var)"}`);
      }
    }
  }
  const set = query.getChild("set", NS_RSM);
  if (set) {
    const max = set.getChild("max");
    if (max) {
      const text = max.getText().trim();
      if (!/^\d{1,9}$/.test(text)) throw new StanzaError("bad-request", "max must be a non-negative integer");
      q.max = Number(text);
    }
    const after = set.getChild("after");
    if (after) {
      q.after = after.getText().trim();
      // XEP-0059 §2.1: <after/> carries an id; only <before/> may be empty.
      if (q.after === "") throw new StanzaError("bad-request", "after needs an id");
    }
    const before = set.getChild("before");
    if (before) q.before = before.getText().trim();
    if (set.getChild("index")) throw new StanzaError("feature-not-implemented", "paging by index is not supported; use after/before");
  }
  return q;
}

const KNOWN_FIELDS = new Set(["with", "start", "end", "before-id", "after-id", "ids"]);

/** XEP-0313 §4.1.5: the fields a query may use. */
export function queryForm(): Element {
  return xml("x", { xmlns: NS.dataForms, type: "form" },
    xml("field", { type: "hidden", var: "FORM_TYPE" }, xml("value", null, NS.mam)),
    xml("field", { type: "jid-single", var: "with" }),
    xml("field", { type: "text-single", var: "start" }),
    xml("field", { type: "text-single", var: "end" }),
    xml("field", { type: "text-single", var: "before-id" }),
    xml("field", { type: "text-single", var: "after-id" }),
    xml("field", { type: "list-multi", var: "ids" },
      xml("validate", { xmlns: "http://jabber.org/protocol/xdata-validate", datatype: "xs:string" }, xml("open"))),
    xml("field", { type: "text-single", var: FULLTEXT_FIELD, label: "Words the message contains (or begins a word with)" }));
}
