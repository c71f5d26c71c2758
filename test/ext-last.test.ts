// XEP-0012 last activity: server uptime, and a user's last logout for those who may see the user's presence.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import type { Subscription } from "../src/storage/types.js";

const LAST = "jabber:iq:last";
const last = (to?: string) => xml("iq", { type: "get", to }, xml("query", { xmlns: LAST }));
const seconds = (res: Element) => Number(res.getChild("query", LAST)!.attrs.seconds);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("XEP-0012 last activity", function () {
  let ts: TestServer;
  let romeo: RawClient;

  /** `owner` lets `contact` see its presence (the contact's side is not needed for the check). */
  const allow = (owner: string, contact: string, subscription: Subscription = "from") =>
    ts.server.context.store.roster.put(`${owner}@localhost`, {
      jid: `${contact}@localhost`, name: null, subscription, askOut: false, pendingIn: null, approved: false, inRoster: true, groups: [],
    });

  before(async () => {
    ts = await startTestServer();
    romeo = await onlineUser(ts, "romeo");
  });
  after(async () => {
    romeo.close();
    await ts.stop();
  });

  it("answers the server's uptime in seconds for the domain (§5)", async () => {
    const first = seconds(await romeo.iq(last("localhost")));
    assert.ok(Number.isInteger(first) && first >= 0);
    await sleep(1100);
    const res = await romeo.iq(last("localhost"));
    assert.equal(res.attrs.from, "localhost");
    assert.ok(seconds(res) >= first + 1);
    assert.equal(res.getChild("query", LAST)!.getText(), "");
  });

  it("tells a subscriber the time since the last logout and its status text (§3)", async () => {
    await allow("juliet", "romeo");
    const juliet = await onlineUser(ts, "juliet");
    juliet.send(xml("presence", { type: "unavailable" }, xml("status", null, "Heading Home")));
    await juliet.receive((el) => el.name === "presence" && el.attrs.type === "unavailable");
    juliet.close();
    await sleep(1100);
    const res = await romeo.iq(last("juliet@localhost"));
    assert.equal(res.attrs.type, "result");
    assert.equal(res.attrs.from, "juliet@localhost");
    assert.ok(seconds(res) >= 1 && seconds(res) < 10, res.toString());
    assert.equal(res.getChild("query", LAST)!.getText(), "Heading Home");
  });

  it("answers 0 while the user has a connected resource (§3)", async () => {
    await allow("nurse", "romeo", "both");
    const nurse = await onlineUser(ts, "nurse");
    const res = await romeo.iq(last("nurse@localhost"));
    assert.equal(seconds(res), 0);
    assert.equal(res.getChild("query", LAST)!.getText(), "");
    nurse.close();
  });

  it("records a logout only when the last resource goes, without a status after an abrupt end", async () => {
    await allow("tybalt", "romeo");
    const a = await onlineUser(ts, "tybalt", { resource: "a" });
    const b = await onlineUser(ts, "tybalt", { resource: "b" });
    a.destroy();
    await sleep(200);
    assert.equal(seconds(await romeo.iq(last("tybalt@localhost"))), 0, "one resource is still online");
    b.send(xml("presence", { type: "unavailable" }, xml("status", null, "old status")));
    b.send(xml("presence"));
    await sleep(100);
    b.destroy();
    await sleep(200);
    const res = await romeo.iq(last("tybalt@localhost"));
    assert.equal(res.attrs.type, "result");
    assert.equal(res.getChild("query", LAST)!.getText(), "", "the status of an unavailable presence followed by an available one is not kept");
  });

  it("answers the user's own query without 'to' or to the own bare JID", async () => {
    for (const to of [undefined, "romeo@localhost"]) {
      const res = await romeo.iq(last(to));
      assert.equal(res.attrs.type, "result");
      assert.equal(seconds(res), 0);
    }
  });

  it("refuses entities without a presence subscription: forbidden (§3, §8)", async () => {
    await ts.accounts.create(ts.host, "paris", "password");
    const res = await romeo.iq(last("paris@localhost"));
    assert.equal(errorCondition(res), "forbidden");
    assert.equal(res.getChild("error")!.attrs.type, "auth");
    // Paris subscribed to Romeo's presence ('to') does not let Romeo see Paris's.
    await ts.server.context.store.roster.put("paris@localhost", {
      jid: "romeo@localhost", name: null, subscription: "to", askOut: false, pendingIn: null, approved: false, inRoster: true, groups: [],
    });
    assert.equal(errorCondition(await romeo.iq(last("paris@localhost"))), "forbidden");
  });

  it("answers service-unavailable for a user that does not exist (RFC 6121 §8.5.1)", async () => {
    assert.equal(errorCondition(await romeo.iq(last("nobody@localhost"))), "service-unavailable");
  });

  it("answers item-not-found when the user never logged out", async () => {
    await ts.accounts.create(ts.host, "friar", "password");
    await allow("friar", "romeo");
    assert.equal(errorCondition(await romeo.iq(last("friar@localhost"))), "item-not-found");
  });

  it("does not deliver a query to a resource unless the requester may see its presence (§4)", async () => {
    await allow("mercutio", "romeo");
    const mercutio = await onlineUser(ts, "mercutio", { resource: "street" });
    const benvolio = await onlineUser(ts, "benvolio");
    assert.equal(errorCondition(await benvolio.iq(last("mercutio@localhost/street"))), "forbidden");
    await mercutio.nothing((el) => el.name === "iq" && el.attrs.type === "get");
    romeo.send(xml("iq", { type: "get", to: "mercutio@localhost/street", id: "idle1" }, xml("query", { xmlns: LAST })));
    const delivered = await mercutio.receive((el) => el.name === "iq" && el.attrs.id === "idle1");
    assert.equal(delivered.attrs.from, romeo.jid);
    mercutio.send(xml("iq", { type: "result", to: romeo.jid, id: "idle1" }, xml("query", { xmlns: LAST, seconds: 123 })));
    assert.equal(seconds(await romeo.receive((el) => el.attrs.id === "idle1")), 123);
    mercutio.close();
    benvolio.close();
  });

  it("keeps the last logout across a restart and removes it with the account", async () => {
    const other = await startTestServer();
    const allowAbram = () => other.server.context.store.roster.put("balthasar@localhost", {
      jid: "abram@localhost", name: null, subscription: "from", askOut: false, pendingIn: null, approved: false, inRoster: true, groups: [],
    });
    try {
      const balthasar = await onlineUser(other, "balthasar");
      await allowAbram();
      balthasar.send(xml("presence", { type: "unavailable" }, xml("status", null, "to Mantua")));
      await balthasar.receive((el) => el.name === "presence" && el.attrs.type === "unavailable");
      balthasar.close();
      await sleep(200);
      await other.restart();
      const abram = await onlineUser(other, "abram");
      const res = await abram.iq(last("balthasar@localhost"));
      assert.equal(res.attrs.type, "result");
      assert.equal(res.getChild("query", LAST)!.getText(), "to Mantua");

      await other.accounts.delete(other.host, "balthasar");
      await other.accounts.create(other.host, "balthasar", "password");
      await allowAbram();
      assert.equal(errorCondition(await abram.iq(last("balthasar@localhost"))), "item-not-found");
      abram.close();
    } finally {
      await other.stop();
    }
  });

  it("records no logout for an account removed while online", async () => {
    const sampson = await onlineUser(ts, "sampson");
    await allow("sampson", "romeo");
    await ts.accounts.delete(ts.host, "sampson");
    await sampson.closed();
    await sleep(200);
    await ts.accounts.create(ts.host, "sampson", "password");
    await allow("sampson", "romeo");
    assert.equal(errorCondition(await romeo.iq(last("sampson@localhost"))), "item-not-found");
  });

  it("is advertised in disco#info", async () => {
    const res = await romeo.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(res.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === LAST));
  });
});
