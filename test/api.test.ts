// The server API for app backends over real HTTP against a real server: users, device tokens a mobile
// client logs in with, system notifications an XMPP client and a mobile client both receive, groups, the
// documented 4xx codes, rate limiting, OAuth2 client credentials (RFC 6749 §4.4), and the OpenAPI file.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { Ajv2020 } from "ajv/dist/2020.js";
import { onlineUser } from "./helpers/raw-client.js";
import { GroupEventKind } from "../src/mobile/schema.js";
import type { ModuleApi } from "../src/modules/module.js";
import { ErrorCode, MobileClient, mobileUser, Platform, rejectsWith, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { createLogger } from "../src/log.js";
import { ConfigError, loadConfig } from "../src/config/config.js";
import { apiRoutes } from "../src/api/routes.js";
import { API_PREFIX } from "../src/api/index.js";

const KEY = "test-key-0123456789abcdef0123456789abcdef";
const READER_KEY = "reader-key-0123456789abcdef0123456789abcdef";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

interface Answer { status: number; body: any; headers: Headers }

async function call(port: number, method: string, path: string, opts: { key?: string | null; json?: unknown; raw?: string; type?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  const key = opts.key === undefined ? KEY : opts.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (opts.json !== undefined) { body = JSON.stringify(opts.json); headers["content-type"] = "application/json"; }
  if (opts.raw !== undefined) { body = opts.raw; headers["content-type"] = opts.type ?? "application/json"; }
  const res = await fetch(`http://127.0.0.1:${port}${API_PREFIX}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: text === "" ? null : JSON.parse(text), headers: res.headers };
}

interface OpenApi { openapi: string; servers: Array<{ url: string }>; paths: Record<string, Record<string, any>>; components: { responses: Record<string, any> } }
const openapi = parseYaml(readFileSync(new URL("../../schemas/openapi/hearth-api.yaml", import.meta.url), "utf8")) as OpenApi;
// OpenAPI 3.1 schemas are JSON Schema 2020-12: the whole document is one schema resource, so a schema's
// "#/components/schemas/…" references resolve in it.
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(openapi, "openapi");
const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

/** Checks an answer against what the OpenAPI file documents for the operation and status. */
function conforms(method: string, path: string, a: Answer, request?: unknown): void {
  const template = Object.keys(openapi.paths).find((t) => new RegExp(`^${t.replace(/\{\w+\}/g, "[^/]+")}$`).test(path.split("?")[0]!));
  if (!template) return; // an undocumented path: the 404 itself is documented nowhere else
  const op = openapi.paths[template]![method.toLowerCase()];
  if (!op) return;
  let response = op.responses[String(a.status)];
  assert.ok(response, `${method} ${template}: status ${a.status} is not documented`);
  let at = pointer("paths", template, method.toLowerCase(), "responses", String(a.status));
  if (response.$ref) {
    const name = (response.$ref as string).split("/").pop()!;
    response = openapi.components.responses[name];
    at = pointer("components", "responses", name);
  }
  if (a.status < 300 && request !== undefined) {
    // What the server accepted must be what the file documents as a valid request.
    const schema = ajv.getSchema(`openapi#/${pointer("paths", template, method.toLowerCase(), "requestBody", "content", "application/json", "schema")}`);
    assert.ok(schema, `${method} ${template}: accepted a body the file documents none for`);
    assert.ok(schema(request), `${method} ${template}: accepted ${JSON.stringify(request)}, which the file calls invalid: ${ajv.errorsText(schema.errors)}`);
  }
  if (!response.content) {
    assert.equal(a.body, null, `${method} ${template} ${a.status}: documented without a body`);
    return;
  }
  const validate = ajv.getSchema(`openapi#/${at}/content/${pointer("application/json")}/schema`)!;
  assert.ok(validate(a.body), `${method} ${template} ${a.status}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(a.body)}`);
}

/** A refusal in the documented shape. */
function refused(a: Answer, status: number, code: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(a.body.error, code);
  assert.equal(typeof a.body.message, "string");
  assert.ok(a.body.message.length > 0);
}

describe("server API for app backends (OpenAPI 3.1, RFC 6749 §4.4)", function () {
  this.timeout(30_000);
  let ts: MobileTestServer;
  let port: number;
  /** A request whose answer must match the OpenAPI file. */
  const api = async (method: string, path: string, opts?: Parameters<typeof call>[3]) => {
    const a = await call(port, method, path, opts);
    conforms(method, path, a, opts?.json);
    return a;
  };

  before(async () => {
    ts = await startMobileServer({}, {
      api: { keys: { backend: KEY, reader: `sha256:${sha256(READER_KEY)}` }, scopes: { reader: "presence" }, requestBurst: 10_000 },
    });
    port = ts.httpPort;
  });
  after(() => ts?.stop());

  it("creates a user (SCRAM only) and a device token that a mobile client logs in with", async () => {
    const user = fresh("apiuser");
    const created = await api("POST", "/users", { json: { username: user, password: "s3cret-pass" } });
    assert.equal(created.status, 201);
    assert.equal(created.body.jid, `${user}@localhost`);
    const stored = await ts.server.context.store.accounts.get("localhost", user);
    assert.ok(stored);
    assert.ok(!JSON.stringify(stored).includes("s3cret-pass"), "no clear-text password in the store");

    const issued = await api("POST", `/users/${user}/tokens`, { json: { deviceId: "phone-1", platform: "ios", ttlSeconds: 3600 } });
    assert.equal(issued.status, 201);
    assert.match(issued.body.token, /^hm1\./);
    assert.ok(issued.body.expiresAt > Date.now() + 3500_000);

    const c = await MobileClient.connect(ts.mobileUrl);
    const login = await c.login({ username: user, token: issued.body.token, deviceId: "phone-1", platform: Platform.IOS });
    assert.equal(login.jid, `${user}@localhost/mobile-phone-1`);
    await c.syncComplete();

    const listed = await api("GET", `/users/${user}/tokens`);
    assert.deepEqual(listed.body.tokens.map((t: any) => [t.deviceId, t.platform, t.expired]), [["phone-1", "ios", false]]);
    assert.ok(!JSON.stringify(listed.body).includes(issued.body.token), "the token itself is not shown");

    // Revoking the device's tokens logs that device out, and the token no longer logs in.
    const revoked = await api("DELETE", `/users/${user}/tokens/phone-1`);
    assert.equal(revoked.status, 200);
    assert.equal(revoked.body.revoked, 1);
    assert.deepEqual((await api("GET", `/users/${user}/tokens`)).body.tokens, []);
    await c.closed();
    const again = await MobileClient.connect(ts.mobileUrl);
    await rejectsWith(again.login({ username: user, token: issued.body.token, deviceId: "phone-1", platform: Platform.IOS }), ErrorCode.TOKEN_INVALID);
    again.close();

    assert.equal((await api("POST", "/users", { json: { username: user, password: "other-pass" } })).status, 409);
    assert.equal((await api("DELETE", `/users/${encodeURIComponent(`${user}@localhost`)}`)).status, 204);
    assert.equal(await ts.accounts.exists("localhost", user), false);
    refused(await api("DELETE", `/users/${user}`), 404, "not-found");
  });

  it("sends a system notification that an XMPP client and a mobile client receive, and an offline device gets later", async () => {
    const user = fresh("notified");
    const x = await onlineUser(ts, user, { resource: "desktop" });
    const m = await mobileUser(ts, user);
    const sent = await api("POST", "/messages", { json: { to: user, body: "Maintenance tonight at 22:00" } });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    assert.equal(sent.body.from, "localhost");
    assert.ok(sent.body.stanzaId);

    const xmppCopy = await x.receive((el) => el.name === "message" && el.getChildText("body") === "Maintenance tonight at 22:00");
    assert.equal(xmppCopy.attrs.from, "localhost");
    const mobileCopy = await m.nextMessage((msg) => msg.body === "Maintenance tonight at 22:00");
    assert.equal(mobileCopy.from, "localhost");

    // A device that was offline gets it from its timeline at login.
    m.close();
    await api("POST", "/messages", { json: { to: user, body: "second notice" } });
    const later = await mobileUser(ts, user, { waitSync: false });
    const synced = await later.nextMessage((msg) => msg.body === "second notice");
    assert.equal(synced.from, "localhost");
    later.close();
    await x.close();
  });

  it("sends a message as a user, archived for the sender like a client's", async () => {
    const alice = fresh("alice"), bob = fresh("bob");
    await ts.accounts.create("localhost", alice, "password");
    const b = await onlineUser(ts, bob);
    const sent = await api("POST", "/messages", { json: { from: alice, to: `${bob}@localhost`, body: "hi from the backend", id: "order-42" } });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    assert.equal(sent.body.duplicate, false);
    const got = await b.receive((el) => el.name === "message" && el.getChildText("body") === "hi from the backend");
    assert.match(got.attrs.from!, new RegExp(`^${alice}@localhost/`));
    const rows = await ts.server.context.store.timeline.query(`${alice}@localhost`, { limit: 10 });
    assert.ok(rows.some((r) => r.outgoing && r.peer === `${bob}@localhost` && r.stanzaId === sent.body.stanzaId));
    // The same id again is the same message (XEP-0359 origin-id de-duplication).
    const resent = await api("POST", "/messages", { json: { from: alice, to: bob, body: "hi from the backend", id: "order-42" } });
    assert.equal(resent.body.duplicate, true);
    await b.close();
  });

  it("reads a user's online state with each resource's transport", async () => {
    const user = fresh("present");
    await ts.accounts.create("localhost", user, "password");
    const offline = await api("GET", `/users/${user}/presence`, { key: READER_KEY });
    assert.equal(offline.status, 200);
    assert.deepEqual(offline.body, { jid: `${user}@localhost`, online: false, resources: [] });
    const x = await onlineUser(ts, user, { resource: "laptop" });
    const m = await mobileUser(ts, user, { deviceId: "tab-9" });
    const online = await api("GET", `/users/${user}/presence`, { key: READER_KEY });
    assert.equal(online.body.online, true);
    const byResource = Object.fromEntries(online.body.resources.map((r: any) => [r.resource, r.transport]));
    assert.deepEqual(byResource, { laptop: "tcp", "mobile-tab-9": "mobile" });
    m.close();
    await x.close();
  });

  it("creates a group and adds a member whose mobile client then sees it; removes the member again", async () => {
    const owner = fresh("gowner"), member = fresh("gmember"), later = fresh("glater"), xmember = fresh("gxmpp");
    for (const u of [owner, member, later]) await ts.accounts.create("localhost", u, "password");
    const x = await onlineUser(ts, xmember);
    const created = await api("POST", "/groups", { json: { owner, name: "Support team", members: [member, xmember] } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const group = created.body.jid as string;
    assert.deepEqual(created.body.members, [`${owner}@localhost`, `${member}@localhost`, `${xmember}@localhost`]);
    // An XMPP member gets a mediated room invitation (XEP-0045 §7.8.2).
    const invitation = await x.receive((el) => el.name === "message" && el.attrs.from === group);
    assert.match(invitation.getChild("x", "http://jabber.org/protocol/muc#user")?.getChild("invite")?.attrs.from ?? "", new RegExp(`^${owner}@localhost(/|$)`));

    const m = await mobileUser(ts, member);
    const list = await m.request("getGroups", {});
    assert.deepEqual(list.groups.map((g) => [g.jid, g.name]), [[group, "Support team"]]);

    const l = await mobileUser(ts, later);
    assert.equal((await api("PUT", `/groups/${encodeURIComponent(group)}/members/${later}`)).status, 201);
    const invited = await l.nextPush("groupEvent", (e) => e.kind === GroupEventKind.INVITED && e.group === group);
    assert.equal(invited.by, `${owner}@localhost`);
    assert.deepEqual((await l.request("getGroups", {})).groups.map((g) => g.jid), [group]);
    // The member takes part: the room (members-only) lets the device in and takes its message.
    const ack = await l.send(group, "hello team");
    assert.ok(ack.seq >= 1);

    const info = await api("GET", `/groups/${encodeURIComponent(group)}`);
    assert.deepEqual(Object.fromEntries(info.body.members.map((x: any) => [x.jid, x.role])),
      { [`${owner}@localhost`]: "owner", [`${member}@localhost`]: "member", [`${later}@localhost`]: "member", [`${xmember}@localhost`]: "member" });
    assert.equal((await api("DELETE", `/groups/${encodeURIComponent(group)}/members/${member}`)).status, 204);
    await m.nextPush("groupEvent", (e) => e.kind === GroupEventKind.REMOVED && e.group === group);
    assert.deepEqual((await m.request("getGroups", {})).groups, []);
    refused(await api("DELETE", `/groups/${encodeURIComponent(group)}/members/${owner}`), 409, "conflict");
    refused(await api("PUT", `/groups/${encodeURIComponent(group)}/members/nobody-here`), 404, "not-found");
    m.close();
    l.close();
    await x.close();
  });

  it("refuses with the documented status codes and error shape", async () => {
    refused(await api("GET", "/users/x/presence", { key: null }), 401, "unauthorized");
    const bad = await api("GET", "/users/x/presence", { key: "not-a-valid-key-0123456789abcdef0123" });
    refused(bad, 401, "unauthorized");
    assert.match(bad.headers.get("www-authenticate") ?? "", /^Bearer/);
    refused(await api("POST", "/users", { raw: "{not json" }), 400, "invalid-request");
    refused(await api("POST", "/users", { raw: "[1,2]" }), 400, "invalid-request");
    refused(await api("POST", "/users", { json: { username: "x" } }), 400, "invalid-request");
    refused(await api("POST", "/users", { json: { username: "x", password: "password", admin: true } }), 400, "invalid-request");
    refused(await api("POST", "/users", { json: { username: "a b@c@d", password: "password" } }), 400, "invalid-request");
    refused(await api("POST", "/users", { raw: "username=x", type: "application/x-www-form-urlencoded" }), 415, "unsupported-media-type");
    refused(await api("POST", "/users/nobody-at-all/tokens", { json: { deviceId: "d1" } }), 404, "not-found");
    refused(await api("POST", "/messages", { json: { to: "nobody-at-all", body: "hi" } }), 404, "not-found");
    refused(await api("POST", "/messages", { json: { to: "someone", body: "" } }), 400, "invalid-request");
    refused(await api("POST", "/users", { key: READER_KEY, json: { username: "x", password: "password" } }), 403, "forbidden");
    refused(await api("POST", "/users", { raw: JSON.stringify({ username: "x", password: "p".repeat(70_000) }) }), 413, "payload-too-large");
    refused(await api("GET", "/no/such/operation"), 404, "not-found");
    const wrongMethod = await api("PATCH", "/users");
    refused(wrongMethod, 405, "method-not-allowed");
    assert.equal(wrongMethod.headers.get("allow"), "POST");
  });

  it("issues OAuth2 client-credentials access tokens (RFC 6749 §4.4) limited to the asked scopes", async () => {
    const form = async (fields: Record<string, string>, basic?: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${API_PREFIX}/oauth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...(basic ? { authorization: `Basic ${Buffer.from(basic).toString("base64")}` } : {}) },
        body: new URLSearchParams(fields).toString(),
      });
      const body = await res.json() as any;
      conforms("POST", "/oauth/token", { status: res.status, body, headers: res.headers });
      return { status: res.status, headers: res.headers, json: async () => body };
    };
    const res = await form({ grant_type: "client_credentials", scope: "presence" }, `backend:${KEY}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const token = await res.json() as { access_token: string; token_type: string; expires_in: number; scope: string };
    assert.equal(token.token_type, "Bearer");
    assert.equal(token.scope, "presence");
    assert.equal(token.expires_in, 3600);
    const user = fresh("oauthed");
    await ts.accounts.create("localhost", user, "password");
    assert.equal((await api("GET", `/users/${user}/presence`, { key: token.access_token })).status, 200);
    refused(await api("POST", "/users", { key: token.access_token, json: { username: fresh("x"), password: "password" } }), 403, "forbidden");
    // A tampered token is no token.
    const tampered = token.access_token.slice(0, -2) + (token.access_token.endsWith("A") ? "BB" : "AA");
    refused(await api("GET", `/users/${user}/presence`, { key: tampered }), 401, "unauthorized");

    const wrong = await form({ grant_type: "client_credentials", client_id: "backend", client_secret: "wrong-secret" });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: string }).error, "invalid_client");
    const grant = await form({ grant_type: "password", client_id: "backend", client_secret: KEY });
    assert.equal(((await grant.json()) as { error: string }).error, "unsupported_grant_type");
    const scope = await form({ grant_type: "client_credentials", scope: "users" }, `reader:${READER_KEY}`);
    assert.equal(((await scope.json()) as { error: string }).error, "invalid_scope");
  });

  it("registers exactly the operations schemas/openapi/hearth-api.yaml documents", () => {
    const doc = openapi;
    assert.match(doc.openapi, /^3\.1\./);
    // The answer checker every request above went through is not vacuous.
    assert.throws(() => conforms("POST", "/users", { status: 201, body: { created: true }, headers: new Headers() }), /jid/);
    assert.throws(() => conforms("DELETE", "/users/x", { status: 200, body: null, headers: new Headers() }), /not documented/);
    conforms("GET", "/users/x/presence", { status: 200, body: { jid: "x@localhost", online: false, resources: [] }, headers: new Headers() });
    assert.throws(() => conforms("POST", "/users", { status: 201, body: { jid: "x@localhost" }, headers: new Headers() }, { username: "x" }), /calls invalid/);
    assert.equal(doc.servers[0]!.url, API_PREFIX);
    const METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options"]);
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const m of Object.keys(item)) if (METHODS.has(m)) documented.add(`${m.toUpperCase()} ${path}`);
    }
    // The table the module serves from (the handlers only read `hosts` when built).
    const table = apiRoutes({ hosts: ["localhost"] } as unknown as ModuleApi<unknown>);
    const served = new Set(table.map((r) => `${r.method} ${r.path}`));
    served.add("POST /oauth/token");
    assert.deepEqual([...served].sort(), [...documented].sort());
  });

  it("answers every documented operation on the running server (none is an unknown path or method)", async () => {
    const doc = openapi;
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const method of Object.keys(item).filter((m) => ["get", "put", "post", "delete"].includes(m))) {
        const concrete = path.replace(/\{(\w+)\}/g, "probe");
        const a = await api(method.toUpperCase(), concrete, { key: READER_KEY, json: method === "post" || method === "put" ? {} : undefined });
        assert.notEqual(a.status, 405, `${method} ${path}`);
        assert.ok(!(a.status === 404 && /no operation/.test(a.body?.message ?? "")), `${method} ${path} is not served`);
      }
    }
  });
});

describe("server API rate limiting and logs", function () {
  this.timeout(30_000);
  let ts: TestServer;
  const raw: string[] = [];
  before(async () => {
    const log = createLogger({ level: "debug", stanzas: false, format: "json" }, {
      write: (chunk: string) => { for (const l of chunk.split("\n")) if (l) raw.push(l); },
    });
    ts = await startTestServer({ api: { keys: { backend: KEY }, requestsPerSecond: 0.01, requestBurst: 3 } }, { log });
  });
  after(() => ts?.stop());

  it("logs a refused key once with its peer, and never a key, a token or a password", async () => {
    const wrong = "wrong-key-that-must-not-be-logged-0123456789";
    refused(await call(ts.httpPort, "GET", "/users/x/presence", { key: wrong }), 401, "unauthorized");
    const res = await fetch(`http://127.0.0.1:${ts.httpPort}${API_PREFIX}/oauth/token`, {
      method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: "backend", client_secret: wrong }).toString(),
    });
    assert.equal(res.status, 401);
    const refusals = raw.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "api request refused");
    assert.equal(refusals.length, 2);
    assert.equal(refusals[0]!.peer, "127.0.0.1");
    assert.ok(raw.length > 0 && !raw.some((l) => l.includes(wrong) || l.includes(KEY)), "no key in the log");
  });

  it("answers 429 with Retry-After once a key spent its burst", async () => {
    await ts.accounts.create("localhost", "limited", "password");
    for (let i = 0; i < 3; i++) assert.equal((await call(ts.httpPort, "GET", "/users/limited/presence")).status, 200);
    const limited = await call(ts.httpPort, "GET", "/users/limited/presence");
    refused(limited, 429, "rate-limited");
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    assert.ok(!raw.some((l) => l.includes(KEY)), "no key in the log");
  });
});


function catchError(fn: () => unknown): unknown {
  try { fn(); } catch (err) { return err; }
  assert.fail("expected an error");
}

describe("server API configuration (api.*)", () => {
  const load = (overrides: Record<string, unknown>, env: Record<string, string> = {}) => loadConfig({ env, file: null, overrides });
  const refusedConfig = (fn: () => unknown, key: string, message: RegExp) => {
    assert.throws(fn, (err: unknown) => err instanceof ConfigError && err.key === key && message.test(err.message));
  };

  it("takes keys as their SHA-256 or as the key, and scopes per key", () => {
    const hash = sha256(KEY).toUpperCase();
    const cfg = load({ api: { keys: { a: `sha256:${hash}`, b: KEY }, scopes: { b: "presence, users,presence" } } });
    assert.deepEqual(cfg.api.keys, { a: `sha256:${hash.toLowerCase()}`, b: KEY });
    assert.deepEqual(cfg.api.scopes, { b: "presence,users" });
    assert.deepEqual(load({}, { HEARTH_API__KEYS: `{"env": "${KEY}"}` }).api.keys, { env: KEY });
  });

  it("refuses short keys, unknown scopes and scopes of no key", () => {
    refusedConfig(() => load({ api: { keys: { a: "short-secret" } } }), "api.keys.a", /at least 32 characters\), got another string \(not shown: a secret\)/);
    assert.doesNotMatch(String(catchError(() => load({ api: { keys: { a: "short-secret" } } }))), /short-secret/);
    refusedConfig(() => load({ api: { keys: { a: "sha256:abc" } } }), "api.keys.a", /64 hex digits/);
    assert.doesNotMatch(String(catchError(() => load({}, { HEARTH_API__KEYS: "{a: [oops-secret" }))), /oops-secret/);
    refusedConfig(() => load({ api: { keys: { a: KEY }, scopes: { a: "users,admin" } } }), "api.scopes.a", /comma-separated list of scopes/);
    refusedConfig(() => load({ api: { keys: { a: KEY }, scopes: { b: "users" } } }), "api.scopes.b", /no key of that name in api.keys/);
  });
});
