// Per-conversation state from XMPP alone (the mobile adapter disabled): unread counts follow the timeline,
// XEP-0333 displayed markers of the user's own clients move the read seq, and the peer's receipts (XEP-0184)
// and markers move the peer's delivered/read seqs.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const MARKERS = "urn:xmpp:chat-markers:0";
const chat = (to: string, id: string, text: string) =>
  xml("message", { to, type: "chat", id }, xml("body", null, text), xml("origin-id", { xmlns: "urn:xmpp:sid:0", id }), xml("markable", { xmlns: MARKERS }));
const body = (text: string) => (el: Element) => el.name === "message" && el.getChildText("body") === text;

async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let v = await read();
  for (let i = 0; i < 50 && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 20));
    v = await read();
  }
  return v;
}

describe("conversation state over XMPP (mobile adapter disabled)", () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ modules: { disabled: ["mobile"] } }); });
  after(async () => { await ts?.stop(); });

  it("counts unread messages, marks them read by the user's displayed marker, and records the peer's markers", async () => {
    const a = `ann${Date.now().toString(36)}`, b = `bob${Date.now().toString(36)}`;
    const A = `${a}@localhost`, B = `${b}@localhost`;
    const ann = await onlineUser(ts, a);
    const bob = await onlineUser(ts, b);
    const conversations = ts.server.modules.service("conversations")!;
    for (const n of [1, 2, 3]) ann.send(chat(B, `m${n}`, `hello ${n}`));
    await bob.receive(body("hello 3"));
    assert.equal((await conversations.get(B, A))!.unread, 3);

    // Bob's client displayed the second message: read up to it, one unread left.
    bob.send(xml("message", { to: A, type: "chat" }, xml("displayed", { xmlns: MARKERS, id: "m2" })));
    const read = await eventually(() => conversations.get(B, A), (c) => c!.unread === 1);
    assert.equal(read!.unread, 1);
    const m2 = await conversations.messageById(B, A, "m2", false);
    assert.equal(read!.read, m2!.seq);

    // On Ann's side the same marker is the peer's read marker.
    const annSide = await eventually(() => conversations.get(A, B), (c) => c!.peerRead > 0);
    assert.equal(annSide!.peerRead, (await conversations.messageById(A, B, "m2", true))!.seq);
    ann.close(); bob.close();
  });
});
