// XEP-0199 XMPP Ping: the server answers for itself and for the user's own account.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml } from "../src/xml/element.js";

const PING = "urn:xmpp:ping";
const ping = (to?: string) => xml("iq", { type: "get", to }, xml("ping", { xmlns: PING }));

describe("XEP-0199 ping", function () {
  let ts: TestServer;
  let alice: RawClient;
  before(async () => {
    ts = await startTestServer();
    alice = await onlineUser(ts, "alice");
    await ts.accounts.create(ts.host, "bob", "password");
  });
  after(async () => {
    alice.close();
    await ts.stop();
  });

  it("answers a ping to the server with an empty result (§4.2)", async () => {
    alice.send(xml("iq", { type: "get", to: "localhost", id: "c2s1" }, xml("ping", { xmlns: PING })));
    const pong = await alice.receive((el) => el.attrs.id === "c2s1");
    assert.equal(pong.attrs.type, "result");
    assert.equal(pong.attrs.from, "localhost");
    assert.equal(pong.attrs.to, alice.jid);
    assert.equal(pong.children.length, 0);
  });

  it("answers a ping to the user's own bare JID or without 'to' on the user's behalf", async () => {
    const own = await alice.iq(ping("alice@localhost"));
    assert.equal(own.attrs.type, "result");
    assert.equal(own.attrs.from, "alice@localhost");
    const noTo = await alice.iq(ping());
    assert.equal(noTo.attrs.type, "result");
    assert.equal(noTo.attrs.from, undefined);
  });

  it("does not answer for other users or other domains", async () => {
    assert.equal(errorCondition(await alice.iq(ping("bob@localhost"))), "service-unavailable");
    assert.equal(errorCondition(await alice.iq(ping("elsewhere.example"))), "remote-server-not-found");
  });

  it("is advertised in the server's disco#info (§5)", async () => {
    const res = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(res.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === PING));
  });

  it("is answered by the core's service-unavailable when the module is disabled", async () => {
    const bare = await startTestServer({ modules: { disabled: ["ping"] } });
    try {
      const c = await onlineUser(bare, "carol");
      assert.equal(errorCondition(await c.iq(ping("localhost"))), "service-unavailable");
      c.close();
    } finally {
      await bare.stop();
    }
  });
});
