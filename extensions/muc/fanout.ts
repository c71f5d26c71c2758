// Fan-out of one stanza to many recipients: the stanza is serialized once, and each recipient's copy
// writes only its own `to` into that text. The copies are real elements with the shared children (as
// with shallowCopy), so code that inspects them still works. Should anything change a copy's children
// or its addresses after it was made (a WebSocket session adds the xmlns, for one), that copy
// serializes itself the ordinary way.
import { Element, escapeXML, escapeXMLText } from "../../src/xml/element.js";

class FanoutCopy extends Element {
  constructor(private readonly source: Fanout, attrs: Record<string, string>, readonly to: string, private readonly toAttr: string) {
    super(source.template.name);
    this.attrs = attrs;
    this.children = source.template.children;
  }

  override write(writer: (part: string) => void): void {
    if (!this.source.matches(this)) return super.write(writer);
    writer(this.source.head + this.toAttr + this.source.tail);
  }
}

/** ` to="…"`, escaped: worth keeping per recipient when it receives many copies. */
export function toAttribute(to: string): string {
  return ` to="${escapeXML(to)}"`;
}

export class Fanout {
  /** The serialized template up to where `to` goes, and after it. */
  head = "";
  tail = "";
  private length = -1;

  constructor(readonly template: Element) {}

  /** The template addressed to one recipient (`toAttr`: its toAttribute(), if known). */
  to(to: string, toAttr?: string): Element {
    // Copied key by key: a spread ({ ...attrs, to }) took V8's slow path for the added key and made a new
    // hidden class for every copy, which left every later look at a copy's attributes megamorphic.
    const source = this.template.attrs;
    const attrs: Record<string, string> = {};
    for (const k in source) attrs[k] = source[k];
    attrs.to = to;
    return new FanoutCopy(this, attrs, to, toAttr ?? toAttribute(to));
  }

  /** The template itself as XML text (sharing the serialization with the copies). */
  serialize(): string {
    this.refresh();
    return this.head + this.tail;
  }

  /** Whether `copy` still serializes as the template with its `to` (and refreshes the shared text). */
  matches(copy: FanoutCopy): boolean {
    const a = copy.attrs;
    const t = this.template;
    if (copy.children !== t.children || a.to !== copy.to || a.xmlns !== t.attrs.xmlns || a.from !== t.attrs.from) return false;
    this.refresh();
    return true;
  }

  private refresh(): void {
    const t = this.template;
    if (this.length !== t.children.length) {
      // Both parts joined into flat strings: appended a token at a time they were ropes of some fifty pieces,
      // and every recipient's text (head + to + tail) walked all of them again when it was written out.
      const head = ["<", t.name];
      for (const k in t.attrs) {
        const v = t.attrs[k];
        if (k !== "to" && v !== undefined && v !== null) head.push(" ", k, '="', escapeXML(String(v)), '"');
      }
      const tail = [">"];
      const w = (part: string) => { tail.push(part); };
      for (const c of t.children) {
        if (typeof c === "string") tail.push(escapeXMLText(c));
        else if (c) (c as Element).write(w);
      }
      this.head = head.join("");
      if (t.children.length === 0) this.tail = "/>";
      else {
        tail.push("</", t.name, ">");
        this.tail = tail.join("");
      }
      this.length = t.children.length;
    }
  }
}
