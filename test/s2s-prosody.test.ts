// Interop with a real Prosody (Debian's package, a private instance on loopback): hearth.test on
// 127.0.0.2 and prosody.test on 127.0.0.6 federate over STARTTLS with Server Dialback (neither trusts the
// other's certificate), both directions.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { freePort } from "./helpers/s2s-peer.js";
import { startProsody, type Prosody } from "./helpers/prosody.js";
import { xml, type Element } from "../src/xml/element.js";

const HEARTH = "127.0.0.2";
const PROSODY = "127.0.0.6";
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

/** A client of the Prosody instance (SCRAM-SHA-1, which Prosody 0.12 stores), with initial presence. */
async function prosodyUser(port: number, domain: string, username: string, password: string): Promise<RawClient> {
  const c = await RawClient.connect({ host: domain, c2sPort: port } as TestServer);
  await c.open();
  await c.authenticate(username, password, "SHA-1");
  await c.open();
  await c.bind("interop");
  await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
  c.send(xml("presence"));
  return c;
}

describe("s2s interop: Prosody over dialback", function () {
  this.timeout(30_000);
  let hearth: TestServer;
  let prosody: Prosody;
  let alice: RawClient;
  let romeo: RawClient;

  before(async () => {
    const [hearthPort, prosodyS2s, prosodyC2s] = [await freePort(HEARTH), await freePort(PROSODY), await freePort("127.0.0.1")];
    [hearth, prosody] = await Promise.all([
      startTestServer({ hosts: ["hearth.test"], s2s: { bind: HEARTH, port: hearthPort, routes: { "prosody.test": `${PROSODY}:${prosodyS2s}` }, connectTimeoutSeconds: 8 } }),
      startProsody({ domain: "prosody.test", address: PROSODY, c2sPort: prosodyC2s, s2sPort: prosodyS2s, routes: { "hearth.test": [HEARTH, hearthPort] }, users: { romeo: "romeo-secret" } }),
    ]);
    alice = await onlineUser(hearth, "alice");
    await alice.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    romeo = await prosodyUser(prosodyC2s, "prosody.test", "romeo", "romeo-secret");
  });
  after(async () => {
    alice?.close();
    romeo?.close();
    await hearth?.stop();
    await prosody?.stop();
  });

  it("carries messages both ways, each direction authenticated with dialback", async () => {
    alice.send(xml("message", { to: "romeo@prosody.test", type: "chat" }, xml("body", null, "hello prosody")));
    const got = await romeo.receive(isMessageWith("hello prosody"), 10_000);
    assert.equal(got.attrs.from, alice.jid);
    romeo.send(xml("message", { to: alice.jid, type: "chat" }, xml("body", null, "hello hearth")));
    const back = await alice.receive(isMessageWith("hello hearth"), 10_000);
    assert.equal(back.attrs.from, romeo.jid);
    assert.deepEqual(hearth.server.s2s.outgoing(), [{ local: "hearth.test", remote: "prosody.test", method: "dialback", ready: true }]);
    assert.deepEqual(hearth.server.s2s.incoming().map((s) => [s.peer, s.method, s.pairs]), [["prosody.test", "dialback", ["prosody.test hearth.test"]]]);
    assert.match(prosody.log(), /Outgoing s2s connection prosody\.test->hearth\.test complete/);
  });

  it("carries a subscription and presence both ways", async () => {
    alice.send(xml("presence", { to: "romeo@prosody.test", type: "subscribe" }));
    const request = await romeo.receive((el) => el.name === "presence" && el.attrs.type === "subscribe", 10_000);
    assert.equal(request.attrs.from, "alice@hearth.test");
    romeo.send(xml("presence", { to: "alice@hearth.test", type: "subscribed" }));
    const push = await alice.receive((el) => el.name === "iq" && el.getChild("query")?.getChild("item")?.attrs.subscription === "to", 10_000);
    assert.equal(push.getChild("query")!.getChild("item")!.attrs.jid, "romeo@prosody.test");
    // Prosody sends romeo's presence to the new subscriber (RFC 6121 §3.1.5).
    await alice.receive((el) => el.name === "presence" && el.attrs.from === romeo.jid && el.attrs.type === undefined, 10_000);

    romeo.send(xml("presence", { to: "alice@hearth.test", type: "subscribe" }));
    await alice.receive((el) => el.name === "presence" && el.attrs.type === "subscribe" && el.attrs.from === "romeo@prosody.test", 10_000);
    alice.send(xml("presence", { to: "romeo@prosody.test", type: "subscribed" }));
    // hearth sends alice's presence to romeo once he is subscribed.
    await romeo.receive((el) => el.name === "presence" && el.attrs.from === alice.jid && el.attrs.type === undefined, 10_000);
    // And a presence change reaches the other side.
    alice.send(xml("presence", null, xml("show", null, "away")));
    const away = await romeo.receive((el) => el.name === "presence" && el.attrs.from === alice.jid && el.getChildText("show") === "away", 10_000);
    assert.equal(away.attrs.type, undefined);
  });

  it("answers iq both ways: hearth pings prosody.test, romeo asks hearth.test for its version", async () => {
    const pong = await alice.iq(xml("iq", { type: "get", to: "prosody.test" }, xml("ping", { xmlns: "urn:xmpp:ping" })), 10_000);
    assert.equal(pong.attrs.type, "result");
    const version = await romeo.iq(xml("iq", { type: "get", to: "hearth.test" }, xml("query", { xmlns: "jabber:iq:version" })), 10_000);
    assert.equal(version.attrs.type, "result");
    assert.equal(version.getChild("query")?.getChildText("name"), "hearth");
  });
});
