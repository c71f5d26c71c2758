// XEP-0198 stream management and XEP-0352 client state indication, as dialogues over real sockets.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { WireClient } from "./helpers/wire-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { MAX_RESUME_FAILURES, StreamManagement, ackable, parseH, parseRecord, queueAfter, snapshotText } from "../src/c2s/sm.js";

const SM = "urn:xmpp:sm:3";
const CSI = "urn:xmpp:csi:0";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;
const bare = (c: RawClient) => c.jid.split("/")[0];
const isSm = (name: string) => (el: Element) => el.name === name && el.attrs.xmlns === SM;
const body = (text: string) => (el: Element) => el.name === "message" && el.getChildText("body") === text;
const bodies = (els: Element[]) => els.filter((e) => e.name === "message").map((e) => e.getChildText("body"));

async function enable(c: RawClient, max?: number): Promise<Element> {
  c.send(xml("enable", { xmlns: SM, resume: "true", ...(max ? { max: String(max) } : {}) }));
  return c.receive((el) => el.attrs.xmlns === SM && (el.name === "enabled" || el.name === "failed"));
}

/** A user online with stream management (resumable) enabled before initial presence, as Conversations does. */
async function smUser(ts: TestServer, username: string, max?: number): Promise<{ c: RawClient; id: string }> {
  if (!(await ts.accounts.exists(ts.host, username))) await ts.accounts.create(ts.host, username, "password");
  const c = await RawClient.connect(ts);
  await c.login(username, "password", "phone");
  const enabled = await enable(c, max);
  assert.equal(enabled.name, "enabled");
  c.send(xml("presence"));
  await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid);
  return { c, id: enabled.attrs.id };
}

/** Answers the server's `<r/>` with the h of everything received so far. */
async function ackAll(c: RawClient, h: number): Promise<void> {
  await c.receive(isSm("r"));
  c.send(xml("a", { xmlns: SM, h: String(h) }));
}

/** A new connection of `username` that authenticates and sends `<resume/>` instead of binding. */
async function resume(ts: TestServer, username: string, previd: string, h: number, opts: { tls?: boolean } = {}): Promise<{ c: RawClient; answer: Element }> {
  const c = await RawClient.connect(ts, opts);
  await c.open();
  await c.authenticate(username, "password");
  const features = await c.open();
  assert.ok(features.getChild("sm", SM), "the sm feature is offered after authentication");
  c.send(xml("resume", { xmlns: SM, previd, h: String(h) }));
  const answer = await c.receive((el) => el.attrs.xmlns === SM && (el.name === "resumed" || el.name === "failed"));
  return { c, answer };
}

/** Collects what arrives until `ms` pass without anything new. */
async function drain(c: RawClient, match: (el: Element) => boolean, ms = 300): Promise<Element[]> {
  const out: Element[] = [];
  for (;;) {
    try { out.push(await c.receive(match, ms)); } catch { return out; }
  }
}

/** RFC 6121 §3.1: `a` subscribes to `b`, `b` (an interested resource, §2.1.6) approves; then `a` sees `b`'s presence. */
async function subscribe(a: RawClient, b: RawClient): Promise<void> {
  await b.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
  a.send(xml("presence", { type: "subscribe", to: bare(b) }));
  await b.receive((el) => el.name === "presence" && el.attrs.type === "subscribe" && el.attrs.from === bare(a));
  b.send(xml("presence", { type: "subscribed", to: bare(a) }));
  await a.receive((el) => el.name === "presence" && el.attrs.from === b.jid && el.attrs.type === undefined);
}

describe("XEP-0198 stream management", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ c2s: { smResumeSeconds: 30 } }); });
  after(() => ts.stop());

  it("counts stanzas as the XEP says: h wraps at 2^32", () => {
    const sm = new StreamManagement(null, 300);
    sm.acked = 2 ** 32 - 2;
    sm.queue.push("<a/>", "<b/>", "<c/>");
    assert.equal(sm.sent, 1);
    assert.equal(sm.newlyAcked(0), 2, "h=0 acknowledges 2^32-1 and 0");
    assert.equal(sm.newlyAcked(2), -1, "h=2 would be more than was sent");
    sm.ack(0, 2);
    assert.deepEqual(sm.queue, ["<c/>"]);
    sm.inbound = 2 ** 32 - 1;
    sm.countInbound();
    assert.equal(sm.inbound, 0);
    assert.equal(parseH("4294967295"), 2 ** 32 - 1);
    assert.equal(parseH("4294967296"), null);
    assert.equal(parseH("-1"), null);
  });

  it("numbers the rows of the durable record across the 2^32 wrap", () => {
    const sm = new StreamManagement("id", 300);
    sm.acked = 2 ** 32 - 2;
    const row = (seq: number) => ({ seq, stanzaId: `s${seq}`, ts: seq });
    sm.queue.push(row(10), "<presence/>", row(11), row(12));
    const record = parseRecord(snapshotText(sm, JSON.stringify("u@h"), JSON.stringify("r"), null, false, null).text)!;
    assert.deepEqual(record.rows, [2 ** 32 - 1, 10, 1, 11, 2, 12]);
    const old = parseRecord(JSON.stringify({ ...record, rows: [[2 ** 32 - 1, 10, "s10", 10], [1, 11, "s11", 11]] }));
    assert.deepEqual(old?.rows, [2 ** 32 - 1, 10, 1, 11], "a record in the earlier shape (one array per row) is read");
    assert.equal(record.sent, 2);
    assert.ok(ackable(record, 0) && ackable(record, 2) && !ackable(record, 3) && !ackable(record, 2 ** 32 - 3));
    assert.deepEqual(queueAfter(record, 0).map((q) => typeof q === "string" ? q : q.seq), [11, 12], "h=0 covers stanza 2^32-1 and 0");
    assert.deepEqual(queueAfter(record, 2 ** 32 - 2).map((q) => typeof q === "string" ? q : q.seq), [10, 11, 12]);
    assert.deepEqual(queueAfter(record, 2), []);
  });

  it("writes the record as the JSON of its fields, in order (quotes in the resource and presence too)", () => {
    const sm = new StreamManagement("id", 300);
    sm.acked = 2 ** 32 - 2;
    sm.inbound = 7;
    sm.queue.push({ seq: 10, stanzaId: "a", ts: 1 }, "<iq/>", { seq: 12, stanzaId: "b", ts: 2 });
    const presence = xml("presence", {}, xml("status", {}, 'say "hi" \\ <b>'));
    for (const detached of [false, true]) {
      const fast = snapshotText(sm, JSON.stringify("u@h"), JSON.stringify('r"1'), presence, detached, detached ? 5 : null);
      const expected = {
        user: "u@h", resource: 'r"1', max: 300, inbound: 7, acked: 2 ** 32 - 2, sent: 1, rows: [2 ** 32 - 1, 10, 1, 12],
        presence: presence.toString(), epoch: sm.epoch, at: fast.at, detachedAt: detached ? 5 : null,
      };
      assert.deepEqual(JSON.parse(fast.text), expected);
      assert.equal(fast.text, JSON.stringify(expected));
      assert.equal(fast.sent, expected.sent);
    }
  });

  it("offers sm after authentication and refuses <enable/> before bind with unexpected-request", async () => {
    const u = fresh("early");
    await ts.accounts.create(ts.host, u, "password");
    const c = await RawClient.connect(ts);
    const before = await c.open();
    assert.equal(before.getChild("sm", SM), undefined);
    await c.authenticate(u, "password");
    const features = await c.open();
    assert.ok(features.getChild("sm", SM));
    assert.ok(features.getChild("csi", CSI));
    const failed = await enable(c);
    assert.equal(failed.name, "failed");
    assert.ok(failed.getChild("unexpected-request", STANZAS));
    await c.bind();
    const enabled = await enable(c);
    assert.equal(enabled.name, "enabled");
    assert.equal(enabled.attrs.resume, "true");
    assert.equal(enabled.attrs.max, "30", "max comes from c2s.smResumeSeconds");
    assert.ok(enabled.attrs.id.length >= 16);
    const again = await enable(c);
    assert.ok(again.getChild("unexpected-request", STANZAS), "a second <enable/> fails");
    c.close();
  });

  it("acks the client's stanzas with their count and asks the client for acks of its own", async () => {
    const { c } = await smUser(ts, fresh("count"));
    // The initial presence was stanza 1; three pings make 4.
    for (let i = 0; i < 3; i++) c.send(xml("iq", { type: "get", id: `p${i}`, to: ts.host }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    c.send(xml("r", { xmlns: SM }));
    const a = await c.receive(isSm("a"));
    assert.equal(a.attrs.h, "4");
    // The server sent the self-presence and three results: it asks for an ack, and h=4 covers them.
    await c.receive(isSm("r"));
    c.send(xml("a", { xmlns: SM, h: "4" }));
    c.send(xml("r", { xmlns: SM }));
    assert.equal((await c.receive(isSm("a"))).attrs.h, "4", "r and a are not counted");
    // Acknowledging more than was sent is a stream error with handled-count-too-high (XEP-0198 §4).
    c.send(xml("a", { xmlns: SM, h: "9" }));
    const err = await c.closed();
    assert.equal(errorCondition(err), "undefined-condition");
    const tooHigh = err!.getChild("handled-count-too-high", SM);
    assert.equal(tooHigh?.attrs.h, "9");
    assert.equal(tooHigh?.attrs["send-count"], "4");
  });

  it("counts more than 2^16 inbound stanzas over a real socket", async function () {
    this.timeout(60_000);
    const { c } = await smUser(ts, fresh("chatty"));
    // iq results to oneself are handled and never answered: only the counter moves.
    const count = 2 ** 16 + 5;
    const one = "<iq type='result' id='x'/>";
    for (let sent = 0; sent < count; sent += 4096) c.send(one.repeat(Math.min(4096, count - sent)));
    c.send(xml("r", { xmlns: SM }));
    const a = await c.receive(isSm("a"), 50_000);
    assert.equal(a.attrs.h, String(count + 1), "the initial presence and every iq");
    c.close();
  });

  it("counts more than 2^16 outbound stanzas and takes the client's acks across them", async function () {
    this.timeout(90_000);
    const { c } = await smUser(ts, fresh("pinger"));
    // Every ping is answered: the server's count grows with ours; the client acks after every batch.
    const count = 2 ** 16 + 5;
    const batch = 2048;
    let received = 1; // the initial presence
    for (let sent = 0; sent < count;) {
      const n = Math.min(batch, count - sent);
      let text = "";
      for (let i = 0; i < n; i++) text += `<iq type='get' id='o${sent + i}' to='${ts.host}'><ping xmlns='urn:xmpp:ping'/></iq>`;
      c.send(text);
      sent += n;
      await c.receive((el) => el.name === "iq" && el.attrs.id === `o${sent - 1}`, 30_000);
      received += n;
      c.send(xml("a", { xmlns: SM, h: String(received) }));
    }
    // One more than was sent is refused, with the server's count past 16 bits.
    c.send(xml("a", { xmlns: SM, h: String(received + 1) }));
    const err = await c.closed();
    assert.equal(errorCondition(err), "undefined-condition");
    assert.equal(err!.getChild("handled-count-too-high", SM)?.attrs["send-count"], String(count + 1));
  });

  it("resumes after a killed socket and resends exactly the unacknowledged stanzas, in order, once", async () => {
    const r = fresh("romeo");
    const { c: romeo, id } = await smUser(ts, r);
    const juliet = await onlineUser(ts, fresh("juliet"));
    // Stanza 1 to Romeo was his own presence.
    for (const text of ["one", "two", "three"]) juliet.send(xml("message", { to: romeo.jid, type: "chat" }, xml("body", null, text)));
    await romeo.receive(body("three"));
    await ackAll(romeo, 2);
    romeo.destroy();
    await new Promise((res) => setTimeout(res, 50));
    // While the session is hibernated it stays online: a message to it is held, not bounced or stored offline.
    juliet.send(xml("message", { to: romeo.jid, type: "chat" }, xml("body", null, "four")));
    await juliet.nothing((el) => el.name === "message" && el.attrs.type === "error", 150);

    const { c: back, answer } = await resume(ts, r, id, 2);
    assert.equal(answer.name, "resumed", answer.toString());
    assert.equal(answer.attrs.previd, id);
    assert.equal(answer.attrs.h, "1", "the server had handled Romeo's initial presence");
    const resent = await drain(back, (el) => el.name === "message");
    assert.deepEqual(bodies(resent), ["two", "three", "four"]);
    for (const m of resent) assert.ok(m.getChild("stanza-id", "urn:xmpp:sid:0"));
    // The session is the same: it keeps its full JID and takes new messages live.
    juliet.send(xml("message", { to: romeo.jid, type: "chat" }, xml("body", null, "five")));
    assert.ok(await back.receive(body("five")));
    back.send(xml("message", { to: bare(juliet), type: "chat" }, xml("body", null, "back")));
    const got = await juliet.receive(body("back"));
    assert.equal(got.attrs.from, romeo.jid);
    back.send(xml("r", { xmlns: SM }));
    assert.equal((await back.receive(isSm("a"))).attrs.h, "2", "the inbound count goes on from before");
    // Acks count on from the resumed queue: 1 presence + five messages.
    back.send(xml("a", { xmlns: SM, h: "6" }));
    back.send(xml("r", { xmlns: SM }));
    await back.receive(isSm("a"));
    assert.equal(back.isClosed, false);
    back.close();
    juliet.close();
  });

  it("resumes a TCP session over direct TLS and over a WebSocket", async () => {
    const r = fresh("roamer");
    const { c: first, id } = await smUser(ts, r);
    const juliet = await onlineUser(ts, fresh("juliet"));
    juliet.send(xml("message", { to: first.jid, type: "chat" }, xml("body", null, "over tcp")));
    await first.receive(body("over tcp"));
    first.destroy();
    await new Promise((res) => setTimeout(res, 50));
    const { c: second, answer } = await resume(ts, r, id, 1, { tls: true });
    assert.equal(answer.name, "resumed");
    assert.deepEqual(bodies(await drain(second, (el) => el.name === "message")), ["over tcp"]);
    second.destroy();
    await new Promise((res) => setTimeout(res, 50));
    juliet.send(xml("message", { to: first.jid, type: "chat" }, xml("body", null, "while away")));

    const ws = await WireClient.connect(ts, "ws");
    await ws.open();
    ws.send(xml("auth", { xmlns: NS_SASL, mechanism: "PLAIN" }, Buffer.from(`\0${r}\0password`).toString("base64")).toString());
    assert.equal((await ws.receive((el) => el.attrs.xmlns === NS_SASL)).name, "success");
    await ws.open();
    ws.send(xml("resume", { xmlns: SM, previd: id, h: "1" }).toString());
    assert.equal((await ws.receive((el) => el.attrs.xmlns === SM)).name, "resumed");
    const tcpText = await ws.receive(body("over tcp"));
    const wsText = await ws.receive(body("while away"));
    // RFC 7395 §3.3: every stanza on a WebSocket carries its namespace, also one first written on TCP.
    assert.equal(tcpText.attrs.xmlns, "jabber:client");
    assert.equal(wsText.attrs.xmlns, "jabber:client");
    assert.deepEqual(ws.check.errors, []);
    ws.close();
    juliet.close();
  });

  it("takes over a session whose old connection still looks open; that connection's late close changes nothing", async () => {
    const r = fresh("switcher");
    const { c: old, id } = await smUser(ts, r);
    const juliet = await onlineUser(ts, fresh("juliet"));
    juliet.send(xml("message", { to: old.jid, type: "chat" }, xml("body", null, "on wifi")));
    await old.receive(body("on wifi"));
    // The phone moved to another network; the server has not noticed that the old connection is dead.
    const { c: fresh4g, answer } = await resume(ts, r, id, 1);
    assert.equal(answer.name, "resumed");
    assert.deepEqual(bodies(await drain(fresh4g, (el) => el.name === "message")), ["on wifi"]);
    await old.closed();
    await new Promise((res) => setTimeout(res, 100));
    juliet.send(xml("message", { to: old.jid, type: "chat" }, xml("body", null, "on 4g")));
    assert.ok(await fresh4g.receive(body("on 4g")));
    const pong = await fresh4g.iq(xml("iq", { type: "get", to: ts.host }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    fresh4g.close();
    juliet.close();
  });

  it("answers <r/> before <enable/> with a stream error", async () => {
    const c = await onlineUser(ts, fresh("eager"));
    c.send(xml("r", { xmlns: SM }));
    assert.equal(errorCondition(await c.closed()), "unsupported-stanza-type");
  });

  it("refuses an unknown previd and another user's session with item-not-found", async () => {
    const r = fresh("owner");
    const { c: romeo, id } = await smUser(ts, r);
    romeo.destroy();
    await new Promise((res) => setTimeout(res, 50));
    const { c: wrong, answer } = await resume(ts, r, "no-such-id", 0);
    assert.equal(answer.name, "failed");
    assert.ok(answer.getChild("item-not-found", STANZAS));
    assert.equal(answer.attrs.h, undefined);
    // The stream is still usable: the client binds a new session instead.
    await wrong.bind();
    wrong.close();
    const thief = fresh("thief");
    await ts.accounts.create(ts.host, thief, "password");
    const { c: t, answer: refused } = await resume(ts, thief, id, 0);
    assert.equal(refused.name, "failed");
    assert.ok(refused.getChild("item-not-found", STANZAS));
    t.close();
    // The owner still can.
    const { c: back, answer: ok } = await resume(ts, r, id, 1);
    assert.equal(ok.name, "resumed");
    back.close();
  });

  it("after the timeout ends the session and leaves every unacknowledged message for the next login", async () => {
    const r = fresh("sleeper");
    // The client asks for a shorter timeout than the server's (XEP-0198 §5 max).
    const { c: romeo, id } = await smUser(ts, r, 1);
    const juliet = await onlineUser(ts, fresh("juliet"));
    await subscribe(juliet, romeo);
    // Romeo got his own presence, his roster, Juliet's subscription request, and whatever else is in his inbox.
    const received = 3 + (await drain(romeo, (el) => ["message", "presence", "iq"].includes(el.name), 150)).length;
    for (const text of ["a", "b", "c"]) juliet.send(xml("message", { to: romeo.jid, type: "chat" }, xml("body", null, text)));
    await romeo.receive(body("c"));
    // He acknowledges all of that and "a", then loses his connection.
    romeo.send(xml("a", { xmlns: SM, h: String(received + 1) }));
    romeo.send(xml("r", { xmlns: SM }));
    await romeo.receive(isSm("a"));
    romeo.destroy();
    // Hibernated: no unavailable presence yet; after smResumeSeconds (1 s), the session ends.
    await juliet.nothing((el) => el.name === "presence" && el.attrs.from === romeo.jid, 400);
    const gone = await juliet.receive((el) => el.name === "presence" && el.attrs.from === romeo.jid && el.attrs.type === "unavailable", 3000);
    assert.ok(gone);
    juliet.send(xml("message", { to: bare(romeo), type: "chat" }, xml("body", null, "d")));
    await new Promise((res) => setTimeout(res, 100));

    const { c: late, answer } = await resume(ts, r, id, received + 1);
    assert.equal(answer.name, "failed");
    assert.ok(answer.getChild("item-not-found", STANZAS));
    assert.equal(answer.attrs.h, "3", "XEP-0198 §5: the h the server had reached (Romeo's presence, roster get and <subscribed/>)");
    late.close();

    const next = await RawClient.connect(ts);
    await next.login(r, "password", "laptop");
    next.send(xml("presence"));
    const offline = await drain(next, (el) => el.name === "message", 500);
    assert.deepEqual(bodies(offline), ["b", "c", "d"]);
    for (const m of offline) assert.ok(m.getChild("delay", "urn:xmpp:delay"), "offline messages carry a XEP-0203 delay");
    next.close();
    juliet.close();
  });

  it("a clean close ends the session at once; its unacknowledged messages go offline", async () => {
    const r = fresh("quitter");
    const { c: romeo } = await smUser(ts, r);
    const juliet = await onlineUser(ts, fresh("juliet"));
    juliet.send(xml("message", { to: romeo.jid, type: "chat" }, xml("body", null, "unacked")));
    await romeo.receive(body("unacked"));
    romeo.send("</stream:stream>");
    await romeo.closed();
    await new Promise((res) => setTimeout(res, 100));
    const next = await RawClient.connect(ts);
    await next.login(r, "password", "other");
    next.send(xml("presence"));
    assert.deepEqual(bodies(await drain(next, (el) => el.name === "message", 400)), ["unacked"]);
    next.close();
    juliet.close();
  });
});

for (const smDurable of [false, true]) {
  describe(`XEP-0198 resumption ids cannot be guessed (${smDurable ? "durable" : "in-memory"} resumption)`, function () {
    this.timeout(30_000);
    let ts: TestServer;
    before(async () => { ts = await startTestServer({ c2s: { smDurable } }); });
    after(() => ts?.stop());

    it(`answers policy-violation, without a lookup, after ${MAX_RESUME_FAILURES} unknown ids from one address`, async () => {
      const r = fresh("target");
      const { c: victim, id } = await smUser(ts, r);
      victim.destroy();
      const guesser = fresh("guesser");
      await ts.accounts.create(ts.host, guesser, "password");
      const c = await RawClient.connect(ts);
      await c.open();
      await c.authenticate(guesser, "password");
      await c.open();
      const attempt = async (previd: string) => {
        c.send(xml("resume", { xmlns: SM, previd, h: "0" }));
        return c.receive(isSm("failed"));
      };
      for (let i = 0; i < MAX_RESUME_FAILURES; i++) {
        const failed = await attempt(`guess-${i}`);
        assert.ok(failed.getChild("item-not-found", STANZAS), failed.toString());
      }
      // The next one is refused whatever it names, even a real id (of another user, so no use to it anyway).
      const refused = await attempt(id);
      assert.ok(refused.getChild("policy-violation", STANZAS), refused.toString());
      c.close();
      // The same address is refused on a new stream too, the owner included: the count is per address.
      const { c: owner, answer } = await resume(ts, r, id, 0);
      assert.ok(answer.getChild("policy-violation", STANZAS), answer.toString());
      owner.close();
    });
  });
}

describe("XEP-0198: a connection that went silent", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ limits: { idleTimeoutSeconds: 1 } }); });
  after(() => ts.stop());

  it("is taken for dead after an unanswered ping, and its resumable session waits for the client", async () => {
    const r = fresh("tunnel");
    const { c: romeo, id } = await smUser(ts, r);
    // Romeo's phone went into a tunnel: it answers nothing, the socket stays open.
    const ping = await romeo.receive((el) => el.name === "iq" && el.attrs.type === "get", 3000);
    assert.ok(ping.getChild("ping", "urn:xmpp:ping"));
    assert.equal(errorCondition(await romeo.closed(3000)), "connection-timeout");
    // (Juliet logs in now: on this server she too would be taken for dead after two silent seconds.)
    const juliet = await onlineUser(ts, fresh("juliet"));
    juliet.send(xml("message", { to: romeo.jid, type: "chat" }, xml("body", null, "are you there?")));
    await juliet.nothing((el) => el.name === "message" && el.attrs.type === "error", 150);
    // Out of the tunnel: the ping and the message are resent; his own presence had been acked.
    const { c: back, answer } = await resume(ts, r, id, 1);
    assert.equal(answer.name, "resumed");
    const resent = await drain(back, (el) => el.name === "message" || el.name === "iq");
    assert.deepEqual(resent.map((el) => el.name), ["iq", "message"]);
    assert.equal(resent[1].getChildText("body"), "are you there?");
    back.close();
    juliet.close();
  });
});

describe("XEP-0352 client state indication", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  it("holds presence (latest per sender) and chat states while inactive; a message flushes them first", async () => {
    const romeo = await onlineUser(ts, fresh("romeo"));
    const juliet = await onlineUser(ts, fresh("juliet"), { resource: "balcony" });
    await subscribe(romeo, juliet);
    await drain(romeo, () => true, 100);
    romeo.send(xml("inactive", { xmlns: CSI }));
    juliet.send(xml("presence", null, xml("show", null, "away")));
    juliet.send(xml("presence", null, xml("show", null, "xa")));
    juliet.send(xml("message", { to: bare(romeo), type: "chat" }, xml("composing", { xmlns: "http://jabber.org/protocol/chatstates" })));
    await romeo.nothing(() => true, 300);
    juliet.send(xml("message", { to: bare(romeo), type: "chat" }, xml("body", null, "wake up")));
    const got = await drain(romeo, () => true, 300);
    assert.deepEqual(got.map((e) => e.name), ["presence", "message", "message"]);
    assert.equal(got[0].getChildText("show"), "xa", "only the latest presence");
    assert.ok(got[1].getChild("composing"));
    assert.equal(got[2].getChildText("body"), "wake up");
    romeo.close();
    juliet.close();
  });

  it("flushes on <active/>, and delivers iq at once while inactive", async () => {
    const romeo = await onlineUser(ts, fresh("romeo"));
    const juliet = await onlineUser(ts, fresh("juliet"));
    await subscribe(romeo, juliet);
    await drain(romeo, () => true, 100);
    romeo.send(xml("inactive", { xmlns: CSI }));
    juliet.send(xml("presence", null, xml("status", null, "first")));
    juliet.send(xml("presence", null, xml("status", null, "second")));
    const pong = await romeo.iq(xml("iq", { type: "get", to: ts.host }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    await romeo.nothing((el) => el.name === "presence", 200);
    romeo.send(xml("active", { xmlns: CSI }));
    const p = await romeo.receive((el) => el.name === "presence" && el.attrs.from === juliet.jid);
    assert.equal(p.getChildText("status"), "second");
    await romeo.nothing((el) => el.name === "presence", 200);
    juliet.send(xml("presence", null, xml("status", null, "live")));
    assert.equal((await romeo.receive((el) => el.name === "presence")).getChildText("status"), "live");
    romeo.close();
    juliet.close();
  });
});
