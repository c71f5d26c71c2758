// The admin console in a real browser (Debian's Chromium driven by playwright-core): an admin logs in with
// the XMPP password, sees a connected client with its transport, kicks it, and the client's stream ends.
// The HTTP API under it refuses what it must: no session, no CSRF token, a non-admin, another network.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { xml } from "../src/xml/element.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { adminFile, type AdminFile } from "../src/admin/index.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
/** Screenshots land here (git-ignored); HEARTH_TEST_ARTIFACTS moves them. */
const artifacts = process.env.HEARTH_TEST_ARTIFACTS ?? path.join(root, "test-artifacts");

async function post(ts: TestServer, p: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${ts.httpPort}${p}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
}

describe("admin console (Chromium)", function () {
  this.timeout(60000);
  let ts: TestServer;
  let browser: Browser;
  const clients: RawClient[] = [];
  before(async () => {
    ts = await startTestServer({ admin: { accounts: ["root@localhost"], sampleSeconds: 1 } });
    await ts.accounts.create("localhost", "root", "root-password");
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  });
  after(async () => {
    for (const c of clients) c.close();
    await browser?.close();
    await ts?.stop();
  });

  it("logs in, shows a connected client, kicks it, and the client is disconnected", async () => {
    const alice = await onlineUser(ts, "alice", { resource: "laptop" });
    const bob = await onlineUser(ts, "bob", { resource: "phone" });
    clients.push(alice, bob);
    // Some traffic for the chart and a room for the rooms table.
    for (let i = 0; i < 5; i++) alice.send(xml("message", { to: "bob@localhost", type: "chat" }, xml("body", null, `hi ${i}`)));
    // The client column shows what the client told: here its XEP-0115 caps node.
    bob.send(xml("presence", null, xml("c", { xmlns: "http://jabber.org/protocol/caps", hash: "sha-1", node: "https://gajim.org", ver: "q07IKJEyjvHSyhy//CH0CxmKi8w=" })));
    bob.send(xml("presence", { to: "lounge@conference.localhost/bob" }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    await bob.receive((el) => el.name === "presence" && el.attrs.from === "lounge@conference.localhost/bob");

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`http://127.0.0.1:${ts.httpPort}/admin/`);
    await page.fill("#jid", "root@localhost");
    await page.fill("#password", "wrong");
    await page.click("#login-button");
    await page.waitForSelector("#login-error:text('wrong address or password')");
    await page.fill("#password", "root-password");
    await page.click("#login-button");

    const row = page.locator(`#sessions tr[data-jid="${alice.jid}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /tcp/, "the transport is shown");
    assert.match(await page.locator(`#sessions tr[data-jid="${bob.jid}"]`).innerText(), /https:\/\/gajim\.org/, "the client is shown");
    assert.match(await page.locator("#hosts tbody").innerText(), /localhost\s+3\s+2\s+2\s+0/, "accounts, online users, sessions, disabled");
    assert.match(await page.locator("#rooms tbody").innerText(), /lounge@conference\.localhost\s+1/);
    await page.waitForSelector("#errors li:text('login refused for root@localhost')");
    await page.waitForFunction(() => (document.querySelector("#chart polyline")?.getAttribute("points") ?? "").includes(" "));
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, "admin-console.png"), fullPage: true });

    await row.locator("button.kick").click();
    assert.equal(errorCondition(await alice.closed(5000)), "policy-violation", "the kicked client got the stream error");
    await row.waitFor({ state: "detached" });
    assert.match(await page.locator("#status").innerText(), /kicked/);
    assert.equal(bob.isClosed, false, "the other client stays");
    await page.close();
  });

  it("refuses requests without a session, without the CSRF token, and from a non-admin; resets a password and announces", async () => {
    assert.equal((await fetch(`http://127.0.0.1:${ts.httpPort}/admin/api/state`)).status, 401);
    const login = await post(ts, "/admin/login", { jid: "root@localhost", password: "root-password" });
    assert.equal(login.status, 200);
    const cookie = login.headers.get("set-cookie")!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const { csrf } = await login.json() as { csrf: string };
    const session = cookie.split(";")[0]!;
    const carol = await onlineUser(ts, "carol");
    clients.push(carol);
    const noCsrf = await post(ts, "/admin/api/kick", { jid: carol.jid }, { cookie: session });
    assert.equal(noCsrf.status, 403);
    assert.equal(carol.isClosed, false);
    const bad = await post(ts, "/admin/api/kick", { jid: "not a jid" }, { cookie: session, "x-csrf-token": csrf });
    assert.equal(bad.status, 400);
    const big = await post(ts, "/admin/api/kick", { jid: "x".repeat(70_000) }, { cookie: session, "x-csrf-token": csrf });
    assert.equal(big.status, 413, "a body over 64 KiB is refused with 413");
    const ok = await post(ts, "/admin/api/disable", { jid: "carol@localhost" }, { cookie: session, "x-csrf-token": csrf });
    assert.deepEqual(await ok.json(), { changed: true });
    assert.equal(errorCondition(await carol.closed()), "policy-violation");
    await post(ts, "/admin/api/enable", { jid: "carol@localhost" }, { cookie: session, "x-csrf-token": csrf });

    // Password reset and announcement through the same API.
    const dave = await onlineUser(ts, "dave");
    clients.push(dave);
    const reset = await post(ts, "/admin/api/password", { jid: "dave@localhost", password: "brand-new-pw" }, { cookie: session, "x-csrf-token": csrf });
    assert.equal(reset.status, 200);
    const again = await RawClient.connect(ts);
    clients.push(again);
    await again.login("dave", "brand-new-pw");
    const weak = await post(ts, "/admin/api/password", { jid: "dave@localhost", password: "x" }, { cookie: session, "x-csrf-token": csrf });
    assert.equal(weak.status, 400);
    assert.match((await weak.json() as { error: string }).error, /at least/);
    const sent = await post(ts, "/admin/api/announce", { host: "localhost", subject: "Hello", body: "from the console" }, { cookie: session, "x-csrf-token": csrf });
    assert.ok((await sent.json() as { sent: number }).sent >= 2);
    const msg = await dave.receive((el) => el.name === "message" && el.attrs.from === "localhost");
    assert.equal(msg.getChildText("body"), "from the console");

    await ts.accounts.create("localhost", "eve", "eve-password");
    const notAdmin = await post(ts, "/admin/login", { jid: "eve@localhost", password: "eve-password" });
    assert.equal(notAdmin.status, 403);
  });

  it("gives the CLI a bearer token in <dataDir>/admin.json, readable by the owner only", async () => {
    const file = adminFile(ts.dataDir);
    assert.equal(statSync(file).mode & 0o077, 0, "no access for group and others");
    const info = JSON.parse(readFileSync(file, "utf8")) as AdminFile;
    const state = await fetch(new URL("api/state", info.url), { headers: { authorization: `Bearer ${info.token}` } });
    assert.equal(state.status, 200);
    const wrong = await fetch(new URL("api/state", info.url), { headers: { authorization: `Bearer ${info.token.slice(1)}x` } });
    assert.equal(wrong.status, 401);
  });

  it("answers 421 to a request for another site's name (DNS rebinding)", async () => {
    const status = (host: string) => new Promise<number>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port: ts.httpPort, path: "/admin/", headers: { host } }, (res) => { res.resume(); resolve(res.statusCode!); }).on("error", reject);
    });
    assert.equal(await status("attacker.example:5280"), 421);
    assert.equal(await status(`localhost:${ts.httpPort}`), 200);
    assert.equal(await status("admin.localhost"), 200, "a subdomain of a served domain (a reverse proxy)");
    assert.equal(await status(`[::1]:${ts.httpPort}`), 200);
  });

  it("answers 403 to an address outside admin.networks", async () => {
    const other = await startTestServer({ admin: { accounts: ["root@localhost"], networks: ["192.0.2.0/24"] } });
    try {
      const res = await fetch(`http://127.0.0.1:${other.httpPort}/admin/`);
      assert.equal(res.status, 403);
      assert.match(await res.text(), /admin\.networks/);
    } finally {
      await other.stop();
    }
  });
});
