// SASL2 (XEP-0388) + Bind2 (XEP-0386) + FAST (XEP-0484) with xmpp.js as the client: the login, the resource,
// stream management and carbons in one exchange, and a password-less token login on the next connection.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml } from "../src/xml/element.js";
import { BIND2, CARBONS, SASL2, jsClient, rawTokenLogin, stanza, type Token } from "./helpers/sasl2-client.js";
import { ScramClient } from "./helpers/scram-client.js";
import { ServerProcess, bodiesUntilQuiet, plainLogin } from "./helpers/server-process.js";
import type { Element } from "../src/xml/element.js";

const SM = "urn:xmpp:sm:3";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;
const body = (text: string) => (el: Element) => el.name === "message" && el.getChildText("body") === text;

/** A raw SASL2 SCRAM-SHA-256 login with `inline` in `<authenticate/>`: the `<success/>`. */
async function scramLogin(c: RawClient, user: string, inline: Element[]): Promise<Element> {
  const features = await c.open();
  assert.ok(features.getChild("authentication", SASL2)!.getChild("inline")!.getChild("sm", SM), "XEP-0198 is offered inline in SASL2");
  const scram = new ScramClient("SHA-256", user, "password");
  c.send(xml("authenticate", { xmlns: SASL2, mechanism: "SCRAM-SHA-256" },
    xml("initial-response", null, Buffer.from(scram.first()).toString("base64")), xml("user-agent", { id: "d1b5c0de-0000-4000-8000-00000000f00d" }), ...inline));
  const challenge = await c.receive((el) => el.attrs.xmlns === SASL2);
  assert.equal(challenge.name, "challenge", challenge.toString());
  c.send(xml("response", { xmlns: SASL2 }, Buffer.from(scram.final(Buffer.from(challenge.getText(), "base64").toString())).toString("base64")));
  const success = await c.receive((el) => el.attrs.xmlns === SASL2);
  assert.equal(success.name, "success", success.toString());
  assert.ok(scram.verify(Buffer.from(success.getChildText("additional-data")!, "base64").toString()));
  return success;
}

/** Collects what arrives until `ms` pass without anything new. */
async function drain(c: RawClient, match: (el: Element) => boolean, ms = 300): Promise<Element[]> {
  const out: Element[] = [];
  for (;;) {
    try { out.push(await c.receive(match, ms)); } catch { return out; }
  }
}

describe("SASL2, Bind2 and FAST", function () {
  this.timeout(30000);
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  it("logs in, binds (XEP-0386), enables stream management and carbons in one exchange (xmpp.js), and the carbon arrives", async () => {
    const user = fresh("romeo");
    await ts.accounts.create("localhost", user, "password");
    const juliet = await onlineUser(ts, fresh("juliet"));
    const other = await onlineUser(ts, user, { resource: "desk" });
    const { xmpp, sent, received } = jsClient(ts, user, "password", "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0001");
    try {
      await xmpp.start();
      // Before online the client sent only SASL2 elements: <authenticate/> (with everything inline) and one
      // SCRAM <response/>; no iq bind, no <enable/>, no carbons iq, no stream restart.
      const negotiation = sent.filter((el) => el.name !== "presence");
      assert.deepEqual(negotiation.map((el) => el.name), ["authenticate", "response"]);
      const auth = negotiation[0];
      assert.equal(auth.attrs.xmlns, SASL2);
      const bind = auth.getChild("bind", BIND2)!;
      assert.ok(bind.getChild("enable", CARBONS), "carbons requested inline");
      assert.ok(bind.getChild("enable", SM), "stream management requested inline");
      const success = received.find((el) => el.name === "success" && el.attrs.xmlns === SASL2)!;
      const jid = success.getChildText("authorization-identifier")!;
      assert.match(jid, new RegExp(`^${user}@localhost/phone\\.[0-9a-f]+$`));
      assert.equal(xmpp.jid!.toString(), jid);
      const enabled = success.getChild("bound", BIND2)!.getChild("enabled", SM)!;
      assert.equal(enabled.attrs.resume, "true");
      assert.equal(received.filter((el) => el.name === "stream:features").length, 1, "one features element: no restart");
      const session = ts.server.context.sessions.resources(`${user}@localhost`).find((s) => s.jid?.toString() === jid)!;
      assert.deepEqual(session.data.get("user-agent"), { id: "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0001", software: "hearth-test", device: "ci" });

      // Carbons were enabled by Bind2: what the desk resource sends reaches the phone as a <sent/> carbon.
      const carbon = stanza(xmpp, (el) => el.getChild("sent", CARBONS) !== undefined);
      other.send(xml("message", { to: juliet.jid, type: "chat", id: "m1" }, xml("body", null, "good night")));
      await juliet.receive((el) => el.getChildText("body") === "good night");
      const copy = await carbon;
      assert.equal(copy.attrs.from, `${user}@localhost`);
      assert.equal(copy.getChild("sent", CARBONS)!.getChild("forwarded")!.getChild("message")!.getChildText("body"), "good night");
    } finally {
      await xmpp.stop().catch(() => {});
      juliet.close();
      other.close();
    }
  });

  it("answers malformed SASL2 input with the standard failure, and ends the stream after three", async () => {
    const c = await RawClient.connect(ts);
    try {
      await c.open();
      const failure = async (el: ReturnType<typeof xml>, condition: string) => {
        c.send(el);
        const answer = await c.receive((e) => e.attrs.xmlns === SASL2);
        assert.equal(answer.name, "failure");
        assert.ok(answer.getChild(condition), `${condition} expected, got ${answer.toString()}`);
      };
      await failure(xml("authenticate", { xmlns: SASL2, mechanism: "SCRAM-SHA-256" }, xml("initial-response", null, "not base64!")), "incorrect-encoding");
      await failure(xml("authenticate", { xmlns: SASL2, mechanism: "X-UNKNOWN" }), "invalid-mechanism");
      // FAST without a user agent to bind the token to.
      c.send(xml("authenticate", { xmlns: SASL2, mechanism: "HT-SHA-256-NONE" }, xml("initial-response", null, Buffer.from("a\0b").toString("base64"))));
      assert.ok((await c.receive((e) => e.attrs.xmlns === SASL2)).getChild("malformed-request"));
      const end = await c.closed();
      assert.equal(end?.getChild("policy-violation")?.name, "policy-violation");
    } finally {
      c.close();
    }
  });

  it("XEP-0198 resumption inline in <authenticate/>: <resumed/> in the success, the unacknowledged stanzas resent, no Bind2", async () => {
    const user = fresh("mercutio");
    await ts.accounts.create("localhost", user, "password");
    const juliet = await onlineUser(ts, fresh("juliet"));
    const first = await RawClient.connect(ts);
    const back = await RawClient.connect(ts);
    try {
      const success = await scramLogin(first, user, [xml("bind", { xmlns: BIND2 }, xml("tag", null, "phone"), xml("enable", { xmlns: SM, resume: "true" }))]);
      const jid = success.getChildText("authorization-identifier")!;
      const enabled = success.getChild("bound", BIND2)!.getChild("enabled", SM)!;
      assert.equal(enabled.attrs.resume, "true");
      first.send(xml("presence"));
      await first.receive((el) => el.name === "presence" && el.attrs.from === jid);
      for (const text of ["one", "two"]) juliet.send(xml("message", { to: jid, type: "chat" }, xml("body", null, text)));
      await first.receive(body("two"));
      // The client acknowledges its own presence and "one" (stanzas 1 and 2), then its network changes.
      first.send(xml("a", { xmlns: SM, h: "2" }));
      first.send(xml("r", { xmlns: SM }));
      await first.receive((el) => el.name === "a" && el.attrs.xmlns === SM);
      first.destroy();
      await new Promise((res) => setTimeout(res, 50));
      juliet.send(xml("message", { to: jid, type: "chat" }, xml("body", null, "three")));
      await juliet.nothing((el) => el.name === "message" && el.attrs.type === "error", 150);

      // One SASL2 exchange on the new connection: authentication and resumption together. The Bind2
      // request a client sends in case resumption fails is not acted on.
      const resumedSuccess = await scramLogin(back, user, [
        xml("resume", { xmlns: SM, previd: enabled.attrs.id, h: "2" }),
        xml("bind", { xmlns: BIND2 }, xml("tag", null, "phone")),
      ]);
      const resumed = resumedSuccess.getChild("resumed", SM)!;
      assert.ok(resumed, resumedSuccess.toString());
      assert.equal(resumed.attrs.previd, enabled.attrs.id);
      assert.equal(resumed.attrs.h, "1", "the server had handled the initial presence");
      assert.equal(resumedSuccess.getChildText("authorization-identifier"), jid, "the resumed session's full JID");
      assert.equal(resumedSuccess.getChild("bound", BIND2), undefined);
      assert.deepEqual((await drain(back, (el) => el.name === "message")).map((m) => m.getChildText("body")), ["two", "three"]);
      // The same session goes on: same full JID both ways, counters continued.
      juliet.send(xml("message", { to: jid, type: "chat" }, xml("body", null, "four")));
      await back.receive(body("four"));
      back.send(xml("message", { to: juliet.jid.split("/")[0], type: "chat" }, xml("body", null, "back")));
      assert.equal((await juliet.receive(body("back"))).attrs.from, jid);
      back.send(xml("r", { xmlns: SM }));
      assert.equal((await back.receive((el) => el.name === "a" && el.attrs.xmlns === SM)).attrs.h, "2");
      assert.equal(ts.server.context.sessions.resources(`${user}@localhost`).length, 1);
    } finally {
      first.close();
      back.close();
      juliet.close();
    }
  });

  it("XEP-0198 inline resumption with xmpp.js: its dropped connection comes back in one round trip (FAST token and resume in one message), with what it missed (XEP-0484)", async () => {
    const user = fresh("paris");
    await ts.accounts.create("localhost", user, "password");
    const juliet = await onlineUser(ts, fresh("juliet"));
    const { xmpp, sent, received } = jsClient(ts, user, "password", "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0003");
    try {
      await xmpp.start();
      const sm = (xmpp as unknown as { streamManagement: { id: string; once(ev: string, f: () => void): void } }).streamManagement;
      const previd = sm.id;
      assert.ok(previd, "stream management was enabled with resumption through Bind2");
      const one = stanza(xmpp, (el) => el.getChildText("body") === "one");
      juliet.send(xml("message", { to: xmpp.jid!.toString(), type: "chat" }, xml("body", null, "one")));
      await one;
      sent.length = 0;
      received.length = 0;
      const resumed = new Promise<void>((res) => sm.once("resumed", res));
      const two = stanza(xmpp, (el) => el.getChildText("body") === "two", 10_000);
      // The network goes; a message arrives for the session meanwhile; xmpp.js reconnects a second later.
      (xmpp as unknown as { socket: { destroy(): void } }).socket.destroy();
      await new Promise((res) => setTimeout(res, 100));
      juliet.send(xml("message", { to: xmpp.jid!.toString(), type: "chat" }, xml("body", null, "two")));
      await resumed;
      await two;
      // xmpp.js took a FAST token at the first login, so authentication and resumption are one message.
      const negotiation = sent.filter((el) => el.name !== "a" && el.name !== "r");
      assert.deepEqual(negotiation.map((el) => `${el.name} ${el.attrs.mechanism ?? ""}`), ["authenticate HT-SHA-256-NONE"], "one round trip, no <resume/> after it");
      assert.equal(negotiation[0].getChild("resume", SM)?.attrs.previd, previd);
      const success = received.find((el) => el.name === "success" && el.attrs.xmlns === SASL2)!;
      assert.equal(success.getChild("resumed", SM)?.attrs.previd, previd);
      assert.equal(received.filter((el) => el.name === "stream:features").length, 1, "no stream restart");
      assert.equal(ts.server.context.sessions.resources(`${user}@localhost`).length, 1, "the same session, not a second one");
    } finally {
      await xmpp.stop().catch(() => {});
      juliet.close();
    }
  });

  it("XEP-0198 inline resumption that fails: <failed/> in the success, then Bind2 (XEP-0386) makes a fresh session", async () => {
    const user = fresh("benvolio");
    await ts.accounts.create("localhost", user, "password");
    const c = await RawClient.connect(ts);
    try {
      const success = await scramLogin(c, user, [
        xml("resume", { xmlns: SM, previd: "no-such-session", h: "0" }),
        xml("bind", { xmlns: BIND2 }, xml("tag", null, "phone"), xml("enable", { xmlns: SM, resume: "true" })),
      ]);
      const failed = success.getChild("failed", SM)!;
      assert.ok(failed?.getChild("item-not-found"), success.toString());
      assert.equal(success.getChild("resumed", SM), undefined);
      assert.equal(success.getChild("bound", BIND2)!.getChild("enabled", SM)!.attrs.resume, "true");
      const jid = success.getChildText("authorization-identifier")!;
      assert.match(jid, new RegExp(`^${user}@localhost/phone\\.`));
      const pong = await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(pong.attrs.type, "result");
    } finally {
      c.close();
    }
  });

  it("refuses a wrong password with a SASL2 not-authorized failure", async () => {
    const user = fresh("tybalt");
    await ts.accounts.create("localhost", user, "password");
    const { xmpp } = jsClient(ts, user, "wrong-password", "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0002");
    await assert.rejects(xmpp.start(), (err: { condition?: string }) => err.condition === "not-authorized");
    await xmpp.stop().catch(() => {});
  });
});

describe("XEP-0198 inline resumption (SASL2) after the server process was killed (SIGKILL) and restarted", function () {
  this.timeout(90_000);
  let server: ServerProcess;
  const clients: RawClient[] = [];
  const connect = async () => { const c = await RawClient.connect(server as unknown as TestServer); clients.push(c); return c; };
  before(async () => { server = await ServerProcess.create("sasl2-resume-kill", []); });
  after(async () => {
    for (const c of clients) c.destroy();
    await server?.dispose();
  });

  it("resumes from the durable record inside the SASL2 success and resends what was not acknowledged", async () => {
    await server.addUser("tybalt@localhost", "password");
    await server.addUser("romeo@localhost", "password");
    await server.start();
    const first = await connect();
    const success = await scramLogin(first, "tybalt", [xml("bind", { xmlns: BIND2 }, xml("tag", null, "phone"), xml("enable", { xmlns: SM, resume: "true" }))]);
    const jid = success.getChildText("authorization-identifier")!;
    const id = success.getChild("bound", BIND2)!.getChild("enabled", SM)!.attrs.id;
    first.send(xml("presence"));
    await first.receive((el) => el.name === "presence" && el.attrs.from === jid);
    const romeo = await plainLogin(server, "romeo", "pc");
    clients.push(romeo);
    for (const text of ["m1", "m2", "m3"]) romeo.send(xml("message", { to: jid, type: "chat" }, xml("body", null, text)));
    await first.receive(body("m3"), 5000);
    // Acknowledged: the presence and m1. Then the node dies.
    first.send(xml("a", { xmlns: SM, h: "2" }));
    await new Promise((r) => setTimeout(r, 200));
    await server.kill("SIGKILL");
    first.destroy();
    romeo.destroy();
    await server.start();

    const back = await connect();
    const resumedSuccess = await scramLogin(back, "tybalt", [xml("resume", { xmlns: SM, previd: id, h: "2" })]);
    const resumed = resumedSuccess.getChild("resumed", SM);
    assert.ok(resumed, resumedSuccess.toString());
    assert.equal(resumed.attrs.previd, id);
    assert.equal(resumedSuccess.getChildText("authorization-identifier"), jid);
    assert.deepEqual((await bodiesUntilQuiet(back)).map((m) => m.getChildText("body")), ["m2", "m3"]);
  });
});
