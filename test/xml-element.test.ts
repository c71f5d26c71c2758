import assert from "node:assert/strict";
import { ltxGetChild, xml, type Element } from "../src/xml/element.js";
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
