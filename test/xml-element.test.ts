import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as ltx from "ltx";
import { escapeXML, escapeXMLText, ltxGetChild, ltxToString, textOnce, textWithLastChild, xml, type Element } from "../src/xml/element.js";
import { parseFramedElement } from "../src/xml/parser.js";

describe("xml element: getChild", () => {
  const stanzas = [
    `<message xmlns='jabber:client' to='a@b' type='chat'><body>hi</body><body xml:lang='de'>hallo</body>` +
      `<origin-id xmlns='urn:xmpp:sid:0' id='x'/><store xmlns='urn:xmpp:hints'/>text<active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
    `<message xmlns='jabber:client'>only text</message>`,
    `<message xmlns='jabber:client' xmlns:h='urn:xmpp:hints'><h:no-store/><no-store xmlns='urn:xmpp:hints'/><body/></message>`,
    `<iq xmlns='jabber:client' type='set' id='1'><query xmlns='jabber:iq:roster'><item jid='c@d'/><item jid='e@f'/></query></iq>`,
  ];
  const questions: Array<[string, string | undefined]> = [
    ["body", undefined], ["body", "jabber:client"], ["body", "urn:xmpp:hints"], ["origin-id", "urn:xmpp:sid:0"],
    ["origin-id", undefined], ["store", "urn:xmpp:hints"], ["no-store", "urn:xmpp:hints"], ["no-store", undefined],
    ["active", "http://jabber.org/protocol/chatstates"], ["query", "jabber:iq:roster"], ["item", undefined], ["missing", undefined],
  ];

  it("answers what ltx's own getChild answers, for prefixed, inherited and explicit namespaces", () => {
    const elements: Element[] = stanzas.map((s) => parseFramedElement(s));
    elements.push(xml("message", { xmlns: "jabber:client" }, xml("body", null, "built"), xml("x", { xmlns: "urn:example" })));
    for (const el of elements) {
      const all = [el, ...el.getChildElements()];
      for (const node of all) {
        for (const [name, ns] of questions) {
          assert.equal(node.getChild(name, ns), ltxGetChild.call(node, name, ns), `${node.name}.getChild(${name}, ${ns})`);
        }
      }
    }
    assert.equal(elements[0].getChild("body")?.getText(), "hi", "the first match");
    assert.equal(elements[2].getChild("no-store", "urn:xmpp:hints")?.name, "h:no-store", "a prefixed child matches by its local name");
  });

  it("finds the child without building the list of every match", () => {
    const el = parseFramedElement(stanzas[0]);
    el.getChildren = () => { throw new Error("getChildren was called"); };
    assert.equal(el.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, "x");
    assert.equal(el.getChild("missing"), undefined);
  });
});

describe("xml element: toString", () => {
  it("gives exactly ltx's own serialisation: escaped attributes and text, nested and empty elements", () => {
    const elements: Element[] = [
      parseFramedElement(`<message xmlns='jabber:client' to='a@b' type='chat' id='a&amp;b&lt;&quot;&apos;'><body>1 &lt; 2 &amp;&amp; 3 &gt; 2 "q" 'a'</body>` +
        `<origin-id xmlns='urn:xmpp:sid:0' id='x'/>tail text<x xmlns='urn:example'><y><z a='1'/>deep</y></x></message>`),
      parseFramedElement(`<presence xmlns='jabber:client'/>`),
      xml("iq", { type: "result", id: 7 }, xml("query", { xmlns: "jabber:iq:version" }, xml("name", null, "héllo ✓ 𝄞"))),
    ];
    const withNull = xml("message", { to: "c@d" }, xml("body", null, "x"));
    withNull.children.push(null as never, 42 as never);
    elements.push(withNull);
    for (const el of elements) assert.equal(el.toString(), ltxToString.call(el));
    assert.equal(withNull.toString(), `<message to="c@d"><body>x</body>42</message>`);
  });

  it("escapes as ltx does, and answers a value with nothing to escape as it is", () => {
    for (const v of [`a&b<c>d"e'f`, "plain@example.com/res", "", "&amp;", "1 < 2"]) {
      assert.equal(escapeXML(v), ltx.escapeXML(v));
      assert.equal(escapeXMLText(v), ltx.escapeXMLText(v));
    }
    const plain = "user@example.com/" + "r".repeat(20);
    assert.equal(escapeXML(plain), plain);
    assert.equal(escapeXMLText(plain), plain);
  });

  it("keeps a serialised stanza as one string, not a rope of its tokens", function () {
    this.timeout(30_000);
    // In a process of its own with --expose-gc: the heap a kept text costs, against the text's own size.
    const script = `
      const { parseFramedElement } = await import(${JSON.stringify(new URL("../src/xml/parser.js", import.meta.url).href)});
      const el = parseFramedElement("<message xmlns='jabber:client' to='user12@bench.localhost' from='user11@bench.localhost/r1' type='chat' id='m-1234567'>" +
        "<body>hello, this is a message body of some length</body><origin-id xmlns='urn:xmpp:sid:0' id='abcdef'/></message>");
      const kept = [];
      gc(); const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 20000; i++) kept.push(el.toString());
      gc(); const after = process.memoryUsage().heapUsed;
      console.log(JSON.stringify({ perText: (after - before) / kept.length, length: kept[0].length }));`;
    const out = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { encoding: "utf8" });
    const { perText, length } = JSON.parse(out) as { perText: number; length: number };
    // A flat one-byte string is its length plus a header; the rope ltx made cost about 1.5 KB here.
    assert.ok(perText < length + 100, `${perText.toFixed(0)} bytes kept per text of ${length} characters`);
  });
});

describe("xml element: text with a last child", () => {
  it("gives exactly ltx's serialisation of the element with the child appended, empty or not", () => {
    const before = `<message xmlns='jabber:client' to='a@b' type='chat'><body>1 &lt; 2</body></message>`;
    const children = [
      xml("stanza-id", { xmlns: "urn:xmpp:sid:0", id: "Zr7-_x", by: "juliet@capulet.example" }),
      xml("stanza-id", { xmlns: "urn:xmpp:sid:0", id: `a&b<c>"d'e`, by: "o'brien@example" }),
      xml("x", { n: 42, skipped: null, alsoSkipped: undefined }),
      xml("y"),
      xml("z", { a: "1" }, xml("w", null, "t & u")),
    ];
    for (const child of children) {
      const el = parseFramedElement(before);
      const text = el.toString();
      el.cnode(child);
      assert.equal(textWithLastChild(el, text, child), ltxToString.call(el), child.toString());
      assert.equal(textOnce(child), ltxToString.call(child));
    }
  });
});
