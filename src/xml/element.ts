// The one stanza type of the server: every protocol edge turns its input into these once.
import * as ltx from "ltx";

export type Element = ltx.Element;
export const Element = ltx.Element;
export type Node = ltx.Node;

/** Builds an element: `xml("iq", { type: "result" }, child)`. */
export function xml(name: string, attrs?: Record<string, string | number | undefined | null> | null, ...children: Array<Node | null | undefined | false>): Element {
  const el = new ltx.Element(name);
  if (attrs) {
    for (const k in attrs) {
      const v = attrs[k];
      if (v !== undefined && v !== null) el.attrs[k] = String(v);
    }
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.cnode(c as Element);
  return el;
}

/** ltx's own getChild, which builds the array of every matching child to answer the first (kept for the tests). */
export const ltxGetChild: (this: Element, name: string, xmlns?: string) => Element | undefined = ltx.Element.prototype.getChild;

/**
 * The first child element named `name` (and in `xmlns`, when given), as ltx answers it, without building
 * the array of every match first: a stanza is asked for its children a dozen times on its way (hints,
 * origin-id, carbons, receipts, markers), and each of those arrays was garbage at once.
 */
ltx.Element.prototype.getChild = function getChild(this: Element, name: string, xmlns?: string): Element | undefined {
  const children = this.children;
  for (let i = 0; i < children.length; i++) {
    const c = children[i] as Element;
    if (c.getName && c.getName() === name && (!xmlns || c.getNS() === xmlns)) return c;
  }
  return undefined;
};

/** ltx's own toString, which adds the text a token at a time (kept for the tests). */
export const ltxToString: (this: Element) => string = ltx.Element.prototype.toString;

const ATTRIBUTE_SPECIAL = /["&'<>]/;
const TEXT_SPECIAL = /[&<>]/;

/**
 * ltx's escapes, asked first whether there is anything to escape: ltx runs a global replace with a callback
 * for every value, which allocates (and costs about 100 ns) even when nothing matches, as nearly always.
 */
export function escapeXML(s: string): string {
  return ATTRIBUTE_SPECIAL.test(s) ? ltx.escapeXML(s) : s;
}

export function escapeXMLText(s: string): string {
  return TEXT_SPECIAL.test(s) ? ltx.escapeXMLText(s) : s;
}

const ltxWrite = ltx.Element.prototype.write;

/** What `el.write` writes, as one string. */
function written(el: Element): string {
  let s = "";
  el.write((token: string) => { s += token; });
  return s;
}

/**
 * The element as text, as one string not yet flattened: for a text used at once. An element that writes
 * itself its own way (a room message's copy, extensions/muc/fanout.ts) is asked to.
 */
export function textOnce(el: Element): string {
  return el.write === ltxWrite ? serialize(el) : written(el);
}

/** What ltx's `write` writes for `el` (the same text, piece for piece), as one string (a rope until flattened). */
function serialize(el: Element): string {
  let s = "<" + el.name;
  const attrs = el.attrs;
  for (const k in attrs) {
    const v = attrs[k];
    if (v != null) s += " " + k + '="' + escapeXML(typeof v === "string" ? v : v.toString(10)) + '"';
  }
  const children = el.children;
  if (children.length === 0) return s + "/>";
  s += ">";
  for (let i = 0; i < children.length; i++) {
    const c = children[i] as unknown;
    if (c == null) continue;
    // A string first: most children are text, and a string has no `write`, as ltx asks first.
    if (typeof c === "string") s += escapeXMLText(c);
    else if (typeof (c as { write?: unknown }).write === "function") s += textOnce(c as Element);
    else if ((c as { toString?: unknown }).toString) s += escapeXMLText((c as number).toString(10));
  }
  return s + "</" + el.name + ">";
}

/**
 * The element as text, exactly ltx's serialisation, as one flat string. Written piece by piece into one
 * string (faster than ltx's tokens through a callback, or collecting them in an array to join), and then
 * flattened: appending leaves a rope, about fifty linked pieces (some 1.5 KB) per message, and a message's
 * text is kept while it waits for its commit (it is the archived row and what is delivered), thousands at a
 * time under load, where every young-generation collection would copy the ropes.
 */
ltx.Element.prototype.toString = function toString(this: Element): string {
  const s = textOnce(this);
  s.charCodeAt(0); // reading a rope makes V8 flatten it, in place
  return s;
};

/** A deep copy (elements and text). */
export function clone(el: Element): Element {
  const copy = new ltx.Element(el.name, { ...el.attrs });
  for (const c of el.children) copy.children.push(typeof c === "string" ? c : clone(c as Element));
  for (const c of copy.children) if (typeof c !== "string") (c as Element).parent = copy;
  return copy;
}

/**
 * Gives `el` and its descendants children arrays of their exact size, in place, and returns it: for an
 * element kept as long as a session lives (its presence). The parser's arrays keep the capacity V8 gave
 * them while they grew, about 140 bytes each.
 */
export function compact(el: Element): Element {
  el.children = el.children.slice();
  for (const c of el.children) if (typeof c !== "string") compact(c as Element);
  return el;
}

/** A copy of the element itself with the same (shared) children: cheap readdressing for fan-out. */
export function shallowCopy(el: Element): Element {
  const copy = new ltx.Element(el.name, { ...el.attrs });
  copy.children = el.children;
  return copy;
}

/**
 * Serialisations known to be what `el.toString()` would give, so that a stanza sent to several resources,
 * or one whose text the archive already made, is not serialised again. Set only right before the element is
 * sent and dropped right after (see `withText`): an element changed later never goes out stale.
 */
const texts = new WeakMap<Element, string>();

/** The stanza as text: the remembered serialisation while `withText` runs, else `el.toString()`. */
export function textOf(el: Element): string {
  return texts.get(el) ?? el.toString();
}

/** Runs `send` with `text` taken as the serialisation of `el` (it must be exactly `el.toString()`). */
export function withText(el: Element, text: string, send: () => void): void {
  texts.set(el, text);
  try {
    send();
  } finally {
    texts.delete(el);
  }
}

/**
 * What `el.toString()` gives after `child` was appended as its last child, from `before`, its serialisation
 * before that (the element had children, so it ends with its end tag): only the child is serialised.
 */
export function textWithLastChild(el: Element, before: string, child: Element): string | null {
  const end = `</${el.name}>`;
  if (el.children.length < 2 || el.children[el.children.length - 1] !== child || !before.endsWith(end)) return null;
  // The text goes out at once (the stanza-id of every delivered message): the child's text needs no flattening.
  return before.slice(0, before.length - end.length) + textOnce(child) + end;
}
