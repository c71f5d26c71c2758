import assert from "node:assert/strict";
import * as ltx from "ltx";
import { StreamParser, XmlError, defaultParserLimits, parseFramedElement, type ParserLimits, type XmlErrorCondition } from "../src/xml/parser.js";
import { Element } from "../src/xml/element.js";

type Chunk = Buffer | string;
interface ParserOptions {
  limits?: Partial<ParserLimits>;
  framed?: boolean;
}

/** Element as nested arrays, keeping each text child separate so merged/unmerged text shows. */
function shape(node: ltx.Node): unknown {
  if (typeof node === "string") return node;
  const el = node as Element;
  for (const child of el.children) if (typeof child !== "string") assert.equal((child as Element).parent, el, "child.parent is set");
  return [el.name, { ...el.attrs }, el.children.map(shape)];
}

function recorder(options?: ParserOptions) {
  const events: string[] = [];
  const elements: Element[] = [];
  const parser = new StreamParser(
    {
      onStreamStart: (name, attrs) => events.push(`start ${name} ${JSON.stringify(attrs)}`),
      onStanza: (el) => {
        assert.ok(el instanceof ltx.Element);
        assert.equal(el.parent, null);
        elements.push(el);
        events.push(`stanza ${JSON.stringify(shape(el))}`);
      },
      onStreamEnd: () => events.push("end"),
      onError: (err) => {
        assert.ok(err instanceof XmlError);
        events.push(`error ${err.condition}`);
      },
    },
    options,
  );
  return { parser, events, elements };
}

function run(chunks: Chunk[], options?: ParserOptions, eof = true): string[] {
  const { parser, events } = recorder(options);
  for (const c of chunks) parser.write(c);
  if (eof) parser.end();
  return events;
}

function splits(input: Chunk): Chunk[][] {
  const out: Chunk[][] = [[input]];
  const len = input.length;
  for (let k = 0; k <= len; k++) out.push([input.slice(0, k), input.slice(k)]);
  const single: Chunk[] = [];
  for (let k = 0; k < len; k++) single.push(input.slice(k, k + 1));
  out.push(single);
  return out;
}

/** Feeds input whole, split in two at every offset, and one unit at a time: events must never differ. */
function assertSplitInvariant(input: Chunk, options?: ParserOptions, eof = true): string[] {
  const expected = run([input], options, eof);
  for (const chunks of splits(input)) {
    assert.deepEqual(run(chunks, options, eof), expected, `split ${chunks.length === 2 ? `at ${chunks[0].length}` : `into ${chunks.length}`}`);
  }
  return expected;
}

const STREAM_NS = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'";
const HEADER = `<stream:stream ${STREAM_NS} to='example.com' version='1.0'>`;

const fixtures: Record<string, { input: string; framed?: boolean }> = {
  "client stream": {
    input:
      "<?xml version='1.0' encoding='UTF-8'?>" +
      `<stream:stream xmlns="jabber:client" xmlns:stream='http://etherx.jabber.org/streams' to="example.com" version='1.0' xml:lang='en'>` +
      "\n  <message to='juliet@example.com' from=\"romeo@example.net/orchard\" type='chat' id='m1'>" +
      "<body>Art thou not Romeo, &amp; a Montague? &lt;3 &gt; &quot;x&quot; &apos;y&apos;</body>" +
      "<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>" +
      "</message>\n \t\r\n" +
      "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>" +
      " " +
      `<message id='u1' title="it's" note='say "hi"' gt='a>b'><body>héllo € 😀 𝄞 中文 &#x1F600;&#128512;&#233;&#x20AC;&#60;&#x3e;</body></message>` +
      "<message id='c1'><body>before <![CDATA[<not>a & tag]] ]>]]> after</body></message>" +
      "<iq type='set' id='n1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'>" +
      "<item id='abc'><data xmlns='urn:xmpp:avatar:data'>qANQR1DBwU4DX7jmYZnncm</data></item></publish></pubsub></iq>" +
      "<presence><x:status xmlns:x='urn:example:x' x:kind=\"away\"  >gone</x:status ><c:ünï xmlns:c='urn:c' ë='1'/><𐀀 z='𐀀'/></presence>" +
      "<message id='ws'><body>line1\r\nline2\rline3\nline4</body><x a='tab\there&#9;and&#10;nl\r\nend'/></message>" +
      "\n\n" +
      "</stream:stream>",
  },
  "server stream without declaration": {
    input:
      `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>` +
      "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>" +
      "<db:result from='a.example' to='b.example'>b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>" +
      "\n<message from='a@a.example' to='b@b.example'>\n  <body>\n    indented\n  </body>\n</message>\n" +
      "<iq><a><b><c><d><e><f>deep</f></e></d></c></b></a></iq>" +
      "</stream:stream>",
  },
  "websocket framing": {
    framed: true,
    input:
      "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>" +
      "\n<message xmlns='jabber:client' to='a@b'><body>x &amp; y 😀</body></message>  " +
      "<iq xmlns='jabber:client' type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>" +
      "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
  },
};

describe("xml parser: fixtures split at every offset", () => {
  for (const [title, fixture] of Object.entries(fixtures)) {
    const options = { framed: fixture.framed };
    it(`${title}: identical events for Buffer chunks split anywhere`, () => {
      const events = assertSplitInvariant(Buffer.from(fixture.input, "utf8"), options);
      assert.ok(!events.some((e) => e.startsWith("error")), events.join("\n"));
    });
    it(`${title}: string input split anywhere (even inside a surrogate pair) gives the same events`, () => {
      const expected = run([Buffer.from(fixture.input, "utf8")], options);
      for (const chunks of splits(fixture.input)) assert.deepEqual(run(chunks, options), expected);
    });
  }

  it("client stream: events are exactly what the input says", () => {
    const { parser, events, elements } = recorder();
    parser.write(Buffer.from(fixtures["client stream"].input));
    parser.end();
    assert.equal(events.length, 9);
    assert.equal(
      events[0],
      `start stream:stream ${JSON.stringify({ xmlns: "jabber:client", "xmlns:stream": "http://etherx.jabber.org/streams", to: "example.com", version: "1.0", "xml:lang": "en" })}`,
    );
    assert.equal(events[8], "end");
    const [chat, ping, unicode, cdata, pubsub, presence, ws] = elements;
    assert.ok(chat.is("message"));
    assert.deepEqual(chat.attrs, { to: "juliet@example.com", from: "romeo@example.net/orchard", type: "chat", id: "m1" });
    assert.deepEqual(chat.getChild("body")!.children, [`Art thou not Romeo, & a Montague? <3 > "x" 'y'`]);
    assert.equal(chat.getChildText("thread"), "e0ffe42b28561960c6b12b944a092794b9683a38");
    assert.equal(ping.getChild("ping", "urn:xmpp:ping")!.toString(), `<ping xmlns="urn:xmpp:ping"/>`);
    assert.deepEqual(unicode.attrs, { id: "u1", title: "it's", note: 'say "hi"', gt: "a>b" });
    assert.deepEqual(unicode.getChild("body")!.children, ["héllo € 😀 𝄞 中文 😀😀é€<>"]);
    assert.deepEqual(cdata.getChild("body")!.children, ["before <not>a & tag]] ]> after"]);
    const item = pubsub.getChild("pubsub", "http://jabber.org/protocol/pubsub")!.getChild("publish")!.getChild("item")!;
    assert.equal(item.getChild("data")!.getNS(), "urn:xmpp:avatar:data");
    const status = presence.getChild("status", "urn:example:x")!;
    assert.equal(status.getNS(), "urn:example:x");
    assert.deepEqual(status.attrs, { "xmlns:x": "urn:example:x", "x:kind": "away" });
    assert.equal(status.getText(), "gone");
    assert.deepEqual(presence.getChild("ünï", "urn:c")!.attrs, { "xmlns:c": "urn:c", ë: "1" });
    assert.equal(presence.getChild("𐀀")!.attrs.z, "𐀀");
    // XML 1.0 §2.11 line ends; §3.3.3 attribute whitespace (literal only, not character references)
    assert.deepEqual(ws.getChild("body")!.children, ["line1\nline2\nline3\nline4"]);
    assert.equal(ws.getChild("x")!.attrs.a, "tab here\tand\nnl end");
  });

  it("server stream: keeps whitespace inside stanzas, ignores it between them", () => {
    const { parser, events, elements } = recorder();
    parser.write(fixtures["server stream without declaration"].input);
    parser.end();
    assert.equal(events.length, 6);
    assert.equal(elements[0].name, "stream:features");
    assert.ok(elements[0].getChild("starttls", "urn:ietf:params:xml:ns:xmpp-tls")!.getChild("required"));
    assert.equal(elements[1].name, "db:result");
    assert.deepEqual(elements[2].children, ["\n  ", elements[2].getChild("body"), "\n"]);
    assert.equal(elements[3].toString(), "<iq><a><b><c><d><e><f>deep</f></e></d></c></b></a></iq>");
  });

  it("framed mode: every top-level element is a stanza, no stream events", () => {
    const { parser, events, elements } = recorder({ framed: true });
    parser.write(fixtures["websocket framing"].input);
    parser.end();
    assert.equal(events.length, 4);
    assert.deepEqual(
      elements.map((e) => e.name),
      ["open", "message", "iq", "close"],
    );
    assert.equal(elements[0].attrs.xmlns, "urn:ietf:params:xml:ns:xmpp-framing");
    assert.equal(elements[1].getChildText("body"), "x & y 😀");
  });

  it("adjacent text, references and CDATA become one string", () => {
    const { parser, elements } = recorder();
    parser.write(`${HEADER}<message><body>a &amp; b<![CDATA[ c ]]>&#100;<![CDATA[]]>e</body></message>`);
    assert.deepEqual(elements[0].getChild("body")!.children, ["a & b c de"]);
  });

  it("an attribute named __proto__ is an ordinary own attribute", () => {
    const { parser, elements } = recorder();
    parser.write(`${HEADER}<x __proto__='p' toString='t' constructor='c'/>`);
    assert.equal(elements[0].attrs.__proto__, "p");
    assert.equal(elements[0].attrs.toString, "t");
    assert.equal(Object.getPrototypeOf(elements[0].attrs), Object.prototype);
    assert.equal(elements[0].toString(), `<x __proto__="p" toString="t" constructor="c"/>`);
  });

  it("whitespace keepalives are ignored however many arrive", () => {
    const { parser, events } = recorder({ limits: { maxStanzaBytes: 1024 } });
    parser.write(HEADER);
    for (let k = 0; k < 200; k++) parser.write(" \n".repeat(1024));
    parser.write("<presence/>");
    assert.deepEqual(events.slice(1), [`stanza ${JSON.stringify(["presence", {}, []])}`]);
  });

  it("a stream header that closes itself starts and ends the stream", () => {
    assert.deepEqual(run([`<stream:stream ${STREAM_NS}/>`]), [`start stream:stream {"xmlns":"jabber:client","xmlns:stream":"http://etherx.jabber.org/streams"}`, "end"]);
  });
});

/**
 * Feeds `input` whole and one unit at a time; both must end in exactly one error with `condition`, and
 * nothing (more input, end()) may produce an event after it.
 */
function assertError(input: Chunk, condition: XmlErrorCondition, options?: ParserOptions, eof = false): void {
  const units = typeof input === "string" ? Array.from({ length: input.length }, (_, k) => input.slice(k, k + 1)) : Array.from(input, (b) => Buffer.from([b]));
  for (const chunks of [[input], units]) {
    const { parser, events } = recorder(options);
    for (const c of chunks) assert.doesNotThrow(() => parser.write(c));
    if (eof) parser.end();
    assert.equal(events.filter((e) => e.startsWith("error")).length, 1, `one error in ${JSON.stringify(events)}`);
    assert.equal(events[events.length - 1], `error ${condition}`);
    const count = events.length;
    parser.write(`<message><body>more</body></message></stream:stream>${HEADER}<presence/>`);
    parser.write(Buffer.from("<presence/>"));
    parser.end();
    assert.equal(events.length, count, "no events after the error");
  }
}

describe("xml parser: restricted XML (RFC 6120 §11.1)", () => {
  const cases: Array<[string, string]> = [
    ["a comment inside a stanza", `${HEADER}<message><!-- hi --></message>`],
    ["a comment between stanzas", `${HEADER}<!-- hi -->`],
    ["a comment before the header", `<!-- hi -->${HEADER}`],
    ["a processing instruction inside a stanza", `${HEADER}<message><?php echo 1; ?></message>`],
    ["a processing instruction between stanzas", `${HEADER}<?foo?>`],
    ["a processing instruction at the start", `<?xml-stylesheet href='x'?>${HEADER}`],
    ["an XML declaration that is not at the very start", ` <?xml version='1.0'?>${HEADER}`],
    ["an XML declaration after the header", `${HEADER}<?xml version='1.0'?>`],
    ["a DOCTYPE", `<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'y'>]>${HEADER}`],
    ["an entity declaration inside a stanza", `${HEADER}<message><!ENTITY x 'y'></message>`],
  ];
  for (const [title, input] of cases) it(`rejects ${title}`, () => assertError(input, "restricted-xml"));
});

describe("xml parser: well-formedness", () => {
  const cases: Array<[string, Chunk]> = [
    ["a mismatched end tag", `${HEADER}<message><body></message>`],
    ["a mismatched stream end tag", `${HEADER}</stream:streams>`],
    ["an end tag with nothing open (framed)", "</message>"],
    ["an element name starting with a digit", `${HEADER}<1message/>`],
    ["an element name with a bad character", `${HEADER}<mes$sage/>`],
    ["an attribute name with a bad character", `${HEADER}<message a!b='1'/>`],
    ["an empty end tag", `${HEADER}<message></>`],
    ["a space after '<'", `${HEADER}< message/>`],
    ["a duplicate attribute", `${HEADER}<message id='1' id="2"/>`],
    ["a duplicate attribute on the header", `<stream:stream to='a' to='b'>`],
    ["'<' in an attribute value", `${HEADER}<message id='a<b'/>`],
    ["an unquoted attribute value", `${HEADER}<message id=abc/>`],
    ["an attribute without value", `${HEADER}<message id/>`],
    ["attributes without whitespace between them", `${HEADER}<message id='1'to='x'/>`],
    ["junk after '/' in a tag", `${HEADER}<message/ >`],
    ["an unescaped '&' in text", `${HEADER}<message><body>a & b</body></message>`],
    ["an unescaped '&' in an attribute", `${HEADER}<message id='a&b'/>`],
    ["an undefined entity", `${HEADER}<message><body>&nbsp;</body></message>`],
    ["an overlong reference", `${HEADER}<message><body>&${"a".repeat(100)};</body></message>`],
    ["a reference to U+0000", `${HEADER}<message><body>&#0;</body></message>`],
    ["a reference to U+0001 in an attribute", `${HEADER}<message id='&#x1;'/>`],
    ["a reference to a surrogate", `${HEADER}<message><body>&#xD800;</body></message>`],
    ["a reference beyond U+10FFFF", `${HEADER}<message><body>&#x110000;</body></message>`],
    ["a reference to U+FFFE", `${HEADER}<message><body>&#65534;</body></message>`],
    ["an empty character reference", `${HEADER}<message><body>&#;</body></message>`],
    ["a character reference with an uppercase X", `${HEADER}<message><body>&#X41;</body></message>`],
    ["a raw U+0001 in text", `${HEADER}<message><body>a\u0001b</body></message>`],
    ["a raw U+0000 in an attribute", `${HEADER}<message id='\u0000'/>`],
    ["a raw U+0008 between stanzas", `${HEADER}\u0008`],
    ["a raw U+FFFF", `${HEADER}<message><body>\uffff</body></message>`],
    ["a lone surrogate in string input", `${HEADER}<message><body>\ud83d!</body></message>`],
    ["a lone low surrogate in string input", `${HEADER}<message id='\ude00'/>`],
    ["']]>' in text", `${HEADER}<message><body>a]]>b</body></message>`],
    ["text between stanzas", `${HEADER}hello<message/>`],
    ["an entity between stanzas", `${HEADER}&amp;`],
    ["text before the header", `hello${HEADER}`],
    ["CDATA between stanzas", `${HEADER}<![CDATA[ ]]>`],
    ["a malformed CDATA opener", `${HEADER}<message><![CDATX[x]]></message>`],
    ["a second root element after the stream ends", `${HEADER}</stream:stream><stream:stream>`],
    ["a malformed XML declaration", `<?xml version='2.0'?>${HEADER}`],
    ["an XML declaration without version", `<?xml encoding='UTF-8'?>${HEADER}`],
    ["'<' followed by junk", `${HEADER}<message><=/></message>`],
    ["invalid UTF-8: 0xFF", Buffer.concat([Buffer.from(`${HEADER}<message><body>`), Buffer.from([0xff]), Buffer.from("</body></message>")])],
    ["invalid UTF-8: lone continuation byte", Buffer.concat([Buffer.from(`${HEADER}<m>`), Buffer.from([0x80]), Buffer.from("</m>")])],
    ["invalid UTF-8: overlong '/'", Buffer.concat([Buffer.from(`${HEADER}<m>`), Buffer.from([0xc0, 0xaf]), Buffer.from("</m>")])],
    ["invalid UTF-8: truncated sequence", Buffer.concat([Buffer.from(`${HEADER}<m>`), Buffer.from([0xe2, 0x28, 0xa1]), Buffer.from("</m>")])],
    ["invalid UTF-8: encoded surrogate", Buffer.concat([Buffer.from(`${HEADER}<m>`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from("</m>")])],
    ["invalid UTF-8: beyond U+10FFFF", Buffer.concat([Buffer.from(`${HEADER}<m>`), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from("</m>")])],
  ];
  for (const [title, input] of cases) {
    const framed = title.includes("(framed)");
    it(`rejects ${title}`, () => assertError(input, "not-well-formed", { framed }));
  }

  it("rejects input that ends inside a stanza, a tag or a character", () => {
    assertError(`${HEADER}<message><body>hi`, "not-well-formed", undefined, true);
    assertError(`${HEADER}<message id='x`, "not-well-formed", undefined, true);
    assertError(`<stream:stream`, "not-well-formed", undefined, true);
    assertError(`${HEADER}<message><body>&am`, "not-well-formed", undefined, true);
    assertError(Buffer.concat([Buffer.from(`${HEADER}<m>`), Buffer.from([0xf0, 0x9f, 0x98])]), "not-well-formed", undefined, true);
    assertError(`${HEADER}<message>\ud83d`, "not-well-formed", undefined, true);
  });

  it("accepts end of input between stanzas even without </stream:stream>", () => {
    assert.deepEqual(run([`${HEADER}<presence/>\n`]).slice(1), [`stanza ${JSON.stringify(["presence", {}, []])}`]);
  });

  it("an unsupported encoding in the XML declaration is unsupported-encoding (RFC 6120 §4.9.3.22)", () => {
    assertError(`<?xml version='1.0' encoding='ISO-8859-1'?>${HEADER}`, "unsupported-encoding");
  });

  it("accepts every form of XML declaration at the start", () => {
    for (const decl of [`<?xml version="1.0"?>`, `<?xml version='1.0' encoding='utf-8'?>`, `<?xml version = '1.0' encoding="UTF-8" standalone='yes' ?>`]) {
      assert.deepEqual(run([decl + HEADER]).length, 1, decl);
    }
  });

  it("an exception from a handler propagates, and the parser then ignores its input", () => {
    let stanzas = 0;
    const parser = new StreamParser({
      onStreamStart() {},
      onStanza() {
        stanzas++;
        throw new Error("handler bug");
      },
      onStreamEnd() {},
      onError() {
        assert.fail("not a parse error");
      },
    });
    assert.throws(() => parser.write(`${HEADER}<presence/><presence/>`), /handler bug/);
    parser.write("<presence/>");
    parser.end();
    assert.equal(stanzas, 1);
  });

  it("write() never throws, even on nonsense input", () => {
    const { parser, events } = recorder();
    const junk = Buffer.alloc(4096);
    for (let k = 0; k < junk.length; k++) junk[k] = (k * 7919) & 0xff;
    assert.doesNotThrow(() => {
      parser.write(junk);
      parser.write("more");
      parser.end();
    });
    assert.equal(events.filter((e) => e.startsWith("error")).length, 1);
  });
});

describe("xml parser: namespace well-formedness (Namespaces in XML 1.0, RFC 6120 §4.9.3)", () => {
  const XML_NS = "http://www.w3.org/XML/1998/namespace";
  const XMLNS_NS = "http://www.w3.org/2000/xmlns/";
  // RFC 6120 §4.9.3.2: a prefix that is not declared is unsupported.
  const undeclared: Array<[string, string]> = [
    ["an undeclared element prefix", `${HEADER}<message><foo:bar/></message>`],
    ["an undeclared prefix on the stanza element", `${HEADER}<foo:message/>`],
    ["an undeclared attribute prefix", `${HEADER}<message foo:id='1'/>`],
    ["an undeclared attribute prefix deep inside", `${HEADER}<message><a><b c:d='1'/></a></message>`],
    ["a prefix declared on a sibling (out of scope)", `${HEADER}<message><a xmlns:p='urn:p'><b/></a><p:b/></message>`],
    ["a prefix declared on an empty sibling", `${HEADER}<message><a xmlns:p='urn:p'/><p:b/></message>`],
    ["a prefix declared in an earlier stanza", `${HEADER}<message xmlns:p='urn:p'><p:a/></message><message><p:b/></message>`],
    ["a prefix declared on an earlier empty stanza", `${HEADER}<message xmlns:p='urn:p'/><message p:x='1'/>`],
    ["a prefix declared in an earlier message (framed)", "<message xmlns:p='urn:p'/><p:x/>"],
    ["a stream header without its prefix declared", "<stream:stream xmlns='jabber:client' to='a' version='1.0'>"],
    ["the stream prefix in a message (framed)", "<stream:error/>"],
  ];
  for (const [title, input] of undeclared) {
    it(`rejects ${title} with bad-namespace-prefix`, () => assertError(input, "bad-namespace-prefix", { framed: title.includes("(framed)") }));
  }

  // RFC 6120 §4.9.3.13: violations of [XML-NAMES] are not-well-formed.
  const broken: Array<[string, string]> = [
    ["a declaration of the prefix xmlns", `${HEADER}<message xmlns:xmlns='urn:x'/>`],
    ["an element with the prefix xmlns", `${HEADER}<message><xmlns:foo/></message>`],
    ["the prefix xml bound to another namespace", `${HEADER}<message xmlns:xml='urn:x'/>`],
    ["the xml namespace bound to another prefix", `${HEADER}<message xmlns:x='${XML_NS}'/>`],
    ["the xmlns namespace bound to a prefix", `${HEADER}<message xmlns:x='${XMLNS_NS}'/>`],
    ["the xml namespace as the default namespace", `${HEADER}<message xmlns='${XML_NS}'/>`],
    ["the xmlns namespace as the default namespace", `${HEADER}<message><a xmlns="${XMLNS_NS}"/></message>`],
    ["an empty prefixed namespace declaration", `${HEADER}<message xmlns:a=''/>`],
    ["duplicate attributes after namespace expansion", `${HEADER}<message xmlns:a='urn:x' xmlns:b='urn:x' a:id='1' b:id='2'/>`],
    ["duplicate attributes through an inherited prefix", `${HEADER}<message xmlns:a='urn:x'><x xmlns:b='urn:x' a:k='1' b:k='2'/></message>`],
    ["an element name with two colons", `${HEADER}<a:b:c xmlns:a='urn:a'/>`],
    ["an element name starting with a colon", `${HEADER}<:a/>`],
    ["an element name ending in a colon", `${HEADER}<message><a:/></message>`],
    ["a local name starting with a digit", `${HEADER}<p:1a xmlns:p='urn:p'/>`],
    ["an attribute name starting with a colon", `${HEADER}<message :x='1'/>`],
    ["an attribute name ending in a colon", `${HEADER}<message xmlns:p='urn:p' p:='1'/>`],
    ["a declaration with an empty prefix", `${HEADER}<message xmlns:='urn:p'/>`],
    ["a declaration of the prefix xmlns on the header", `<stream:stream ${STREAM_NS} xmlns:xmlns='urn:x'>`],
  ];
  for (const [title, input] of broken) it(`rejects ${title} with not-well-formed`, () => assertError(input, "not-well-formed"));

  it("accepts xml:lang undeclared and declared, shadowed prefixes, and the same local name in two namespaces", () => {
    const input =
      `${HEADER}<message xml:lang='en' xmlns:a='urn:a1'><body xmlns:xml='${XML_NS}' xml:lang='de'>x</body>` +
      "<a:x a:k='1' k='2' xmlns:b='urn:b' b:k='3'><a:y xmlns:a='urn:a2' a:k='4'/></a:x><z xmlns=''/></message>";
    const events = assertSplitInvariant(input);
    assert.ok(!events.some((e) => e.startsWith("error")), events.join("\n"));
    assert.equal(events.length, 2);
  });

  it("gives every element that uses a prefix declared further out a copy of the declaration", () => {
    const { parser, elements } = recorder();
    parser.write(
      `<stream:stream ${STREAM_NS} xmlns:h='urn:header'>` +
        "<message xmlns:a='urn:a' h:note='n'><a:x><a:y a:k='1'/><h:z/></a:x><b xmlns:a='urn:other'><a:w/></b></message>" +
        "<stream:features/>",
    );
    const [message, features] = elements;
    assert.deepEqual(message.attrs, { "xmlns:a": "urn:a", "h:note": "n", "xmlns:h": "urn:header" });
    const x = message.getChild("x")!;
    assert.deepEqual(x.attrs, { "xmlns:a": "urn:a" });
    assert.deepEqual(x.getChild("y")!.attrs, { "a:k": "1", "xmlns:a": "urn:a" });
    assert.deepEqual(x.getChild("z")!.attrs, { "xmlns:h": "urn:header" });
    assert.deepEqual(message.getChild("b")!.getChild("w")!.attrs, { "xmlns:a": "urn:other" });
    assert.deepEqual(features.attrs, { "xmlns:stream": "http://etherx.jabber.org/streams" });
    // Any subtree, serialized on its own, is a namespace-well-formed document.
    const all = (el: Element): Element[] => [el, ...el.getChildElements().flatMap(all)];
    for (const el of all(message)) assert.doesNotThrow(() => parseFramedElement(el.toString()), el.toString());
  });

  it("copied declarations count against maxAttributes, so every accepted stanza can be read back", () => {
    const decls = (n: number) => Array.from({ length: n }, (_, k) => ` xmlns:p${k}='urn:${k}'`).join("");
    const uses = (n: number) => Array.from({ length: n }, (_, k) => ` p${k}:a='1'`).join("");
    assertError(`${HEADER}<message${decls(40)}><x${uses(40)}/></message>`, "policy-violation");
    const { parser, elements } = recorder();
    parser.write(`${HEADER}<message${decls(32)}><x${uses(32)}/></message>`);
    assert.equal(Object.keys(elements[0].getChild("x")!.attrs).length, 64);
    assert.doesNotThrow(() => parseFramedElement(elements[0].toString()));
  });

  it("a stream restart forgets the old header's declarations", () => {
    const { parser, events } = recorder();
    parser.write(`<stream:stream ${STREAM_NS} xmlns:h='urn:header'><h:a/>`);
    parser.reset();
    parser.write(`${HEADER}<h:a/>`);
    assert.deepEqual(events.map((e) => e.split(" ")[0]), ["start", "stanza", "start", "error"]);
    assert.equal(events[3], "error bad-namespace-prefix");
  });

  it("parseFramedElement (what stored rows are read back with) rejects an undeclared prefix", () => {
    assert.throws(() => parseFramedElement("<message xmlns='jabber:client'><body>hi</body><x:y/></message>"), (e: unknown) => e instanceof XmlError && e.condition === "bad-namespace-prefix");
    assert.equal(parseFramedElement("<message xmlns:x='urn:x'><x:y/></message>").getChild("y")!.attrs["xmlns:x"], "urn:x");
  });
});

describe("xml parser: limits", () => {
  it("defaults are 256 KiB, depth 64, 64 attributes, names of 256", () => {
    assert.deepEqual({ ...defaultParserLimits }, { maxStanzaBytes: 262144, maxDepth: 64, maxAttributes: 64, maxNameLength: 256 });
  });

  /** A `<message>` stanza of exactly `bytes` UTF-8 bytes whose body is made of multi-byte characters. */
  function stanzaOfBytes(bytes: number): string {
    const open = "<message><body>";
    const close = "</body></message>";
    let body = "";
    let size = Buffer.byteLength(open + close);
    const pieces = ["😀", "€", "é", "a"];
    for (const piece of pieces) {
      const n = Buffer.byteLength(piece);
      while (bytes - size >= n + (piece === "a" ? 0 : 8)) {
        body += piece;
        size += n;
      }
    }
    const stanza = open + body + close;
    assert.equal(Buffer.byteLength(stanza), bytes);
    return stanza;
  }

  for (const [title, max] of [
    ["a small limit", 200],
    ["the default limit", defaultParserLimits.maxStanzaBytes],
  ] as const) {
    it(`${title}: a stanza of exactly maxStanzaBytes passes, one byte more is a policy-violation`, () => {
      const options = { limits: { maxStanzaBytes: max } };
      const exact = stanzaOfBytes(max);
      const over = stanzaOfBytes(max + 1);
      for (const chunks of [[HEADER + exact], [Buffer.from(HEADER + exact)], Array.from(Buffer.from(HEADER + exact), (b) => Buffer.from([b]))]) {
        const events = run(chunks, options);
        assert.equal(events.length, 2);
        assert.ok(events[1].startsWith("stanza"));
      }
      assertError(HEADER + over, "policy-violation", options);
      assertError(Buffer.from(HEADER + over), "policy-violation", options);
    });
  }

  it("the limit applies per stanza, not per stream", () => {
    const stanza = stanzaOfBytes(150);
    const events = run([HEADER + stanza.repeat(50)], { limits: { maxStanzaBytes: 150 } });
    assert.equal(events.length, 51);
  });

  it("framed mode: the limit applies to each top-level element", () => {
    assert.equal(run([stanzaOfBytes(100).repeat(3)], { framed: true, limits: { maxStanzaBytes: 100 } }).length, 3);
    assertError(stanzaOfBytes(101), "policy-violation", { framed: true, limits: { maxStanzaBytes: 100 } });
  });

  it("nesting up to maxDepth passes, one deeper is a policy-violation", () => {
    const nest = (n: number) => "<a>".repeat(n) + "</a>".repeat(n);
    assert.equal(run([HEADER + nest(64)]).length, 2);
    assertError(HEADER + nest(65), "policy-violation");
    assertError(nest(5), "policy-violation", { framed: true, limits: { maxDepth: 4 } });
    // an unbounded stream of open tags is stopped long before memory matters
    const { parser, events } = recorder();
    parser.write(HEADER);
    for (let k = 0; k < 1000 && events.length < 2; k++) parser.write("<a>");
    assert.equal(events[1], "error policy-violation");
  });

  it("maxAttributes attributes pass, one more is a policy-violation", () => {
    const attrs = (n: number) => Array.from({ length: n }, (_, k) => ` a${k}='${k}'`).join("");
    assert.equal(run([`${HEADER}<x${attrs(64)}/>`]).length, 2);
    assertError(`${HEADER}<x${attrs(65)}/>`, "policy-violation");
    assertError(`<stream:stream${attrs(65)}>`, "policy-violation");
  });

  it("names of maxNameLength pass, longer element, attribute and end tag names are a policy-violation", () => {
    const name = "n".repeat(256);
    assert.equal(run([`${HEADER}<${name} ${name}='1'></${name}>`]).length, 2);
    assertError(`${HEADER}<${name}x/>`, "policy-violation");
    assertError(`${HEADER}<x ${name}x='1'/>`, "policy-violation");
    assertError(`${HEADER}<x></${name}x>`, "policy-violation");
  });

  it("maxAttributeValueBytes bounds one attribute value", () => {
    const options = { framed: true, limits: { maxAttributeValueBytes: 10 } };
    assert.equal(run([`<x a='0123456789' b='é€😀'/>`], options).length, 1);
    assertError(`<x a='0123456789a'/>`, "policy-violation", options);
    assertError(`<x a='é€😀ab'/>`, "policy-violation", options);
    assertError(`<x a='&amp;&amp;&amp;'/>`, "policy-violation", options);
  });

  /** Feeds `head` then endless filler in writes of about 1000 bytes: the error must come once the limit is crossed. */
  function assertBounded(head: string, filler: string | ((k: number) => string), limit: number, condition: XmlErrorCondition, options?: ParserOptions) {
    const { parser, events } = recorder(options);
    parser.write(head);
    let fed = Buffer.byteLength(head);
    let maxChunk = 0;
    for (let k = 0; events.every((e) => !e.startsWith("error")) && fed < limit * 4 + 100000; k++) {
      let chunk = "";
      while (chunk.length < 1000) chunk += typeof filler === "string" ? filler : filler(k++);
      parser.write(chunk);
      fed += Buffer.byteLength(chunk);
      maxChunk = Math.max(maxChunk, Buffer.byteLength(chunk));
    }
    assert.equal(events[events.length - 1], `error ${condition}`);
    assert.ok(fed > limit, "the error waited for the limit");
    assert.ok(fed <= limit + Buffer.byteLength(head) + maxChunk, `error came late: ${fed} bytes fed`);
  }

  it("an endless attribute value, name, text or CDATA section is cut off at the limit", () => {
    const max = defaultParserLimits.maxStanzaBytes;
    assertBounded(`${HEADER}<message id='`, "x", max, "policy-violation");
    assertBounded(`${HEADER}<message id="`, "é", max, "policy-violation");
    assertBounded(`${HEADER}<message><body>`, "text 😀 ", max, "policy-violation");
    assertBounded(`${HEADER}<message><body><![CDATA[`, "]]]", max, "policy-violation");
    assertBounded(`${HEADER}<message>`, "<a/>", max, "policy-violation");
    assertBounded(`${HEADER}<message id='1'`, (k) => ` a${k}='1'`, max, "policy-violation", { limits: { maxAttributes: 1e9 } });
    assertBounded(`${HEADER}<`, "n", defaultParserLimits.maxNameLength, "policy-violation");
    assertBounded(`${HEADER}<message `, "n", defaultParserLimits.maxNameLength, "policy-violation");
    assertBounded(`<message><body>`, "x", 1000, "policy-violation", { framed: true, limits: { maxStanzaBytes: 1000 } });
  });

  it("an endless stream header or XML declaration is cut off too", () => {
    const max = defaultParserLimits.maxStanzaBytes;
    assertBounded(`<stream:stream to='`, "x", max, "policy-violation");
    assertBounded(`<stream:stream`, (k) => ` a${k}='1'`, max, "policy-violation", { limits: { maxAttributes: 1e9 } });
    assertBounded(`<?xml version='1.0'`, " ", 1024, "not-well-formed");
  });
});

describe("xml parser: stream restart (RFC 6120 §4.3.3)", () => {
  it("accepts a new stream header (and declaration) after reset()", () => {
    const { parser, events } = recorder();
    parser.write(`<?xml version='1.0'?>${HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>`);
    parser.reset();
    parser.write(`<?xml version='1.0'?>${HEADER}<iq type='set' id='b'/>`);
    assert.deepEqual(
      events.map((e) => e.split(" ")[0]),
      ["start", "stanza", "start", "stanza"],
    );
  });

  it("keeps each stream's prefix bindings its own, though parsers of the usual header share them", () => {
    const a = recorder(), b = recorder();
    a.parser.write(HEADER);
    b.parser.write(HEADER);
    // A binds a prefix in a stanza, then restarts with a header that binds another prefix to the stream
    // namespace: neither may show in B, which still reads stream:error by the header's binding.
    a.parser.write(`<message xmlns:x='urn:example'><x:y/></message>`);
    a.parser.reset();
    a.parser.write(`<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
    a.parser.write(`<s:features/>`);
    b.parser.write(`<stream:features/><message><x:y/></message>`);
    assert.deepEqual(a.events.map((e) => e.split(" ")[0]), ["start", "stanza", "start", "stanza"]);
    assert.equal(a.elements[1].name, "s:features");
    assert.deepEqual(b.events.map((e) => e.split(" ")[0]), ["start", "stanza", "error"], b.events.join("\n"));
    assert.equal(b.elements[0].name, "stream:features");
    assert.equal(b.elements[0].getNS(), "http://etherx.jabber.org/streams");
  });

  it("forgets a half-read stanza and byte counts", () => {
    const { parser, events } = recorder({ limits: { maxStanzaBytes: 200 } });
    parser.write(`${HEADER}<message><body>${"x".repeat(150)}`);
    parser.reset();
    parser.write(`${HEADER}<message><body>${"x".repeat(150)}</body></message>`);
    assert.deepEqual(
      events.map((e) => e.split(" ")[0]),
      ["start", "start", "stanza"],
    );
  });

  it("reset() from inside onStanza: the rest of the same write is the new stream", () => {
    const events: string[] = [];
    const parser: StreamParser = new StreamParser({
      onStreamStart: (name) => events.push(`start ${name}`),
      onStanza: (el) => {
        events.push(`stanza ${el.name}`);
        if (el.name === "success") parser.reset();
      },
      onStreamEnd: () => events.push("end"),
      onError: (err) => events.push(`error ${err.condition}`),
    });
    const input = Buffer.from(`${HEADER}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><?xml version='1.0'?>${HEADER}<iq id='é'/>`);
    for (const chunks of splits(input)) {
      events.length = 0;
      parser.reset();
      for (const c of chunks) parser.write(c);
      assert.deepEqual(events, ["start stream:stream", "stanza success", "start stream:stream", "stanza iq"]);
    }
  });

  it("reset() after an error makes the parser usable again", () => {
    const { parser, events } = recorder();
    parser.write(`${HEADER}<!-- no -->`);
    parser.reset();
    parser.write(`${HEADER}<presence/>`);
    assert.deepEqual(
      events.map((e) => e.split(" ")[0]),
      ["start", "error", "start", "stanza"],
    );
  });

  it("without reset() a declaration in the middle of the stream is still rejected", () => {
    assertError(`${HEADER}<success/><?xml version='1.0'?>`, "restricted-xml");
  });
});

describe("xml parser: parseFramedElement (RFC 7395)", () => {
  it("returns the one element of a message", () => {
    const open = parseFramedElement("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>");
    assert.ok(open.is("open", "urn:ietf:params:xml:ns:xmpp-framing"));
    assert.equal(open.attrs.to, "example.com");
    const msg = parseFramedElement(" <message xmlns='jabber:client'><body>a &lt; b 😀</body></message>\n");
    assert.equal(msg.getChildText("body"), "a < b 😀");
    assert.equal(parseFramedElement("<?xml version='1.0'?><close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>").name, "close");
  });

  function assertThrows(text: string, condition: XmlErrorCondition, limits?: Partial<ParserLimits>) {
    assert.throws(
      () => parseFramedElement(text, limits),
      (err: unknown) => err instanceof XmlError && err.condition === condition,
    );
  }

  it("rejects two elements, no element, trailing garbage and partial elements", () => {
    assertThrows("<a/><b/>", "bad-format");
    assertThrows("<a/> <b>x</b>", "bad-format");
    assertThrows("", "bad-format");
    assertThrows("  \n", "bad-format");
    assertThrows("<a/>garbage", "not-well-formed");
    assertThrows("<a/></a>", "not-well-formed");
    assertThrows("<message><body>hi</body>", "not-well-formed");
    assertThrows("<message", "not-well-formed");
    assertThrows("<a/><!-- x -->", "restricted-xml");
    assertThrows("<message><body>hi</body></message>", "policy-violation", { maxStanzaBytes: 20 });
  });
});
