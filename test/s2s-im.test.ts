// Everything a user does works across the federated link between two hearth servers: iq both ways (vCard,
// version, ping, disco), a MUC room of ours with an occupant from the other server and our user in a room
// over there, a mobile-protocol user chatting with a remote XMPP user, and presence of remote contacts
// turned unavailable when the link drops.
import assert from "node:assert/strict";
import type { TestServer } from "./helpers/server.js";
import { type RawClient, onlineUser } from "./helpers/raw-client.js";
import { B_ADDR, cuttableLink, federatedPair } from "./helpers/s2s-peer.js";
import { freePort, mobileUser, type MobileClient, type MobileTestServer } from "./helpers/mobile-client.js";
import { xml, type Element } from "../src/xml/element.js";

const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;
const statusCodes = (el: Element) => (el.getChild("x", MUC_USER)?.getChildren("status") ?? []).map((s) => s.attrs.code);

/** Joins `room` as `nick` and waits for the self-presence (status 110). */
async function join(c: RawClient, room: string, nick: string): Promise<Element> {
  c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
  const self = await c.receive((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}` && (el.attrs.type === "error" || statusCodes(el).includes("110")), 8000);
  assert.notEqual(self.attrs.type, "error", `join failed: ${self.toString()}`);
  if (statusCodes(self).includes("201")) {
    // A new room: accept the default configuration (an instant room, XEP-0045 §10.1.2).
    const done = await c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: `${MUC}#owner` }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))), 8000);
    assert.equal(done.attrs.type, "result");
  }
  return self;
}

describe("s2s: IM across the link between two hearth servers", function () {
  let a: MobileTestServer;
  let b: TestServer;
  let alice: RawClient;
  let bob: RawClient;

  before(async () => {
    const mobilePort = await freePort();
    const [sa, sb] = await federatedPair((domain) => (domain === "a.test" ? { modules: { mobile: { port: mobilePort, bind: "127.0.0.1" } } } : {}));
    a = Object.assign(sa, { mobilePort, mobileUrl: `ws://127.0.0.1:${mobilePort}/mobile` });
    b = sb;
    [alice, bob] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob")]);
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  describe("iq both ways", () => {
    it("software version (XEP-0092) of the remote server, both directions", async () => {
      const ns = "jabber:iq:version";
      const fromB = await alice.iq(xml("iq", { type: "get", to: "b.test" }, xml("query", { xmlns: ns })), 8000);
      assert.equal(fromB.attrs.type, "result");
      assert.equal(fromB.attrs.from, "b.test");
      assert.ok(fromB.getChild("query", ns)?.getChildText("name"));
      const fromA = await bob.iq(xml("iq", { type: "get", to: "a.test" }, xml("query", { xmlns: ns })), 8000);
      assert.equal(fromA.attrs.type, "result");
      assert.equal(fromA.attrs.from, "a.test");
    });

    it("disco#info (XEP-0030) of the remote server and of a remote account", async () => {
      const ns = "http://jabber.org/protocol/disco#info";
      const server = await alice.iq(xml("iq", { type: "get", to: "b.test" }, xml("query", { xmlns: ns })), 8000);
      assert.equal(server.attrs.type, "result");
      assert.ok(server.getChild("query")!.getChildren("identity").some((i) => i.attrs.category === "server"));
      const account = await alice.iq(xml("iq", { type: "get", to: "bob@b.test" }, xml("query", { xmlns: ns })), 8000);
      assert.equal(account.attrs.type, "result");
      assert.equal(account.attrs.from, "bob@b.test");
    });

    it("a remote user's vCard (XEP-0054)", async () => {
      const set = await bob.iq(xml("iq", { type: "set" }, xml("vCard", { xmlns: "vcard-temp" }, xml("FN", null, "Bob of B"))));
      assert.equal(set.attrs.type, "result");
      const got = await alice.iq(xml("iq", { type: "get", to: "bob@b.test" }, xml("vCard", { xmlns: "vcard-temp" })), 8000);
      assert.equal(got.attrs.type, "result");
      assert.equal(got.getChild("vCard")?.getChildText("FN"), "Bob of B");
    });

    it("ping (XEP-0199) of a remote user's resource, answered by the client", async () => {
      const id = "ping-bob";
      alice.send(xml("iq", { type: "get", to: bob.jid, id }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      const ping = await bob.receive((el) => el.name === "iq" && el.attrs.id === id, 8000);
      assert.equal(ping.attrs.from, alice.jid);
      bob.send(xml("iq", { type: "result", to: ping.attrs.from, id }));
      const pong = await alice.receive((el) => el.name === "iq" && el.attrs.id === id, 8000);
      assert.equal(pong.attrs.type, "result");
      assert.equal(pong.attrs.from, bob.jid);
    });
  });

  describe("multi-user chat (XEP-0045) across the link", () => {
    it("a room of ours with an occupant from the other server: presence and groupchat both ways", async () => {
      const room = "ours@conference.a.test";
      await join(alice, room, "alice");
      const bobSelf = await join(bob, room, "bob");
      assert.equal(bobSelf.attrs.to, bob.jid);
      const seen = await alice.receive((el) => el.name === "presence" && el.attrs.from === `${room}/bob`, 8000);
      assert.equal(seen.attrs.type, undefined);
      bob.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "hi from b")));
      assert.equal((await alice.receive(isMessageWith("hi from b"), 8000)).attrs.from, `${room}/bob`);
      assert.equal((await bob.receive(isMessageWith("hi from b"), 8000)).attrs.from, `${room}/bob`, "reflected to the remote sender");
      alice.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "hi from a")));
      assert.equal((await bob.receive(isMessageWith("hi from a"), 8000)).attrs.from, `${room}/alice`);
      bob.send(xml("presence", { to: `${room}/bob`, type: "unavailable" }));
      await alice.receive((el) => el.name === "presence" && el.attrs.from === `${room}/bob` && el.attrs.type === "unavailable", 8000);
    });

    it("our user in a room on the other server", async () => {
      const room = "theirs@conference.b.test";
      await join(bob, room, "bob");
      await join(alice, room, "alice");
      await bob.receive((el) => el.name === "presence" && el.attrs.from === `${room}/alice`, 8000);
      alice.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "visiting")));
      assert.equal((await bob.receive(isMessageWith("visiting"), 8000)).attrs.from, `${room}/alice`);
      bob.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "welcome")));
      assert.equal((await alice.receive(isMessageWith("welcome"), 8000)).attrs.from, `${room}/bob`);
    });
  });

  it("a mobile-protocol user chats with a user on the other server, both ways", async () => {
    const mo: MobileClient = await mobileUser(a, "mo", { deviceId: "phone" });
    try {
      const ack = await mo.send("bob@b.test", "from a phone");
      assert.ok(ack.seq > 0, "stored before it went out");
      const got = await bob.receive(isMessageWith("from a phone"), 8000);
      assert.ok(got.attrs.from?.startsWith("mo@a.test/"));
      bob.send(xml("message", { to: "mo@a.test", type: "chat" }, xml("body", null, "to a phone")));
      const pushed = await mo.nextMessage((m) => m.body === "to a phone", 8000);
      assert.equal(pushed.from.split("/")[0], "bob@b.test");
    } finally {
      mo.close();
    }
  });
});

describe("s2s: remote contacts when the link drops", function () {
  let a: TestServer;
  let b: TestServer;
  let link: Awaited<ReturnType<typeof cuttableLink>>;
  after(async () => {
    await link?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("turns a remote contact's presence unavailable when its server's stream drops, and available again after", async () => {
    [a, b] = await federatedPair();
    // b.test reaches a.test through a relay the test can cut, as a network failure would.
    link = await cuttableLink(B_ADDR, { host: "127.0.0.2", port: a.server.s2s.port! });
    b.config.s2s.routes["a.test"] = `${B_ADDR}:${link.port}`;
    const [alice, bob] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob")]);
    for (const c of [alice, bob]) await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    // Mutual subscription (RFC 6121 §3.1), then both available.
    alice.send(xml("presence", { to: "bob@b.test", type: "subscribe" }));
    await bob.receive((el) => el.name === "presence" && el.attrs.type === "subscribe", 8000);
    bob.send(xml("presence", { to: "alice@a.test", type: "subscribed" }));
    bob.send(xml("presence", { to: "alice@a.test", type: "subscribe" }));
    await alice.receive((el) => el.name === "presence" && el.attrs.type === "subscribe", 8000);
    alice.send(xml("presence", { to: "bob@b.test", type: "subscribed" }));
    await alice.receive((el) => el.name === "presence" && el.attrs.from === bob.jid && el.attrs.type === undefined, 8000);

    link.cut();
    const gone = await alice.receive((el) => el.name === "presence" && el.attrs.from === bob.jid && el.attrs.type === "unavailable", 8000);
    assert.equal(gone.attrs.to, "alice@a.test");
    // Bob is still online: his next presence comes over a new stream.
    bob.send(xml("presence", null, xml("status", null, "back")));
    const back = await alice.receive((el) => el.name === "presence" && el.attrs.from === bob.jid && el.getChildText("status") === "back", 8000);
    assert.equal(back.attrs.type, undefined);
    alice.close();
    bob.close();
  });
});
