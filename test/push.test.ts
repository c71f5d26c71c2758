// XEP-0357 push notifications, as dialogues over real sockets: the app server is a client that owns the
// push JID; Romeo's phone registers it, goes offline or hibernates (XEP-0198), and Juliet writes.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const PUSH = "urn:xmpp:push:0";
const PUBSUB = "http://jabber.org/protocol/pubsub";
const SM = "urn:xmpp:sm:3";
const DATA = "jabber:x:data";

const isPublish = (node: string) => (el: Element) =>
  el.name === "iq" && el.attrs.type === "set" && el.getChild("pubsub", PUBSUB)?.getChild("publish")?.attrs.node === node;

/** The summary form of a notification, as field → value. */
function summary(iq: Element): Map<string, string> {
  const form = iq.getChild("pubsub", PUBSUB)!.getChild("publish")!.getChild("item")!.getChild("notification", PUSH)!.getChild("x", DATA)!;
  return new Map(form.getChildren("field").map((f) => [f.attrs.var, f.getChildText("value") ?? ""]));
}

function publishOptions(iq: Element): Map<string, string> | null {
  const form = iq.getChild("pubsub", PUBSUB)!.getChild("publish-options")?.getChild("x", DATA);
  return form ? new Map(form.getChildren("field").map((f) => [f.attrs.var, f.getChildText("value") ?? ""])) : null;
}

function enable(service: string, node: string, options: Record<string, string> | null): Element {
  const form = options && xml("x", { xmlns: DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE" }, xml("value", null, "http://jabber.org/protocol/pubsub#publish-options")),
    ...Object.entries(options).map(([k, v]) => xml("field", { var: k }, xml("value", null, v))));
  return xml("iq", { type: "set" }, xml("enable", { xmlns: PUSH, jid: service, node }, form));
}

const chat = (to: string, text: string) => xml("message", { to, type: "chat" }, xml("body", null, text));

describe("XEP-0357 push notifications", function () {
  this.timeout(30_000);
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ modules: { push: { minIntervalSeconds: 2 } } }); });
  after(() => ts.stop());

  it("notifies the app server for an offline and for a hibernated session; rate-limited; an error disables it", async () => {
    const appServer = await onlineUser(ts, "appserver", { resource: "push" });
    const juliet = await onlineUser(ts, "juliet");
    const service = appServer.jid;

    // Romeo's phone: push enabled on two nodes, one of them allowing the body.
    const phone = await onlineUser(ts, "romeo", { resource: "phone" });
    const info = await phone.iq(xml("iq", { type: "get", to: "romeo@localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === PUSH), "urn:xmpp:push:0 on the account (XEP-0357 §4)");
    assert.equal((await phone.iq(enable(service, "n1", { secret: "s3cr3t", "include-body": "true" }))).attrs.type, "result");
    assert.equal((await phone.iq(enable(service, "n2", null))).attrs.type, "result");
    const bad = await phone.iq(xml("iq", { type: "set" }, xml("enable", { xmlns: PUSH, node: "x" })));
    assert.equal(bad.attrs.type, "error", "enable without a jid is a bad request");
    phone.close();
    await new Promise((r) => setTimeout(r, 200));

    // Offline: both registrations are notified, from Romeo's bare JID.
    juliet.send(chat("romeo@localhost", "are you there?"));
    const n1 = await appServer.receive(isPublish("n1"), 5000);
    const n2 = await appServer.receive(isPublish("n2"), 5000);
    assert.equal(n1.attrs.from, "romeo@localhost");
    const s1 = summary(n1);
    assert.equal(s1.get("FORM_TYPE"), "urn:xmpp:push:summary");
    assert.equal(s1.get("message-count"), "1");
    assert.equal(s1.get("last-message-sender"), juliet.jid);
    assert.equal(s1.get("last-message-body"), "are you there?");
    assert.equal(publishOptions(n1)?.get("secret"), "s3cr3t", "the publish-options go back to the app server");
    assert.equal(summary(n2).has("last-message-body"), false, "no body unless the registration allowed it");
    assert.equal(publishOptions(n2), null);
    for (const iq of [n1, n2]) appServer.send(xml("iq", { type: "result", id: iq.attrs.id, to: iq.attrs.from }));

    // Hibernated (XEP-0198): the phone comes back with resumable SM and loses its connection.
    const phone2 = await RawClient.connect(ts);
    await phone2.login("romeo", "password", "phone");
    phone2.send(xml("enable", { xmlns: SM, resume: "true" }));
    await phone2.receive((el) => el.name === "enabled");
    phone2.send(xml("presence"));
    await phone2.receive((el) => el.name === "presence" && el.attrs.from === phone2.jid);
    phone2.destroy();
    await new Promise((r) => setTimeout(r, 300));
    await appServer.nothing(isPublish("n1"), 300);
    // Three messages: the first is notified at once, the other two together once the interval has passed.
    for (const text of ["h1", "h2", "h3"]) juliet.send(chat("romeo@localhost", text));
    const first = await appServer.receive(isPublish("n1"), 5000);
    assert.equal(summary(first).get("message-count"), "1");
    assert.equal(summary(first).get("last-message-body"), "h1");
    const started = Date.now();
    const second = await appServer.receive(isPublish("n1"), 8000);
    assert.ok(Date.now() - started >= 1000, "not before the interval");
    assert.equal(summary(second).get("message-count"), "2");
    assert.equal(summary(second).get("last-message-body"), "h3");
    appServer.send(xml("iq", { type: "result", id: first.attrs.id, to: first.attrs.from }));
    appServer.send(xml("iq", { type: "result", id: second.attrs.id, to: second.attrs.from }));

    // §7: the app server answers n2's notifications with an error: that registration is disabled.
    const n2s: Element[] = [];
    for (;;) {
      try { n2s.push(await appServer.receive(isPublish("n2"), 4000)); } catch { break; }
    }
    assert.ok(n2s.length >= 1);
    for (const iq of n2s) {
      appServer.send(xml("iq", { type: "error", id: iq.attrs.id, to: iq.attrs.from }, xml("error", { type: "cancel" }, xml("item-not-found", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }))));
    }
    await new Promise((r) => setTimeout(r, 2500));
    juliet.send(chat("romeo@localhost", "h4"));
    const after = await appServer.receive(isPublish("n1"), 5000);
    assert.equal(summary(after).get("last-message-body"), "h4");
    await appServer.nothing(isPublish("n2"), 2500);
    appServer.close();
    juliet.close();
  });

  it("sends nothing while a resource is online, and nothing after disable", async () => {
    const appServer = await onlineUser(ts, "appserver2", { resource: "push" });
    const juliet = await onlineUser(ts, "juliet2");
    const phone = await onlineUser(ts, "romeo2", { resource: "phone" });
    await phone.iq(enable(appServer.jid, "d1", null));
    juliet.send(chat("romeo2@localhost", "online"));
    await phone.receive((el) => el.getChildText("body") === "online");
    await appServer.nothing(isPublish("d1"), 500);
    assert.equal((await phone.iq(xml("iq", { type: "set" }, xml("disable", { xmlns: PUSH, jid: appServer.jid })))).attrs.type, "result");
    phone.close();
    await new Promise((r) => setTimeout(r, 200));
    juliet.send(chat("romeo2@localhost", "offline"));
    await appServer.nothing(isPublish("d1"), 1000);
    appServer.close();
    juliet.close();
  });
});
