// RFC 6120 streams over real sockets: TLS, SASL, binding, stream errors, and isolation between sessions.
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { ScramClient } from "./helpers/scram-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { parseFramedElement } from "../src/xml/parser.js";

const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const mechanisms = (features: Element) => features.getChild("mechanisms", SASL)?.getChildren("mechanism").map((m) => m.getText()) ?? [];

describe("c2s streams", function () {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({ auth: { allowPlainInsecure: false } });
    await ts.accounts.create("localhost", "romeo", "password");
    await ts.accounts.create("localhost", "juliet", "password");
  });
  after(() => ts.stop());

  describe("TLS and SASL", () => {
    it("offers SCRAM but not PLAIN on a plain connection, and PLAIN after STARTTLS", async () => {
      const c = await RawClient.connect(ts);
      const features = await c.open();
      assert.ok(features.getChild("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
      assert.deepEqual(mechanisms(features), ["SCRAM-SHA-256", "SCRAM-SHA-1"]);
      await c.startTls();
      const secure = await c.open();
      assert.equal(secure.getChild("starttls"), undefined);
      // RFC 5802 §6: over TLS this process terminates, the channel-binding variants come first.
      assert.deepEqual(mechanisms(secure), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
      await c.authenticate("romeo", "password", "SHA-256");
      const post = await c.open();
      assert.ok(post.getChild("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
      assert.match(await c.bind("balcony"), /^romeo@localhost\/balcony$/);
      c.close();
    });

    it("logs in with SCRAM-SHA-1 over direct TLS (XEP-0368)", async () => {
      const c = await RawClient.connect(ts, { tls: true });
      assert.ok(c.tlsSocket?.encrypted);
      await c.open();
      await c.authenticate("juliet", "password", "SHA-1");
      await c.open();
      assert.equal(await c.bind("tomb"), "juliet@localhost/tomb");
      c.close();
    });

    it("refuses PLAIN without TLS with encryption-required", async () => {
      const c = await RawClient.connect(ts);
      await c.open();
      c.send(xml("auth", { xmlns: SASL, mechanism: "PLAIN" }, Buffer.from("\0romeo\0password").toString("base64")));
      const failure = await c.receive((el) => el.name === "failure");
      assert.ok(failure.getChild("encryption-required"));
      c.close();
    });

    it("accepts PLAIN over TLS and checks it against the stored SCRAM keys", async () => {
      const c = await RawClient.connect(ts, { tls: true });
      await c.open();
      c.send(xml("auth", { xmlns: SASL, mechanism: "PLAIN" }, Buffer.from("\0romeo\0wrong").toString("base64")));
      assert.ok((await c.receive((el) => el.name === "failure")).getChild("not-authorized"));
      c.send(xml("auth", { xmlns: SASL, mechanism: "PLAIN" }, Buffer.from("\0romeo\0password").toString("base64")));
      assert.equal((await c.receive((el) => el.attrs.xmlns === SASL)).name, "success");
      c.close();
    });

    it("answers a wrong SCRAM password with not-authorized and ends the stream after three failures", async () => {
      const c = await RawClient.connect(ts);
      await c.open();
      for (let i = 0; i < 2; i++) {
        const err = await c.authenticate("romeo", "nope").then(() => null, (e) => e.element as Element);
        assert.ok(err?.getChild("not-authorized"), `attempt ${i}`);
      }
      await c.authenticate("romeo", "nope").catch(() => null);
      assert.equal(errorCondition(await c.closed()), "policy-violation");
    });

    it("gives the same answer for an unknown user as for a wrong password", async () => {
      const c = await RawClient.connect(ts);
      await c.open();
      const err = await c.authenticate("nobody", "password").then(() => null, (e) => e.element as Element);
      assert.ok(err?.getChild("not-authorized"));
      c.close();
    });

    it("rejects an unknown mechanism and bad base64", async () => {
      const c = await RawClient.connect(ts);
      await c.open();
      c.send(xml("auth", { xmlns: SASL, mechanism: "DIGEST-MD5" }, "="));
      assert.ok((await c.receive((el) => el.name === "failure")).getChild("invalid-mechanism"));
      c.send(xml("auth", { xmlns: SASL, mechanism: "SCRAM-SHA-1" }, "!!!not base64"));
      assert.ok((await c.receive((el) => el.name === "failure")).getChild("incorrect-encoding"));
      c.close();
    });

    it("an aborted exchange can be restarted", async () => {
      const c = await RawClient.connect(ts);
      await c.open();
      const scram = new ScramClient("SHA-256", "romeo", "password");
      c.send(xml("auth", { xmlns: SASL, mechanism: "SCRAM-SHA-256" }, Buffer.from(scram.first()).toString("base64")));
      await c.receive((el) => el.name === "challenge");
      c.send(xml("abort", { xmlns: SASL }));
      assert.ok((await c.receive((el) => el.name === "failure")).getChild("aborted"));
      await c.authenticate("romeo", "password");
      c.close();
    });
  });

  describe("resource binding", () => {
    it("generates a resource when none is asked for", async () => {
      const c = await RawClient.connect(ts);
      await c.login("romeo", "password");
      assert.match(c.jid, /^romeo@localhost\/[0-9a-f]{12}$/);
      c.close();
    });

    it("accepts the legacy session iq", async () => {
      const c = await RawClient.connect(ts);
      await c.login("romeo", "password");
      const res = await c.iq(xml("iq", { type: "set", to: "localhost" }, xml("session", { xmlns: "urn:ietf:params:xml:ns:xmpp-session" })));
      assert.equal(res.attrs.type, "result");
      c.close();
    });

    it("lets the new session win a resource conflict; the old one gets <conflict/>", async () => {
      const first = await RawClient.connect(ts);
      await first.login("romeo", "password", "phone");
      const second = await RawClient.connect(ts);
      await second.login("romeo", "password", "phone");
      assert.equal(errorCondition(await first.closed()), "conflict");
      assert.equal(second.jid, "romeo@localhost/phone");
      const ping = await second.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(ping.attrs.type, "result");
      second.close();
    });
  });

  describe("stanzas", () => {
    it("stamps `from` and refuses a spoofed one with invalid-from", async () => {
      const romeo = await onlineUser(ts, "romeo", { resource: "a" });
      const juliet = await onlineUser(ts, "juliet", { resource: "b" });
      romeo.send(xml("message", { to: "juliet@localhost/b", type: "chat" }, xml("body", null, "hi")));
      const msg = await juliet.receive((el) => el.name === "message");
      assert.equal(msg.attrs.from, "romeo@localhost/a");
      romeo.send(xml("message", { to: "juliet@localhost/b", from: "tybalt@localhost/x", type: "chat" }, xml("body", null, "forged")));
      assert.equal(errorCondition(await romeo.closed()), "invalid-from");
      await juliet.nothing((el) => el.name === "message");
      juliet.close();
    });

    it("answers an iq for an unknown payload with service-unavailable, and never answers an error", async () => {
      const c = await onlineUser(ts, "romeo");
      const res = await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "urn:example:unknown" })));
      assert.equal(res.attrs.type, "error");
      assert.equal(errorCondition(res), "service-unavailable");
      c.send(xml("iq", { type: "error", to: "localhost", id: "e1" }, xml("error", { type: "cancel" }, xml("bad-request", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }))));
      await c.nothing((el) => el.attrs.id === "e1");
      c.close();
    });

    it("answers an iq without id or payload with bad-request", async () => {
      const c = await onlineUser(ts, "romeo");
      c.send("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
      assert.equal(errorCondition(await c.receive((el) => el.name === "iq")), "bad-request");
      const res = await c.iq(xml("iq", { type: "get", to: "localhost" }));
      assert.equal(errorCondition(res), "bad-request");
      c.close();
    });

    it("answers a malformed `to` with jid-malformed", async () => {
      const c = await onlineUser(ts, "romeo");
      const res = await c.iq(xml("iq", { type: "get", to: "a@b@c/" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(errorCondition(res), "jid-malformed");
      c.close();
    });

    it("answers a remote domain with remote-server-not-found", async () => {
      const c = await onlineUser(ts, "romeo");
      c.send(xml("message", { to: "someone@elsewhere.example", type: "chat", id: "m1" }, xml("body", null, "hi")));
      const err = await c.receive((el) => el.name === "message" && el.attrs.type === "error");
      assert.equal(errorCondition(err), "remote-server-not-found");
      assert.equal(err.attrs.id, "m1");
      c.close();
    });

    it("accepts whitespace keepalives", async () => {
      const c = await onlineUser(ts, "romeo");
      c.send("   \n  ");
      const res = await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(res.attrs.type, "result");
      c.close();
    });
  });

  describe("stream errors never hurt other sessions", () => {
    let bystander: RawClient;
    beforeEach(async () => { bystander = await onlineUser(ts, "juliet", { resource: "bystander" }); });
    afterEach(async () => {
      // After every bad input the bystander's session still works.
      const res = await bystander.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(res.attrs.type, "result");
      bystander.close();
    });

    const expectStreamError = async (input: string, condition: string, opts: { open?: boolean; login?: boolean } = {}) => {
      const c = await RawClient.connect(ts);
      if (opts.login) await c.login("romeo", "password");
      else if (opts.open) await c.open();
      c.send(input);
      assert.equal(errorCondition(await c.closed()), condition);
    };

    it("not-well-formed", () => expectStreamError("<message><body></message>", "not-well-formed", { open: true }));
    it("not-well-formed before the stream header", () => expectStreamError("this is not xml <<<", "not-well-formed"));
    it("invalid-namespace for a wrong stream namespace", () =>
      expectStreamError("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>", "invalid-namespace"));
    it("invalid-namespace for a wrong stream element namespace", () =>
      expectStreamError("<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>", "invalid-namespace"));
    it("host-unknown", () =>
      expectStreamError("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere.example' version='1.0'>", "host-unknown"));
    it("unsupported-version", () =>
      expectStreamError("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='0.9'>", "unsupported-version"));
    it("restricted-xml for a comment", () => expectStreamError("<!-- hello -->", "restricted-xml", { open: true }));
    it("restricted-xml for a DTD", () => expectStreamError("<!DOCTYPE foo [<!ENTITY x 'y'>]>", "restricted-xml", { open: true }));
    it("policy-violation for a stanza over the size limit", () =>
      expectStreamError(`<message to='juliet@localhost'><body>${"x".repeat(300 * 1024)}</body></message>`, "policy-violation", { login: true }));
    it("unsupported-stanza-type for an unknown top-level element", () => expectStreamError("<foo xmlns='jabber:client'/>", "unsupported-stanza-type", { login: true }));
    it("not-authorized for a stanza before authentication", () => expectStreamError("<message to='juliet@localhost'><body>x</body></message>", "not-authorized", { open: true }));
  });

  describe("timeouts and TLS policy", () => {
    let strict: TestServer;
    before(async () => { strict = await startTestServer({ c2s: { requireTls: true }, limits: { authTimeoutSeconds: 1, idleTimeoutSeconds: 1 } }); });
    after(() => strict.stop());

    it("requires STARTTLS when configured: only starttls is offered, anything else is a policy-violation", async () => {
      const c = await RawClient.connect(strict);
      const features = await c.open();
      assert.ok(features.getChild("starttls")?.getChild("required"));
      assert.equal(features.getChild("mechanisms"), undefined);
      c.send(xml("auth", { xmlns: SASL, mechanism: "SCRAM-SHA-1" }, "="));
      assert.equal(errorCondition(await c.closed()), "policy-violation");
    });

    it("closes a connection that does not authenticate in time with connection-timeout", async () => {
      const c = await RawClient.connect(strict);
      await c.open();
      assert.equal(errorCondition(await c.closed(4000)), "connection-timeout");
    });

    it("pings a silent session and closes it when the ping goes unanswered", async () => {
      await strict.accounts.create("localhost", "sleepy", "password");
      const c = await RawClient.connect(strict);
      await c.open();
      await c.startTls();
      await c.login("sleepy", "password");
      const ping = await c.receive((el) => el.name === "iq" && el.getChild("ping", "urn:xmpp:ping") !== undefined, 4000);
      assert.equal(ping.attrs.type, "get");
      assert.equal(errorCondition(await c.closed(4000)), "connection-timeout");
    });
  });

  describe("limits", () => {
    let limited: TestServer;
    before(async () => {
      limited = await startTestServer({
        auth: { maxFailures: 2, failureWindowSeconds: 60, exemptNetworks: [] },
        c2s: { resourceConflict: "refuse" },
        limits: { maxConnectionsPerIp: 4, stanzasPerSecond: 10, stanzaBurst: 5 },
      });
      await limited.accounts.create("localhost", "romeo", "password");
    });
    after(() => limited.stop());

    it("throttles failed logins per address (auth.maxFailures): after the limit even the right password gets temporary-auth-failure", async () => {
      for (let i = 0; i < 2; i++) {
        const c = await RawClient.connect(limited);
        await c.open();
        const err = await c.authenticate("romeo", "wrong").then(() => null, (e) => e.element as Element);
        assert.ok(err?.getChild("not-authorized"));
        c.close();
      }
      const c = await RawClient.connect(limited);
      await c.open();
      const err = await c.authenticate("romeo", "password").then(() => null, (e) => e.element as Element);
      assert.ok(err?.getChild("temporary-auth-failure"), err?.toString());
      c.close();
      // Throttled only for the window: a fresh server (new window) lets the right password in.
    });

    it("refuses a second session for a bound resource when resourceConflict is 'refuse'", async () => {
      const other = await startTestServer({ c2s: { resourceConflict: "refuse" } });
      try {
        await other.accounts.create("localhost", "romeo", "password");
        const first = await RawClient.connect(other);
        await first.login("romeo", "password", "desk");
        const second = await RawClient.connect(other);
        await second.open();
        await second.authenticate("romeo", "password");
        await second.open();
        const res = await second.iq(xml("iq", { type: "set" }, xml("bind", { xmlns: "urn:ietf:params:xml:ns:xmpp-bind" }, xml("resource", null, "desk"))));
        assert.equal(errorCondition(res), "conflict");
        assert.equal(first.isClosed, false);
        first.close(); second.close();
      } finally {
        await other.stop();
      }
    });

    it("closes connections over the per-IP limit with policy-violation", async () => {
      const open: RawClient[] = [];
      for (let i = 0; i < 4; i++) { const c = await RawClient.connect(limited); await c.open(); open.push(c); }
      const fifth = await RawClient.connect(limited);
      assert.equal(errorCondition(await fifth.closed()), "policy-violation");
      for (const c of open) c.close();
      await Promise.all(open.map((c) => c.closed()));
      // Connections are released once the server saw them close: the address may then open its four again.
      const again: RawClient[] = [];
      const deadline = Date.now() + 5000;
      while (again.length < 4) {
        const c = await RawClient.connect(limited);
        try {
          await c.open();
          again.push(c);
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      for (const c of again) c.close();
      await Promise.all(again.map((c) => c.closed()));
    });

    it("slows a client above its stanza rate down instead of dropping it", async () => {
      await new Promise((r) => setTimeout(r, 100)); // let the per-IP count drop after the previous test
      const other = await startTestServer({ limits: { stanzasPerSecond: 10, stanzaBurst: 5 } });
      try {
        await other.accounts.create("localhost", "romeo", "password");
        const c = await RawClient.connect(other);
        await c.login("romeo", "password");
        const started = Date.now();
        for (let i = 0; i < 20; i++) c.send(`<iq type='get' to='localhost' id='r${i}'><ping xmlns='urn:xmpp:ping'/></iq>`);
        for (let i = 0; i < 20; i++) assert.equal((await c.receive((el) => el.attrs.id === `r${i}`, 5000)).attrs.type, "result");
        // 5 in the burst, then 10 per second: the last ones wait roughly 1.5 s; none is lost.
        assert.ok(Date.now() - started >= 1000, "the stanzas above the burst were delayed");
        c.close();
      } finally {
        await other.stop();
      }
    });
  });

  describe("WebSocket (RFC 7395)", () => {
    it("opens, authenticates, binds and chats with a TCP user", async () => {
      const juliet = await onlineUser(ts, "juliet", { resource: "tcp" });
      const ws = new WebSocket(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, "xmpp");
      const inbox: Element[] = [];
      const waiters: Array<() => void> = [];
      ws.on("message", (d) => { inbox.push(parseFramedElement(d.toString())); waiters.splice(0).forEach((w) => w()); });
      await new Promise((r) => ws.once("open", r));
      assert.equal(ws.protocol, "xmpp");
      const next = async (name: string): Promise<Element> => {
        for (;;) {
          const i = inbox.findIndex((e) => e.name === name || e.getName() === name);
          if (i >= 0) return inbox.splice(i, 1)[0];
          await new Promise<void>((r) => waiters.push(r));
        }
      };
      const open = () => ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
      open();
      assert.equal((await next("open")).attrs.xmlns, "urn:ietf:params:xml:ns:xmpp-framing");
      await next("features");
      const scram = new ScramClient("SHA-1", "romeo", "password");
      ws.send(xml("auth", { xmlns: SASL, mechanism: "SCRAM-SHA-1" }, Buffer.from(scram.first()).toString("base64")).toString());
      const ch = await next("challenge");
      ws.send(xml("response", { xmlns: SASL }, Buffer.from(scram.final(Buffer.from(ch.getText(), "base64").toString())).toString("base64")).toString());
      await next("success");
      open();
      await next("open");
      await next("features");
      ws.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>");
      assert.equal((await next("iq")).getChild("bind")!.getChildText("jid"), "romeo@localhost/web");
      ws.send("<message xmlns='jabber:client' to='juliet@localhost/tcp' type='chat'><body>over websocket</body></message>");
      const got = await juliet.receive((el) => el.name === "message");
      assert.equal(got.getChildText("body"), "over websocket");
      assert.equal(got.attrs.from, "romeo@localhost/web");
      juliet.send(xml("message", { to: "romeo@localhost/web", type: "chat" }, xml("body", null, "back")));
      const back = await next("message");
      assert.equal(back.attrs.xmlns, "jabber:client");
      assert.equal(back.getChildText("body"), "back");
      ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
      await next("close");
      ws.close();
      juliet.close();
    });

    it("refuses a WebSocket without the xmpp subprotocol", async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`);
      const outcome = await new Promise<string>((resolve) => {
        ws.on("error", () => resolve("error"));
        ws.on("close", (code) => resolve(`close ${code}`));
      });
      assert.notEqual(outcome, "open");
    });
  });
});
