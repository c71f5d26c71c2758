// RFC 6121 dialogues: roster, the subscription state machine, presence, message delivery rules, offline.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const ROSTER = "jabber:iq:roster";
const isPush = (jid: string) => (el: Element) => el.name === "iq" && el.attrs.type === "set" && el.getChild("query", ROSTER)?.getChild("item")?.attrs.jid === jid;
const isPresence = (from: string, type?: string) => (el: Element) => el.name === "presence" && (el.attrs.from === from || el.attrs.from?.startsWith(from + "/")) && el.attrs.type === type;
const isMessage = (body?: string) => (el: Element) => el.name === "message" && (body === undefined || el.getChildText("body") === body);

async function getRoster(c: RawClient, ver?: string): Promise<Element> {
  return c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER, ver })));
}

function ackPush(c: RawClient, push: Element): void {
  c.send(xml("iq", { type: "result", id: push.attrs.id }));
}

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

describe("RFC 6121 IM", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  describe("roster", () => {
    it("sets, pushes to every interested resource, versions and removes items", async () => {
      const user = fresh("ro");
      const a = await onlineUser(ts, user, { resource: "a" });
      const b = await onlineUser(ts, user, { resource: "b" });
      await getRoster(a);
      await getRoster(b);
      const set = await a.iq(xml("iq", { type: "set" }, xml("query", { xmlns: ROSTER },
        xml("item", { jid: "nurse@localhost", name: "Nurse" }, xml("group", null, "Servants")))));
      assert.equal(set.attrs.type, "result");
      for (const c of [a, b]) {
        const push = await c.receive(isPush("nurse@localhost"));
        const item = push.getChild("query")!.getChild("item")!;
        assert.equal(item.attrs.name, "Nurse");
        assert.equal(item.attrs.subscription, "none");
        assert.equal(item.getChildText("group"), "Servants");
        ackPush(c, push);
      }
      const roster = await getRoster(a);
      const ver = roster.getChild("query")!.attrs.ver;
      assert.ok(ver);
      assert.deepEqual(roster.getChild("query")!.getChildren("item").map((i) => i.attrs.jid), ["nurse@localhost"]);
      // XEP-0237: an up-to-date version gets an empty result.
      const same = await getRoster(a, ver);
      assert.equal(same.attrs.type, "result");
      assert.equal(same.getChild("query"), undefined);
      const stale = await getRoster(a, "0");
      assert.equal(stale.getChild("query")!.getChildren("item").length, 1);

      await a.iq(xml("iq", { type: "set" }, xml("query", { xmlns: ROSTER }, xml("item", { jid: "nurse@localhost", subscription: "remove" }))));
      const removed = await b.receive((el) => isPush("nurse@localhost")(el) && el.getChild("query")!.getChild("item")!.attrs.subscription === "remove");
      assert.ok(removed);
      assert.equal((await getRoster(a)).getChild("query")!.getChildren("item").length, 0);
      a.close(); b.close();
    });

    it("refuses bad roster sets", async () => {
      const a = await onlineUser(ts, fresh("bad"));
      const two = await a.iq(xml("iq", { type: "set" }, xml("query", { xmlns: ROSTER }, xml("item", { jid: "x@localhost" }), xml("item", { jid: "y@localhost" }))));
      assert.equal(errorCondition(two), "bad-request");
      const dup = await a.iq(xml("iq", { type: "set" }, xml("query", { xmlns: ROSTER }, xml("item", { jid: "x@localhost" }, xml("group", null, "g"), xml("group", null, "g")))));
      assert.equal(errorCondition(dup), "bad-request");
      const missing = await a.iq(xml("iq", { type: "set" }, xml("query", { xmlns: ROSTER }, xml("item", { jid: "ghost@localhost", subscription: "remove" }))));
      assert.equal(errorCondition(missing), "item-not-found");
      const other = await a.iq(xml("iq", { type: "get", to: "someoneelse@localhost" }, xml("query", { xmlns: ROSTER })));
      assert.equal(errorCondition(other), "forbidden");
      a.close();
    });
  });

  describe("subscriptions and presence", () => {
    it("runs the whole subscription dialogue both ways", async () => {
      const r = fresh("romeo"), j = fresh("juliet");
      const romeo = await onlineUser(ts, r, { resource: "orchard" });
      const juliet = await onlineUser(ts, j, { resource: "balcony" });
      await getRoster(romeo); await getRoster(juliet);
      const R = `${r}@localhost`, J = `${j}@localhost`;

      // Romeo asks; his roster shows the pending request.
      romeo.send(xml("presence", { to: J, type: "subscribe" }));
      const askPush = await romeo.receive(isPush(J));
      assert.equal(askPush.getChild("query")!.getChild("item")!.attrs.ask, "subscribe");
      const request = await juliet.receive(isPresence(R, "subscribe"));
      assert.equal(request.attrs.from, R, "subscription requests carry the bare JID");

      // Juliet approves; both rosters move on and Romeo sees her presence.
      juliet.send(xml("presence", { to: R, type: "subscribed" }));
      const fromPush = await juliet.receive(isPush(R));
      assert.equal(fromPush.getChild("query")!.getChild("item")!.attrs.subscription, "from");
      await romeo.receive(isPresence(J, "subscribed"));
      const toPush = await romeo.receive((el) => isPush(J)(el) && el.getChild("query")!.getChild("item")!.attrs.subscription === "to");
      assert.equal(toPush.getChild("query")!.getChild("item")!.attrs.ask, undefined);
      const seen = await romeo.receive(isPresence(J, undefined));
      assert.equal(seen.attrs.from, `${J}/balcony`);

      // And back: Juliet subscribes to Romeo → both.
      juliet.send(xml("presence", { to: R, type: "subscribe" }));
      await romeo.receive(isPresence(R === R ? J : J, "subscribe"));
      romeo.send(xml("presence", { to: J, type: "subscribed" }));
      await juliet.receive((el) => isPush(R)(el) && el.getChild("query")!.getChild("item")!.attrs.subscription === "both");
      await romeo.receive((el) => isPush(J)(el) && el.getChild("query")!.getChild("item")!.attrs.subscription === "both");
      await juliet.receive(isPresence(`${R}/orchard`, undefined));

      // Presence changes reach the contact; an abrupt disconnect becomes unavailable.
      romeo.send(xml("presence", null, xml("show", null, "away"), xml("status", null, "under the balcony")));
      const away = await juliet.receive((el) => isPresence(`${R}/orchard`, undefined)(el) && el.getChildText("show") === "away");
      assert.equal(away.getChildText("status"), "under the balcony");
      romeo.destroy();
      await juliet.receive(isPresence(`${R}/orchard`, "unavailable"));

      // Unsubscribe: Juliet stops seeing Romeo.
      const romeo2 = await onlineUser(ts, r, { resource: "again" });
      await juliet.receive(isPresence(`${R}/again`, undefined));
      juliet.send(xml("presence", { to: R, type: "unsubscribe" }));
      await juliet.receive((el) => isPush(R)(el) && el.getChild("query")!.getChild("item")!.attrs.subscription === "from");
      await juliet.receive(isPresence(`${R}/again`, "unavailable"));
      const roster = await getRoster(romeo2);
      assert.equal(roster.getChild("query")!.getChildren("item").find((i) => i.attrs.jid === J)!.attrs.subscription, "to");
      juliet.close(); romeo2.close();
    });

    it("probes the contacts of a new session for their current presence", async () => {
      const r = fresh("probe"), j = fresh("probe");
      const romeo = await onlineUser(ts, r);
      const juliet = await onlineUser(ts, j, { resource: "home" });
      await getRoster(romeo); await getRoster(juliet);
      romeo.send(xml("presence", { to: `${j}@localhost`, type: "subscribe" }));
      await juliet.receive(isPresence(`${r}@localhost`, "subscribe"));
      juliet.send(xml("presence", { to: `${r}@localhost`, type: "subscribed" }));
      await romeo.receive(isPresence(`${j}@localhost`, "subscribed"));
      romeo.close();
      // A new session of Romeo learns Juliet's presence from the probe its initial presence triggers.
      const again = await onlineUser(ts, r, { resource: "later" });
      const p = await again.receive(isPresence(`${j}@localhost/home`, undefined));
      assert.equal(p.attrs.to, `${r}@localhost`, "the answer goes to the prober's bare JID");
      again.close(); juliet.close();
    });

    it("keeps a pending request across a server restart and delivers it at login", async () => {
      const r = fresh("romeo"), j = fresh("juliet");
      await ts.accounts.create("localhost", j, "password");
      const romeo = await onlineUser(ts, r);
      romeo.send(xml("presence", { to: `${j}@localhost`, type: "subscribe" }, xml("status", null, "it is I")));
      await romeo.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      romeo.close();
      await ts.restart();
      const juliet = await RawClient.connect(ts);
      await juliet.login(j, "password");
      juliet.send(xml("presence"));
      const req = await juliet.receive(isPresence(`${r}@localhost`, "subscribe"));
      assert.equal(req.getChildText("status"), "it is I");
      // Approving it later still works.
      juliet.send(xml("presence", { to: `${r}@localhost`, type: "subscribed" }));
      const roster = await getRoster(juliet);
      assert.equal(roster.getChild("query")!.getChildren("item").find((i) => i.attrs.jid === `${r}@localhost`)!.attrs.subscription, "from");
      juliet.close();
    });

    it("honours pre-approval (RFC 6121 §3.4)", async () => {
      const r = fresh("romeo"), j = fresh("juliet");
      const juliet = await onlineUser(ts, j);
      const romeo = await onlineUser(ts, r);
      await getRoster(romeo);
      juliet.send(xml("presence", { to: `${r}@localhost`, type: "subscribed" }));
      await new Promise((res) => setTimeout(res, 100));
      await romeo.nothing(isPresence(`${j}@localhost`, "subscribed"), 100);
      romeo.send(xml("presence", { to: `${j}@localhost`, type: "subscribe" }));
      await romeo.receive(isPresence(`${j}@localhost`, "subscribed"));
      await romeo.receive(isPresence(`${j}@localhost`, undefined));
      await juliet.nothing(isPresence(`${r}@localhost`, "subscribe"), 200);
      juliet.close(); romeo.close();
    });

    it("sends unavailable to entities that got directed presence", async () => {
      const a = fresh("dir"), b = fresh("dir");
      const alice = await onlineUser(ts, a);
      const bob = await onlineUser(ts, b, { resource: "r" });
      alice.send(xml("presence", { to: `${b}@localhost/r` }, xml("status", null, "psst")));
      assert.equal((await bob.receive(isPresence(alice.jid, undefined))).getChildText("status"), "psst");
      alice.destroy();
      await bob.receive(isPresence(alice.jid, "unavailable"));
      bob.close();
    });
  });

  describe("message delivery (RFC 6121 §8.5)", () => {
    it("delivers a bare-JID message to the highest-priority resource only", async () => {
      const u = fresh("prio");
      const low = await onlineUser(ts, u, { resource: "low", priority: 1 });
      const high = await onlineUser(ts, u, { resource: "high", priority: 5 });
      const sender = await onlineUser(ts, fresh("sender"));
      sender.send(xml("message", { to: `${u}@localhost`, type: "chat" }, xml("body", null, "to the best")));
      const got = await high.receive(isMessage("to the best"));
      assert.ok(got.getChild("stanza-id", "urn:xmpp:sid:0"), "archived messages carry a stanza-id");
      await low.nothing(isMessage("to the best"));
      // A full JID reaches exactly that resource.
      sender.send(xml("message", { to: `${u}@localhost/low`, type: "chat" }, xml("body", null, "to low")));
      await low.receive(isMessage("to low"));
      await high.nothing(isMessage("to low"));
      low.close(); high.close(); sender.close();
    });

    it("stores for offline delivery when only negative-priority resources are online", async () => {
      const u = fresh("neg");
      const neg = await onlineUser(ts, u, { resource: "neg", priority: -1 });
      const sender = await onlineUser(ts, fresh("sender"));
      sender.send(xml("message", { to: `${u}@localhost`, type: "chat" }, xml("body", null, "later")));
      await neg.nothing(isMessage("later"));
      neg.close();
      const pos = await onlineUser(ts, u, { resource: "pos", priority: 0 });
      const got = await pos.receive(isMessage("later"));
      assert.ok(got.getChild("delay", "urn:xmpp:delay"));
      pos.close(); sender.close();
    });

    it("answers a message to a nonexistent user with service-unavailable", async () => {
      const sender = await onlineUser(ts, fresh("sender"));
      sender.send(xml("message", { to: "nobody@localhost", type: "chat", id: "x1" }, xml("body", null, "hello?")));
      const err = await sender.receive((el) => el.name === "message" && el.attrs.type === "error");
      assert.equal(errorCondition(err), "service-unavailable");
      assert.equal(err.attrs.from, "nobody@localhost");
      sender.close();
    });

    it("treats a chat message to an unavailable resource as sent to the bare JID", async () => {
      const u = fresh("res");
      const online = await onlineUser(ts, u, { resource: "here" });
      const sender = await onlineUser(ts, fresh("sender"));
      sender.send(xml("message", { to: `${u}@localhost/gone`, type: "chat" }, xml("body", null, "rerouted")));
      await online.receive(isMessage("rerouted"));
      online.close(); sender.close();
    });

    it("keeps offline messages across a server restart, with delay stamps, in order, once", async () => {
      const u = fresh("off");
      await ts.accounts.create("localhost", u, "password");
      const sender = await onlineUser(ts, fresh("sender"));
      for (let i = 0; i < 5; i++) sender.send(xml("message", { to: `${u}@localhost`, type: "chat" }, xml("body", null, `m${i}`)));
      sender.send(xml("message", { to: `${u}@localhost`, type: "chat" }, xml("active", { xmlns: "http://jabber.org/protocol/chatstates" })));
      await sender.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      sender.close();
      await ts.restart();
      const c = await RawClient.connect(ts);
      await c.login(u, "password");
      c.send(xml("presence"));
      for (let i = 0; i < 5; i++) {
        const m = await c.receive(isMessage());
        assert.equal(m.getChildText("body"), `m${i}`);
        const delay = m.getChild("delay", "urn:xmpp:delay")!;
        assert.ok(delay && !Number.isNaN(Date.parse(delay.attrs.stamp)));
      }
      await c.nothing(isMessage(), 200);
      c.close();
      const again = await onlineUser(ts, u, { password: "password" });
      await again.nothing(isMessage(), 300);
      again.close();
    });
  });
});
