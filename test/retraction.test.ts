// XEP-0424 retraction for XMPP users with the mobile adapter disabled: the recall window and the tombstones
// belong to the retraction module.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const RETRACT = "urn:xmpp:message-retract:1";
const SID = "urn:xmpp:sid:0";

const message = (to: string, id: string, text: string) =>
  xml("message", { to, type: "chat", id }, xml("body", null, text), xml("origin-id", { xmlns: SID, id }));
const retraction = (to: string, id: string, target: string) =>
  xml("message", { to, type: "chat", id }, xml("retract", { xmlns: RETRACT, id: target }), xml("body", null, "retracted"), xml("store", { xmlns: "urn:xmpp:hints" }));
const isRetractionOf = (target: string) => (el: Element) => el.name === "message" && el.getChild("retract", RETRACT)?.attrs.id === target;

describe("XEP-0424 retraction (mobile adapter disabled)", () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ modules: { disabled: ["mobile"], retraction: { windowSeconds: 1 } } }); });
  after(async () => { await ts?.stop(); });

  it("passes a retraction within the window and leaves tombstones; refuses one past it with not-allowed", async () => {
    const a = `ann${Date.now().toString(36)}`, b = `bob${Date.now().toString(36)}`;
    const ann = await onlineUser(ts, a);
    const bob = await onlineUser(ts, b);
    const B = `${b}@localhost`;
    ann.send(message(B, "m-1", "first"));
    await bob.receive((el) => el.getChildText("body") === "first");
    ann.send(retraction(B, "r-1", "m-1"));
    await bob.receive(isRetractionOf("m-1"));

    // Both timelines mark the retracted message (what mobile history and the conversation list read).
    const conversations = ts.server.modules.service("conversations")!;
    const bobRow = await conversations.messageById(B, `${a}@localhost`, "m-1", false);
    const annRow = await conversations.messageById(`${a}@localhost`, B, "m-1", true);
    const recalled = async (owner: string, seq: number) => {
      for (let i = 0; i < 50 && !(await conversations.recalls(owner)).has(seq); i++) await new Promise((r) => setTimeout(r, 20));
      return (await conversations.recalls(owner)).has(seq);
    };
    assert.ok(bobRow && annRow);
    assert.ok(await recalled(B, bobRow.seq), "the recipient's copy has a tombstone");
    assert.ok(await recalled(`${a}@localhost`, annRow.seq), "the sender's copy has a tombstone");

    ann.send(message(B, "m-2", "second"));
    await bob.receive((el) => el.getChildText("body") === "second");
    await new Promise((r) => setTimeout(r, 1200));
    ann.send(retraction(B, "r-2", "m-2"));
    const refused = await ann.receive((el) => el.attrs.type === "error" && el.attrs.id === "r-2");
    assert.equal(errorCondition(refused), "not-allowed");
    await bob.nothing(isRetractionOf("m-2"));
    ann.close(); bob.close();
  });
});
