// XMPP over BOSH (XEP-0124, XEP-0206) on the HTTP port, over real HTTP: login, chat with a WebSocket user,
// an HTTP reconnection, the rid window, inactivity, host-meta (XEP-0156) and CORS.
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { client } from "@xmpp/client";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { Strophe, $msg } from "strophe.js";
import { BoshClient, NodeXhr, bodyXml, post } from "./helpers/bosh-client.js";
import { xml, type Element } from "../src/xml/element.js";

// COMPAT: @xmpp/websocket uses the global WebSocket, and Strophe.js's BOSH XMLHttpRequest; Node 20 has neither.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest ??= NodeXhr;

const NS_SM = "urn:xmpp:sm:3";

let n = 0;
const fresh = (p: string) => `${p}${++n}${Date.now().toString(36)}`;

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function boshUser(ts: TestServer, user: string): Promise<BoshClient> {
  await ts.accounts.create(ts.host, user, "password");
  const c = await BoshClient.connect(ts);
  await c.login(user, "password");
  return c;
}

/** A user online over WebSocket with @xmpp/client; what it receives collects in `wsInbox`. */
async function webSocketUser(ts: TestServer, user: string) {
  await ts.accounts.create(ts.host, user, "password");
  const ws = client({ service: `ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, domain: ts.host, username: user, password: "password", resource: "web" });
  ws.on("error", () => {});
  const wsInbox: Element[] = [];
  ws.on("stanza", (el: Element) => wsInbox.push(el));
  await ws.start();
  return { ws, wsJid: ws.jid!.toString(), wsInbox };
}

describe("BOSH (XEP-0124, XEP-0206)", function () {
  this.timeout(60_000);
  let ts: TestServer;
  const clients: BoshClient[] = [];
  before(async () => {
    ts = await startTestServer({ http: { bosh: { inactivitySeconds: 2, maxWait: 10 } } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await ts.stop();
  });

  it("creates a session with the XEP-0124/XEP-0206 attributes and offers SASL", async () => {
    const c = await BoshClient.connect(ts, { wait: 600, hold: 9 });
    clients.push(c);
    const a = c.created;
    assert.match(a.sid, /^[0-9a-f]{32}$/);
    assert.equal(a.wait, "10", "wait is capped at http.bosh.maxWait");
    assert.equal(a.hold, "2", "hold is capped at http.bosh.maxHold");
    assert.equal(a.requests, "3");
    assert.equal(a.inactivity, "2");
    assert.equal(a.from, ts.host);
    assert.equal(a["xmpp:version"], "1.0");
    assert.ok(a.authid, "the stream id is the authid");
    const features = await c.receive((el) => el.name === "stream:features");
    assert.ok(features.getChild("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl"));
  });

  it("logs in, binds, chats with a WebSocket user both ways and survives an HTTP reconnection", async () => {
    const b = fresh("bosh");
    const w = fresh("ws");
    const bosh = await boshUser(ts, b);
    clients.push(bosh);
    assert.equal(bosh.jid, `${b}@${ts.host}/bosh`);
    const { ws, wsJid, wsInbox } = await webSocketUser(ts, w);
    try {
      bosh.startPolling();
      // WebSocket → BOSH, answered on the request the server holds.
      await ws.send(xml("message", { to: bosh.jid, type: "chat", id: "m1" }, xml("body", null, "hello over websocket")));
      const got = await bosh.receive((el) => el.name === "message" && el.getChildText("body") === "hello over websocket");
      assert.equal(got.attrs.from, wsJid);
      // BOSH → WebSocket.
      await bosh.send(xml("message", { to: wsJid, type: "chat", id: "m2" }, xml("body", null, "hello over bosh")));
      await until(() => wsInbox.some((el) => el.name === "message" && el.getChildText("body") === "hello over bosh"), "the WebSocket user got the BOSH message");
      const m2 = wsInbox.find((el) => el.getChildText("body") === "hello over bosh")!;
      assert.equal(m2.attrs.from, bosh.jid, "from is stamped with the BOSH session's full JID");

      // New TCP connections (the held request's connection is cut), same sid, next rids: the session goes on.
      const before = new Set(bosh.ports);
      bosh.reconnect();
      await ws.send(xml("message", { to: bosh.jid, type: "chat", id: "m3" }, xml("body", null, "after reconnect")));
      await bosh.receive((el) => el.name === "message" && el.getChildText("body") === "after reconnect");
      await bosh.send(xml("message", { to: wsJid, type: "chat", id: "m4" }, xml("body", null, "still here")));
      await until(() => wsInbox.some((el) => el.getChildText("body") === "still here"), "the WebSocket user got the message sent after the reconnection");
      const after = bosh.ports.slice(-2);
      assert.ok(after.every((p) => !before.has(p)), "the later answers came over new connections");
      assert.equal(bosh.terminated, null);

      // type='terminate' ends the session: the WebSocket user sees it go offline.
      const t = await bosh.terminate();
      assert.equal(t.body?.attrs.type, "terminate");
      await until(() => !ts.server.context.sessions.resources(`${b}@${ts.host}`).length, "the BOSH session is gone");
    } finally {
      bosh.stopPolling();
      await ws.stop();
    }
  });

  it("serves Strophe.js (an independent BOSH client): SCRAM login, chat with a WebSocket user, disconnect", async () => {
    const s = fresh("strophe");
    const w = fresh("web");
    await ts.accounts.create(ts.host, s, "password");
    const { ws, wsJid, wsInbox } = await webSocketUser(ts, w);
    Strophe.setLogLevel(Strophe.LogLevel.FATAL);
    const conn = new Strophe.Connection(`http://127.0.0.1:${ts.httpPort}/http-bind`);
    const statuses: number[] = [];
    const bodies: string[] = [];
    conn.addHandler((m: { getElementsByTagName(n: string): ArrayLike<{ textContent: string | null }> }) => { bodies.push(m.getElementsByTagName("body")[0]?.textContent ?? ""); return true; }, null, "message", "chat");
    try {
      conn.connect(`${s}@${ts.host}/strophe`, "password", (status: number) => { statuses.push(status); });
      await until(() => statuses.includes(Strophe.Status.CONNECTED) || statuses.includes(Strophe.Status.AUTHFAIL) || statuses.includes(Strophe.Status.CONNFAIL), "Strophe connected");
      assert.ok(statuses.includes(Strophe.Status.CONNECTED), `statuses ${statuses.join(",")}`);
      assert.equal(conn.jid, `${s}@${ts.host}/strophe`);
      // Strophe picks the strongest mechanism offered: SCRAM-SHA-256 over BOSH.
      assert.match(String((conn as unknown as { _sasl_mechanism?: { mechname?: string } })._sasl_mechanism?.mechname), /^SCRAM-SHA-256/);
      conn.send($msg({ to: wsJid, type: "chat" }).c("body").t("from strophe"));
      await until(() => wsInbox.some((el) => el.getChildText("body") === "from strophe"), "the WebSocket user got Strophe's message");
      assert.equal(wsInbox.find((el) => el.getChildText("body") === "from strophe")!.attrs.from, conn.jid);
      await ws.send(xml("message", { to: conn.jid, type: "chat" }, xml("body", null, "to strophe")));
      await until(() => bodies.includes("to strophe"), "Strophe got the WebSocket user's message");
      conn.disconnect("done");
      await until(() => statuses.includes(Strophe.Status.DISCONNECTED), "Strophe disconnected");
      await until(() => ts.server.context.sessions.resources(`${s}@${ts.host}`).length === 0, "the Strophe session ended");
    } finally {
      if (!statuses.includes(Strophe.Status.DISCONNECTED)) conn.reset();
      await ws.stop();
    }
  });

  it("holds an empty request for `wait` seconds and answers it empty; a stream error ends the session", async () => {
    const c = await BoshClient.connect(ts, { wait: 1 });
    clients.push(c);
    await c.receive((el) => el.name === "stream:features");
    const started = Date.now();
    const r = await c.request();
    assert.ok(Date.now() - started >= 900, "held until wait passed");
    assert.equal(r.body?.attrs.type, undefined);
    assert.equal(r.body?.children.length, 0);
    // A stanza before authentication is a stream error (RFC 6120 §6): it comes with type='terminate'.
    const bad = await c.request({}, [xml("message", { xmlns: "jabber:client", to: "x@localhost" }, xml("body", null, "too early"))]);
    assert.equal(bad.body?.attrs.type, "terminate");
    assert.equal(bad.body?.attrs.condition, "remote-stream-error");
    const streamError = bad.body?.children.find((c): c is Element => typeof c !== "string" && c.name === "stream:error");
    assert.ok(streamError?.getChild("not-authorized"), bad.text);
  });

  it("answers a polling client (hold 0) at once", async () => {
    const c = await BoshClient.connect(ts, { hold: 0, wait: 10 });
    clients.push(c);
    assert.equal(c.created.hold, "0");
    assert.equal(c.created.requests, "1");
    await c.receive((el) => el.name === "stream:features");
    const started = Date.now();
    const r = await c.request();
    assert.ok(Date.now() - started < 5000, "not held for wait");
    assert.equal(r.body?.attrs.type, undefined);
  });

  it("refuses a rid outside the window with item-not-found and ends the session", async () => {
    const c = await BoshClient.connect(ts);
    clients.push(c);
    await c.receive((el) => el.name === "stream:features");
    const r = await c.request({}, [], c.rid + 10);
    assert.equal(r.body?.attrs.type, "terminate");
    assert.equal(r.body?.attrs.condition, "item-not-found");
    const again = await c.request();
    assert.equal(again.body?.attrs.condition, "item-not-found", "the sid is no longer known");
  });

  it("answers a lost request again when the client repeats its rid", async () => {
    const c = await BoshClient.connect(ts);
    clients.push(c);
    const first = c.rid - 1;
    const r = await c.request({}, [], first);
    assert.equal(r.body?.attrs.sid, c.sid, "the creation answer is sent again");
  });

  it("refuses more simultaneous requests than `requests` with policy-violation", async () => {
    const c = await BoshClient.connect(ts, { hold: 2 });
    clients.push(c);
    await c.receive((el) => el.name === "stream:features");
    assert.equal(c.created.requests, "3");
    const base = c.rid;
    // Two requests held (hold 2), then two more ahead of a gap (base + 2 never sent): four open at once.
    const held = [c.request({}, [], base), c.request({}, [], base + 1)];
    await new Promise((r) => setTimeout(r, 1500));
    const ahead = c.request({}, [], base + 3);
    await new Promise((r) => setTimeout(r, 500));
    const over = await c.request({}, [], base + 4);
    assert.equal(over.body?.attrs.condition, "policy-violation");
    for (const r of await Promise.all([...held, ahead])) assert.equal(r.body?.attrs.type, "terminate");
  });

  it("takes an inactive session for a dropped connection; with stream management it can be resumed", async () => {
    const u = fresh("idle");
    const c = await boshUser(ts, u);
    clients.push(c);
    await c.send(xml("enable", { xmlns: NS_SM, resume: "true" }));
    const enabled = await c.receive((el) => el.name === "enabled");
    assert.equal(enabled.attrs.resume, "true");
    const bare = `${u}@${ts.host}`;
    const session = ts.server.context.sessions.resources(bare)[0] as unknown as { hibernating: boolean };
    assert.ok(session);
    // No request waits at the server: after `inactivity` (2 s) the connection counts as dropped.
    await until(() => session.hibernating, "the session hibernates after the inactivity period");
    const gone = await c.request();
    assert.equal(gone.body?.attrs.condition, "item-not-found");
    // A new BOSH session resumes it (XEP-0198 §5).
    const c2 = await BoshClient.connect(ts);
    clients.push(c2);
    await c2.receive((el) => el.name === "stream:features");
    const auth = Buffer.from(`\0${u}\0password`).toString("base64");
    await c2.request({}, [xml("auth", { xmlns: "urn:ietf:params:xml:ns:xmpp-sasl", mechanism: "PLAIN" }, auth)]);
    await c2.receive((el) => el.name === "success");
    await c2.request({ "xmpp:restart": "true", "xmlns:xmpp": "urn:xmpp:xbosh" });
    await c2.receive((el) => el.name === "stream:features");
    await c2.request({}, [xml("resume", { xmlns: NS_SM, previd: enabled.attrs.id, h: "0" })]);
    const resumed = await c2.receive((el) => el.name === "resumed" || el.name === "failed");
    assert.equal(resumed.name, "resumed");
    assert.equal(session.hibernating, false);
    // The resumed session is this BOSH session's now: its terminate ends it for good.
    const t = await c2.terminate();
    assert.equal(t.body?.attrs.type, "terminate");
    await until(() => ts.server.context.sessions.resources(bare).length === 0, "the resumed session ended with the terminate");
  });

  it("ends an inactive session without stream management", async () => {
    const u = fresh("gone");
    const c = await boshUser(ts, u);
    clients.push(c);
    assert.equal(ts.server.context.sessions.resources(`${u}@${ts.host}`).length, 1);
    await until(() => ts.server.context.sessions.resources(`${u}@${ts.host}`).length === 0, "the inactive session ended");
  });

  it("refuses an unknown host, a malformed body and an oversized request", async () => {
    const r = await post(ts.httpPort, bodyXml({ rid: "5", to: "elsewhere.example", wait: "5", hold: "1" }));
    assert.equal(r.body?.attrs.condition, "host-unknown");
    const bad = await post(ts.httpPort, "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'");
    assert.equal(bad.status, 400);
    const big = await post(ts.httpPort, bodyXml({ rid: "5", to: ts.host }, ["<x>" + "a".repeat(ts.config.limits.maxStanzaBytes + 2048) + "</x>"]));
    assert.equal(big.status, 413);
  });

  it("answers a CORS preflight and serves XML with the CORS header", async () => {
    const pre = await post(ts.httpPort, "", { method: "OPTIONS", headers: { origin: "https://web.example", "access-control-request-method": "POST" } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers["access-control-allow-origin"], "*");
    assert.match(String(pre.headers["access-control-allow-methods"]), /POST/);
    assert.match(String(pre.headers["access-control-allow-headers"]), /content-type/i);
    const r = await post(ts.httpPort, bodyXml({ rid: "7", to: ts.host, wait: "5", hold: "1" }), { headers: { origin: "https://web.example" } });
    assert.equal(r.headers["access-control-allow-origin"], "*");
    assert.match(String(r.headers["content-type"]), /^text\/xml/);
  });

  it("lists BOSH beside WebSocket in host-meta and host-meta.json (XEP-0156)", async () => {
    const xrd = await post(ts.httpPort, "", { method: "GET", path: "/.well-known/host-meta" });
    assert.equal(xrd.headers["access-control-allow-origin"], "*");
    assert.match(xrd.text, new RegExp(`rel="urn:xmpp:alt-connections:xbosh" href="http://127\\.0\\.0\\.1:${ts.httpPort}/http-bind"`));
    assert.match(xrd.text, /urn:xmpp:alt-connections:websocket/);
    const json = await post(ts.httpPort, "", { method: "GET", path: "/.well-known/host-meta.json" });
    assert.equal(json.headers["access-control-allow-origin"], "*");
    const links = (JSON.parse(json.text) as { links: Array<{ rel: string; href: string }> }).links;
    assert.deepEqual(links.map((l) => l.rel).sort(), ["urn:xmpp:alt-connections:websocket", "urn:xmpp:alt-connections:xbosh"]);
    // Behind a TLS-terminating proxy the links carry the secure schemes.
    const proxied = await post(ts.httpPort, "", { method: "GET", path: "/.well-known/host-meta.json", headers: { "x-forwarded-proto": "https", host: "chat.example.org" } });
    const hrefs = (JSON.parse(proxied.text) as { links: Array<{ href: string }> }).links.map((l) => l.href).sort();
    assert.deepEqual(hrefs, ["https://chat.example.org/http-bind", "wss://chat.example.org/xmpp-websocket"]);
  });
});

describe("BOSH at server shutdown", function () {
  this.timeout(30_000);
  it("answers a held request with system-shutdown", async () => {
    const ts = await startTestServer({});
    const c = await BoshClient.connect(ts, { wait: 20 });
    try {
      await c.receive((el) => el.name === "stream:features");
      const held = c.request();
      await until(() => c.pending === 1, "a request is held");
      // Time for the request to reach the server and be held there.
      await new Promise((r) => setTimeout(r, 1000));
      await ts.stop();
      const r = await held;
      assert.equal(r.body?.attrs.type, "terminate");
      assert.equal(r.body?.attrs.condition, "remote-stream-error");
      assert.match(r.text, /system-shutdown/);
    } finally {
      c.close();
    }
  });
});

describe("BOSH with an origin list", function () {
  this.timeout(30_000);
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ http: { corsOrigins: ["https://chat.example.com"] } }); });
  after(() => ts.stop());

  it("allows only the configured origins", async () => {
    const ok = await post(ts.httpPort, "", { method: "OPTIONS", headers: { origin: "https://chat.example.com" } });
    assert.equal(ok.headers["access-control-allow-origin"], "https://chat.example.com");
    const other = await post(ts.httpPort, "", { method: "OPTIONS", headers: { origin: "https://evil.example" } });
    assert.equal(other.headers["access-control-allow-origin"], undefined);
    const meta = await post(ts.httpPort, "", { method: "GET", path: "/.well-known/host-meta", headers: { origin: "https://evil.example" } });
    assert.equal(meta.headers["access-control-allow-origin"], undefined);
  });
});
