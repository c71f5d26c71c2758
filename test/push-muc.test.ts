// XEP-0357 push notifications for group chats (XEP-0045 rooms), as dialogues over real sockets: the app
// server is a client owning the push JID; Juliet's phone hibernates (XEP-0198) inside an open room, the
// nurse is an offline member of a members-only room, and Romeo writes in both.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const PUSH = "urn:xmpp:push:0";
const PUBSUB = "http://jabber.org/protocol/pubsub";
const SM = "urn:xmpp:sm:3";
const DATA = "jabber:x:data";
const MUC = "http://jabber.org/protocol/muc";
const USER = "http://jabber.org/protocol/muc#user";
const OWNER = "http://jabber.org/protocol/muc#owner";
const ADMIN = "http://jabber.org/protocol/muc#admin";

const isPublish = (node: string) => (el: Element) =>
  el.name === "iq" && el.attrs.type === "set" && el.getChild("pubsub", PUBSUB)?.getChild("publish")?.attrs.node === node;

function summary(iq: Element): Map<string, string> {
  const form = iq.getChild("pubsub", PUBSUB)!.getChild("publish")!.getChild("item")!.getChild("notification", PUSH)!.getChild("x", DATA)!;
  return new Map(form.getChildren("field").map((f) => [f.attrs.var, f.getChildText("value") ?? ""]));
}

const enable = (service: string, node: string) => xml("iq", { type: "set" }, xml("enable", { xmlns: PUSH, jid: service, node },
  xml("x", { xmlns: DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE" }, xml("value", null, "http://jabber.org/protocol/pubsub#publish-options")),
    xml("field", { var: "include-body" }, xml("value", null, "true")))));

const codes = (el: Element) => (el.getChild("x", USER)?.getChildren("status") ?? []).map((s) => s.attrs.code as string);

async function join(c: RawClient, room: string, nick: string): Promise<void> {
  c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
  const self = await c.receive((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}` && (el.attrs.type === "error" || codes(el).includes("110")));
  assert.notEqual(self.attrs.type, "error", self.toString());
  await c.receive((el) => el.name === "message" && el.attrs.from?.startsWith(room) === true && el.getChild("subject") !== undefined);
}

async function configure(c: RawClient, room: string, fields: Record<string, string>): Promise<void> {
  const res = await c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: OWNER },
    xml("x", { xmlns: DATA, type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", null, "http://jabber.org/protocol/muc#roomconfig")),
      ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, xml("value", null, v)))))));
  assert.equal(res.attrs.type, "result", res.toString());
}

const say = (c: RawClient, room: string, body: string) => c.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, body)));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("XEP-0357 push notifications for group chats (XEP-0045)", function () {
  this.timeout(30_000);
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ modules: { push: { minIntervalSeconds: 2 } } }); });
  after(() => ts.stop());

  it("a hibernated occupant is notified when its nick is mentioned, not for other messages of an open room; rate-limited", async () => {
    const appServer = await onlineUser(ts, "mucpush", { resource: "push" });
    const romeo = await onlineUser(ts, "romeo", { resource: "desk" });
    const room = "balcony@conference.localhost";
    await join(romeo, room, "romeo");
    await configure(romeo, room, {});

    // Juliet's phone: push enabled, resumable SM, in the room as "Jules"; then its connection dies.
    await ts.accounts.create(ts.host, "juliet", "password");
    const phone = await RawClient.connect(ts);
    await phone.login("juliet", "password", "phone");
    assert.equal((await phone.iq(enable(appServer.jid, "jp"))).attrs.type, "result");
    phone.send(xml("enable", { xmlns: SM, resume: "true" }));
    await phone.receive((el) => el.name === "enabled");
    await join(phone, room, "Jules");
    phone.destroy();
    await pause(300);

    // The occupant stays while hibernated: a message that does not name it is no push event in an open room.
    say(romeo, room, "the moon is bright tonight");
    await romeo.receive((el) => el.getChildText("body") === "the moon is bright tonight");
    await appServer.nothing(isPublish("jp"), 700);
    say(romeo, room, "julesandjim is another nick");
    await appServer.nothing(isPublish("jp"), 500);

    say(romeo, room, "Jules, are you there?");
    const first = await appServer.receive(isPublish("jp"), 5000);
    assert.equal(first.attrs.from, "juliet@localhost");
    const s = summary(first);
    assert.equal(s.get("FORM_TYPE"), "urn:xmpp:push:summary");
    assert.equal(s.get("message-count"), "1");
    assert.equal(s.get("last-message-sender"), `${room}/romeo`);
    assert.equal(s.get("last-message-body"), "Jules, are you there?");
    appServer.send(xml("iq", { type: "result", id: first.attrs.id, to: first.attrs.from }));

    // Two more mentions within the interval: one notification counting both, once the interval is over.
    const started = Date.now();
    say(romeo, room, "jules?");
    say(romeo, room, "@jules please answer");
    const second = await appServer.receive(isPublish("jp"), 8000);
    assert.ok(Date.now() - started >= 1000, "not before the interval");
    assert.equal(summary(second).get("message-count"), "2");
    assert.equal(summary(second).get("last-message-body"), "@jules please answer");
    appServer.send(xml("iq", { type: "result", id: second.attrs.id, to: second.attrs.from }));
    await appServer.nothing(isPublish("jp"), 2500);

    appServer.close();
    romeo.close();
  });

  it("an offline member of a members-only room is notified of every message; not while online", async () => {
    const appServer = await onlineUser(ts, "mucpush2", { resource: "push" });
    const romeo = await onlineUser(ts, "romeo2", { resource: "desk" });
    const room = "orchard@conference.localhost";
    await join(romeo, room, "romeo");
    await configure(romeo, room, { "muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1" });
    const made = await romeo.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { jid: "nurse@localhost", affiliation: "member" }))));
    assert.equal(made.attrs.type, "result", made.toString());

    // The nurse registers push; while she is online (not in the room) nothing is pushed.
    const nurse = await onlineUser(ts, "nurse", { resource: "phone" });
    assert.equal((await nurse.iq(enable(appServer.jid, "np"))).attrs.type, "result");
    say(romeo, room, "while you are online");
    await romeo.receive((el) => el.getChildText("body") === "while you are online");
    await appServer.nothing(isPublish("np"), 700);
    nurse.close();
    await pause(300);

    say(romeo, room, "meeting at five");
    const n = await appServer.receive(isPublish("np"), 5000);
    assert.equal(n.attrs.from, "nurse@localhost");
    assert.equal(summary(n).get("message-count"), "1");
    assert.equal(summary(n).get("last-message-sender"), `${room}/romeo`);
    assert.equal(summary(n).get("last-message-body"), "meeting at five");
    appServer.send(xml("iq", { type: "result", id: n.attrs.id, to: n.attrs.from }));
    appServer.close();
    romeo.close();
  });
});
