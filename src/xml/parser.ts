// Streaming XML parser for XMPP (RFC 6120 §11 restricted XML, RFC 7395 framing).
//
// One explicit state machine over the decoded input. Each write() is scanned once, left to right;
// only the unfinished token (a name, an attribute value, a text run, an entity) is carried into the
// next write, as an accumulated string, so a stanza delivered one byte at a time costs the same as one
// delivered whole. Every buffer the parser keeps is bounded by a limit, and every violation is reported
// once, through onError, with the stream error condition to send.
import { isUtf8 } from "node:buffer";
import { Element } from "./element.js";
import { NS } from "./ns.js";
import type { StreamErrorCondition } from "./stanza.js";

/** Each error carries the RFC 6120 §4.9.3 stream error condition a session answers it with. */
export type XmlErrorCondition = Extract<
  StreamErrorCondition,
  "not-well-formed" | "bad-namespace-prefix" | "restricted-xml" | "policy-violation" | "unsupported-encoding" | "bad-format"
>;

export class XmlError extends Error {
  constructor(
    readonly condition: XmlErrorCondition,
    message: string,
  ) {
    super(message);
    this.name = "XmlError";
  }
}

export interface ParserLimits {
  /** Raw bytes of one stanza (stream mode) or one top-level element (framed mode); also bounds the stream header. */
  maxStanzaBytes: number;
  /** Nesting depth inside one stanza; the stanza element itself is depth 1. */
  maxDepth: number;
  /** Attributes (namespace declarations included) on one element. */
  maxAttributes: number;
  /** UTF-16 code units of an element or attribute name. */
  maxNameLength: number;
  /** Raw bytes of one attribute value; unset means only maxStanzaBytes applies. */
  maxAttributeValueBytes?: number;
}

export const defaultParserLimits: ParserLimits = Object.freeze({
  maxStanzaBytes: 262144,
  maxDepth: 64,
  maxAttributes: 64,
  maxNameLength: 256,
});

export interface ParserHandler {
  /** The `<stream:stream …>` open tag (stream mode only); called as soon as the tag is complete. */
  onStreamStart(name: string, attrs: Record<string, string>): void;
  /** Each complete depth-1 child (stream mode) or each complete top-level element (framed mode). */
  onStanza(el: Element): void;
  /** The close tag of the stream header. */
  onStreamEnd(): void;
  /** Called once; the parser then ignores all input until reset(). */
  onError(err: XmlError): void;
}

export interface StreamParserOptions {
  limits?: Partial<ParserLimits>;
  /** RFC 7395: every top-level element is a stanza, there is no stream header element. */
  framed?: boolean;
}

// Longest XML declaration we buffer (`<?xml version='1.0' encoding='UTF-8' standalone='yes'?>` is 55).
const MAX_DECL_LENGTH = 1024;
// Longest entity reference body between `&` and `;` (`#x` + leading zeros are legal, so be generous).
const MAX_ENTITY_LENGTH = 32;

/** Where a parser holds no tag's attributes (never written to: every start tag gets an object of its own). */
const NO_ATTRS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** The bindings of the usual stream header (xmlns:stream only), shared by the parsers of such streams. */
const USUAL = {
  prefix: ["stream"], key: ["xmlns:stream"], uri: [NS.stream], depth: [0],
};

/**
 * A name the stream header bound, to keep for the stream's life, in storage of its own: V8 keeps a slice of
 * 13 characters or more as a view of the string it was cut from, which then lives as long as the slice does.
 */
function ownCopy(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, "utf8").toString("utf8");
}

/**
 * Appends a parsed child. The first one gets an array of its own size: a push into the element's empty array
 * made room for 17 (some 150 bytes), kept with every stanza that waits for its commit; most elements of a
 * stanza have one child.
 */
function addChild(parent: Element, child: Element | string): void {
  const children = parent.children;
  if (children.length === 0) parent.children = [child];
  else children.push(child);
}

// States. "Between" means outside any stanza: the prolog, depth 1 of a stream, depth 0 in framed mode.
const S_START = 0; // nothing consumed yet: an XML declaration may follow
const S_START_LT = 1; // `<` at the very start
const S_BETWEEN = 2; // whitespace only, until `<`
const S_LT = 3; // after `<`
const S_START_NAME = 4; // element name of a start tag
const S_TAG_SPACE = 5; // after the element name or an attribute value: whitespace, `>` or `/`
const S_TAG = 6; // inside a start tag after whitespace
const S_ATTR_NAME = 7;
const S_ATTR_EQ = 8; // after an attribute name, expecting `=`
const S_ATTR_QUOTE = 9; // after `=`, expecting a quote
const S_ATTR_VALUE = 10;
const S_EMPTY_GT = 11; // after `/` in a start tag
const S_END_START = 12; // after `</`
const S_END_NAME = 13;
const S_END_GT = 14; // after the name of an end tag
const S_TEXT = 15; // character data inside a stanza
const S_ENTITY = 16; // after `&`
const S_BANG = 17; // after `<!`
const S_CDATA_OPEN = 18; // matching `[CDATA[`
const S_CDATA = 19;
const S_DECL = 20; // inside `<?xml … ?>`
const S_DONE = 21; // after the stream's end tag: whitespace only

const CH_NAME_START = 1;
const CH_NAME = 2;
const CH_WS = 4;
const CHAR_CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  if (letter || c === 0x5f /* _ */ || c === 0x3a /* : */) CHAR_CLASS[c] |= CH_NAME_START | CH_NAME;
  if ((c >= 0x30 && c <= 0x39) || c === 0x2d /* - */ || c === 0x2e /* . */) CHAR_CLASS[c] |= CH_NAME;
  if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) CHAR_CLASS[c] |= CH_WS;
}
const CDATA_OPEN = "[CDATA[";
const XML_DECL =
  /^xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?:"1\.0"|'1\.0')(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?:"([A-Za-z][\w.-]*)"|'([A-Za-z][\w.-]*)'))?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(?:"(?:yes|no)"|'(?:yes|no)'))?[ \t\r\n]*\?>$/;

// Namespaces in XML 1.0 §3: the two reserved prefixes and their namespace names.
const XML_NS = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NS = "http://www.w3.org/2000/xmlns/";

// XML 1.0 (5th ed.) NameStartChar / NameChar outside ASCII, BMP part; astral names are checked by the caller.
function isNameStartBmp(c: number): boolean {
  return (
    (c >= 0xc0 && c <= 0xd6) ||
    (c >= 0xd8 && c <= 0xf6) ||
    (c >= 0xf8 && c <= 0x2ff) ||
    (c >= 0x370 && c <= 0x37d) ||
    (c >= 0x37f && c <= 0x1fff) ||
    c === 0x200c ||
    c === 0x200d ||
    (c >= 0x2070 && c <= 0x218f) ||
    (c >= 0x2c00 && c <= 0x2fef) ||
    (c >= 0x3001 && c <= 0xd7ff) ||
    (c >= 0xf900 && c <= 0xfdcf) ||
    (c >= 0xfdf0 && c <= 0xfffd)
  );
}

function isNameCharBmp(c: number): boolean {
  return isNameStartBmp(c) || c === 0xb7 || (c >= 0x300 && c <= 0x36f) || c === 0x203f || c === 0x2040;
}

/** True if a NameStartChar begins at s[i]. */
function isNameStartAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c < 128) return (CHAR_CLASS[c] & CH_NAME_START) !== 0;
  if (c >= 0xd800 && c <= 0xdb7f) {
    // U+10000–U+EFFFF
    const d = s.charCodeAt(i + 1);
    return d >= 0xdc00 && d <= 0xdfff;
  }
  return isNameStartBmp(c);
}

/** Namespaces in XML 1.0 §4 QName with its (first) colon at `colon`: `Prefix:LocalPart`, both NCNames. */
function isQName(name: string, colon: number): boolean {
  return colon > 0 && colon < name.length - 1 && name.indexOf(":", colon + 1) < 0 && isNameStartAt(name, colon + 1);
}

// Names are cut out of the input again and again, and a freshly cut string used as a property key costs a
// hash-table lookup to internalize. Short names are therefore looked up, in place, in a small cache of
// strings seen before (seeded with XMPP's usual ones), so the same string object comes back every time.
const NAME_CACHE_SIZE = 1024;
const NAME_CACHE_MAX_LENGTH = 32;
const nameCache: string[] = new Array<string>(NAME_CACHE_SIZE).fill("");

function nameHash(s: string, start: number, end: number): number {
  return (s.charCodeAt(start) * 33 + s.charCodeAt(end - 1) * 7 + s.charCodeAt(start + ((end - start) >> 1)) + (end - start) * 131) & (NAME_CACHE_SIZE - 1);
}

function cutName(s: string, start: number, end: number): string {
  const length = end - start;
  if (length > NAME_CACHE_MAX_LENGTH) return s.slice(start, end);
  const h = nameHash(s, start, end);
  const cached = nameCache[h];
  if (cached.length === length) {
    let k = 0;
    while (k < length && cached.charCodeAt(k) === s.charCodeAt(start + k)) k++;
    if (k === length) return cached;
  }
  return (nameCache[h] = s.slice(start, end));
}

for (const name of [
  ..."stream:stream stream:features stream:error message presence iq body subject thread show status priority error query item x c".split(" "),
  ..."to from type id xmlns xml:lang version xmlns:stream jid name node subscription ask ver hash code by mechanism".split(" "),
]) {
  nameCache[nameHash(name, 0, name.length)] = name;
}

/** Char allowed by XML 1.0 production [2]. */
function isXmlChar(cp: number): boolean {
  return cp >= 0x20 ? cp <= 0xd7ff || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff) : cp === 0x9 || cp === 0xa || cp === 0xd;
}

/** The text of an entity or character reference (without `&` and `;`), or null if it is not allowed. */
function decodeReference(ref: string): string | null {
  switch (ref) {
    case "lt":
      return "<";
    case "gt":
      return ">";
    case "amp":
      return "&";
    case "quot":
      return '"';
    case "apos":
      return "'";
  }
  if (ref.charCodeAt(0) !== 0x23 /* # */) return null;
  let cp = 0;
  const hex = ref.charCodeAt(1) === 0x78; /* x */
  const from = hex ? 2 : 1;
  if (ref.length <= from) return null;
  for (let k = from; k < ref.length; k++) {
    const c = ref.charCodeAt(k);
    let digit: number;
    if (c >= 0x30 && c <= 0x39) digit = c - 0x30;
    else if (hex && c >= 0x61 && c <= 0x66) digit = c - 0x57;
    else if (hex && c >= 0x41 && c <= 0x46) digit = c - 0x37;
    else return null;
    cp = cp * (hex ? 16 : 10) + digit;
    if (cp > 0x10ffff) return null;
  }
  return isXmlChar(cp) ? String.fromCodePoint(cp) : null;
}

export class StreamParser {
  private readonly handler: ParserHandler;
  private readonly framed: boolean;
  private maxStanzaBytes: number;
  private readonly maxDepth: number;
  private readonly maxAttributes: number;
  private readonly maxNameLength: number;
  private readonly maxValueBytes: number;

  private state = S_START;
  private failed = false;
  private ended = false;
  private writing = false;
  /** Bumped by reset() and by an error, so the scan loop notices either from inside a handler callback. */
  private epoch = 0;

  // Input decoding: the incomplete UTF-8 sequence at the end of the last Buffer, or a trailing high
  // surrogate of the last string, waiting for the rest of the character.
  private utf8Tail: Buffer | null = null;
  private highSurrogate = "";

  // Byte accounting. The absolute byte offset of index i of the string being scanned is
  // chunkBase + i + extra, where extra counts the UTF-8 bytes beyond one per UTF-16 unit seen so far.
  private chunkBase = 0;
  private extra = 0;
  /** Absolute offset of the `<` that opened the current stanza (or header, declaration); -1 outside one. */
  private tokenStart = -1;
  private valueStart = 0;

  // The unfinished token, carried across writes.
  private name = "";
  private value = "";
  private text = "";
  private entity = "";
  private entityReturn = S_TEXT;
  private quote = 0;
  private cdataMatched = 0;
  /** Run of `]` inside CDATA not yet added to text; in S_DECL, 1 after a `?`. */
  private brackets = 0;
  /** The last char of the previous write was a CR inside text/value: a following LF belongs to it. */
  private afterCR = false;
  // The last two chars of the previous write, to spot `]]>` split across writes.
  private prev1 = 0;
  private prev2 = 0;

  // The start tag being read.
  private tagName = "";
  private attrName = "";
  private attrs: Record<string, string> = {};
  /** The element whose start tag is being read; null for the stream header. */
  private element: Element | null = null;
  private attrCount = 0;

  /** Open elements of the current stanza; stack[0] is the stanza. */
  private stack: Element[] = [];
  /** Stream mode: name of the open stream header element, null before it. */
  private rootName: string | null = null;

  // Namespaces in XML: the prefix bindings in scope, innermost last, each with the depth of the element
  // that declared it (0 = the stream header, 1 = a stanza). The first nsBase are the header's.
  private nsPrefix: string[] = [];
  /** The declaring attribute's name (`xmlns:p`), to copy it by. */
  private nsKey: string[] = [];
  private nsUri: string[] = [];
  private nsDepth: number[] = [];
  private nsCount = 0;
  private nsBase = 0;
  /** The start tag being read has a prefixed name or a prefixed attribute: its namespaces need checking. */
  private tagHasPrefix = false;
  /** The name being scanned has a colon so far; the attribute name just read has one. */
  private nameHasColon = false;
  private attrHasColon = false;

  constructor(handler: ParserHandler, options: StreamParserOptions = {}) {
    this.handler = handler;
    this.framed = options.framed === true;
    const limits = { ...defaultParserLimits, ...options.limits };
    this.maxStanzaBytes = limits.maxStanzaBytes;
    this.maxDepth = limits.maxDepth;
    this.maxAttributes = limits.maxAttributes;
    this.maxNameLength = limits.maxNameLength;
    this.maxValueBytes = limits.maxAttributeValueBytes ?? Infinity;
  }

  write(chunk: Buffer | string): void {
    if (this.failed || this.ended) return;
    let s: string;
    if (typeof chunk === "string") {
      if (this.utf8Tail !== null) return this.fail("not-well-formed", "truncated UTF-8 sequence");
      s = this.highSurrogate === "" ? chunk : this.highSurrogate + chunk;
      this.highSurrogate = "";
      const last = s.charCodeAt(s.length - 1);
      if (last >= 0xd800 && last <= 0xdbff) {
        this.highSurrogate = s.slice(-1);
        s = s.slice(0, -1);
      }
    } else {
      if (this.highSurrogate !== "") return this.fail("not-well-formed", "lone surrogate");
      const decoded = this.decode(chunk);
      if (decoded === null) return this.fail("not-well-formed", "invalid UTF-8");
      s = decoded;
    }
    if (s.length === 0) return;
    this.writing = true;
    try {
      this.process(s);
    } catch (err) {
      // A handler threw: its exception is not ours to report, but the scan stopped at an unknown point.
      this.failed = true;
      this.epoch++;
      throw err;
    } finally {
      this.writing = false;
    }
  }

  /** Raises or lowers the stanza size limit from the next element on (s2s: larger once the peer authenticated). */
  setMaxStanzaBytes(bytes: number): void {
    this.maxStanzaBytes = bytes;
  }

  /** RFC 6120 §4.3.3: after STARTTLS or SASL success both sides start a new stream over the same connection. */
  reset(): void {
    this.epoch++;
    this.state = S_START;
    this.failed = false;
    this.ended = false;
    // Called from a handler during write(), the decoder already holds bytes that follow the restart point.
    if (!this.writing) {
      this.utf8Tail = null;
      this.highSurrogate = "";
    }
    this.chunkBase = 0;
    this.extra = 0;
    this.tokenStart = -1;
    this.name = "";
    this.value = "";
    this.text = "";
    this.entity = "";
    this.brackets = 0;
    this.afterCR = false;
    this.prev1 = 0;
    this.prev2 = 0;
    this.attrs = {};
    this.attrCount = 0;
    this.element = null;
    this.stack = [];
    this.rootName = null;
    this.nsCount = 0;
    this.nsBase = 0;
  }

  /**
   * End of input. Reports not-well-formed if it cuts a stanza, a tag or a character short. In stream mode
   * a missing `</stream:stream>` is not reported: a peer that simply closes the connection is routine.
   */
  end(): void {
    if (this.failed || this.ended) return;
    if (this.utf8Tail !== null || this.highSurrogate !== "") return this.fail("not-well-formed", "truncated character at end of input");
    const state = this.state;
    if (state !== S_START && state !== S_BETWEEN && state !== S_DONE) return this.fail("not-well-formed", "unexpected end of input");
    this.ended = true;
  }

  /** Decodes one Buffer, keeping an incomplete trailing UTF-8 sequence for the next; null if invalid. */
  private decode(buf: Buffer): string | null {
    let start = 0;
    let head = "";
    const tail = this.utf8Tail;
    if (tail !== null) {
      const lead = tail[0];
      const need = (lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2) - tail.length;
      const take = Math.min(need, buf.length);
      for (let k = 0; k < take; k++) if ((buf[k] & 0xc0) !== 0x80) return null;
      const joined = Buffer.concat([tail, buf.subarray(0, take)]);
      if (take < need) {
        this.utf8Tail = joined;
        return "";
      }
      if (!isUtf8(joined)) return null;
      this.utf8Tail = null;
      head = joined.toString("utf8");
      start = take;
    }
    let end = buf.length;
    // Look back over at most three continuation bytes for the lead byte of an incomplete sequence.
    let k = end - 1;
    while (k >= start && k > end - 4 && (buf[k] & 0xc0) === 0x80) k--;
    if (k >= start && buf[k] >= 0xc0) {
      const size = buf[k] >= 0xf0 ? 4 : buf[k] >= 0xe0 ? 3 : 2;
      if (end - k < size) {
        this.utf8Tail = Buffer.from(buf.subarray(k, end));
        end = k;
      }
    }
    if (start === end) return head;
    const body = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    if (!isUtf8(body)) return null;
    return head === "" ? body.toString("utf8") : head + body.toString("utf8");
  }

  private fail(condition: XmlErrorCondition, message: string): void {
    this.failed = true;
    this.epoch++;
    this.stack = [];
    this.text = this.value = this.name = "";
    this.handler.onError(new XmlError(condition, message));
  }

  /** Consumes the non-ASCII char at s[i] (c = its code unit): counts its bytes; returns its last index, or -1 if not allowed. */
  private nonAscii(s: string, i: number, c: number): number {
    if (c < 0x800) {
      this.extra += 1;
      return i;
    }
    if (c < 0xd800 || (c > 0xdfff && c < 0xfffe)) {
      this.extra += 2;
      return i;
    }
    if (c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        this.extra += 2; // 4 bytes for 2 units
        return i + 1;
      }
    }
    return -1; // lone surrogate, U+FFFE, U+FFFF
  }

  /** Index of the first char at or after i that is not a NameChar, counting bytes of what it passes. */
  private scanName(s: string, i: number, len: number): number {
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c < 128) {
        if ((CHAR_CLASS[c] & CH_NAME) === 0) return i;
        if (c === 0x3a) this.nameHasColon = true;
      } else if (c >= 0xd800 && c <= 0xdb7f) {
        const d = s.charCodeAt(i + 1);
        if (!(d >= 0xdc00 && d <= 0xdfff)) return i;
        this.extra += 2;
        i++;
      } else {
        if (!isNameCharBmp(c)) return i;
        this.extra += c < 0x800 ? 1 : 2;
      }
    }
    return i;
  }

  /** `]]>` ends at s[i]: the two raw chars before i are `]`, possibly from the previous write. */
  private bracketsBefore(s: string, i: number): boolean {
    const c1 = i >= 1 ? s.charCodeAt(i - 1) : this.prev1;
    const c2 = i >= 2 ? s.charCodeAt(i - 2) : i === 1 ? this.prev1 : this.prev2;
    return c1 === 0x5d && c2 === 0x5d;
  }

  private process(s: string): void {
    const len = s.length;
    const epoch = this.epoch;
    let state = this.state;
    let i = 0;
    if (this.afterCR) {
      this.afterCR = false;
      if (s.charCodeAt(0) === 0x0a && (state === S_TEXT || state === S_ATTR_VALUE || state === S_CDATA)) i = 1;
    }

    while (i < len) {
      switch (state) {
        case S_TEXT: {
          let seg = i;
          for (; i < len; i++) {
            const c = s.charCodeAt(i);
            if (c > 0x3e && c < 0x7f) continue;
            if (c === 0x3c /* < */ || c === 0x26 /* & */) break;
            if (c >= 0x20 && c < 0x80) {
              if (c === 0x3e && this.bracketsBefore(s, i)) return this.fail("not-well-formed", "']]>' in character data");
              continue;
            }
            if (c < 0x20) {
              if (c === 0x0a || c === 0x09) continue;
              if (c !== 0x0d) return this.fail("not-well-formed", "character not allowed in XML");
              // XML 1.0 §2.11: CRLF and lone CR become LF
              this.text += s.slice(seg, i) + "\n";
              if (i + 1 < len) {
                if (s.charCodeAt(i + 1) === 0x0a) i++;
              } else this.afterCR = true;
              seg = i + 1;
              continue;
            }
            i = this.nonAscii(s, i, c);
            if (i < 0) return this.fail("not-well-formed", "character not allowed in XML");
          }
          this.text += s.slice(seg, i);
          if (i < len) {
            if (s.charCodeAt(i) === 0x26) {
              this.entity = "";
              this.entityReturn = S_TEXT;
              state = S_ENTITY;
            } else state = S_LT;
            i++;
          }
          break;
        }

        case S_BETWEEN:
        case S_DONE: {
          for (; i < len; i++) {
            const c = s.charCodeAt(i);
            if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
            if (c === 0x3c && state === S_BETWEEN) {
              this.tokenStart = this.chunkBase + i + this.extra;
              state = S_LT;
              i++;
              break;
            }
            if (state === S_DONE) return this.fail("not-well-formed", "content after the end of the stream");
            return this.fail("not-well-formed", this.framed || this.rootName !== null ? "text outside a stanza" : "text before the stream header");
          }
          break;
        }

        case S_LT: {
          const c = s.charCodeAt(i);
          if (isNameStartAt(s, i)) {
            if (this.text !== "") {
              addChild(this.stack[this.stack.length - 1], this.text);
              this.text = "";
            }
            this.nameHasColon = false;
            state = S_START_NAME;
          } else if (c === 0x2f /* / */) {
            if (this.text !== "") {
              addChild(this.stack[this.stack.length - 1], this.text);
              this.text = "";
            }
            state = S_END_START;
            i++;
          } else if (c === 0x21 /* ! */) {
            state = S_BANG;
            i++;
          } else if (c === 0x3f /* ? */) {
            return this.fail("restricted-xml", "processing instructions are not allowed");
          } else return this.fail("not-well-formed", "invalid character after '<'");
          break;
        }

        case S_START_NAME:
        case S_ATTR_NAME:
        case S_END_NAME: {
          const seg = i;
          i = this.scanName(s, i, len);
          let name: string;
          if (state === S_END_NAME && this.name === "" && i < len) {
            // the usual end tag: compare in place instead of cutting out a copy of the name
            const stack = this.stack;
            const expected = stack.length > 0 ? stack[stack.length - 1].name : this.rootName;
            name = expected !== null && i - seg === expected.length && s.startsWith(expected, seg) ? expected : s.slice(seg, i);
          } else name = this.name === "" ? cutName(s, seg, i) : this.name + s.slice(seg, i);
          if (name.length > this.maxNameLength) return this.fail("policy-violation", "name too long");
          if (i === len) {
            this.name = name;
            break;
          }
          this.name = "";
          const c = s.charCodeAt(i);
          const ws = c < 128 && (CHAR_CLASS[c] & CH_WS) !== 0;
          if (state === S_START_NAME) {
            this.tagName = name;
            if (!this.framed && this.rootName === null) {
              this.element = null;
              this.attrs = {};
            } else {
              // attributes go straight into the element's own attrs object
              this.element = new Element(name);
              this.attrs = this.element.attrs;
            }
            this.attrCount = 0;
            this.tagHasPrefix = this.nameHasColon;
            state = S_TAG_SPACE;
          } else if (state === S_ATTR_NAME) {
            this.attrName = name;
            this.attrHasColon = this.nameHasColon;
            if (c === 0x3d /* = */) {
              state = S_ATTR_QUOTE;
              i++;
            } else if (ws) state = S_ATTR_EQ;
            else return this.fail("not-well-formed", "invalid character in attribute name");
          } else {
            if (c === 0x3e /* > */) {
              i++;
              state = this.endTag(name, i);
              if (this.epoch !== epoch) return this.afterCallback(s, i);
            } else if (ws) {
              this.tagName = name;
              state = S_END_GT;
            } else return this.fail("not-well-formed", "invalid character in end tag");
          }
          break;
        }

        case S_TAG_SPACE:
        case S_TAG: {
          const c = s.charCodeAt(i);
          if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) {
            state = S_TAG;
            i++;
          } else if (c === 0x3e) {
            i++;
            state = this.startTag(false, i);
            if (this.epoch !== epoch) return this.afterCallback(s, i);
          } else if (c === 0x2f) {
            state = S_EMPTY_GT;
            i++;
          } else if (state === S_TAG && isNameStartAt(s, i)) {
            this.nameHasColon = false;
            state = S_ATTR_NAME;
          } else return this.fail("not-well-formed", state === S_TAG ? "invalid character in tag" : "missing whitespace between attributes");
          break;
        }

        case S_ATTR_EQ:
        case S_ATTR_QUOTE: {
          const c = s.charCodeAt(i);
          if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) {
            i++;
          } else if (state === S_ATTR_EQ) {
            if (c !== 0x3d) return this.fail("not-well-formed", "attribute without value");
            state = S_ATTR_QUOTE;
            i++;
          } else {
            if (c !== 0x22 && c !== 0x27) return this.fail("not-well-formed", "attribute value without quotes");
            this.quote = c;
            this.value = "";
            i++;
            this.valueStart = this.chunkBase + i + this.extra;
            state = S_ATTR_VALUE;
          }
          break;
        }

        case S_ATTR_VALUE: {
          const quote = this.quote;
          let seg = i;
          for (; i < len; i++) {
            const c = s.charCodeAt(i);
            if (c > 0x3c && c < 0x7f) continue;
            if (c === quote || c === 0x26 || c === 0x3c) break;
            if (c >= 0x20 && c < 0x80) continue;
            if (c < 0x20) {
              if (c !== 0x0a && c !== 0x09 && c !== 0x0d) return this.fail("not-well-formed", "character not allowed in XML");
              // XML 1.0 §3.3.3: literal whitespace in an attribute value is normalized to a space
              this.value += s.slice(seg, i) + " ";
              if (c === 0x0d) {
                if (i + 1 < len) {
                  if (s.charCodeAt(i + 1) === 0x0a) i++;
                } else this.afterCR = true;
              }
              seg = i + 1;
              continue;
            }
            i = this.nonAscii(s, i, c);
            if (i < 0) return this.fail("not-well-formed", "character not allowed in XML");
          }
          this.value += s.slice(seg, i);
          if (i === len) break;
          const c = s.charCodeAt(i);
          if (c === 0x3c) return this.fail("not-well-formed", "'<' in attribute value");
          if (c === 0x26) {
            this.entity = "";
            this.entityReturn = S_ATTR_VALUE;
            state = S_ENTITY;
            i++;
            break;
          }
          if (this.chunkBase + i + this.extra - this.valueStart > this.maxValueBytes) return this.fail("policy-violation", "attribute value too long");
          i++;
          if (++this.attrCount > this.maxAttributes) return this.fail("policy-violation", "too many attributes");
          const attrs = this.attrs;
          const attrName = this.attrName;
          if (Object.hasOwn(attrs, attrName)) return this.fail("not-well-formed", "duplicate attribute");
          if (attrName === "__proto__") Object.defineProperty(attrs, attrName, { value: this.value, enumerable: true, writable: true, configurable: true });
          else attrs[attrName] = this.value;
          // `xml:lang` (the one prefixed name in everyday traffic) is bound by definition and needs no check.
          if (this.attrHasColon) {
            if (attrName !== "xml:lang") this.tagHasPrefix = true;
          } else if (attrName === "xmlns" && (this.value === XML_NS || this.value === XMLNS_NS)) {
            // Namespaces in XML 1.0 §3 (Reserved Prefixes and Namespace Names)
            return this.fail("not-well-formed", "a reserved namespace name as the default namespace");
          }
          this.value = "";
          state = S_TAG_SPACE;
          break;
        }

        case S_EMPTY_GT: {
          if (s.charCodeAt(i) !== 0x3e) return this.fail("not-well-formed", "expected '>' after '/'");
          i++;
          state = this.startTag(true, i);
          if (this.epoch !== epoch) return this.afterCallback(s, i);
          break;
        }

        case S_END_START: {
          if (!isNameStartAt(s, i)) return this.fail("not-well-formed", "invalid end tag name");
          state = S_END_NAME;
          break;
        }

        case S_END_GT: {
          const c = s.charCodeAt(i);
          if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) {
            i++;
          } else if (c === 0x3e) {
            i++;
            state = this.endTag(this.tagName, i);
            if (this.epoch !== epoch) return this.afterCallback(s, i);
          } else return this.fail("not-well-formed", "invalid character in end tag");
          break;
        }

        case S_ENTITY: {
          const seg = i;
          for (; i < len; i++) {
            const c = s.charCodeAt(i);
            if (c === 0x3b /* ; */) break;
            const refChar = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x23;
            if (!refChar || this.entity.length + (i - seg) >= MAX_ENTITY_LENGTH) return this.fail("not-well-formed", "unescaped '&' or malformed reference");
          }
          this.entity += s.slice(seg, i);
          if (i === len) break;
          i++;
          const decoded = decodeReference(this.entity);
          if (decoded === null) {
            return this.fail(
              "not-well-formed",
              this.entity.charCodeAt(0) === 0x23 ? "character reference to a character not allowed in XML" : `undefined entity '&${this.entity};'`,
            );
          }
          this.entity = "";
          state = this.entityReturn;
          if (state === S_TEXT) this.text += decoded;
          else this.value += decoded;
          break;
        }

        case S_BANG: {
          const c = s.charCodeAt(i);
          if (c === 0x5b /* [ */ && this.stack.length > 0) {
            state = S_CDATA_OPEN;
            this.cdataMatched = 1;
            i++;
          } else if (c === 0x5b) {
            return this.fail("not-well-formed", "CDATA section outside an element");
          } else {
            return this.fail("restricted-xml", c === 0x2d ? "comments are not allowed" : c === 0x44 ? "DTDs are not allowed" : "markup declarations are not allowed");
          }
          break;
        }

        case S_CDATA_OPEN: {
          for (; i < len && this.cdataMatched < CDATA_OPEN.length; i++, this.cdataMatched++) {
            if (s.charCodeAt(i) !== CDATA_OPEN.charCodeAt(this.cdataMatched)) return this.fail("not-well-formed", "malformed CDATA section");
          }
          if (this.cdataMatched === CDATA_OPEN.length) {
            state = S_CDATA;
            this.brackets = 0;
          }
          break;
        }

        case S_CDATA: {
          let seg = i;
          let closed = false;
          for (; i < len; i++) {
            const c = s.charCodeAt(i);
            if (c === 0x5d) {
              if (this.brackets === 0) this.text += s.slice(seg, i);
              this.brackets++;
              seg = i + 1;
              continue;
            }
            if (this.brackets > 0) {
              const run = this.brackets;
              this.brackets = 0;
              if (c === 0x3e && run >= 2) {
                if (run > 2) this.text += "]".repeat(run - 2);
                closed = true;
                break;
              }
              this.text += "]".repeat(run);
              seg = i;
            }
            if (c >= 0x20 && c < 0x80) continue;
            if (c < 0x20) {
              if (c === 0x0a || c === 0x09) continue;
              if (c !== 0x0d) return this.fail("not-well-formed", "character not allowed in XML");
              this.text += s.slice(seg, i) + "\n";
              if (i + 1 < len) {
                if (s.charCodeAt(i + 1) === 0x0a) i++;
              } else this.afterCR = true;
              seg = i + 1;
              continue;
            }
            i = this.nonAscii(s, i, c);
            if (i < 0) return this.fail("not-well-formed", "character not allowed in XML");
          }
          if (closed) {
            i++;
            state = S_TEXT;
          } else if (seg < i) this.text += s.slice(seg, i);
          break;
        }

        case S_START: {
          if (s.charCodeAt(i) === 0x3c) {
            this.tokenStart = this.chunkBase + i + this.extra;
            state = S_START_LT;
            i++;
          } else state = S_BETWEEN;
          break;
        }

        case S_START_LT: {
          if (s.charCodeAt(i) === 0x3f) {
            this.value = "";
            this.brackets = 0;
            state = S_DECL;
            i++;
          } else state = S_LT;
          break;
        }

        case S_DECL: {
          const seg = i;
          let closed = false;
          for (; i < len; i++) {
            const c = s.charCodeAt(i);
            if (c === 0x3f) {
              this.brackets = 1;
              continue;
            }
            if (c === 0x3e && this.brackets === 1) {
              closed = true;
              break;
            }
            this.brackets = 0;
            if (c >= 0x80 || (c < 0x20 && (CHAR_CLASS[c] & CH_WS) === 0)) return this.fail("not-well-formed", "malformed XML declaration");
          }
          this.value += s.slice(seg, closed ? i + 1 : i);
          if (this.value.length > MAX_DECL_LENGTH) return this.fail("not-well-formed", "malformed XML declaration");
          if (!closed) break;
          i++;
          const decl = this.value;
          this.value = "";
          const m = XML_DECL.exec(decl);
          if (m === null) {
            // `<?xml-stylesheet …?>` and friends are processing instructions; `<?xml …?>` is a broken declaration
            const isDecl = decl.startsWith("xml") && (decl.length === 3 || (CHAR_CLASS[decl.charCodeAt(3)] & CH_NAME) === 0);
            if (isDecl) return this.fail("not-well-formed", "malformed XML declaration");
            return this.fail("restricted-xml", "processing instructions are not allowed");
          }
          const encoding = m[1] ?? m[2];
          // RFC 6120 §11.6: UTF-8 only
          if (encoding !== undefined && encoding.toLowerCase() !== "utf-8") return this.fail("unsupported-encoding", "only UTF-8 is supported");
          this.tokenStart = -1;
          state = S_BETWEEN;
          break;
        }
      }
    }

    this.state = state;
    const end = this.chunkBase + len + this.extra;
    if (this.tokenStart >= 0 && end - this.tokenStart > this.maxStanzaBytes) return this.fail("policy-violation", "stanza too large");
    if (state === S_ATTR_VALUE && end - this.valueStart > this.maxValueBytes) return this.fail("policy-violation", "attribute value too long");
    this.chunkBase = end;
    this.extra = 0;
    if (len >= 2) {
      this.prev2 = s.charCodeAt(len - 2);
      this.prev1 = s.charCodeAt(len - 1);
    } else {
      this.prev2 = this.prev1;
      this.prev1 = s.charCodeAt(0);
    }
  }

  /** A handler reset or failed the parser mid-write: after a reset, the rest of the input opens the new stream. */
  private afterCallback(s: string, i: number): void {
    if (this.failed || i >= s.length) return;
    this.process(s.slice(i));
  }

  /** A start tag ended just before index `i` of the current string; returns the next state. */
  private startTag(selfClosing: boolean, i: number): number {
    const end = this.chunkBase + i + this.extra;
    const stack = this.stack;
    if (this.tagHasPrefix) {
      const error = this.bindNamespaces(this.tagName, this.attrs, this.element, this.element === null ? 0 : stack.length + 1);
      if (error !== null) {
        this.fail(error.condition, error.message);
        return S_DONE;
      }
      if (this.element === null) {
        this.nsBase = this.nsCount;
        // The header's bindings stay for the stream's life: arrays of their exact size, not of the capacity
        // V8 gives an array on its first store (an idle connection keeps its parser). The usual header's
        // one binding (xmlns:stream) is four arrays shared by every parser, until a stanza binds a prefix.
        if (this.nsCount === 1 && this.nsKey[0] === USUAL.key[0] && this.nsUri[0] === USUAL.uri[0]) {
          this.nsPrefix = USUAL.prefix;
          this.nsKey = USUAL.key;
          this.nsUri = USUAL.uri;
          this.nsDepth = USUAL.depth;
        } else {
          this.nsPrefix = this.nsPrefix.slice(0, this.nsCount);
          this.nsKey = this.nsKey.slice(0, this.nsCount);
          this.nsUri = this.nsUri.slice(0, this.nsCount);
          this.nsDepth = this.nsDepth.slice(0, this.nsCount);
        }
      }
    }
    // The tag's attributes now belong to its element (or the handler): kept here, their values (slices of the
    // input) would hold the whole chunk they came in, for as long as the connection stays idle.
    const attrs = this.attrs;
    this.attrs = NO_ATTRS;
    if (this.element === null) {
      const name = this.tagName;
      if (end - this.tokenStart > this.maxStanzaBytes) {
        this.fail("policy-violation", "stream header too large");
        return S_DONE;
      }
      this.tokenStart = -1;
      this.rootName = name;
      const epoch = this.epoch;
      this.handler.onStreamStart(name, attrs);
      if (!selfClosing) return S_BETWEEN;
      if (this.epoch === epoch) this.handler.onStreamEnd();
      return S_DONE;
    }
    if (stack.length >= this.maxDepth) {
      this.fail("policy-violation", "elements nested too deep");
      return S_DONE;
    }
    const el = this.element;
    this.element = null;
    if (stack.length > 0) {
      const parent = stack[stack.length - 1];
      el.parent = parent;
      addChild(parent, el);
    } else if (selfClosing) {
      if (this.nsCount > this.nsBase) this.unbind(0);
      return this.emitStanza(el, end);
    }
    if (!selfClosing) stack.push(el);
    else if (this.nsCount > this.nsBase) this.unbind(stack.length);
    return S_TEXT;
  }

  private endTag(name: string, i: number): number {
    const stack = this.stack;
    if (stack.length > 0) {
      const el = stack[stack.length - 1];
      if (el.name !== name) {
        this.fail("not-well-formed", `end tag '${name}' does not match '${el.name}'`);
        return S_DONE;
      }
      stack.pop();
      if (this.nsCount > this.nsBase) this.unbind(stack.length);
      if (stack.length > 0) return S_TEXT;
      return this.emitStanza(el, this.chunkBase + i + this.extra);
    }
    if (this.framed || this.rootName === null || name !== this.rootName) {
      this.fail("not-well-formed", `unexpected end tag '${name}'`);
      return S_DONE;
    }
    this.tokenStart = -1;
    this.handler.onStreamEnd();
    return S_DONE;
  }

  /**
   * Namespaces in XML 1.0: checks the names of a complete start tag and adds its declarations to the scope;
   * returns the error, or null. `depth` is the element's (0 for the stream header, which has no element).
   * An element that uses a prefix declared on an ancestor (or on the stream header) gets a copy of that
   * declaration, so any subtree the server later copies, stores or forwards on its own stays
   * namespace-well-formed.
   */
  private bindNamespaces(name: string, attrs: Record<string, string>, el: Element | null, depth: number): XmlError | null {
    let prefixed = 0;
    for (const key in attrs) {
      const colon = key.indexOf(":");
      if (colon < 0) continue;
      if (!isQName(key, colon)) return new XmlError("not-well-formed", `'${key}' is not a qualified name`);
      if (colon !== 5 || !key.startsWith("xmlns")) {
        prefixed++;
        continue;
      }
      const prefix = key.slice(6);
      const uri = attrs[key];
      // Namespaces in XML 1.0 §3: "xmlns" is never declared; "xml" only to its own name, which no other
      // prefix may take; nobody binds the xmlns namespace name; a prefix is never bound to "" (§5, 1.0 only).
      if (prefix === "xmlns") return new XmlError("not-well-formed", "the prefix 'xmlns' must not be declared");
      if (prefix === "xml" ? uri !== XML_NS : uri === XML_NS) return new XmlError("not-well-formed", "the prefix 'xml' and its namespace name belong together");
      if (uri === XMLNS_NS) return new XmlError("not-well-formed", "the xmlns namespace name must not be bound");
      if (uri === "") return new XmlError("not-well-formed", `empty namespace name for the prefix '${prefix}'`);
      if (this.nsPrefix === USUAL.prefix) {
        // Shared with other parsers: written to, they become this parser's own.
        this.nsPrefix = USUAL.prefix.slice();
        this.nsKey = USUAL.key.slice();
        this.nsUri = USUAL.uri.slice();
        this.nsDepth = USUAL.depth.slice();
      }
      const n = this.nsCount++;
      // The stream header's bindings last as long as the stream (unless they are the usual one, replaced by
      // the shared arrays when the header ends): a slice of the header would keep all of it.
      this.nsPrefix[n] = depth === 0 ? ownCopy(prefix) : prefix;
      this.nsKey[n] = depth === 0 ? ownCopy(key) : key;
      this.nsUri[n] = depth === 0 ? ownCopy(uri) : uri;
      this.nsDepth[n] = depth;
    }
    // Bindings (by index) that an element or attribute name here uses but an ancestor declared.
    let copies: number[] | null = null;
    const colon = name.indexOf(":");
    if (colon >= 0) {
      if (!isQName(name, colon)) return new XmlError("not-well-formed", `'${name}' is not a qualified name`);
      if (colon === 5 && name.startsWith("xmlns")) return new XmlError("not-well-formed", "an element name with the prefix 'xmlns'");
      if (colon !== 3 || !name.startsWith("xml")) {
        const k = this.lookup(name, colon);
        if (k < 0) return new XmlError("bad-namespace-prefix", `undeclared namespace prefix '${name.slice(0, colon)}'`);
        if (this.nsDepth[k] < depth) copies = [k];
      }
    }
    if (prefixed > 0) {
      // §6.3: no two attributes with the same local name and the same namespace name
      const expanded: string[] | null = prefixed > 1 ? [] : null;
      for (const key in attrs) {
        const c = key.indexOf(":");
        if (c < 0 || (c === 5 && key.startsWith("xmlns"))) continue;
        let uri = XML_NS;
        if (c !== 3 || !key.startsWith("xml")) {
          const k = this.lookup(key, c);
          if (k < 0) return new XmlError("bad-namespace-prefix", `undeclared namespace prefix '${key.slice(0, c)}'`);
          uri = this.nsUri[k];
          if (this.nsDepth[k] < depth && (copies === null || !copies.includes(k))) (copies ??= []).push(k);
        }
        if (expanded !== null) {
          const id = `${key.slice(c + 1)} ${uri}`;
          if (expanded.includes(id)) return new XmlError("not-well-formed", `attribute '${key}' is a duplicate after namespace expansion`);
          expanded.push(id);
        }
      }
    }
    if (copies !== null && el !== null) {
      // The copies count against the limit, so that whatever the parser accepts it also accepts re-read.
      if (this.attrCount + copies.length > this.maxAttributes) return new XmlError("policy-violation", "too many attributes");
      for (const k of copies) el.attrs[this.nsKey[k]] = this.nsUri[k];
    }
    return null;
  }

  /** Index of the innermost binding of the prefix `qname.slice(0, colon)`, or -1. */
  private lookup(qname: string, colon: number): number {
    const prefixes = this.nsPrefix;
    for (let k = this.nsCount - 1; k >= 0; k--) {
      const p = prefixes[k];
      if (p.length === colon && qname.startsWith(p)) return k;
    }
    return -1;
  }

  /** Drops the bindings declared deeper than `depth` (their element has ended). */
  private unbind(depth: number): void {
    const depths = this.nsDepth;
    let n = this.nsCount;
    while (n > this.nsBase && depths[n - 1] > depth) n--;
    this.nsCount = n;
  }

  private emitStanza(el: Element, end: number): number {
    // Between stanzas the stack is empty: length 0 gives its backing store back (pop keeps some capacity),
    // so an idle connection's parser holds none.
    this.stack.length = 0;
    if (end - this.tokenStart > this.maxStanzaBytes) {
      this.fail("policy-violation", "stanza too large");
      return S_DONE;
    }
    this.tokenStart = -1;
    this.handler.onStanza(el);
    return S_BETWEEN;
  }
}

/**
 * RFC 7395 §3.3.3: one WebSocket text message is exactly one complete element. Returns it, or throws
 * XmlError: bad-format if the message holds no element or more than one, otherwise the parse error.
 */
export function parseFramedElement(text: string, limits?: Partial<ParserLimits>): Element {
  let result: Element | null = null;
  let count = 0;
  let error: XmlError | null = null;
  const parser = new StreamParser(
    {
      onStreamStart() {},
      onStanza(el) {
        if (count++ === 0) result = el;
      },
      onStreamEnd() {},
      onError(err) {
        error ??= err;
      },
    },
    { limits, framed: true },
  );
  parser.write(text);
  parser.end();
  if (error !== null) throw error;
  if (count > 1) throw new XmlError("bad-format", "more than one element in a WebSocket message");
  if (result === null) throw new XmlError("bad-format", "no element in a WebSocket message");
  return result;
}
