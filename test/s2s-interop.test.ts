// Interop with the servers people run: Debian's Prosody and ejabberd, each a private instance on
// loopback, federating with hearth.test (127.0.0.2) over STARTTLS, both directions: messages,
// subscriptions, presence and iq. With self-signed certificates they authenticate with Server Dialback;
// with certificates from a CA both trust (made by the test), with SASL EXTERNAL (XEP-0178).
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { freePort } from "./helpers/s2s-peer.js";
import { startProsody } from "./helpers/prosody.js";
import { startEjabberd } from "./helpers/ejabberd.js";
import { startDnsServer } from "./helpers/dns-server.js";
import { createTestCa, type TestCa } from "./helpers/test-ca.js";
import type { Hash } from "./helpers/scram-client.js";
import { xml, type Element } from "../src/xml/element.js";

const HEARTH = "127.0.0.2";
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

/** A client of the other server, with the roster requested and initial presence sent. */
async function peerUser(port: number, domain: string, username: string, password: string, hash: Hash): Promise<RawClient> {
  const c = await RawClient.connect({ host: domain, c2sPort: port } as TestServer);
  await c.open();
  await c.authenticate(username, password, hash);
  await c.open();
  await c.bind("interop");
  await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
  c.send(xml("presence"));
  return c;
}

interface Peer { log(): string; stop(): Promise<void> }

interface InteropCase {
  name: string;
  method: "dialback" | "external";
  /** Certificate and trust store for hearth.test, when not self-signed. */
  hearthTls?: () => { certs: Record<string, { cert: string; key: string }>; caFile: string };
  domain: string;
  address: string;
  /** SCRAM hash its stored credentials allow. */
  hash: Hash;
  start(p: { hearthPort: number; s2sPort: number; c2sPort: number; users: Record<string, string> }): Promise<Peer>;
}

function interop(c: InteropCase): void {
  describe(`s2s interop: ${c.name} over ${c.method}`, function () {
    this.timeout(60_000);
    let hearth: TestServer;
    let peer: Peer;
    let alice: RawClient;
    let romeo: RawClient;
    let romeoJid: string;

    before(async () => {
      const [hearthPort, s2sPort, c2sPort] = [await freePort(HEARTH), await freePort(c.address), await freePort("127.0.0.1")];
      const tls = c.hearthTls?.();
      [hearth, peer] = await Promise.all([
        startTestServer({
          hosts: ["hearth.test"],
          ...(tls ? { tls: { certs: tls.certs } } : {}),
          s2s: { bind: HEARTH, port: hearthPort, routes: { [c.domain]: `${c.address}:${s2sPort}` }, connectTimeoutSeconds: 8, caFile: tls?.caFile ?? null },
        }),
        c.start({ hearthPort, s2sPort, c2sPort, users: { romeo: "romeo-secret" } }),
      ]);
      alice = await onlineUser(hearth, "alice");
      await alice.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
      romeo = await peerUser(c2sPort, c.domain, "romeo", "romeo-secret", c.hash);
      romeoJid = `romeo@${c.domain}`;
    });
    after(async () => {
      alice?.close();
      romeo?.close();
      await hearth?.stop();
      await peer?.stop();
    });

    it(`carries messages both ways, each direction authenticated with ${c.method}`, async () => {
      alice.send(xml("message", { to: romeoJid, type: "chat" }, xml("body", null, `hello ${c.name}`)));
      const got = await romeo.receive(isMessageWith(`hello ${c.name}`), 15_000);
      assert.equal(got.attrs.from, alice.jid);
      romeo.send(xml("message", { to: alice.jid, type: "chat" }, xml("body", null, "hello hearth")));
      const back = await alice.receive(isMessageWith("hello hearth"), 15_000);
      assert.equal(back.attrs.from, romeo.jid);
      assert.deepEqual(hearth.server.s2s.outgoing(), [{ local: "hearth.test", remote: c.domain, method: c.method, ready: true, directTls: false }]);
      assert.deepEqual(hearth.server.s2s.incoming().map((s) => [s.peer, s.method, s.pairs]), [[c.domain, c.method, [`${c.domain} hearth.test`]]]);
    });

    it("carries a subscription and presence both ways", async () => {
      alice.send(xml("presence", { to: romeoJid, type: "subscribe" }));
      const request = await romeo.receive((el) => el.name === "presence" && el.attrs.type === "subscribe", 10_000);
      assert.equal(request.attrs.from, "alice@hearth.test");
      romeo.send(xml("presence", { to: "alice@hearth.test", type: "subscribed" }));
      const push = await alice.receive((el) => el.name === "iq" && el.getChild("query")?.getChild("item")?.attrs.subscription === "to", 10_000);
      assert.equal(push.getChild("query")!.getChild("item")!.attrs.jid, romeoJid);
      // RFC 6121 §3.1.5: the contact's server sends the contact's presence to the new subscriber.
      await alice.receive((el) => el.name === "presence" && el.attrs.from === romeo.jid && el.attrs.type === undefined, 10_000);

      romeo.send(xml("presence", { to: "alice@hearth.test", type: "subscribe" }));
      await alice.receive((el) => el.name === "presence" && el.attrs.type === "subscribe" && el.attrs.from === romeoJid, 10_000);
      alice.send(xml("presence", { to: romeoJid, type: "subscribed" }));
      await romeo.receive((el) => el.name === "presence" && el.attrs.from === alice.jid && el.attrs.type === undefined, 10_000);
      alice.send(xml("presence", null, xml("show", null, "away")));
      const away = await romeo.receive((el) => el.name === "presence" && el.attrs.from === alice.jid && el.getChildText("show") === "away", 10_000);
      assert.equal(away.attrs.type, undefined);
    });

    it("answers iq both ways: a ping to the other server, a version query to hearth.test", async () => {
      const pong = await alice.iq(xml("iq", { type: "get", to: c.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })), 10_000);
      assert.equal(pong.attrs.type, "result");
      const version = await romeo.iq(xml("iq", { type: "get", to: "hearth.test" }, xml("query", { xmlns: "jabber:iq:version" })), 10_000);
      assert.equal(version.attrs.type, "result");
      assert.equal(version.getChild("query")?.getChildText("name"), "hearth");
    });
  });
}

interop({
  name: "Prosody",
  method: "dialback",
  domain: "prosody.test",
  address: "127.0.0.6",
  // Prosody 0.12 stores SCRAM-SHA-1 credentials.
  hash: "SHA-1",
  start: ({ hearthPort, s2sPort, c2sPort, users }) =>
    startProsody({ domain: "prosody.test", address: "127.0.0.6", c2sPort, s2sPort, routes: { "hearth.test": [HEARTH, hearthPort] }, users }),
});

interop({
  name: "ejabberd",
  method: "dialback",
  domain: "ejabberd.test",
  address: "127.0.0.7",
  hash: "SHA-256",
  start: (p) => ejabberdPeer(p),
});

async function ejabberdPeer({ hearthPort, s2sPort, c2sPort, users }: { hearthPort: number; s2sPort: number; c2sPort: number; users: Record<string, string> },
  tls: { cert?: { cert: string; key: string }; caFile?: string } = {}): Promise<Peer> {
  // ejabberd finds hearth.test through an SRV record (RFC 6120 §3.2.1) from the test's DNS server. The
  // target is an address: ejabberd resolves SRV targets outside inet_res, where hearth.test is unknown.
  const dns = await startDnsServer("127.0.0.1", { srv: { "_xmpp-server._tcp.hearth.test": [{ target: HEARTH, port: hearthPort }] } });
  const ejabberd = await startEjabberd({ domain: "ejabberd.test", address: "127.0.0.7", c2sPort, s2sPort, distPort: await freePort("127.0.0.1"), dnsPort: dns.port, users, ...tls })
    .catch(async (err) => { await dns.stop(); throw err; });
  return { log: ejabberd.log, stop: async () => { await ejabberd.stop(); await dns.stop(); } };
}

describe("s2s interop with a CA both sides trust", () => {
  let ca: TestCa;
  before(() => { ca = createTestCa(); });
  after(() => ca.remove());

  interop({
    name: "Prosody",
    method: "external",
    domain: "prosody.test",
    address: "127.0.0.6",
    hash: "SHA-1",
    hearthTls: () => ({ certs: { "hearth.test": ca.issue("hearth.test") }, caFile: ca.caFile }),
    start: ({ hearthPort, s2sPort, c2sPort, users }) =>
      startProsody({
        domain: "prosody.test", address: "127.0.0.6", c2sPort, s2sPort, routes: { "hearth.test": [HEARTH, hearthPort] }, users,
        cert: ca.issue("prosody.test"), caFile: ca.caFile,
      }),
  });

  interop({
    name: "ejabberd",
    method: "external",
    domain: "ejabberd.test",
    address: "127.0.0.7",
    hash: "SHA-256",
    hearthTls: () => ({ certs: { "hearth.test": ca.issue("hearth.test") }, caFile: ca.caFile }),
    start: (p) => ejabberdPeer(p, { cert: ca.issue("ejabberd.test"), caFile: ca.caFile }),
  });
});
