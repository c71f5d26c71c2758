// XEP-0215 external service discovery: STUN/TURN entries from config, TURN REST credentials that a TURN
// server holding the same shared secret accepts.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { parseServiceUri } from "../extensions/extdisco/index.js";

const NS = "urn:xmpp:extdisco:2";
const INFO = "http://jabber.org/protocol/disco#info";
const SECRET = "correct horse battery staple";

const services = (type?: string) => xml("iq", { type: "get", to: "localhost" }, xml("services", { xmlns: NS, type }));
const credentials = (host: string, type: string, port?: number) =>
  xml("iq", { type: "get", to: "localhost" }, xml("credentials", { xmlns: NS }, xml("service", { host, type, port })));
const listed = (res: Element, name = "services") => res.getChild(name, NS)!.getChildren("service");

/** What coturn does with use-auth-secret: recompute the password and check the expiry. */
function turnServerAccepts(username: string, password: string, secret: string): boolean {
  const expiry = Number(username.split(":")[0]);
  const expected = createHmac("sha1", secret).update(username).digest("base64");
  return expected === password && expiry > Date.now() / 1000;
}

describe("XEP-0215 external service discovery", function () {
  let ts: TestServer;
  let alice: RawClient;
  before(async () => {
    ts = await startTestServer({
      modules: {
        extdisco: {
          services: ["stun:stun.example.org", "turn:turn.example.org:3478?transport=udp", "turns:turn.example.org?transport=tcp"],
          secret: SECRET,
          credentialTtlSeconds: 3600,
        },
      },
    });
    alice = await onlineUser(ts, "alice");
  });
  after(async () => {
    alice.close();
    await ts.stop();
  });

  it("is advertised by the server (§5)", async () => {
    const res = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: INFO })));
    assert.ok(res.getChild("query", INFO)!.getChildren("feature").some((f) => f.attrs.var === NS));
  });

  it("lists every service; TURN entries carry credentials that verify with the shared secret", async () => {
    const all = listed(await alice.iq(services()));
    assert.deepEqual(all.map((s) => [s.attrs.type, s.attrs.host, s.attrs.port, s.attrs.transport]), [
      ["stun", "stun.example.org", "3478", "udp"],
      ["turn", "turn.example.org", "3478", "udp"],
      ["turns", "turn.example.org", "5349", "tcp"],
    ]);
    assert.equal(all[0]!.attrs.username, undefined, "STUN needs no credentials");
    for (const turn of all.slice(1)) {
      assert.equal(turn.attrs.restricted, "1");
      const { username, password, expires } = turn.attrs as Record<string, string>;
      assert.match(username!, /^\d+:alice@localhost$/);
      assert.ok(turnServerAccepts(username!, password!, SECRET), "the TURN server would refuse these credentials");
      assert.ok(!turnServerAccepts(username!, password!, "another secret, not ours"));
      const expiry = Number(username!.split(":")[0]);
      assert.ok(Math.abs(expiry - (Date.now() / 1000 + 3600)) < 60, "valid for the configured hour");
      assert.equal(Date.parse(expires!), expiry * 1000, "expires states the same time");
    }
  });

  it("lists the services of one type (§3.2)", async () => {
    assert.deepEqual(listed(await alice.iq(services("turns"))).map((s) => s.attrs.type), ["turns"]);
    assert.deepEqual(listed(await alice.iq(services("stun"))).map((s) => s.attrs.host), ["stun.example.org"]);
    assert.equal(listed(await alice.iq(services("ftp"))).length, 0);
  });

  it("answers a credentials request for one TURN server (§3.3), and refuses unknown ones", async () => {
    const res = await alice.iq(credentials("turn.example.org", "turn", 3478));
    const [s] = listed(res, "credentials");
    assert.equal(s!.attrs.host, "turn.example.org");
    assert.ok(turnServerAccepts(s!.attrs.username!, s!.attrs.password!, SECRET));
    assert.equal(errorCondition(await alice.iq(credentials("stun.example.org", "stun"))), "item-not-found");
    assert.equal(errorCondition(await alice.iq(credentials("elsewhere.example", "turn"))), "item-not-found");
    assert.equal(errorCondition(await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("credentials", { xmlns: NS })))), "bad-request");
  });

  it("gives each user credentials of their own", async () => {
    const bob = await onlineUser(ts, "bob");
    const [s] = listed(await bob.iq(services("turn")));
    assert.match(s!.attrs.username!, /^\d+:bob@localhost$/);
    bob.close();
  });

  it("parses the URIs of RFC 7064/7065 and rejects others", () => {
    assert.deepEqual(parseServiceUri("turn:[2001:db8::1]:3479?transport=tcp"), { type: "turn", host: "2001:db8::1", port: 3479, transport: "tcp" });
    for (const bad of ["http://x", "stun:x?transport=udp", "turns:x?transport=udp", "turn:x:70000", "turn:", "stun:a b"]) {
      assert.equal(parseServiceUri(bad), undefined, bad);
    }
  });
});

describe("XEP-0215 without configured services", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  it("is not advertised and not answered", async () => {
    const alice = await onlineUser(ts, "alice");
    const res = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: INFO })));
    assert.ok(!res.getChild("query", INFO)!.getChildren("feature").some((f) => f.attrs.var === NS));
    assert.equal(errorCondition(await alice.iq(services())), "service-unavailable");
    alice.close();
  });
});
