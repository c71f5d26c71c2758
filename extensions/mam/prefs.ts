// Archiving preferences (XEP-0441, the <prefs/> of urn:xmpp:mam:2 that XEP-0313 used to define): a default
// (always, never, roster) and lists of JIDs always or never archived.
import { xml, type Element } from "../../src/xml/element.js";
import { tryParseJid, type Jid } from "../../src/jid/jid.js";
import { StanzaError } from "../../src/xml/stanza.js";

export type DefaultPref = "always" | "never" | "roster";
export interface Prefs { default: DefaultPref; always: string[]; never: string[] }

export const DEFAULT_PREFS: Prefs = { default: "always", always: [], never: [] };

const DEFAULTS: readonly string[] = ["always", "never", "roster"];

function jidList(parent: Element | undefined): string[] {
  const out: string[] = [];
  for (const item of parent?.getChildren("jid") ?? []) {
    const parsed = tryParseJid(item.getText().trim());
    if (!parsed) throw new StanzaError("jid-malformed", `not a JID: ${item.getText()}`);
    const text = parsed.toString();
    if (!out.includes(text)) out.push(text);
  }
  return out;
}

/** XEP-0441 §2.1: a prefs set. Missing lists are empty; a JID in both lists is a contradiction. */
export function parsePrefs(el: Element, ns: string): Prefs {
  const def = el.attrs.default;
  if (typeof def !== "string" || !DEFAULTS.includes(def)) {
    throw new StanzaError("bad-request", "default must be always, never or roster");
  }
  const always = jidList(el.getChild("always", ns));
  const never = jidList(el.getChild("never", ns));
  const both = always.find((j) => never.includes(j));
  if (both !== undefined) throw new StanzaError("bad-request", `${both} cannot be both always and never archived`);
  return { default: def as DefaultPref, always, never };
}

/** XEP-0441 §2.1: <always/> and <never/> are present even when empty. */
export function prefsElement(prefs: Prefs, ns: string): Element {
  return xml("prefs", { xmlns: ns, default: prefs.default },
    xml("always", null, ...prefs.always.map((j) => xml("jid", null, j))),
    xml("never", null, ...prefs.never.map((j) => xml("jid", null, j))));
}

export function decodePrefs(stored: string | null): Prefs {
  if (stored === null) return DEFAULT_PREFS;
  const p = JSON.parse(stored) as Prefs;
  return { default: p.default, always: p.always ?? [], never: p.never ?? [] };
}

/**
 * XEP-0441 §2.3: whether a listed JID covers the target: a full JID matches the target as is, a bare one
 * matches any resource of it.
 */
function listed(list: readonly string[], target: Jid): boolean {
  if (list.length === 0) return false;
  const bare = target.bareString();
  const full = target.toString();
  return list.some((j) => j === bare || j === full);
}

/**
 * Whether a message with `target` (the 'to' of an outgoing message, the 'from' of an incoming one) goes into
 * `owner`'s archive. `inRoster` is asked only for default='roster' and a JID in neither list.
 */
export function shouldArchive(prefs: Prefs, owner: string, target: Jid, inRoster: (owner: string, target: Jid) => Promise<boolean>): boolean | Promise<boolean> {
  if (listed(prefs.never, target)) return false;
  if (listed(prefs.always, target)) return true;
  if (prefs.default === "always") return true;
  if (prefs.default === "never") return false;
  return inRoster(owner, target);
}
