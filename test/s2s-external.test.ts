// SASL EXTERNAL between servers (XEP-0178): with certificates from a CA both trust, two hearth instances
// authenticate each other by certificate (RFC 6125 name checks) instead of dialback; a server that
// requires valid certificates refuses a peer with a self-signed one.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { type RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { ScriptedPeer, freePort } from "./helpers/s2s-peer.js";
import { createTestCa, type TestCa } from "./helpers/test-ca.js";
import { xml, type Element } from "../src/xml/element.js";

const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

describe("s2s: SASL EXTERNAL with a private CA (XEP-0178)", function () {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  let alice: RawClient;
  let bob: RawClient;
  let carol: RawClient;

  before(async () => {
    ca = createTestCa();
    const ports = { a: await freePort("127.0.0.2"), b: await freePort("127.0.0.3"), c: await freePort("127.0.0.5") };
    const routes = { "a.test": `127.0.0.2:${ports.a}`, "b.test": `127.0.0.3:${ports.b}`, "c.test": `127.0.0.5:${ports.c}` };
    const server = (domain: "a.test" | "b.test", addr: string, port: number, extra: Record<string, unknown> = {}) =>
      startTestServer({ hosts: [domain], tls: { certs: { [domain]: ca.issue(domain) } }, s2s: { bind: addr, port, routes, caFile: ca.caFile, connectTimeoutSeconds: 5, ...extra } });
    // b.test accepts certificate-authenticated peers only; c.test has a self-signed certificate.
    [a, b, c] = await Promise.all([
      server("a.test", "127.0.0.2", ports.a),
      server("b.test", "127.0.0.3", ports.b, { requireValidCertificates: true }),
      startTestServer({ hosts: ["c.test"], s2s: { bind: "127.0.0.5", port: ports.c, routes, caFile: ca.caFile, connectTimeoutSeconds: 5 } }),
    ]);
    [alice, bob, carol] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob"), onlineUser(c, "carol")]);
  });
  after(async () => {
    for (const client of [alice, bob, carol]) client?.close();
    await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
    ca?.remove();
  });

  it("authenticates both directions with EXTERNAL and carries chat", async () => {
    alice.send(xml("message", { to: "bob@b.test", type: "chat" }, xml("body", null, "signed hello")));
    const got = await bob.receive(isMessageWith("signed hello"), 8000);
    assert.equal(got.attrs.from, alice.jid);
    bob.send(xml("message", { to: alice.jid, type: "chat" }, xml("body", null, "signed reply")));
    await alice.receive(isMessageWith("signed reply"), 8000);
    assert.deepEqual(a.server.s2s.outgoing(), [{ local: "a.test", remote: "b.test", method: "external", ready: true, directTls: false }]);
    assert.deepEqual(b.server.s2s.outgoing(), [{ local: "b.test", remote: "a.test", method: "external", ready: true, directTls: false }]);
    assert.deepEqual(b.server.s2s.incoming().map((s) => [s.peer, s.method, s.pairs]), [["a.test", "external", ["a.test b.test"]]]);
  });

  it("refuses a peer whose certificate does not validate when certificates are required", async () => {
    carol.send(xml("message", { to: "bob@b.test", type: "chat", id: "from-c" }, xml("body", null, "self-signed")));
    const err = await carol.receive((el) => el.attrs.id === "from-c", 8000);
    assert.equal(errorCondition(err), "remote-server-not-found");
    await bob.nothing(isMessageWith("self-signed"));
  });

  it("does not offer EXTERNAL to a peer without a valid certificate for the domain it claims", async () => {
    // A TLS client without a certificate, claiming to be a.test: no EXTERNAL, and no dialback (b.test requires certificates).
    const peer = await ScriptedPeer.connect("127.0.0.3", b.server.ports.s2s!);
    await peer.open("a.test", "b.test");
    await peer.startTls("b.test");
    const features = await peer.open("a.test", "b.test");
    assert.equal(features.getChild("mechanisms"), undefined);
    assert.equal(features.getChild("dialback"), undefined);
    peer.send(xml("auth", { xmlns: "urn:ietf:params:xml:ns:xmpp-sasl", mechanism: "EXTERNAL" }, "="));
    const failure = await peer.receive((el) => el.name === "failure");
    assert.ok(failure.getChild("not-authorized"));
    assert.equal(errorCondition(await peer.closed()), "not-authorized");
  });
});
