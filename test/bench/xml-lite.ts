// Minimal, fast XMPP stream splitting for the load generator and the fake server.
//
// StanzaFramer cuts an incoming XMPP stream (already decoded to a string) into
// top-level stanzas without building any tree: it only tracks element depth,
// honouring quoted attribute values, CDATA sections, comments and processing
// instructions. The stream header (<stream:stream ...>) is reported separately,
// also when it comes again after a stream restart (at depth 1), and the closing
// </stream:stream> is reported as the end of the stream.
//
// The small helpers below (attr, childText, innerText) read a few attributes or
// texts out of a stanza string; they are good enough for the shapes of stanzas
// a benchmark deals with, not a general XML parser.

export interface FramerEvents {
  stanza(s: string): void;
  open(header: string): void;
  close(): void;
}

const LT = 60; // <
const GT = 62; // >
const SLASH = 47; // /
const QMARK = 63; // ?
const BANG = 33; // !
const APOS = 39; // '
const QUOT = 34; // "

export class FramerError extends Error {}

export class StanzaFramer {
  private buf = '';
  private pos = 0; // scan position in buf
  private depth = 0; // 0: before the stream header, 1: inside the stream, >= 2: inside a stanza
  private start = 0; // start of the current stanza in buf (valid while depth >= 2)

  constructor(private readonly ev: FramerEvents, private readonly maxBuffer = 1 << 20) {}

  push(chunk: string): void {
    const buf = this.buf.length === 0 ? chunk : this.buf + chunk;
    const n = buf.length;
    let i = this.pos;
    let depth = this.depth;
    let start = this.start;
    const ev = this.ev;
    for (;;) {
      const lt = buf.indexOf('<', i);
      if (lt === -1) {
        i = n;
        break;
      }
      if (lt + 1 >= n) {
        i = lt;
        break;
      }
      const c = buf.charCodeAt(lt + 1);
      if (c === SLASH) {
        const gt = buf.indexOf('>', lt + 2);
        if (gt === -1) {
          i = lt;
          break;
        }
        i = gt + 1;
        if (depth <= 1) {
          // </stream:stream> (or garbage outside any stanza): end of the stream
          depth = 0;
          ev.close();
          continue;
        }
        depth--;
        if (depth === 1) ev.stanza(buf.slice(start, i));
        continue;
      }
      if (c === QMARK || c === BANG) {
        let term = '?>';
        if (c === BANG) {
          if (n - lt < 9) {
            i = lt; // not enough to tell a comment from CDATA yet
            break;
          }
          term = buf.startsWith('<![CDATA[', lt) ? ']]>' : buf.startsWith('<!--', lt) ? '-->' : '>';
        }
        const e = buf.indexOf(term, lt + 2);
        if (e === -1) {
          i = lt;
          break;
        }
        i = e + term.length;
        continue;
      }
      // start tag: find its end, skipping quoted attribute values
      let gt = -1;
      let q = 0;
      for (let j = lt + 1; j < n; j++) {
        const ch = buf.charCodeAt(j);
        if (q !== 0) {
          if (ch === q) q = 0;
        } else if (ch === GT) {
          gt = j;
          break;
        } else if (ch === APOS || ch === QUOT) {
          q = ch;
        } else if (ch === LT) {
          throw new FramerError('malformed XML: "<" inside a tag');
        }
      }
      if (gt === -1) {
        i = lt;
        break;
      }
      i = gt + 1;
      const selfClosing = buf.charCodeAt(gt - 1) === SLASH;
      if (depth === 0 || (depth === 1 && buf.startsWith('stream:stream', lt + 1))) {
        depth = 1;
        ev.open(buf.slice(lt, i));
        continue;
      }
      if (depth === 1) {
        if (selfClosing) {
          ev.stanza(buf.slice(lt, i));
        } else {
          start = lt;
          depth = 2;
        }
        continue;
      }
      if (!selfClosing) depth++;
    }
    const keep = depth >= 2 ? start : i;
    this.buf = keep >= n ? '' : buf.slice(keep);
    this.pos = i - keep;
    this.start = depth >= 2 ? start - keep : 0;
    this.depth = depth;
    if (this.buf.length > this.maxBuffer) throw new FramerError(`stanza larger than ${this.maxBuffer} characters`);
  }
}

/** Index of the '>' ending the start tag at the beginning of s (quote-aware), or -1. */
export function startTagEnd(s: string): number {
  let q = 0;
  for (let j = 1, n = s.length; j < n; j++) {
    const ch = s.charCodeAt(j);
    if (q !== 0) {
      if (ch === q) q = 0;
    } else if (ch === GT) return j;
    else if (ch === APOS || ch === QUOT) q = ch;
  }
  return -1;
}

function isSpace(ch: number): boolean {
  return ch === 32 || ch === 9 || ch === 10 || ch === 13;
}

/** Value of attribute `name` of the top-level element of s (unescaped), or undefined. */
export function attr(s: string, name: string): string | undefined {
  const n = s.length;
  let j = 1;
  // skip the element name
  while (j < n) {
    const ch = s.charCodeAt(j);
    if (isSpace(ch) || ch === GT || ch === SLASH) break;
    j++;
  }
  for (;;) {
    while (j < n && isSpace(s.charCodeAt(j))) j++;
    if (j >= n) return undefined;
    const ch = s.charCodeAt(j);
    if (ch === GT || ch === SLASH) return undefined;
    const eq = s.indexOf('=', j);
    if (eq === -1) return undefined;
    let k = eq + 1;
    while (k < n && isSpace(s.charCodeAt(k))) k++;
    const q = s.charCodeAt(k);
    if (q !== APOS && q !== QUOT) return undefined;
    const close = s.indexOf(q === APOS ? "'" : '"', k + 1);
    if (close === -1) return undefined;
    let nameEnd = eq;
    while (nameEnd > j && isSpace(s.charCodeAt(nameEnd - 1))) nameEnd--;
    if (nameEnd - j === name.length && s.startsWith(name, j)) return unescapeXml(s.slice(k + 1, close));
    j = close + 1;
  }
}

/** Text content of the first <name>...</name> child anywhere in s (unescaped), or undefined. */
export function childText(s: string, name: string): string | undefined {
  let from = 0;
  for (;;) {
    const o = s.indexOf('<' + name, from);
    if (o === -1) return undefined;
    const after = s.charCodeAt(o + 1 + name.length);
    if (after === GT || after === SLASH || isSpace(after)) {
      const gt = s.indexOf('>', o);
      if (gt === -1) return undefined;
      if (s.charCodeAt(gt - 1) === SLASH) return '';
      const close = s.indexOf('</' + name, gt);
      if (close === -1) return undefined;
      return unescapeXml(s.slice(gt + 1, close));
    }
    from = o + 1;
  }
}

/** Text between the end of the start tag and the last end tag of s ('' for an empty element). */
export function innerText(s: string): string {
  const gt = startTagEnd(s);
  if (gt === -1 || s.charCodeAt(gt - 1) === SLASH) return '';
  const close = s.lastIndexOf('</');
  return close > gt ? unescapeXml(s.slice(gt + 1, close)) : '';
}

/** Local element name of a stanza string ('message', 'iq', 'stream:features', ...). */
export function elementName(s: string): string {
  let j = 1;
  const n = s.length;
  while (j < n) {
    const ch = s.charCodeAt(j);
    if (isSpace(ch) || ch === GT || ch === SLASH) break;
    j++;
  }
  return s.slice(1, j);
}

const ENT: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

export function unescapeXml(s: string): string {
  if (s.indexOf('&') === -1) return s;
  return s.replace(/&(lt|gt|amp|apos|quot|#x[0-9a-fA-F]+|#[0-9]+);/g, (_m, e: string) => {
    if (e.charCodeAt(0) === 35 /* # */) {
      const code = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return ENT[e] ?? '';
  });
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) =>
    c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : c === "'" ? '&apos;' : '&quot;',
  );
}
