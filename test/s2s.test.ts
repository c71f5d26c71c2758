// Federation between two hearth instances (RFC 6120 server-to-server): a.test on 127.0.0.2 and b.test on
// 127.0.0.3, found through s2s.routes, authenticated with Server Dialback (self-signed certificates).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { ScriptedPeer, freePort, federatedPair, B_ADDR } from "./helpers/s2s-peer.js";
import { xml, type Element } from "../src/xml/element.js";
import { dialbackKey } from "../src/s2s/dialback.js";

const message = (to: string, body: string, id?: string) => xml("message", { to, type: "chat", id }, xml("body", null, body));
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

describe("s2s: two hearth servers over dialback", function () {
  let a: TestServer;
  let b: TestServer;
  let alice: RawClient;
  let bob: RawClient;

  before(async () => {
    [a, b] = await federatedPair();
    alice = await onlineUser(a, "alice");
    bob = await onlineUser(b, "bob");
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("carries chat both ways over one stream per direction, authenticated with dialback", async () => {
    alice.send(message("bob@b.test", "hello from a"));
    const got = await bob.receive(isMessageWith("hello from a"), 8000);
    assert.equal(got.attrs.from, alice.jid);
    assert.equal(got.attrs.to, "bob@b.test");
    bob.send(message(got.attrs.from!, "hello from b"));
    const back = await alice.receive(isMessageWith("hello from b"), 8000);
    assert.equal(back.attrs.from, bob.jid);
    assert.equal(back.attrs.xmlns, undefined, "no jabber:server namespace leaks into a client stream");
    // XEP-0220: neither self-signed certificate validates, so both directions used dialback.
    assert.deepEqual(a.server.s2s.outgoing(), [{ local: "a.test", remote: "b.test", method: "dialback", ready: true, directTls: false }]);
    assert.deepEqual(b.server.s2s.outgoing(), [{ local: "b.test", remote: "a.test", method: "dialback", ready: true, directTls: false }]);
    // Reused: a second message does not open another stream.
    alice.send(message("bob@b.test", "again"));
    await bob.receive(isMessageWith("again"));
    assert.equal(a.server.s2s.outgoing().length, 1);
  });

  it("archives a message to a remote user in the sender's timeline too (XEP-0313), and sends a resend once", async () => {
    const originId = xml("origin-id", { xmlns: "urn:xmpp:sid:0", id: "remote-once" });
    alice.send(xml("message", { to: "bob@b.test", type: "chat" }, xml("body", null, "keep me"), originId));
    await bob.receive(isMessageWith("keep me"), 5000);
    alice.send(xml("message", { to: "bob@b.test", type: "chat" }, xml("body", null, "keep me"), originId));
    await bob.nothing(isMessageWith("keep me"), 500);
    const archived = async (c: RawClient) => {
      const id = `mam-${c.jid}`;
      c.send(xml("iq", { type: "set", id }, xml("query", { xmlns: "urn:xmpp:mam:2", queryid: "s2s" })));
      const bodies: string[] = [];
      for (;;) {
        const el = await c.receive((e) => (e.name === "iq" && e.attrs.id === id) || e.getChild("result", "urn:xmpp:mam:2") !== undefined);
        if (el.name === "iq") return bodies;
        bodies.push(el.getChild("result")!.getChild("forwarded")!.getChild("message")!.getChildText("body")!);
      }
    };
    assert.deepEqual((await archived(alice)).filter((b) => b === "keep me"), ["keep me"], "the sender's row, once");
    assert.deepEqual((await archived(bob)).filter((b) => b === "keep me"), ["keep me"], "the recipient's row on the other server");
  });

  it("carries a presence subscription across (RFC 6121 §3.1)", async () => {
    // Interested resources (§2.1.6) get subscription requests and roster pushes.
    for (const c of [alice, bob]) await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    alice.send(xml("presence", { to: "bob@b.test", type: "subscribe" }));
    const request = await bob.receive((el) => el.name === "presence" && el.attrs.type === "subscribe");
    assert.equal(request.attrs.from, "alice@a.test");
    bob.send(xml("presence", { to: "alice@a.test", type: "subscribed" }));
    const push = await alice.receive((el) => el.name === "iq" && el.getChild("query")?.getChild("item")?.attrs.subscription === "to");
    assert.equal(push.getChild("query")!.getChild("item")!.attrs.jid, "bob@b.test");
    // §3.1.5: the contact's server sends the contact's current presence to the new subscriber.
    const available = await alice.receive((el) => el.name === "presence" && el.attrs.from === bob.jid && el.attrs.type === undefined);
    assert.equal(available.attrs.to, "alice@a.test");
  });

  it("answers an iq ping to the remote server (XEP-0199)", async () => {
    const pong = await alice.iq(xml("iq", { type: "get", to: "b.test" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    assert.equal(pong.attrs.from, "b.test");
  });

  it("returns the remote server's error for an unknown remote user (RFC 6121 §8.5.1)", async () => {
    alice.send(message("nobody@b.test", "anyone?", "m-nobody"));
    const err = await alice.receive((el) => el.attrs.id === "m-nobody");
    assert.equal(err.attrs.type, "error");
    assert.equal(err.attrs.from, "nobody@b.test");
    assert.equal(errorCondition(err), "service-unavailable");
  });

  it("bounces with remote-server-not-found when the remote server cannot be reached (RFC 6120 §10.4.3)", async () => {
    const dead = await freePort("127.0.0.4");
    a.config.s2s.routes["down.test"] = `127.0.0.4:${dead}`;
    alice.send(message("carol@down.test", "are you there?", "m-down"));
    const err = await alice.receive((el) => el.attrs.id === "m-down");
    assert.equal(errorCondition(err), "remote-server-not-found");
    assert.equal(err.attrs.from, "carol@down.test");
  });

  describe("a hostile or broken peer", () => {
    const aSecret = () => readFileSync(path.join(a.dataDir, "s2s-dialback.secret"), "utf8").trim();
    const bS2s = () => ({ host: B_ADDR, port: b.server.ports.s2s! });

    /** A stream to b.test from "a.test", after STARTTLS; resolves with the peer and its features. */
    async function securedAsA(): Promise<ScriptedPeer & { features?: Element }> {
      const peer: ScriptedPeer & { features?: Element } = await ScriptedPeer.connect(bS2s().host, bS2s().port);
      await peer.open("a.test", "b.test");
      await peer.startTls("b.test");
      peer.features = await peer.open("a.test", "b.test");
      return peer;
    }

    /** A stream to b.test that claims to be a.test, authenticated with a.test's real key. */
    async function authenticatedAsA(): Promise<ScriptedPeer> {
      const peer = await securedAsA();
      const features = peer.features!;
      assert.ok(features.getChild("dialback", "urn:xmpp:features:dialback"), "dialback is offered after TLS");
      peer.send(xml("db:result", { from: "a.test", to: "b.test" }, dialbackKey(aSecret(), "b.test", "a.test", peer.streamId)));
      const result = await peer.receive((el) => el.name === "db:result");
      assert.equal(result.attrs.type, "valid");
      return peer;
    }

    it("closes with invalid-from a stream that sends a stanza from a domain it did not authenticate", async () => {
      const peer = await authenticatedAsA();
      peer.send(xml("message", { from: "mallory@evil.test", to: "bob@b.test", type: "chat" }, xml("body", null, "spoofed")));
      assert.equal(errorCondition(await peer.closed()), "invalid-from");
      await bob.nothing(isMessageWith("spoofed"));
    });

    it("delivers what an authenticated peer sends for its own domain", async () => {
      const peer = await authenticatedAsA();
      peer.send(xml("message", { from: "alice@a.test/x", to: "bob@b.test", type: "chat" }, xml("body", null, "genuine")));
      assert.equal((await bob.receive(isMessageWith("genuine"))).attrs.from, "alice@a.test/x");
      peer.destroy();
    });

    it("keeps the order of each sender's stanzas while it handles several senders at once (RFC 6120 §10.1)", async () => {
      const peer = await authenticatedAsA();
      const senders = ["alice@a.test/one", "carol@a.test/two", "dave@a.test/three"];
      for (let i = 0; i < 40; i++) {
        for (const from of senders) peer.send(xml("message", { from, to: "bob@b.test", type: "chat" }, xml("body", null, `order ${from} ${i}`)));
      }
      const seen = new Map<string, number[]>(senders.map((s) => [s, []]));
      for (let n = 0; n < 40 * senders.length; n++) {
        const got = await bob.receive((el) => el.name === "message" && el.getChildText("body")?.startsWith("order ") === true, 8000);
        const [, from, i] = got.getChildText("body")!.split(" ");
        assert.equal(got.attrs.from, from);
        seen.get(from!)!.push(Number(i));
      }
      for (const [from, order] of seen) assert.deepEqual(order, Array.from({ length: 40 }, (_, i) => i), `in order from ${from}`);
      peer.destroy();
    });

    it("closes with host-unknown a stanza for a domain not served here, and improper-addressing one without 'from'", async () => {
      const peer = await authenticatedAsA();
      peer.send(xml("message", { from: "alice@a.test", to: "someone@elsewhere.test" }, xml("body", null, "x")));
      assert.equal(errorCondition(await peer.closed()), "host-unknown");
      const second = await authenticatedAsA();
      second.send(xml("message", { to: "bob@b.test" }, xml("body", null, "x")));
      assert.equal(errorCondition(await second.closed()), "improper-addressing");
    });

    it("closes with invalid-from a stream that claims to come from the receiving server's own domain", async () => {
      const peer = await ScriptedPeer.connect(bS2s().host, bS2s().port);
      peer.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='b.test' to='b.test' version='1.0'>");
      assert.equal(errorCondition(await peer.closed()), "invalid-from");
      const piggyback = await securedAsA();
      piggyback.send(xml("db:result", { from: "b.test", to: "b.test" }, "0".repeat(64)));
      assert.equal(errorCondition(await piggyback.closed()), "invalid-from");
    });

    it("closes with not-authorized a stream that sends stanzas before authenticating", async () => {
      const peer = await securedAsA();
      peer.send(xml("message", { from: "alice@a.test", to: "bob@b.test" }, xml("body", null, "early")));
      assert.equal(errorCondition(await peer.closed()), "not-authorized");
    });

    it("refuses a wrong dialback key: type invalid, then not-authorized (XEP-0220 §2.1.3)", async () => {
      const peer = await securedAsA();
      peer.send(xml("db:result", { from: "a.test", to: "b.test" }, "0".repeat(64)));
      const result = await peer.receive((el) => el.name === "db:result");
      assert.equal(result.attrs.type, "invalid");
      assert.equal(errorCondition(await peer.closed()), "not-authorized");
    });

    it("answers dialback errors (XEP-0220 §2.4) for a domain it does not serve", async () => {
      const peer = await securedAsA();
      peer.send(xml("db:result", { from: "a.test", to: "nothere.test" }, "0".repeat(64)));
      const result = await peer.receive((el) => el.name === "db:result");
      assert.equal(result.attrs.type, "error");
      assert.equal(errorCondition(result), "item-not-found");
      peer.destroy();
    });

    it("closes with host-unknown a stream header for a domain not served, and requires STARTTLS", async () => {
      const peer = await ScriptedPeer.connect(bS2s().host, bS2s().port);
      peer.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='a.test' to='nothere.test' version='1.0'>");
      assert.equal(errorCondition(await peer.closed()), "host-unknown");
      const plain = await ScriptedPeer.connect(bS2s().host, bS2s().port);
      const features = await plain.open("a.test", "b.test");
      assert.ok(features.getChild("starttls")?.getChild("required"));
      plain.send(xml("db:result", { from: "a.test", to: "b.test" }, "0".repeat(64)));
      assert.equal(errorCondition(await plain.closed()), "policy-violation");
    });

    it("keeps serving everyone else", async () => {
      alice.send(message("bob@b.test", "still here"));
      await bob.receive(isMessageWith("still here"), 5000);
    });
  });
});

describe("s2s: two servers that start talking to each other at the same moment", function () {
  let a: TestServer;
  let b: TestServer;
  after(() => Promise.all([a?.stop(), b?.stop()]));

  it("verify each other's dialback keys without waiting on each other (XEP-0220 §2.1)", async () => {
    [a, b] = await federatedPair();
    const [alice, bob] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob")]);
    // Both outgoing streams open together; each server's db:verify crosses the other's db:result.
    for (let i = 0; i < 3; i++) {
      alice.send(message("bob@b.test", `a${i}`));
      bob.send(message("alice@a.test", `b${i}`));
    }
    for (let i = 0; i < 3; i++) {
      await bob.receive(isMessageWith(`a${i}`), 4000);
      await alice.receive(isMessageWith(`b${i}`), 4000);
    }
    alice.close();
    bob.close();
  });
});

describe("s2s: configuration", () => {
  it("reads s2s.routes as a map of domains to host:port, and refuses anything else", async () => {
    const { loadConfig, ConfigError } = await import("../src/config/config.js");
    const ok = loadConfig({ file: null, env: {}, overrides: { s2s: { routes: { "Example.ORG": "10.0.0.5:5269", "v6.example": "[::1]:5270" } } } });
    assert.deepEqual(ok.s2s.routes, { "example.org": "10.0.0.5:5269", "v6.example": "[::1]:5270" });
    assert.throws(() => loadConfig({ file: null, env: {}, overrides: { s2s: { routes: { "example.org": "no-port" } } } }),
      (e: Error) => e instanceof ConfigError && /s2s\.routes\["example\.org"\]|s2s\.routes\.example/.test(e.message) && /host:port/.test(e.message));
    const env = loadConfig({ file: null, env: { HEARTH_S2S__ROUTES: '{"b.example": "127.0.0.3:5269"}' } });
    assert.deepEqual(env.s2s.routes, { "b.example": "127.0.0.3:5269" });
  });
});
