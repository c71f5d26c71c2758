// RFC 6120 §8.2.3: every iq get/set is answered exactly once, and a result or an error never is. Each case
// sends a request and then a ping: the ping's answer proves the server is done with the request, so
// "exactly one reply" is checked against everything that arrived before it.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const ROSTER = "jabber:iq:roster";
const PING = "urn:xmpp:ping";

/** Everything with `id` that arrives until the answer to a ping sent after it. */
async function repliesTo(c: RawClient, id: string, send: () => void): Promise<Element[]> {
  const got: Element[] = [];
  const done = `fence-${id}`;
  const collector = (async () => {
    for (;;) {
      const el = await c.receive((e) => e.attrs.id === id || e.attrs.id === done);
      if (el.attrs.id === done) return;
      got.push(el);
    }
  })();
  send();
  c.send(xml("iq", { type: "get", id: done, to: "localhost" }, xml("ping", { xmlns: PING })));
  await collector;
  return got;
}

describe("iq requests are answered exactly once (RFC 6120 §8.2.3)", function () {
  let ts: TestServer;
  let romeo: RawClient;
  before(async () => {
    ts = await startTestServer();
    romeo = await onlineUser(ts, "romeo");
  });
  after(async () => { romeo.close(); await ts.stop(); });

  it("a roster set with two items to the user's own bare JID gets one bad-request and nothing else", async () => {
    const replies = await repliesTo(romeo, "r2", () => romeo.send(xml("iq", { type: "set", id: "r2", to: "romeo@localhost" },
      xml("query", { xmlns: ROSTER }, xml("item", { jid: "a@localhost" }), xml("item", { jid: "b@localhost" })))));
    assert.equal(replies.length, 1, replies.map(String).join("\n"));
    assert.equal(errorCondition(replies[0]), "bad-request");
  });

  it("an iq without `to` whose payload nobody handles gets one service-unavailable", async () => {
    const replies = await repliesTo(romeo, "u1", () => romeo.send(xml("iq", { type: "get", id: "u1" }, xml("foo", { xmlns: "urn:example:x" }))));
    assert.equal(replies.length, 1);
    assert.equal(replies[0].attrs.type, "error");
    assert.equal(errorCondition(replies[0]), "service-unavailable");
    assert.equal(replies[0].attrs.from, undefined, "an answer from the user's own account carries no from (RFC 6120 §10.3.3)");
  });

  it("the same iq to the user's own bare JID gets one service-unavailable too", async () => {
    const replies = await repliesTo(romeo, "u2", () => romeo.send(xml("iq", { type: "set", id: "u2", to: "romeo@localhost" }, xml("foo", { xmlns: "urn:example:x" }))));
    assert.deepEqual(replies.map(errorCondition), ["service-unavailable"]);
  });

  it("another user's roster is forbidden, once", async () => {
    const replies = await repliesTo(romeo, "f1", () => romeo.send(xml("iq", { type: "get", id: "f1", to: "juliet@localhost" }, xml("query", { xmlns: ROSTER }))));
    assert.deepEqual(replies.map(errorCondition), ["forbidden"]);
  });

  it("an iq request with two payloads gets one bad-request", async () => {
    const replies = await repliesTo(romeo, "p2", () => romeo.send(xml("iq", { type: "get", id: "p2", to: "localhost" },
      xml("ping", { xmlns: PING }), xml("query", { xmlns: "jabber:iq:version" }))));
    assert.deepEqual(replies.map(errorCondition), ["bad-request"]);
  });

  it("an iq with a type that is not get, set, result or error gets one bad-request from the server", async () => {
    const replies = await repliesTo(romeo, "t1", () => romeo.send(xml("iq", { type: "fetch", id: "t1", to: "localhost" }, xml("ping", { xmlns: PING }))));
    assert.deepEqual(replies.map(errorCondition), ["bad-request"]);
  });

  for (const type of ["result", "error"]) {
    for (const to of ["localhost", "romeo@localhost", "juliet@localhost", "juliet@localhost/x", "conference.localhost", "elsewhere.example", " ", "NaN", "a@b@c"]) {
      it(`never answers an iq ${type} to "${to}"`, async () => {
        const id = `n-${type}-${to}`;
        const payload = type === "error" ? xml("error", { type: "cancel" }, xml("bad-request", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" })) : null;
        const replies = await repliesTo(romeo, id, () => romeo.send(xml("iq", { type, id, to }, payload)));
        assert.deepEqual(replies.map(String), []);
      });
    }
  }

  for (const to of [" ", "a@b@c", "@localhost", "x@"]) {
    it(`answers a request to the invalid address "${to}" with jid-malformed from the server, not from the address`, async () => {
      const id = `j-${to}`;
      const replies = await repliesTo(romeo, id, () => romeo.send(xml("iq", { type: "get", id, to }, xml("ping", { xmlns: PING }))));
      assert.equal(replies.length, 1);
      assert.equal(errorCondition(replies[0]), "jid-malformed");
      assert.equal(replies[0].attrs.from, "localhost");
      assert.equal(replies[0].attrs.to, romeo.jid);
    });
  }

  it("a message error to an invalid address is not answered", async () => {
    const replies = await repliesTo(romeo, "me1", () => romeo.send(xml("message", { type: "error", id: "me1", to: "a@b@c" },
      xml("error", { type: "cancel" }, xml("gone", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" })))));
    assert.deepEqual(replies.map(String), []);
  });

  it("every error the server sends carries a defined condition", async () => {
    const conditions: Array<string | undefined> = [];
    for (const [i, req] of [
      xml("iq", { type: "get", to: "localhost" }, xml("foo", { xmlns: "urn:example:x" })),
      xml("iq", { type: "set", to: "romeo@localhost" }, xml("query", { xmlns: ROSTER })),
      xml("iq", { type: "get", to: "nobody@localhost" }, xml("query", { xmlns: "jabber:iq:version" })),
      xml("message", { type: "chat", to: "someone@elsewhere.example" }, xml("body", null, "hi")),
    ].entries()) {
      req.attrs.id = `c${i}`;
      const replies = await repliesTo(romeo, `c${i}`, () => romeo.send(req));
      for (const r of replies) conditions.push(errorCondition(r));
    }
    assert.ok(conditions.length >= 3);
    for (const c of conditions) assert.ok(c && c !== "text", `an error without a condition: ${String(c)}`);
  });
});
