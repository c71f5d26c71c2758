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

export const escapeXML = ltx.escapeXML;
export const escapeXMLText = ltx.escapeXMLText;

/** A deep copy (elements and text). */
export function clone(el: Element): Element {
  const copy = new ltx.Element(el.name, { ...el.attrs });
  for (const c of el.children) copy.children.push(typeof c === "string" ? c : clone(c as Element));
  for (const c of copy.children) if (typeof c !== "string") (c as Element).parent = copy;
  return copy;
}

/** A copy of the element itself with the same (shared) children: cheap readdressing for fan-out. */
export function shallowCopy(el: Element): Element {
  const copy = new ltx.Element(el.name, { ...el.attrs });
  copy.children = el.children;
  return copy;
}
