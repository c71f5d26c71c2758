// The mobile adapter end to end: a mobile client (test/helpers/mobile-sdk.ts, protobuf over WebSocket) and XMPP
// users (RawClient, @xmpp/client) in one server, over real sockets.
import assert from "node:assert/strict";
import { client as xmppClient } from "@xmpp/client";
import { onlineUser, type RawClient } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import {
  ContentType, ErrorCode, MobileClient, MobileRequestError, Platform, mobileUser, startMobileServer, type MobileTestServer,
  rejectsWith,
} from "./helpers/mobile-client.js";
import { KickReason, MarkerKind, MessageKind, Show, Subscription } from "../src/mobile/schema.js";

const ROSTER = "jabber:iq:roster";
let n = 0;
const fresh = (name: string) => `${name}${++n}`;
const isMessage = (pred: (el: Element) => boolean = () => true) => (el: Element) => el.name === "message" && pred(el);
const body = (text: string) => isMessage((el) => el.getChildText("body") === text);

const rejects = rejectsWith;

/** Mobile `m` (user mu) and XMPP `x` (user xu) become friends (subscription both). */
async function befriend(m: MobileClient, x: RawClient, xu: string): Promise<void> {
  const xJid = `${xu}@localhost`;
  await m.request("addContact", { jid: xJid, remark: "X", message: "hi, it's me" });
  const req = await x.receive((el) => el.name === "presence" && el.attrs.type === "subscribe");
  assert.equal(req.getChildText("status"), "hi, it's me");
  const mJid = req.attrs.from!;
  x.send(xml("presence", { to: mJid, type: "subscribed" }));
  x.send(xml("presence", { to: mJid, type: "subscribe" }));
  await m.nextPush("rosterPush", (p) => p.contact.jid === xJid && p.contact.subscription === Subscription.BOTH);
}

describe("mobile adapter", function () {
  let ts: MobileTestServer;
  before(async () => { ts = await startMobileServer({}, { modules: { retraction: { windowSeconds: 3 } } }); });
  after(() => ts.stop());

  describe("login", () => {
    it("logs in with a password and answers heartbeats", async () => {
      const user = fresh("alice");
      const c = await mobileUser(ts, user, { deviceId: "phone1" });
      assert.equal(c.session!.jid, `${user}@localhost/mobile-phone1`);
      assert.ok(Math.abs(c.session!.serverTime - Date.now()) < 5000);
      assert.ok(c.session!.heartbeatIntervalMs > 0);
      assert.equal(c.session!.heartbeatTimeoutMs, c.session!.heartbeatIntervalMs * 3);
      const pong = await c.request("ping", { clientTime: 42 });
      assert.equal(pong.clientTime, 42);
      c.close();
    });

    it("issues tokens bound to the device, logs in with them and revokes them", async () => {
      const user = fresh("tok");
      const phone = await mobileUser(ts, user, { deviceId: "p1", platform: Platform.IOS });
      const { token, expiresAt } = await phone.request("issueToken", { ttlSeconds: 3600 });
      assert.ok(expiresAt > Date.now());
      const again = await MobileClient.connect(ts.mobileUrl);
      await again.login({ username: user, token, deviceId: "p1", platform: Platform.IOS });
      // the old connection of the same device is replaced
      const kicked = await phone.nextPush("kicked");
      assert.equal(kicked.reason, KickReason.SAME_DEVICE);
      const other = await MobileClient.connect(ts.mobileUrl);
      await rejects(other.login({ username: user, token, deviceId: "someone-else" }), ErrorCode.TOKEN_INVALID);
      const tablet = await mobileUser(ts, user, { deviceId: "t1", platform: Platform.IPADOS });
      await tablet.request("revokeToken", { token });
      assert.equal((await again.nextPush("kicked")).reason, KickReason.TOKEN_REVOKED);
      const third = await MobileClient.connect(ts.mobileUrl);
      await rejects(third.login({ username: user, token, deviceId: "p1" }), ErrorCode.TOKEN_INVALID);
      await rejects(tablet.request("revokeToken", { token }), ErrorCode.NOT_FOUND);
      for (const c of [phone, again, other, tablet, third]) c.close();
    });

    it("kicks the older device of the same platform class (one phone, one tablet, …)", async () => {
      const user = fresh("conflict");
      const phone1 = await mobileUser(ts, user, { deviceId: "a", platform: Platform.ANDROID });
      const tablet = await mobileUser(ts, user, { deviceId: "b", platform: Platform.ANDROID_TABLET });
      const phone2 = await mobileUser(ts, user, { deviceId: "c", platform: Platform.IOS });
      const kicked = await phone1.nextPush("kicked");
      assert.equal(kicked.reason, KickReason.LOGIN_CONFLICT);
      assert.equal(kicked.byDeviceId, "c");
      assert.equal(kicked.byPlatform, Platform.IOS);
      await phone1.closed();
      assert.ok(!tablet.isClosed);
      await tablet.noPush("kicked");
      assert.equal((await phone2.request("ping", { clientTime: 1 })).clientTime, 1);
      tablet.close(); phone2.close();
    });

    it("logs out: the device goes offline and its token stops working", async () => {
      const user = fresh("bye");
      const c = await mobileUser(ts, user, { deviceId: "d" });
      const { token } = await c.request("issueToken", {});
      const t = await MobileClient.connect(ts.mobileUrl);
      await t.login({ username: user, token, deviceId: "d" });
      await t.request("logout", {});
      assert.equal((await t.closed()).code, 1000);
      const u = await MobileClient.connect(ts.mobileUrl);
      await rejects(u.login({ username: user, token, deviceId: "d" }), ErrorCode.TOKEN_INVALID);
      c.close(); u.close();
    });
  });

  describe("chat with XMPP users", () => {
    it("carries messages both ways, with seq, origin-id, receipts requests and a durable ack", async () => {
      const mu = fresh("mob"), xu = fresh("xmp");
      const m = await mobileUser(ts, mu);
      const x = await onlineUser(ts, xu, { resource: "desk" });
      const ack = await m.send(`${xu}@localhost`, "hello from the phone", { clientMsgId: "cm-1" });
      assert.equal(ack.clientMsgId, "cm-1");
      assert.ok(ack.seq >= 1);
      assert.ok(ack.serverMsgId);
      assert.equal(ack.duplicate, false);
      const got = await x.receive(body("hello from the phone"));
      assert.equal(got.attrs.type, "chat");
      assert.equal(got.attrs.from, `${mu}@localhost/${m.session!.jid.split("/")[1]}`);
      assert.equal(got.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, "cm-1");
      assert.ok(got.getChild("request", "urn:xmpp:receipts"));
      assert.ok(got.getChild("markable", "urn:xmpp:chat-markers:0"));
      assert.ok(got.getChild("stanza-id", "urn:xmpp:sid:0"));

      x.send(xml("message", { to: `${mu}@localhost`, type: "chat", id: "x-1" }, xml("body", null, "hello from the desk")));
      const pushed = await m.nextMessage((msg) => msg.body === "hello from the desk");
      assert.equal(pushed.seq, ack.seq + 1);
      assert.equal(pushed.from, `${xu}@localhost`);
      assert.equal(pushed.conversation, `${xu}@localhost`);
      assert.equal(pushed.outgoing, false);
      assert.equal(pushed.clientMsgId, "x-1");
      assert.ok(pushed.serverMsgId);

      // Content types, mentions, searchable text and payloads survive the trip through XMPP.
      const other = await mobileUser(ts, fresh("mob2"));
      const otherJid = other.session!.jid.split("/")[0]!;
      await m.send(otherJid, "https://example.com/cat.jpg", {
        contentType: ContentType.IMAGE, mentions: [otherJid], searchableText: "cat", payload: new Uint8Array([1, 2, 3]),
      });
      const img = await other.nextMessage((msg) => msg.contentType === ContentType.IMAGE);
      assert.equal(img.body, "https://example.com/cat.jpg");
      assert.deepEqual(img.mentions, [otherJid]);
      assert.equal(img.searchableText, "cat");
      assert.deepEqual([...img.payload], [1, 2, 3]);
      m.close(); x.close(); other.close();
    });

    it("chats with an @xmpp/client user", async () => {
      const mu = fresh("mjs"), xu = fresh("xjs");
      await ts.accounts.create(ts.host, xu, "xmppjs-password");
      const m = await mobileUser(ts, mu);
      const x = xmppClient({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username: xu, password: "xmppjs-password", resource: "js" });
      // COMPAT: @xmpp/client always takes STARTTLS and checks the certificate; the test server's is self-signed.
      x.prependListener("element", (el: Element) => { if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls"); });
      x.on("error", () => {});
      const inbox: Element[] = [];
      let wake: (() => void) | null = null;
      x.on("stanza", (el: Element) => { inbox.push(el); wake?.(); });
      const next = async (pred: (el: Element) => boolean): Promise<Element> => {
        for (;;) {
          const i = inbox.findIndex(pred);
          if (i >= 0) return inbox.splice(i, 1)[0]!;
          await new Promise<void>((r) => { wake = r; setTimeout(r, 200); });
        }
      };
      try {
        await x.start();
        await x.send(xml("presence"));
        await m.send(`${xu}@localhost`, "to xmpp.js");
        const got = await next(body("to xmpp.js"));
        await x.send(xml("message", { to: got.attrs.from, type: "chat", id: "js-1" }, xml("body", null, "back to mobile")));
        const pushed = await m.nextMessage((msg) => msg.body === "back to mobile");
        assert.equal(pushed.from, `${xu}@localhost`);
      } finally {
        await x.stop();
        m.close();
      }
    });

    it("answers a message to an unknown user with RECIPIENT_UNAVAILABLE and to a bad address with INVALID_ARGUMENT", async () => {
      const m = await mobileUser(ts, fresh("lonely"));
      await rejects(m.send("nobody-here@localhost", "hello?"), ErrorCode.RECIPIENT_UNAVAILABLE);
      await rejects(m.send("bob@localhost/res", "hello?"), ErrorCode.INVALID_ARGUMENT);
      await rejects(m.send("bob@localhost", ""), ErrorCode.INVALID_ARGUMENT);
      await rejects(m.request("send", { clientMsgId: "", to: "bob@localhost", body: "x" }), ErrorCode.INVALID_ARGUMENT);
      await rejects(m.send("remote@elsewhere.example", "hello?"), ErrorCode.RECIPIENT_UNAVAILABLE);
      m.close();
    });

    it("shows a message sent from one device on the user's other devices", async () => {
      const mu = fresh("multi"), xu = fresh("peer");
      const phone = await mobileUser(ts, mu, { deviceId: "phone", platform: Platform.ANDROID });
      const tablet = await mobileUser(ts, mu, { deviceId: "tablet", platform: Platform.IPADOS });
      const x = await onlineUser(ts, xu);
      const ack = await phone.send(`${xu}@localhost`, "sent from the phone");
      const mirrored = await tablet.nextMessage((msg) => msg.body === "sent from the phone");
      assert.equal(mirrored.outgoing, true);
      assert.equal(mirrored.seq, ack.seq);
      assert.equal(mirrored.conversation, `${xu}@localhost`);
      await phone.noPush("messagePush", (p) => p.messages.some((msg) => msg.body === "sent from the phone"));
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat" }, xml("body", null, "to both devices")));
      const a = await phone.nextMessage((msg) => msg.body === "to both devices");
      const b = await tablet.nextMessage((msg) => msg.body === "to both devices");
      assert.equal(a.seq, b.seq);
      // An XMPP resource of the same user sending: the devices see it as outgoing.
      const xself = await onlineUser(ts, mu, { resource: "laptop" });
      // With carbons (XEP-0280) enabled, that XMPP resource sees what the devices send.
      const enabled = await xself.iq(xml("iq", { type: "set" }, xml("enable", { xmlns: "urn:xmpp:carbons:2" })));
      if (enabled.attrs.type === "result") {
        await phone.send(`${xu}@localhost`, "carbon copy");
        const carbon = await xself.receive((el) => el.name === "message" && el.getChild("sent", "urn:xmpp:carbons:2") !== undefined);
        const inner = carbon.getChild("sent")!.getChild("forwarded")!.getChild("message")!;
        assert.equal(inner.getChildText("body"), "carbon copy");
        assert.equal(inner.attrs.from, `${mu}@localhost/mobile-phone`);
      }
      xself.send(xml("message", { to: `${xu}@localhost`, type: "chat" }, xml("body", null, "from the laptop")));
      const fromLaptop = await phone.nextMessage((msg) => msg.body === "from the laptop");
      assert.equal(fromLaptop.outgoing, true);
      phone.close(); tablet.close(); x.close(); xself.close();
    });
  });

  describe("contacts and presence", () => {
    it("becomes friends with an XMPP user and sees presence changes both ways", async () => {
      const mu = fresh("pm"), xu = fresh("px");
      const m = await mobileUser(ts, mu, { deviceId: "pd" });
      const x = await onlineUser(ts, xu, { resource: "home" });
      await x.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER })));
      await befriend(m, x, xu);
      // The XMPP user sees the device come online…
      await x.receive((el) => el.name === "presence" && el.attrs.from === `${mu}@localhost/mobile-pd` && el.attrs.type === undefined);
      // …and the mobile user sees the XMPP user (probe answer or broadcast).
      const seen = await m.nextPush("presencePush", (p) => p.presence.jid === `${xu}@localhost/home`);
      assert.equal(seen.presence.available, true);
      assert.equal(seen.presence.mobile, false);

      x.send(xml("presence", null, xml("show", null, "dnd"), xml("status", null, "in a meeting")));
      const dnd = await m.nextPush("presencePush", (p) => p.presence.show === Show.DND);
      assert.equal(dnd.presence.status, "in a meeting");

      await m.request("setPresence", { show: Show.AWAY, status: "commuting" });
      const away = await x.receive((el) => el.name === "presence" && el.getChildText("show") === "away");
      assert.equal(away.getChildText("status"), "commuting");
      assert.equal(away.attrs.from, `${mu}@localhost/mobile-pd`);

      const list = await m.request("getPresence", {});
      assert.deepEqual(list.presences.map((p) => p.jid), [`${xu}@localhost/home`]);

      m.drop();
      await x.receive((el) => el.name === "presence" && el.attrs.from === `${mu}@localhost/mobile-pd` && el.attrs.type === "unavailable");
      x.close();
    });

    it("handles contact requests, remarks, deletion, blocking and incremental roster fetches", async () => {
      const mu = fresh("rm"), xu = fresh("rx"), other = fresh("ro");
      const m = await mobileUser(ts, mu);
      const x = await onlineUser(ts, xu);
      await x.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER })));
      // An XMPP user asks; the mobile user sees the request and accepts.
      x.send(xml("presence", { to: `${mu}@localhost`, type: "subscribe" }, xml("status", null, "may I?")));
      const request = await m.nextPush("contactRequest");
      assert.equal(request.from, `${xu}@localhost`);
      assert.equal(request.message, "may I?");
      const pending = await m.request("getRoster", {});
      const p = pending.contacts.find((c) => c.jid === `${xu}@localhost`)!;
      assert.equal(p.pendingIn, true);
      assert.equal(p.requestMessage, "may I?");
      await m.request("acceptContact", { jid: `${xu}@localhost`, remark: "Xavier" });
      await x.receive((el) => el.name === "presence" && el.attrs.type === "subscribed");
      await x.receive((el) => el.name === "presence" && el.attrs.type === "subscribe");
      x.send(xml("presence", { to: `${mu}@localhost`, type: "subscribed" }));
      const both = await m.nextPush("rosterPush", (r) => r.contact.jid === `${xu}@localhost` && r.contact.subscription === Subscription.BOTH);
      assert.equal(both.contact.remark, "Xavier");

      const roster = await m.request("getRoster", {});
      assert.equal((await m.request("getRoster", { sinceVersion: roster.version })).unchanged, true);
      await m.request("setRemark", { jid: `${xu}@localhost`, remark: "X.", setGroups: true, groups: ["Work"] });
      const renamed = await m.nextPush("rosterPush", (r) => r.contact.remark === "X.");
      assert.deepEqual(renamed.contact.groups, ["Work"]);
      const fresher = await m.request("getRoster", { sinceVersion: roster.version });
      assert.equal(fresher.unchanged, false);
      assert.ok(fresher.version > roster.version);
      await rejects(m.request("setRemark", { jid: `${other}@localhost`, remark: "?" }), ErrorCode.NOT_FOUND);

      // Blocking: nothing gets through either way, on either protocol.
      await m.request("blockContact", { jid: `${xu}@localhost` });
      await x.receive((el) => el.name === "presence" && el.attrs.type === "unavailable");
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat", id: "blocked-1" }, xml("body", null, "can you hear me?")));
      const bounce = await x.receive((el) => el.name === "message" && el.attrs.type === "error");
      assert.equal(bounce.attrs.id, "blocked-1");
      await m.noPush("messagePush", (b) => b.messages.some((msg) => msg.body === "can you hear me?"));
      await rejects(m.send(`${xu}@localhost`, "hello?"), ErrorCode.FORBIDDEN);
      assert.deepEqual((await m.request("getRoster", {})).blocked, [`${xu}@localhost`]);
      await m.request("unblockContact", { jid: `${xu}@localhost` });
      await x.receive((el) => el.name === "presence" && el.attrs.type === undefined && el.attrs.from!.startsWith(`${mu}@localhost/`));
      await m.send(`${xu}@localhost`, "unblocked");
      await x.receive(body("unblocked"));

      // Reject and delete.
      x.send(xml("presence", { to: `${mu}@localhost`, type: "unsubscribe" }));
      await m.request("deleteContact", { jid: `${xu}@localhost` });
      await m.nextPush("rosterPush", (r) => r.contact.jid === `${xu}@localhost` && r.contact.removed);
      await rejects(m.request("deleteContact", { jid: `${xu}@localhost` }), ErrorCode.NOT_FOUND);
      const y = await onlineUser(ts, other);
      await y.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER })));
      y.send(xml("presence", { to: `${mu}@localhost`, type: "subscribe" }));
      await m.nextPush("contactRequest", (r) => r.from === `${other}@localhost`);
      await m.request("rejectContact", { jid: `${other}@localhost` });
      await y.receive((el) => el.name === "presence" && el.attrs.type === "unsubscribed");
      m.close(); x.close(); y.close();
    });

    it("holds presence back in background mode and still pushes messages", async () => {
      const mu = fresh("bg"), xu = fresh("bgx");
      const m = await mobileUser(ts, mu);
      const x = await onlineUser(ts, xu, { resource: "r" });
      await x.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER })));
      await befriend(m, x, xu);
      await m.nextPush("presencePush", (p) => p.presence.jid === `${xu}@localhost/r`);
      await m.request("setBackground", { background: true });
      x.send(xml("presence", null, xml("show", null, "away")));
      x.send(xml("presence", null, xml("show", null, "xa")));
      await m.noPush("presencePush");
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat" }, xml("body", null, "wake up")));
      await m.nextMessage((msg) => msg.body === "wake up");
      await m.request("setBackground", { background: false });
      const latest = await m.nextPush("presencePush");
      assert.equal(latest.presence.show, Show.XA, "only the newest presence of each resource");
      await m.noPush("presencePush");
      m.close(); x.close();
    });
  });

  describe("receipts, read state and recall", () => {
    it("exchanges delivery receipts and read markers both ways", async () => {
      const mu = fresh("rcpt"), xu = fresh("rcptx");
      const m = await mobileUser(ts, mu);
      const tablet = await mobileUser(ts, mu, { platform: Platform.IPADOS });
      const x = await onlineUser(ts, xu);
      const X = `${xu}@localhost`;
      // XMPP → mobile: the device acknowledges delivery (XEP-0184) and reading (XEP-0333).
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat", id: "want-receipt" },
        xml("body", null, "did you get this?"), xml("request", { xmlns: "urn:xmpp:receipts" }), xml("markable", { xmlns: "urn:xmpp:chat-markers:0" })));
      const msg = await m.nextMessage((mm) => mm.body === "did you get this?");
      assert.equal(msg.receiptRequested, true);
      await m.request("receipt", { conversation: X, seq: msg.seq });
      const rec = await x.receive(isMessage((el) => el.getChild("received", "urn:xmpp:receipts") !== undefined));
      assert.equal(rec.getChild("received")!.attrs.id, "want-receipt");
      const conv = await m.request("readMarker", { conversation: X, seq: msg.seq });
      assert.equal(conv.readSeq, msg.seq);
      assert.equal(conv.unread, 0);
      const disp = await x.receive(isMessage((el) => el.getChild("displayed", "urn:xmpp:chat-markers:0") !== undefined));
      assert.equal(disp.getChild("displayed")!.attrs.id, "want-receipt");
      // mirrored to the user's other device
      const mirrored = await tablet.nextPush("conversation", (c) => c.id === X);
      assert.equal(mirrored.readSeq, msg.seq);

      // mobile → XMPP: the XMPP client's receipt and marker reach the device with the message's seq.
      const ack = await m.send(X, "and this?", { clientMsgId: "mine-1" });
      const got = await x.receive(body("and this?"));
      x.send(xml("message", { to: got.attrs.from, type: "chat" }, xml("received", { xmlns: "urn:xmpp:receipts", id: "mine-1" })));
      const delivered = await m.nextPush("markerPush", (p) => p.kind === MarkerKind.DELIVERED);
      assert.equal(delivered.clientMsgId, "mine-1");
      assert.equal(delivered.seq, ack.seq);
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat" }, xml("displayed", { xmlns: "urn:xmpp:chat-markers:0", id: "mine-1" })));
      const read = await m.nextPush("markerPush", (p) => p.kind === MarkerKind.DISPLAYED);
      assert.equal(read.seq, ack.seq);
      assert.equal(read.conversation, X);
      const list = await m.request("getConversations", {});
      const entry = list.conversations.find((c) => c.id === X)!;
      assert.equal(entry.peerReadSeq, ack.seq);
      m.close(); tablet.close(); x.close();
    });

    it("keeps unread counts and the conversation list incrementally, with pinned and muted", async () => {
      const mu = fresh("convs"), a = fresh("ca"), b = fresh("cb");
      const m = await mobileUser(ts, mu);
      const other = await mobileUser(ts, mu, { platform: Platform.MACOS });
      const xa = await onlineUser(ts, a);
      const xb = await onlineUser(ts, b);
      for (let i = 0; i < 3; i++) xa.send(xml("message", { to: `${mu}@localhost`, type: "chat" }, xml("body", null, `a${i}`)));
      await m.nextMessage((msg) => msg.body === "a2");
      xb.send(xml("message", { to: `${mu}@localhost`, type: "chat" }, xml("body", null, "b0")));
      const b0 = await m.nextMessage((msg) => msg.body === "b0");
      const first = await m.request("getConversations", {});
      assert.deepEqual(first.conversations.map((c) => [c.id, c.unread]), [[`${b}@localhost`, 1], [`${a}@localhost`, 3]]);
      assert.equal(first.conversations[0]!.lastMessage!.body, "b0");
      assert.equal(first.conversations[0]!.maxSeq, b0.seq);
      assert.equal((await m.request("getConversations", { sinceVersion: first.version })).conversations.length, 0);

      const a1 = [...m.messages.values()].find((msg) => msg.body === "a1")!;
      const partly = await m.request("readMarker", { conversation: `${a}@localhost`, seq: a1.seq });
      assert.equal(partly.unread, 1);
      const pinned = await m.request("updateConversation", { conversation: `${b}@localhost`, pinned: true, muted: true });
      assert.equal(pinned.pinned, true);
      assert.equal(pinned.muted, true);
      assert.equal((await other.nextPush("conversation", (c) => c.id === `${b}@localhost`)).pinned, true);
      const changes = await m.request("getConversations", { sinceVersion: first.version });
      assert.deepEqual(changes.conversations.map((c) => c.id).sort(), [`${a}@localhost`, `${b}@localhost`].sort());
      // Replying marks the conversation read.
      await m.send(`${a}@localhost`, "ok");
      const after = await m.request("getConversations", { sinceVersion: changes.version });
      assert.equal(after.conversations.length, 1);
      assert.equal(after.conversations[0]!.unread, 0);
      assert.equal(after.conversations[0]!.lastMessage!.body, "ok");
      // An XMPP client of the same user reading (XEP-0333) moves the same read state.
      xb.send(xml("message", { to: `${mu}@localhost`, type: "chat", id: "b1-id" }, xml("body", null, "b1")));
      await m.nextMessage((msg) => msg.body === "b1");
      const laptop = await onlineUser(ts, mu, { resource: "laptop" });
      laptop.send(xml("message", { to: `${b}@localhost`, type: "chat" }, xml("displayed", { xmlns: "urn:xmpp:chat-markers:0", id: "b1-id" })));
      const readElsewhere = await m.nextPush("conversation", (c) => c.id === `${b}@localhost` && c.unread === 0);
      assert.equal(readElsewhere.readSeq, readElsewhere.maxSeq);
      m.close(); other.close(); xa.close(); xb.close(); laptop.close();
    });

    it("recalls a message: only the sender, only within the window, with a tombstone in history", async () => {
      const mu = fresh("rec"), xu = fresh("recx"), mu2 = fresh("rec2");
      const m = await mobileUser(ts, mu);
      const peer = await mobileUser(ts, mu2);
      const x = await onlineUser(ts, xu);
      const P = `${mu2}@localhost`;
      const ack = await m.send(P, "oops, wrong chat", { clientMsgId: "oops-1" });
      const original = await peer.nextMessage((msg) => msg.body === "oops, wrong chat");
      await rejects(peer.request("recall", { conversation: `${mu}@localhost`, seq: original.seq }), ErrorCode.FORBIDDEN);
      const result = await m.request("recall", { conversation: P, seq: ack.seq });
      assert.equal(result.recalledSeq, ack.seq);
      assert.ok(result.seq > ack.seq);
      const event = await peer.nextMessage((msg) => msg.kind === MessageKind.RECALL);
      assert.equal(event.recallTargetClientMsgId, "oops-1");
      assert.equal(event.recallTargetSeq, original.seq);
      assert.equal(event.body, "");
      const again = await m.request("recall", { conversation: P, seq: ack.seq });
      assert.deepEqual(again, result, "a repeated recall answers with the first result");
      const history = await peer.request("pull", { conversation: `${mu}@localhost`, limit: 10 });
      const tomb = history.messages.find((msg) => msg.seq === original.seq)!;
      assert.equal(tomb.recalled, true);
      assert.equal(tomb.body, "");
      const mine = await m.request("pull", { conversation: P, limit: 10 });
      assert.equal(mine.messages.find((msg) => msg.seq === ack.seq)!.recalled, true);

      // To XMPP: an XEP-0424 retraction of the origin-id; and from XMPP, within the window.
      const toX = await m.send(`${xu}@localhost`, "retract me", { clientMsgId: "to-x" });
      await x.receive(body("retract me"));
      await m.request("recall", { conversation: `${xu}@localhost`, seq: toX.seq });
      const retraction = await x.receive(isMessage((el) => el.getChild("retract", "urn:xmpp:message-retract:1") !== undefined));
      assert.equal(retraction.getChild("retract")!.attrs.id, "to-x");
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat", id: "x-orig" }, xml("body", null, "xmpp says"), xml("origin-id", { xmlns: "urn:xmpp:sid:0", id: "x-orig" })));
      const xOrig = await m.nextMessage((msg) => msg.body === "xmpp says");
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat", id: "x-retract" },
        xml("retract", { xmlns: "urn:xmpp:message-retract:1", id: "x-orig" }), xml("body", null, "fallback"), xml("store", { xmlns: "urn:xmpp:hints" })));
      const xEvent = await m.nextMessage((msg) => msg.kind === MessageKind.RECALL && msg.recallTargetClientMsgId === "x-orig");
      assert.equal(xEvent.recallTargetSeq, xOrig.seq);

      // Past the window (3 s here): RECALL_EXPIRED, and XMPP retractions are refused too.
      const late = await m.send(P, "too late to take back");
      await new Promise((r) => setTimeout(r, 3200));
      await rejects(m.request("recall", { conversation: P, seq: late.seq }), ErrorCode.RECALL_EXPIRED);
      x.send(xml("message", { to: `${mu}@localhost`, type: "chat", id: "x-late" },
        xml("retract", { xmlns: "urn:xmpp:message-retract:1", id: "x-orig" }), xml("body", null, "fallback"), xml("store", { xmlns: "urn:xmpp:hints" })));
      const refused = await x.receive(isMessage((el) => el.attrs.type === "error" && el.attrs.id === "x-late"));
      assert.ok(refused.getChild("error")!.getChild("not-allowed"));
      m.close(); peer.close(); x.close();
    });
  });
});
