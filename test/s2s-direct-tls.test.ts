// Direct TLS between servers (XEP-0368): s2s.directTlsPort accepts TLS from the first byte with ALPN
// "xmpp-server"; a "tls://host:port" route connects that way. Two hearth instances with only the direct TLS
// listener (no STARTTLS port at all) federate over it, with SASL EXTERNAL (a test CA) and with dialback.
import assert from "node:assert/strict";
import type { TestServer } from "./helpers/server.js";
import { type RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { ScriptedPeer, federatedPair } from "./helpers/s2s-peer.js";
import { createTestCa, type TestCa } from "./helpers/test-ca.js";
import { xml, type Element } from "../src/xml/element.js";

const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;
const message = (to: string, body: string) => xml("message", { to, type: "chat" }, xml("body", null, body));

async function chatBothWays(alice: RawClient, bob: RawClient, tag: string): Promise<void> {
  alice.send(message("bob@b.test", `${tag} from a`));
  assert.equal((await bob.receive(isMessageWith(`${tag} from a`), 8000)).attrs.from, alice.jid);
  bob.send(message(alice.jid, `${tag} from b`));
  assert.equal((await alice.receive(isMessageWith(`${tag} from b`), 8000)).attrs.from, bob.jid);
}

describe("s2s: direct TLS with SASL EXTERNAL (XEP-0368, XEP-0178)", function () {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;
  let alice: RawClient;
  let bob: RawClient;

  before(async () => {
    ca = createTestCa();
    [a, b] = await federatedPair((domain) => ({ tls: { certs: { [domain]: ca.issue(domain) } }, s2s: { caFile: ca.caFile, requireValidCertificates: true } }), { directTls: true });
    [alice, bob] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob")]);
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    ca?.remove();
  });

  it("listens on s2s.directTlsPort only, and carries chat both ways authenticated by certificate", async () => {
    assert.equal(a.server.s2s.port, null, "no STARTTLS listener");
    assert.ok(a.server.s2s.directTlsPort);
    await chatBothWays(alice, bob, "direct");
    assert.deepEqual(a.server.s2s.outgoing(), [{ local: "a.test", remote: "b.test", method: "external", ready: true, directTls: true }]);
    assert.deepEqual(b.server.s2s.incoming().map((s) => [s.peer, s.method, s.pairs, s.directTls]), [["a.test", "external", ["a.test b.test"], true]]);
  });

  it("negotiates ALPN xmpp-server and offers no STARTTLS on a direct TLS stream", async () => {
    const peer = await ScriptedPeer.connectTls("127.0.0.3", b.server.s2s.directTlsPort!, "b.test");
    assert.equal(peer.alpnProtocol, "xmpp-server");
    const features = await peer.open("a.test", "b.test");
    assert.equal(features.getChild("starttls"), undefined, "TLS is already in place");
    // No client certificate: neither EXTERNAL nor (b.test requires certificates) dialback.
    assert.equal(features.getChild("mechanisms"), undefined);
    assert.equal(features.getChild("dialback"), undefined);
    peer.send(xml("message", { from: "mallory@a.test", to: "bob@b.test" }, xml("body", null, "unauthenticated")));
    assert.equal(errorCondition(await peer.closed()), "not-authorized");
    await bob.nothing(isMessageWith("unauthenticated"));
  });

  it("refuses a TLS client that offers only another application protocol", async () => {
    await assert.rejects(ScriptedPeer.connectTls("127.0.0.3", b.server.s2s.directTlsPort!, "b.test", ["xmpp-client"]));
    await chatBothWays(alice, bob, "after refusal");
  });
});

describe("s2s: direct TLS with dialback (self-signed certificates)", function () {
  let a: TestServer;
  let b: TestServer;

  after(() => Promise.all([a?.stop(), b?.stop()]));

  it("authenticates both directions with dialback over direct TLS", async () => {
    [a, b] = await federatedPair(() => ({}), { directTls: true });
    const [alice, bob] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob")]);
    await chatBothWays(alice, bob, "dialback");
    assert.deepEqual(a.server.s2s.outgoing(), [{ local: "a.test", remote: "b.test", method: "dialback", ready: true, directTls: true }]);
    assert.deepEqual(b.server.s2s.outgoing(), [{ local: "b.test", remote: "a.test", method: "dialback", ready: true, directTls: true }]);
    alice.close();
    bob.close();
  });
});
