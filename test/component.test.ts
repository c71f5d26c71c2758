// XEP-0114 dialogues: an external component connects to the component port, proves its secret and serves
// gateway.localhost; users reach it with @xmpp/client and raw clients, and it answers them.
import assert from "node:assert/strict";
import { client } from "@xmpp/client";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { onlineUser } from "./helpers/raw-client.js";
import { federatedPair } from "./helpers/s2s-peer.js";
import { GATEWAY, SECRET, RawComponent, streamErrorOf } from "./helpers/raw-component.js";
import { xml, type Element } from "../src/xml/element.js";

const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

describe("XEP-0114 Jabber Component Protocol", function () {
  this.timeout(20_000);
  let ts: TestServer;
  let port: number;
  before(async () => {
    ts = await startTestServer({ components: { bind: "127.0.0.1", port: 0, secrets: { [GATEWAY]: SECRET } } });
    port = ts.server.modules.service("components")!.port!;
  });
  after(() => ts?.stop());

  it("a component connects with its secret, an @xmpp/client user messages it and gets its reply", async () => {
    const { c: gateway, answer } = await RawComponent.login(port);
    assert.equal(answer.name, "handshake");
    assert.equal(gateway.header?.from, GATEWAY);
    assert.equal(gateway.header?.xmlns, "jabber:component:accept");
    assert.deepEqual(ts.server.modules.service("components")!.connected(), [GATEWAY]);
    if (!(await ts.accounts.exists(ts.host, "romeo"))) await ts.accounts.create(ts.host, "romeo", "password");
    const romeo = client({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username: "romeo", password: "password", resource: "js" });
    // COMPAT: @xmpp/client upgrades whenever STARTTLS is offered and checks the certificate; the test
    // server's is self-signed and TLS is optional here, so the client is shown no STARTTLS.
    romeo.prependListener("element", (el: Element) => {
      if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
    });
    romeo.on("error", () => {});
    const replies: Element[] = [];
    romeo.on("stanza", (el: Element) => { if (el.is("message")) replies.push(el); });
    try {
      const me = (await romeo.start()).toString();
      await romeo.send(xml("message", { to: `bot@${GATEWAY}`, type: "chat" }, xml("body", null, "hello gateway")));
      const got = await gateway.receive((el) => el.name === "message");
      assert.equal(got.attrs.from, me, "the server stamps the sender's full JID");
      assert.equal(got.attrs.to, `bot@${GATEWAY}`);
      assert.equal(got.getChildText("body"), "hello gateway");

      gateway.send(xml("message", { from: `bot@${GATEWAY}/gw`, to: me, type: "chat" }, xml("body", null, "hello romeo")));
      for (let i = 0; i < 100 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(replies.length, 1);
      assert.equal(replies[0].attrs.from, `bot@${GATEWAY}/gw`);
      assert.equal(replies[0].getChildText("body"), "hello romeo");

      // An iq request to the component's domain is answered by the component itself.
      const asked = romeo.iqCaller.get(xml("query", { xmlns: DISCO_INFO }), GATEWAY);
      const req = await gateway.receive((el) => el.name === "iq" && el.attrs.type === "get");
      assert.equal(req.attrs.from, me);
      gateway.send(xml("iq", { type: "result", id: req.attrs.id, from: GATEWAY, to: req.attrs.from },
        xml("query", { xmlns: DISCO_INFO }, xml("identity", { category: "gateway", type: "irc", name: "IRC" }))));
      const info = await asked;
      assert.equal(info.getChild("identity")?.attrs.type, "irc");
    } finally {
      await romeo.stop();
      gateway.close();
      await gateway.closed;
    }
  });

  it("the component asks the server (disco#items) and sees its own domain listed", async () => {
    const { c: gateway } = await RawComponent.login(port);
    try {
      gateway.send(xml("iq", { type: "get", id: "items1", from: GATEWAY, to: ts.host }, xml("query", { xmlns: DISCO_ITEMS })));
      const res = await gateway.receive((el) => el.name === "iq" && el.attrs.id === "items1");
      assert.equal(res.attrs.type, "result", res.toString());
      assert.equal(res.attrs.to, GATEWAY);
      const jids = res.getChild("query", DISCO_ITEMS)!.getChildren("item").map((i) => i.attrs.jid);
      assert.ok(jids.includes(GATEWAY), `disco#items lists the component: ${jids.join(", ")}`);
    } finally {
      gateway.close();
      await gateway.closed;
    }
  });

  it("a served host cannot be a component domain (config error)", async () => {
    await assert.rejects(startTestServer({ components: { secrets: { localhost: SECRET } } }), /components\.secrets\.localhost: localhost is a served host/);
  });

  it("a wrong secret is refused with not-authorized and the domain stays unserved", async () => {
    const { c, answer } = await RawComponent.login(port, GATEWAY, "not the secret at all, no");
    assert.equal(streamErrorOf(answer), "not-authorized");
    await c.closed;
    assert.deepEqual(ts.server.modules.service("components")!.connected(), []);
  });

  it("a domain that is not a configured component is refused with host-unknown", async () => {
    const { c, answer } = await RawComponent.login(port, "other.localhost");
    assert.equal(streamErrorOf(answer), "host-unknown");
    await c.closed;
  });

  it("a second connection that knows the secret replaces the first (conflict) and serves from then on", async () => {
    const first = await RawComponent.login(port);
    assert.equal(first.answer.name, "handshake");
    const second = await RawComponent.login(port);
    assert.equal(second.answer.name, "handshake", "the newcomer with the secret is accepted");
    assert.equal(streamErrorOf(await first.c.receive((el) => el.name === "stream:error")), "conflict");
    await first.c.closed;
    assert.deepEqual(ts.server.modules.service("components")!.connected(), [GATEWAY]);
    const juliet = await onlineUser(ts, "juliet");
    juliet.send(xml("message", { to: `bot@${GATEWAY}`, type: "chat" }, xml("body", null, "who is there?")));
    const got = await second.c.receive((el) => el.name === "message");
    assert.equal(got.getChildText("body"), "who is there?");
    second.c.close();
    await second.c.closed;
    juliet.close();
  });

  it("a wrong secret does not replace the connected component", async () => {
    const first = await RawComponent.login(port);
    const intruder = await RawComponent.login(port, GATEWAY, "not the secret at all, no");
    assert.equal(streamErrorOf(intruder.answer), "not-authorized");
    await intruder.c.closed;
    const juliet = await onlineUser(ts, "juliet");
    juliet.send(xml("message", { to: `bot@${GATEWAY}`, type: "chat" }, xml("body", null, "still there?")));
    const got = await first.c.receive((el) => el.name === "message");
    assert.equal(got.getChildText("body"), "still there?");
    first.c.close();
    await first.c.closed;
    juliet.close();
  });

  it("a stanza from outside the component's domain ends the stream with invalid-from and is not delivered", async () => {
    const juliet = await onlineUser(ts, "juliet", { resource: "balcony" });
    const { c } = await RawComponent.login(port);
    c.send(xml("message", { from: "romeo@localhost/js", to: juliet.jid, type: "chat" }, xml("body", null, "forged")));
    assert.equal(streamErrorOf(await c.receive((el) => el.name === "stream:error")), "invalid-from");
    await c.closed;
    await juliet.nothing((el) => el.name === "message" && el.getChildText("body") === "forged", 300);
    juliet.close();
  });

  it("an element larger than a handshake before the handshake ends the stream with policy-violation", async () => {
    const c = await RawComponent.connect(port);
    await c.open(GATEWAY);
    c.send(xml("handshake", null, "0".repeat(8192)));
    assert.equal(streamErrorOf(await c.receive((el) => el.name === "stream:error")), "policy-violation");
    await c.closed;
  });

  it("stanzas before the handshake are refused with not-authorized", async () => {
    const c = await RawComponent.connect(port);
    await c.open(GATEWAY);
    c.send(xml("message", { from: `bot@${GATEWAY}`, to: "juliet@localhost" }, xml("body", null, "early")));
    assert.equal(streamErrorOf(await c.receive((el) => el.name === "stream:error")), "not-authorized");
    await c.closed;
  });

  it("with no component connected, an iq or message to its domain gets service-unavailable", async () => {
    assert.deepEqual(ts.server.modules.service("components")!.connected(), []);
    const juliet = await onlineUser(ts, "juliet", { resource: "alone" });
    const res = await juliet.iq(xml("iq", { type: "get", to: GATEWAY }, xml("query", { xmlns: DISCO_INFO })));
    assert.equal(res.attrs.type, "error");
    assert.equal(res.attrs.from, GATEWAY);
    assert.ok(res.getChild("error")?.getChild("service-unavailable"), res.toString());
    juliet.send(xml("message", { to: `bot@${GATEWAY}`, id: "m1", type: "chat" }, xml("body", null, "anyone?")));
    const bounced = await juliet.receive((el) => el.name === "message" && el.attrs.id === "m1");
    assert.equal(bounced.attrs.type, "error");
    assert.ok(bounced.getChild("error")?.getChild("service-unavailable"), bounced.toString());
    juliet.close();
  });
});

describe("XEP-0114 components over federation", function () {
  this.timeout(30_000);
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    [a, b] = await federatedPair((domain) => (domain === "a.test" ? { components: { bind: "127.0.0.1", port: 0, secrets: { "gw.a.test": SECRET } } } : {}));
    // What the SRV record of gw.a.test would say: the component domain is reached at a.test's listener.
    b.config.s2s.routes["gw.a.test"] = b.config.s2s.routes["a.test"]!;
  });
  after(() => Promise.all([a?.stop(), b?.stop()]));

  it("a component of one server and a user of another server talk over s2s", async () => {
    const { c: gateway, answer } = await RawComponent.login(a.server.modules.service("components")!.port!, "gw.a.test");
    assert.equal(answer.name, "handshake");
    const bob = await onlineUser(b, "bob");
    try {
      gateway.send(xml("message", { from: "bot@gw.a.test", to: bob.jid, type: "chat" }, xml("body", null, "from the gateway")));
      const got = await bob.receive((el) => el.name === "message", 10_000);
      assert.equal(got.attrs.from, "bot@gw.a.test");
      assert.equal(got.getChildText("body"), "from the gateway");
      bob.send(xml("message", { to: "bot@gw.a.test", type: "chat" }, xml("body", null, "back to the gateway")));
      const back = await gateway.receive((el) => el.name === "message", 10_000);
      assert.equal(back.attrs.from, bob.jid);
      assert.equal(back.getChildText("body"), "back to the gateway");
    } finally {
      bob.close();
      gateway.close();
      await gateway.closed;
    }
  });
});

describe("XEP-0114 component keepalive (XEP-0199 ping)", function () {
  this.timeout(20_000);
  let ts: TestServer;
  let port: number;
  before(async () => {
    ts = await startTestServer({ components: { port: 0, secrets: { [GATEWAY]: SECRET }, keepaliveSeconds: 1, pingTimeoutSeconds: 1 } });
    port = ts.server.modules.service("components")!.port!;
  });
  after(() => ts?.stop());

  it("a silent component is pinged; one that answers stays connected", async () => {
    const { c } = await RawComponent.login(port);
    try {
      for (let i = 0; i < 2; i++) {
        const ping = await c.receive((el) => el.name === "iq" && el.getChild("ping", "urn:xmpp:ping") !== undefined);
        assert.equal(ping.attrs.to, GATEWAY);
        assert.equal(ping.attrs.from, ts.host);
        c.send(xml("iq", { type: "result", id: ping.attrs.id, from: GATEWAY, to: ping.attrs.from }));
      }
      assert.deepEqual(ts.server.modules.service("components")!.connected(), [GATEWAY]);
    } finally {
      c.close();
      await c.closed;
    }
  });

  it("a component that stops answering (its host died) is dropped with connection-timeout and the domain is free", async () => {
    const { c } = await RawComponent.login(port);
    await c.receive((el) => el.name === "iq" && el.getChild("ping", "urn:xmpp:ping") !== undefined);
    assert.equal(streamErrorOf(await c.receive((el) => el.name === "stream:error", 5000)), "connection-timeout");
    await c.closed;
    assert.deepEqual(ts.server.modules.service("components")!.connected(), []);
    const juliet = await onlineUser(ts, "juliet");
    juliet.send(xml("message", { to: `bot@${GATEWAY}`, id: "m1", type: "chat" }, xml("body", null, "anyone?")));
    const err = await juliet.receive((el) => el.name === "message" && el.attrs.type === "error");
    assert.equal(err.getChild("error")?.children.some((x) => typeof x !== "string" && x.name === "service-unavailable"), true);
    juliet.close();
  });
});
