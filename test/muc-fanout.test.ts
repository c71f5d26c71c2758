// The MUC fan-out (extensions/muc/fanout.ts): one serialisation shared by every recipient's copy.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { Fanout } from "../extensions/muc/fanout.js";
import { ltxToString, xml, type Element } from "../src/xml/element.js";
import { parseFramedElement } from "../src/xml/parser.js";

describe("muc fan-out", () => {
  it("writes every copy exactly as ltx writes it: escaped attributes and text, nested and empty elements", () => {
    const templates: Element[] = [
      parseFramedElement(`<message xmlns='jabber:client' from='room@conference.localhost/a&amp;b' type='groupchat' id='x&lt;&quot;1'>` +
        `<body>1 &lt; 2 &amp;&amp; "q" 'a' ✓ 𝄞</body><stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='room@conference.localhost'/>` +
        `tail<x xmlns='urn:example'><y><z a='1'/>deep</y></x></message>`),
      parseFramedElement(`<presence xmlns='jabber:client' from='room@conference.localhost/nick'/>`),
      xml("message", { from: "room@conference.localhost", type: "groupchat", id: 7 }, xml("subject")),
    ];
    for (const template of templates) {
      const fanout = new Fanout(template);
      for (const to of ["a@localhost/r", "b&c@localhost/<r>"]) {
        const copy = fanout.to(to);
        assert.equal(copy.toString(), ltxToString.call(copy), `${template.name} to ${to}`);
      }
      assert.equal(fanout.serialize(), ltxToString.call(template));
    }
  });

  it("writes a copy from the shared text, never walking the stanza's children again", () => {
    const template = parseFramedElement(`<message xmlns='jabber:client' from='room@conference.localhost/a' type='groupchat' id='m1'>` +
      `<body>hello</body><stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='room@conference.localhost'/></message>`);
    const fanout = new Fanout(template);
    const expected = fanout.to("a@localhost/r").toString();
    // From here on, serialising a child is an error: every copy must be the shared head, its to, the shared tail.
    for (const c of template.children) {
      if (typeof c !== "string") Object.defineProperty(c, "children", { get() { throw new Error("a child was serialised again"); } });
    }
    assert.equal(fanout.to("a@localhost/r").toString(), expected);
    assert.equal(fanout.to("b@localhost/r").toString(), expected.replace("a@localhost/r", "b@localhost/r"));
  });

  it("keeps the shared text as flat strings, not ropes of its tokens", function () {
    this.timeout(30_000);
    // In a process of its own with --expose-gc: what a kept shared text costs, against its own length.
    const script = `
      const { Fanout } = await import(${JSON.stringify(new URL("../extensions/muc/fanout.js", import.meta.url).href)});
      const { parseFramedElement } = await import(${JSON.stringify(new URL("../src/xml/parser.js", import.meta.url).href)});
      const template = parseFramedElement("<message xmlns='jabber:client' from='room@conference.localhost/someone' type='groupchat' id='m-1234567'>" +
        "<body>hello, this is a message body of some length</body><stanza-id xmlns='urn:xmpp:sid:0' id='abcdef' by='room@conference.localhost'/></message>");
      const kept = [];
      gc(); const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 20000; i++) { const f = new Fanout(template); f.serialize(); kept.push(f.head, f.tail); }
      gc(); const after = process.memoryUsage().heapUsed;
      console.log(JSON.stringify({ perText: (after - before) / 20000, length: kept[0].length + kept[1].length }));`;
    const out = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { encoding: "utf8" });
    const { perText, length } = JSON.parse(out) as { perText: number; length: number };
    // Two flat one-byte strings are their length plus two headers; appended a token at a time they cost about 2 KB.
    assert.ok(perText < length + 100, `${perText.toFixed(0)} bytes kept per shared text of ${length} characters`);
  });
});
