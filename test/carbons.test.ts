// XEP-0280 Message Carbons dialogues: Romeo has several clients; the carbons-enabled ones see both sides
// of his conversations.
import assert from "node:assert/strict";
import { client } from "@xmpp/client";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const CARBONS = "urn:xmpp:carbons:2";
const FORWARD = "urn:xmpp:forward:0";
const SID = "urn:xmpp:sid:0";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

async function enable(c: RawClient, on = true): Promise<void> {
  const res = await c.iq(xml("iq", { type: "set" }, xml(on ? "enable" : "disable", { xmlns: CARBONS })));
  assert.equal(res.attrs.type, "result");
}

const isBody = (body: string) => (e: Element) => e.name === "message" && e.getChildText("body") === body;
/** A carbon of `kind` whose forwarded message has this body. */
const isCarbon = (kind: "sent" | "received", body: string) => (e: Element) =>
  e.name === "message" && e.getChild(kind, CARBONS)?.getChild("forwarded", FORWARD)?.getChild("message")?.getChildText("body") === body;
const carbonOf = (body: string) => (e: Element) => isCarbon("sent", body)(e) || isCarbon("received", body)(e);
/** A carbon or the message itself. */
const anyCarbon = (body: string) => (e: Element) => carbonOf(body)(e) || isBody(body)(e);
const forwardedOf = (carbon: Element, kind: "sent" | "received") => carbon.getChild(kind, CARBONS)!.getChild("forwarded", FORWARD)!.getChild("message")!;

async function settle(c: RawClient): Promise<void> {
  await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
}

describe("XEP-0280 message carbons", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  let R: string, J: string;
  let garden: RawClient, home: RawClient, phone: RawClient, juliet: RawClient;
  beforeEach(async () => {
    const r = fresh("romeo"), j = fresh("juliet");
    R = `${r}@localhost`; J = `${j}@localhost`;
    // garden has the highest priority; home has carbons on; phone has them off.
    garden = await onlineUser(ts, r, { resource: "garden", priority: 5 });
    home = await onlineUser(ts, r, { resource: "home", priority: 1 });
    phone = await onlineUser(ts, r, { resource: "phone", priority: 1 });
    juliet = await onlineUser(ts, j, { resource: "balcony" });
    await enable(garden);
    await enable(home);
  });
  afterEach(() => { for (const c of [garden, home, phone, juliet]) c.close(); });

  it("is advertised by the server", async () => {
    const info = await juliet.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === CARBONS));
  });

  it("copies a received message to the other enabled resources, from the user's bare JID", async () => {
    juliet.send(xml("message", { to: R, type: "chat", id: "j1" }, xml("body", null, "Romeo, Romeo!")));
    const original = await garden.receive(isBody("Romeo, Romeo!"));
    const carbon = await home.receive(isCarbon("received", "Romeo, Romeo!"));
    assert.equal(carbon.attrs.from, R, "§11: carbons come from the user's bare JID");
    assert.equal(carbon.attrs.to, `${R}/home`);
    assert.equal(carbon.attrs.type, "chat");
    const forwarded = forwardedOf(carbon, "received");
    assert.equal(forwarded.attrs.xmlns, "jabber:client");
    assert.equal(forwarded.attrs.from, `${J}/balcony`);
    assert.equal(forwarded.attrs.id, "j1");
    assert.equal(forwarded.getChild("stanza-id", SID)!.attrs.id, original.getChild("stanza-id", SID)!.attrs.id,
      "the archive id travels with the copy (XEP-0313 §3.5)");
    await garden.nothing(anyCarbon("Romeo, Romeo!"), 200);
    await phone.nothing(anyCarbon("Romeo, Romeo!"), 100);
  });

  it("copies a message to a full JID to the other enabled resources", async () => {
    juliet.send(xml("message", { to: `${R}/phone`, type: "chat" }, xml("body", null, "to your phone")));
    await phone.receive(isBody("to your phone"));
    await garden.receive(isCarbon("received", "to your phone"));
    await home.receive(isCarbon("received", "to your phone"));
  });

  it("copies a sent message to the other enabled resources, not to the sender", async () => {
    home.send(xml("message", { to: J, type: "chat", id: "r1" }, xml("body", null, "It is my lady")));
    const got = await juliet.receive(isBody("It is my lady"));
    assert.ok(got.getChild("stanza-id", SID));
    const carbon = await garden.receive(isCarbon("sent", "It is my lady"));
    assert.equal(carbon.attrs.from, R);
    assert.equal(carbon.attrs.to, `${R}/garden`);
    const forwarded = forwardedOf(carbon, "sent");
    assert.equal(forwarded.attrs.from, `${R}/home`);
    assert.equal(forwarded.attrs.to, J);
    // The sender's devices see the sender's own archive id (XEP-0359), never the recipient's.
    const ids = forwarded.getChildren("stanza-id", SID);
    assert.deepEqual(ids.map((i) => i.attrs.by), [R]);
    assert.notEqual(ids[0].attrs.id, got.getChild("stanza-id", SID)!.attrs.id);
    await home.nothing(anyCarbon("It is my lady"), 200);
    await phone.nothing(anyCarbon("It is my lady"), 100);
  });

  it("sends copies of what a client without carbons sends", async () => {
    phone.send(xml("message", { to: J, type: "chat" }, xml("body", null, "from the phone")));
    await juliet.receive(isBody("from the phone"));
    await garden.receive(isCarbon("sent", "from the phone"));
    await home.receive(isCarbon("sent", "from the phone"));
  });

  it("copies chat states and normal messages with a body, but not headlines or groupchat", async () => {
    juliet.send(xml("message", { to: R, type: "chat" }, xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" })));
    const state = await home.receive((e) => e.getChild("received", CARBONS) !== undefined);
    assert.ok(forwardedOf(state, "received").getChild("composing", "http://jabber.org/protocol/chatstates"));
    juliet.send(xml("message", { to: R }, xml("body", null, "a normal message")));
    await home.receive(isCarbon("received", "a normal message"));
    juliet.send(xml("message", { to: R, type: "headline" }, xml("body", null, "news")));
    await home.receive(isBody("news"));
    home.send(xml("message", { to: J, type: "groupchat" }, xml("body", null, "to a room")));
    await settle(home);
    await garden.receive(isBody("news"));
    await garden.nothing(carbonOf("news"), 200);
    await garden.nothing(anyCarbon("to a room"), 100);
  });

  it("honours <private/> both ways, and strips it before delivery (§7)", async () => {
    home.send(xml("message", { to: J, type: "chat" }, xml("body", null, "just for you"), xml("private", { xmlns: CARBONS })));
    const got = await juliet.receive(isBody("just for you"));
    assert.equal(got.getChild("private", CARBONS), undefined);
    juliet.send(xml("message", { to: `${R}/garden`, type: "chat" }, xml("body", null, "secret"), xml("private", { xmlns: CARBONS })));
    const secret = await garden.receive(isBody("secret"));
    assert.equal(secret.getChild("private", CARBONS), undefined);
    await settle(juliet);
    await garden.nothing(anyCarbon("just for you"), 200);
    await home.nothing(anyCarbon("secret"), 100);
    await home.nothing(anyCarbon("just for you"), 100);
  });

  it("honours the XEP-0334 no-copy hint", async () => {
    home.send(xml("message", { to: J, type: "chat" }, xml("body", null, "no copies"), xml("no-copy", { xmlns: "urn:xmpp:hints" })));
    juliet.send(xml("message", { to: `${R}/garden`, type: "chat" }, xml("body", null, "no copies either"), xml("no-copy", { xmlns: "urn:xmpp:hints" })));
    await juliet.receive(isBody("no copies"));
    await garden.receive(isBody("no copies either"));
    await garden.nothing(anyCarbon("no copies"), 200);
    await home.nothing(anyCarbon("no copies either"), 100);
  });

  it("stops copying to a session that disables carbons; enabling twice is fine", async () => {
    await enable(home, false);
    await enable(home, false);
    await enable(garden);
    juliet.send(xml("message", { to: `${R}/garden`, type: "chat" }, xml("body", null, "after disable")));
    phone.send(xml("message", { to: J, type: "chat" }, xml("body", null, "sent after disable")));
    await garden.receive(isBody("after disable"));
    await garden.receive(isCarbon("sent", "sent after disable"));
    await home.nothing(anyCarbon("after disable"), 200);
    await home.nothing(anyCarbon("sent after disable"), 100);
  });

  it("does not copy a message a resend did not deliver again", async () => {
    const resend = () => juliet.send(xml("message", { to: `${R}/garden`, type: "chat" }, xml("body", null, "once"),
      xml("origin-id", { xmlns: SID, id: "resend-1" })));
    resend();
    await garden.receive(isBody("once"));
    await home.receive(isCarbon("received", "once"));
    resend();
    await settle(juliet);
    await home.nothing(anyCarbon("once"), 200);
  });

  it("sends one sent-copy for a message resent with the same origin-id", async () => {
    const resend = () => home.send(xml("message", { to: J, type: "chat" }, xml("body", null, "sent once"),
      xml("origin-id", { xmlns: SID, id: "resend-sent-1" })));
    resend();
    await juliet.receive(isBody("sent once"));
    await garden.receive(isCarbon("sent", "sent once"));
    resend();
    await settle(home);
    await garden.nothing(anyCarbon("sent once"), 200);
    await juliet.nothing(isBody("sent once"), 100);
  });

  it("drops a forged carbon from another user (§11)", async () => {
    juliet.send(xml("message", { to: `${R}/garden`, type: "chat" },
      xml("received", { xmlns: CARBONS }, xml("forwarded", { xmlns: FORWARD },
        xml("message", { xmlns: "jabber:client", from: "rosaline@localhost/x", to: R, type: "chat" }, xml("body", null, "forged"))))));
    await settle(juliet);
    await garden.nothing(anyCarbon("forged"), 200);
  });

  it("does not copy private messages from MUC occupants (§6.1)", async () => {
    juliet.send(xml("message", { to: `${R}/garden`, type: "chat" }, xml("body", null, "psst"),
      xml("x", { xmlns: "http://jabber.org/protocol/muc#user" })));
    await garden.receive(isBody("psst"));
    await home.nothing(anyCarbon("psst"), 200);
  });

  describe("@xmpp/client", () => {
    it("enables carbons and receives a copy of a message sent from another client", async () => {
      const u = R.split("@")[0];
      const xmpp = client({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username: u, password: "password", resource: "js" });
      // COMPAT: @xmpp/client upgrades whenever STARTTLS is offered and checks the certificate; the test
      // server's is self-signed and TLS is optional here, so the client is shown no STARTTLS.
      xmpp.prependListener("element", (el: Element) => {
        if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
      });
      xmpp.on("error", () => {});
      const carbons: Element[] = [];
      xmpp.on("stanza", (el: Element) => { if (el.is("message") && el.getChild("sent", CARBONS)) carbons.push(el); });
      try {
        await xmpp.start();
        await xmpp.iqCaller.set(xml("enable", { xmlns: CARBONS }));
        phone.send(xml("message", { to: J, type: "chat" }, xml("body", null, "seen by xmpp.js")));
        await juliet.receive(isBody("seen by xmpp.js"));
        for (let i = 0; i < 50 && carbons.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(carbons.length, 1);
        assert.equal(carbons[0].attrs.from, R);
        assert.equal(forwardedOf(carbons[0], "sent").getChildText("body"), "seen by xmpp.js");
      } finally {
        await xmpp.stop();
      }
    });
  });
});
