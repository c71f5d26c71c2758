// The outgoing connection manager: where it connects (static routes, DNS SRV, the RFC 6120 §3.2
// fallback), what happens to stanzas while it cannot (bounded queue, timeouts), idle close, keepalives,
// and the allow/deny policy.
import assert from "node:assert/strict";
import net from "node:net";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { type RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { ScriptedPeer, freePort, federatedPair } from "./helpers/s2s-peer.js";
import { startDnsServer } from "./helpers/dns-server.js";
import { resolveServer } from "../src/s2s/resolve.js";
import { dialbackKey } from "../src/s2s/dialback.js";
import { xml, type Element } from "../src/xml/element.js";

const message = (to: string, body: string, id?: string) => xml("message", { to, type: "chat", id }, xml("body", null, body));
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

describe("s2s: where to connect (RFC 6120 §3.2)", () => {
  let dns: { port: number; stop(): Promise<void> };
  before(async () => {
    dns = await startDnsServer("127.0.0.1", {
      srv: {
        "_xmpp-server._tcp.srv.test": [{ target: "backup.srv.test", port: 5270, priority: 20 }, { target: "main.srv.test", port: 5269, priority: 10 }],
        "_xmpp-server._tcp.none.test": [{ target: ".", port: 0 }],
        // XEP-0368: direct TLS and STARTTLS records of one domain, mixed by priority.
        "_xmpps-server._tcp.mixed.test": [{ target: "tls.mixed.test", port: 5270, priority: 5 }, { target: "tls-backup.mixed.test", port: 5270, priority: 30 }],
        "_xmpp-server._tcp.mixed.test": [{ target: "starttls.mixed.test", port: 5269, priority: 10 }],
        "_xmpps-server._tcp.tlsonly.test": [{ target: "tls.tlsonly.test", port: 443, priority: 0 }],
        "_xmpps-server._tcp.notls.test": [{ target: ".", port: 0 }],
      },
    });
  });
  after(() => dns.stop());
  const servers = () => [`127.0.0.1:${dns.port}`];

  it("takes s2s.routes first, without asking DNS", async () => {
    assert.deepEqual(await resolveServer("srv.test", { "srv.test": "127.0.0.9:6000" }, servers()), [{ host: "127.0.0.9", port: 6000, directTls: false }]);
    assert.deepEqual(await resolveServer("srv.test", { "srv.test": "tls://127.0.0.9:6001" }, servers()), [{ host: "127.0.0.9", port: 6001, directTls: true }]);
  });
  it("orders SRV targets by priority (§3.2.1)", async () => {
    assert.deepEqual(await resolveServer("srv.test", {}, servers()), [{ host: "main.srv.test", port: 5269, directTls: false }, { host: "backup.srv.test", port: 5270, directTls: false }]);
  });
  it("falls back to the domain itself on port 5269 without SRV records (§3.2.2)", async () => {
    assert.deepEqual(await resolveServer("plain.test", {}, servers()), [{ host: "plain.test", port: 5269, directTls: false }]);
    // A domain that says it offers no direct TLS still gets the STARTTLS fallback.
    assert.deepEqual(await resolveServer("notls.test", {}, servers()), [{ host: "notls.test", port: 5269, directTls: false }]);
  });
  it("merges _xmpps-server (direct TLS) and _xmpp-server records in one priority order (XEP-0368 §3)", async () => {
    assert.deepEqual(await resolveServer("mixed.test", {}, servers()), [
      { host: "tls.mixed.test", port: 5270, directTls: true },
      { host: "starttls.mixed.test", port: 5269, directTls: false },
      { host: "tls-backup.mixed.test", port: 5270, directTls: true },
    ]);
    assert.deepEqual(await resolveServer("tlsonly.test", {}, servers()), [{ host: "tls.tlsonly.test", port: 443, directTls: true }]);
  });
  it("gives up on a domain whose SRV target is '.' (the service is not offered)", async () => {
    assert.deepEqual(await resolveServer("none.test", {}, servers()), []);
  });
});

describe("s2s: the outgoing connection manager", function () {
  let a: TestServer;
  let alice: RawClient;
  let silent: net.Server;
  const silentSockets = new Set<net.Socket>();

  before(async () => {
    // A peer that accepts TCP and never answers.
    silent = net.createServer((s) => { silentSockets.add(s); s.on("error", () => {}); });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.8", () => r()));
    a = await startTestServer({
      hosts: ["a.test"],
      s2s: {
        maxStreamsPerIp: 3,
        bind: "127.0.0.2", port: 0, connectTimeoutSeconds: 1, maxQueuedStanzas: 2, deny: ["denied.test"],
        routes: { "silent.test": `127.0.0.8:${(silent.address() as net.AddressInfo).port}` },
      },
    });
    alice = await onlineUser(a, "alice");
  });
  after(async () => {
    alice?.close();
    await a?.stop();
    for (const s of silentSockets) s.destroy();
    silent.close();
  });

  it("holds a bounded queue while connecting, then bounces it with remote-server-timeout", async () => {
    for (const id of ["q1", "q2", "q3"]) alice.send(message("carol@silent.test", id, id));
    // The third does not fit in the queue (s2s.maxQueuedStanzas: 2).
    assert.equal(errorCondition(await alice.receive((el) => el.attrs.id === "q3", 1000)), "resource-constraint");
    for (const id of ["q1", "q2"]) {
      const err = await alice.receive((el) => el.attrs.id === id, 3000);
      assert.equal(errorCondition(err), "remote-server-timeout");
      assert.equal(err.getChildText("body"), id, "the bounce carries the message back");
    }
    assert.deepEqual(a.server.s2s.outgoing(), []);
    // Backoff: right after the failure, the next stanza bounces at once instead of waiting for another attempt.
    const sent = Date.now();
    alice.send(message("carol@silent.test", "q4", "q4"));
    assert.equal(errorCondition(await alice.receive((el) => el.attrs.id === "q4", 500)), "remote-server-timeout");
    assert.ok(Date.now() - sent < 500);
    assert.deepEqual(a.server.s2s.outgoing(), [], "no new connection was opened");
  });

  it("refuses more incoming streams from one address than s2s.maxStreamsPerIp", async () => {
    const open = await Promise.all([1, 2, 3].map(() => ScriptedPeer.connect("127.0.0.2", a.server.ports.s2s!)));
    await Promise.all(open.map((p) => p.open("x.test", "a.test")));
    const fourth = await ScriptedPeer.connect("127.0.0.2", a.server.ports.s2s!);
    assert.equal(errorCondition(await fourth.closed()), "policy-violation");
    open[0]!.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const again = await ScriptedPeer.connect("127.0.0.2", a.server.ports.s2s!);
    assert.ok(await again.open("x.test", "a.test"), "a closed stream frees its place");
    for (const p of [...open, again]) p.destroy();
  });

  it("refuses to federate with a denied domain, both ways (s2s.deny)", async () => {
    alice.send(message("eve@denied.test", "no", "deny1"));
    assert.equal(errorCondition(await alice.receive((el) => el.attrs.id === "deny1")), "remote-server-not-found");
    const peer = await ScriptedPeer.connect("127.0.0.2", a.server.ports.s2s!);
    peer.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='denied.test' to='a.test' version='1.0'>");
    assert.equal(errorCondition(await peer.closed()), "policy-violation");
  });
});

describe("s2s: idle streams and keepalives", function () {
  let a: TestServer;
  let b: TestServer;
  let alice: RawClient;
  let bob: RawClient;

  before(async () => {
    [a, b] = await federatedPair(() => ({ s2s: { idleTimeoutSeconds: 1, keepaliveSeconds: 1, dialbackSecret: "a secret shared by the test" } }));
    [alice, bob] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob")]);
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("closes an outgoing stream that carried nothing for s2s.idleTimeoutSeconds, and opens a new one when needed", async () => {
    alice.send(message("bob@b.test", "before idle"));
    await bob.receive(isMessageWith("before idle"), 5000);
    assert.equal(a.server.s2s.outgoing().length, 1);
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual(a.server.s2s.outgoing(), []);
    alice.send(message("bob@b.test", "after idle"));
    await bob.receive(isMessageWith("after idle"), 5000);
  });

  it("sends whitespace keepalives on a silent stream (RFC 6120 §4.6.1)", async () => {
    const peer = await ScriptedPeer.connect("127.0.0.3", b.server.ports.s2s!);
    await peer.open("a.test", "b.test");
    await peer.startTls("b.test");
    await peer.open("a.test", "b.test");
    peer.send(xml("db:result", { from: "a.test", to: "b.test" }, dialbackKey("a secret shared by the test", "b.test", "a.test", peer.streamId)));
    assert.equal((await peer.receive((el) => el.name === "db:result")).attrs.type, "valid");
    const before = peer.charsReceived;
    await new Promise((r) => setTimeout(r, 1800));
    assert.ok(peer.charsReceived > before, "a keepalive arrived");
    assert.equal(peer.rawSince(before).trim(), "", "and it is whitespace only");
    peer.destroy();
  });
});
