// XEP-0045 with a real client library: @xmpp/client users entering a room and talking.
import assert from "node:assert/strict";
import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { startTestServer, type TestServer } from "./helpers/server.js";

const MUC = "http://jabber.org/protocol/muc";
const USER = "http://jabber.org/protocol/muc#user";
const ROOM = "garden@conference.localhost";

/** A connected @xmpp/client with an inbox that tests can wait on. */
async function connect(ts: TestServer, username: string): Promise<{ xmpp: Client; next: (match: (el: Element) => boolean) => Promise<Element> }> {
  await ts.accounts.create(ts.host, username, "password");
  const xmpp = client({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username, password: "password", resource: "lib" });
  xmpp.on("error", () => {});
  const inbox: Element[] = [];
  const waiters: Array<{ match: (el: Element) => boolean; resolve: (el: Element) => void }> = [];
  xmpp.on("stanza", (el: Element) => {
    const i = waiters.findIndex((w) => w.match(el));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(el);
    else inbox.push(el);
  });
  await xmpp.start();
  const next = (match: (el: Element) => boolean) => {
    const i = inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
    return new Promise<Element>((resolve, reject) => {
      const w = { match, resolve };
      waiters.push(w);
      setTimeout(() => reject(new Error("timed out")), 5000).unref();
    });
  };
  return { xmpp, next };
}

const selfPresence = (nick: string) => (el: Element) => el.is("presence") && el.attrs.from === `${ROOM}/${nick}` &&
  (el.getChild("x", USER)?.getChildren("status") ?? []).some((s: Element) => s.attrs.code === "110");

describe("XEP-0045 with @xmpp/client", function () {
  let ts: TestServer;
  let rejectUnauthorized: string | undefined;
  before(async () => {
    ts = await startTestServer();
    // @xmpp/client always takes the STARTTLS the server offers, and the test server's certificate is the
    // self-signed development one: trust it for these connections only.
    rejectUnauthorized = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  });
  after(async () => {
    if (rejectUnauthorized === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = rejectUnauthorized;
    await ts.stop();
  });

  it("two library clients create a room, enter it and talk", async () => {
    const romeo = await connect(ts, "libromeo");
    const juliet = await connect(ts, "libjuliet");
    try {
      await romeo.xmpp.send(xml("presence", { to: `${ROOM}/romeo` }, xml("x", { xmlns: MUC })));
      const created = await romeo.next(selfPresence("romeo"));
      assert.ok(created.getChild("x", USER)!.getChildren("status").some((s: Element) => s.attrs.code === "201"));
      // An instant room: the empty configuration form (XEP-0045 §10.1.2).
      const res = await romeo.xmpp.iqCaller.request(xml("iq", { type: "set", to: ROOM },
        xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))));
      assert.equal(res.attrs.type, "result");

      await juliet.xmpp.send(xml("presence", { to: `${ROOM}/juliet` }, xml("x", { xmlns: MUC }, xml("history", { maxstanzas: "0" }))));
      await juliet.next(selfPresence("juliet"));
      await romeo.next((el) => el.is("presence") && el.attrs.from === `${ROOM}/juliet`);

      await juliet.xmpp.send(xml("message", { to: ROOM, type: "groupchat" }, xml("body", {}, "good night, good night")));
      for (const c of [romeo, juliet]) {
        const m = await c.next((el) => el.is("message") && el.getChildText("body") === "good night, good night");
        assert.equal(m.attrs.from, `${ROOM}/juliet`);
        assert.equal(m.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.by, ROOM);
      }
    } finally {
      await Promise.allSettled([romeo.xmpp.stop(), juliet.xmpp.stop()]);
    }
  });
});
