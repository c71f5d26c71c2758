// JID parsing and preparation, RFC 7622.
//
// The PRECIS profiles are approximated with the JavaScript Unicode tables:
//  - localpart: UsernameCaseMapped (RFC 7622 §3.3, RFC 8265 §3.3): width mapping, lower-case, NFC,
//    then the IdentifierClass (letters, digits, marks, printable ASCII) without compatibility
//    characters. The bidi rule (RFC 5893) is not checked.
//  - domainpart: IDNA2008-ish (RFC 7622 §3.2): lower-case + NFKC, ASCII labels (LDH and "_"),
//    U-labels, IPv4 and "[IPv6]" literals. A-labels are converted to U-labels.
//  - resourcepart: OpaqueString (RFC 7622 §3.4, RFC 8265 §4.2): non-ASCII spaces to U+0020, NFC,
//    FreeformClass minus control, surrogate and unassigned code points.
//
// parseJid() runs on every stanza's to/from, so plain ASCII input skips Unicode normalisation and
// results are kept in a bounded LRU map. Jid instances are frozen, so sharing them is safe.
import { isIPv4, isIPv6 } from "node:net";
import { domainToASCII, domainToUnicode } from "node:url";

export class JidError extends Error {
  override readonly name = "JidError";
}

// RFC 7622 §3.2, §3.3, §3.4: each part is 1..1023 octets of UTF-8.
const MAX_PART_BYTES = 1023;
const MAX_LABEL_BYTES = 63;

const PREPARED = Symbol("prepared jid parts");

export class Jid {
  readonly local: string;
  readonly domain: string;
  /** "" when absent. */
  readonly resource: string;
  readonly #full: string;
  /** Made once: a stanza's addresses are asked for their bare form many times on its way. */
  readonly #bare: string;

  /** Parts must already be prepared: build instances with jid() or parseJid(). */
  constructor(local: string, domain: string, resource: string, token: typeof PREPARED) {
    if (token !== PREPARED) throw new TypeError("construct JIDs with jid() or parseJid()");
    this.local = local;
    this.domain = domain;
    this.resource = resource;
    this.#bare = local === "" ? domain : `${local}@${domain}`;
    this.#full = resource === "" ? this.#bare : `${this.#bare}/${resource}`;
    Object.freeze(this);
  }

  get isBare(): boolean {
    return this.resource === "";
  }

  bare(): Jid {
    return this.resource === "" ? this : new Jid(this.local, this.domain, "", PREPARED);
  }

  /** withResource("") gives the bare JID. */
  withResource(r: string): Jid {
    if (r === "") return this.bare();
    return new Jid(this.local, this.domain, resourceprep(r), PREPARED);
  }

  toString(): string {
    return this.#full;
  }

  bareString(): string {
    return this.#bare;
  }

  equals(o: Jid): boolean {
    return this.#full === o.#full;
  }
}

/** Prepares and validates each part; an empty (or absent) local or resource means none. */
export function jid(local: string, domain: string, resource?: string): Jid {
  return new Jid(local === "" ? "" : nodeprep(local), nameprep(domain), resource ? resourceprep(resource) : "", PREPARED);
}

export function parseJid(s: string): Jid {
  let hit = recent.get(s);
  if (hit !== undefined) return hit;
  hit = older.get(s);
  if (hit !== undefined) {
    remember(s, hit);
    return hit;
  }
  const parsed = parseUncached(s);
  if (s.length <= MAX_CACHED_KEY_LENGTH) remember(s, parsed);
  return parsed;
}

export function tryParseJid(s: string | undefined | null): Jid | null {
  if (s === undefined || s === null) return null;
  try {
    return parseJid(s);
  } catch (e) {
    if (e instanceof JidError) return null;
    throw e;
  }
}

// Approximate LRU in two generations: hits in the older map are promoted, and when the recent map
// is full the older one is dropped whole. At most 2 × CACHE_GENERATION entries; no per-hit deletes
// (deleting from a large Map on every hit is slow in V8).
const CACHE_GENERATION = 5_000;
const MAX_CACHED_KEY_LENGTH = 512;
let recent = new Map<string, Jid>();
let older = new Map<string, Jid>();

function remember(s: string, j: Jid): void {
  if (recent.size >= CACHE_GENERATION) {
    older = recent;
    recent = new Map();
  }
  recent.set(s, j);
}

function parseUncached(s: string): Jid {
  // RFC 7622 §3.1: the resourcepart starts at the first "/", the localpart ends at the first "@"
  // before it.
  let rest = s;
  let resource = "";
  const slash = s.indexOf("/");
  if (slash >= 0) {
    resource = s.slice(slash + 1);
    rest = s.slice(0, slash);
    if (resource === "") throw new JidError("empty resourcepart");
  }
  let local = "";
  const at = rest.indexOf("@");
  if (at >= 0) {
    local = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (local === "") throw new JidError("empty localpart");
  }
  return new Jid(local === "" ? "" : nodeprep(local), nameprep(rest), resource === "" ? "" : resourceprep(resource), PREPARED);
}

function isPrintableAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function checkLength(s: string, what: string, ascii: boolean): void {
  const n = ascii ? s.length : utf8Length(s);
  if (n === 0) throw new JidError(`empty ${what}`);
  if (n > MAX_PART_BYTES) throw new JidError(`${what} longer than ${MAX_PART_BYTES} octets`);
}

// RFC 7622 §3.3.1: characters a localpart must not contain, in addition to the IdentifierClass
// exclusions (spaces and controls).
const LOCAL_FORBIDDEN_ASCII = new Uint8Array(128);
for (const c of '"&\'/:<>@') LOCAL_FORBIDDEN_ASCII[c.charCodeAt(0)] = 1;
const LOCAL_UNICODE_ALLOWED = /^[\x21-\x7e\p{Ll}\p{Lu}\p{Lo}\p{Lm}\p{Nd}\p{Mn}\p{Mc}]+$/u;
const FULLWIDTH = /[\uff01-\uffef]/gu;

export function nodeprep(local: string): string {
  let out: string;
  const ascii = isPrintableAscii(local);
  if (ascii) {
    out = local.toLowerCase();
  } else {
    // RFC 8265 §3.3.2 (UsernameCaseMapped): width mapping, case mapping, NFC.
    out = local.replace(FULLWIDTH, (c) => c.normalize("NFKC")).toLowerCase().normalize("NFC");
    if (!LOCAL_UNICODE_ALLOWED.test(out)) throw new JidError("localpart contains a disallowed character");
    // IdentifierClass disallows compatibility equivalents (RFC 8264 §9.17): "henryⅣ" is invalid.
    if (out.normalize("NFKC") !== out) throw new JidError("localpart contains a compatibility character");
  }
  for (let i = 0; i < out.length; i++) {
    const c = out.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || (c < 0x80 && LOCAL_FORBIDDEN_ASCII[c] === 1)) throw new JidError("localpart contains a disallowed character");
  }
  checkLength(out, "localpart", ascii);
  return out;
}

const ASCII_LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
// Fast path: a whole domain of LDH/"_" labels of at most 63 octets each.
const PLAIN_ASCII_DOMAIN = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const UNICODE_LABEL = /^[\p{L}\p{Nd}\p{Mn}\p{Mc}](?:[\p{L}\p{Nd}\p{Mn}\p{Mc}-]*[\p{L}\p{Nd}\p{Mn}\p{Mc}])?$/u;
const IDEOGRAPHIC_DOTS = /[\u3002\uff0e\uff61]/gu;

export function nameprep(domain: string): string {
  const ascii = isPrintableAscii(domain);
  let d = ascii ? domain : domain.replace(IDEOGRAPHIC_DOTS, ".");
  // RFC 7622 §3.2: a final label separator is stripped before any other canonicalisation.
  if (d.endsWith(".")) d = d.slice(0, -1);
  if (d === "") throw new JidError("empty domainpart");
  d = ascii ? d.toLowerCase() : d.normalize("NFKC").toLowerCase().normalize("NFC");
  if (ascii && d.length <= MAX_PART_BYTES && PLAIN_ASCII_DOMAIN.test(d) && !d.includes("xn--")) return d;

  if (d.charCodeAt(0) === 0x5b /* [ */) {
    // RFC 7622 §3.2: IP literals as in RFC 3986 §3.2.2.
    if (!d.endsWith("]") || !isIPv6(d.slice(1, -1))) throw new JidError("invalid IPv6 literal domainpart");
    return d;
  }
  if (isIPv4(d)) return d;

  let changed = false;
  const labels = d.split(".");
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    const prepared = prepareLabel(label);
    if (prepared !== label) {
      labels[i] = prepared;
      changed = true;
    }
  }
  if (changed) d = labels.join(".");
  checkLength(d, "domainpart", !changed && ascii);
  return d;
}

function prepareLabel(label: string): string {
  if (label === "") throw new JidError("empty label in domainpart");
  if (isPrintableAscii(label)) {
    if (label.length > MAX_LABEL_BYTES || !ASCII_LABEL.test(label)) throw new JidError(`invalid domain label "${label}"`);
    if (!label.startsWith("xn--")) return label;
    // RFC 7622 §3.2.1: A-labels are converted to U-labels.
    const uLabel = domainToUnicode(label);
    if (uLabel === "" || uLabel === label || uLabel.includes(".") || isPrintableAscii(uLabel)) {
      throw new JidError(`invalid A-label "${label}"`);
    }
    return prepareUnicodeLabel(uLabel.normalize("NFC"));
  }
  return prepareUnicodeLabel(label);
}

function prepareUnicodeLabel(label: string): string {
  if (!UNICODE_LABEL.test(label)) throw new JidError(`invalid domain label "${label}"`);
  const aLabel = domainToASCII(label);
  if (aLabel === "" || aLabel.length > MAX_LABEL_BYTES) throw new JidError(`invalid domain label "${label}"`);
  return label;
}

const NON_ASCII_SPACE = /\p{Zs}/gu;
const RESOURCE_DISALLOWED = /[\p{Cc}\p{Cs}\p{Cn}]/u;

export function resourceprep(r: string): string {
  if (isPrintableAscii(r)) {
    checkLength(r, "resourcepart", true);
    return r;
  }
  // RFC 8265 §4.2.2 (OpaqueString): map non-ASCII spaces to SPACE, NFC.
  const out = r.replace(NON_ASCII_SPACE, " ").normalize("NFC");
  if (RESOURCE_DISALLOWED.test(out)) throw new JidError("resourcepart contains a disallowed character");
  checkLength(out, "resourcepart", false);
  return out;
}
