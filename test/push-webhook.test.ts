// The push webhook for mobile-protocol apps: a local HTTP server in the test plays the app operator's push
// gateway; the server runs as a process so that its dead-letter log line can be read.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createHmac, timingSafeEqual } from "node:crypto";
import { MobileClient, Platform, freePort } from "./helpers/mobile-client.js";
import type { RawClient } from "./helpers/raw-client.js";
import { ServerProcess, plainLogin } from "./helpers/server-process.js";
import { xml } from "../src/xml/element.js";

const SECRET = "gateway-shared-secret";

interface Hit {
  body: string; signature: string | undefined;
  json: { event: string; user: string; devices: string[]; from: string; body?: string; room?: string; mention?: boolean };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("push webhook for mobile-protocol users", function () {
  this.timeout(60_000);
  let gateway: http.Server;
  const hits: Hit[] = [];
  let server: ServerProcess;
  let mobileUrl: string;
  const clients: Array<RawClient | MobileClient> = [];

  before(async () => {
    // The gateway accepts events for everyone but "broken", whose events fail with 503.
    gateway = http.createServer((req, res) => {
      let body = "";
      req.on("data", (d) => { body += d; });
      req.on("end", () => {
        const json = JSON.parse(body) as Hit["json"];
        hits.push({ body, signature: req.headers["x-hearth-signature"] as string | undefined, json });
        res.writeHead(json.user.startsWith("broken@") ? 503 : 204).end();
      });
    });
    await new Promise<void>((r) => gateway.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/push`;
    const mobilePort = await freePort();
    mobileUrl = `ws://127.0.0.1:${mobilePort}/mobile`;
    server = await ServerProcess.create("push-webhook", [
      "registration: { policy: open }",
      `modules: { mobile: { port: ${mobilePort}, bind: 127.0.0.1 }, push: { webhook: { url: "${url}", secret: ${SECRET}, attempts: 3, backoffMs: 200, includeBody: true } } }`,
    ]);
    for (const u of ["mina", "broken", "romeo", "nadia"]) await server.addUser(`${u}@localhost`, "password");
    await server.start();
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.dispose();
    gateway?.close();
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") process.stderr.write(`--- server ---\n${server.output()}\n`);
  });

  /** A mobile device that logs in once (so the server knows it) and goes offline. */
  async function deviceSeenThenOffline(user: string, deviceId: string): Promise<void> {
    const c = await MobileClient.connect(mobileUrl);
    await c.login({ username: user, password: "password", deviceId, platform: Platform.ANDROID });
    await c.syncComplete();
    await new Promise((r) => setTimeout(r, 200));
    c.close();
    await new Promise((r) => setTimeout(r, 300));
  }

  it("posts a signed event for a message to an offline mobile user", async () => {
    await deviceSeenThenOffline("mina", "pixel");
    const romeo = await plainLogin(server, "romeo", "pc");
    clients.push(romeo);
    romeo.send(xml("message", { to: "mina@localhost", type: "chat" }, xml("body", null, "wake up")));
    await until(() => hits.some((h) => h.json.user === "mina@localhost"), 10_000, "the webhook");
    const hit = hits.find((h) => h.json.user === "mina@localhost")!;
    assert.deepEqual(hit.json.devices, ["pixel"]);
    assert.equal(hit.json.from, "romeo@localhost");
    assert.equal(hit.json.body, "wake up");
    const expected = Buffer.from(`sha256=${createHmac("sha256", SECRET).update(hit.body).digest("hex")}`);
    assert.ok(hit.signature && hit.signature.length === expected.length && timingSafeEqual(Buffer.from(hit.signature), expected), "HMAC-SHA256 of the body with the shared secret");
    assert.notEqual(hit.signature, `sha256=${createHmac("sha256", "another secret").update(hit.body).digest("hex")}`);
  });

  it("posts a groupchat event for a message of a members-only room to an offline mobile member (XEP-0045)", async () => {
    await deviceSeenThenOffline("nadia", "tablet");
    const romeo = await plainLogin(server, "romeo", "muc");
    clients.push(romeo);
    const room = "garden@conference.localhost";
    romeo.send(xml("presence", { to: `${room}/romeo` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    await romeo.receive((el) => el.name === "message" && el.getChild("subject") !== undefined);
    const form = (fields: Record<string, string>) => xml("x", { xmlns: "jabber:x:data", type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", null, "http://jabber.org/protocol/muc#roomconfig")),
      ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, xml("value", null, v))));
    const configured = await romeo.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, form({ "muc#roomconfig_membersonly": "1" }))));
    assert.equal(configured.attrs.type, "result", configured.toString());
    const member = await romeo.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#admin" }, xml("item", { jid: "nadia@localhost", affiliation: "member" }))));
    assert.equal(member.attrs.type, "result", member.toString());
    romeo.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "picnic on sunday")));
    await until(() => hits.some((h) => h.json.user === "nadia@localhost"), 10_000, "the webhook");
    const hit = hits.find((h) => h.json.user === "nadia@localhost")!;
    assert.equal(hit.json.event, "groupchat");
    assert.equal(hit.json.room, room);
    assert.equal(hit.json.from, `${room}/romeo`);
    assert.equal(hit.json.mention, false);
    assert.deepEqual(hit.json.devices, ["tablet"]);
    assert.equal(hit.json.body, "picnic on sunday");
  });

  it("retries a failing webhook with backoff, then logs a dead letter", async () => {
    await deviceSeenThenOffline("broken", "iphone");
    const romeo = await plainLogin(server, "romeo", "pc2");
    clients.push(romeo);
    romeo.send(xml("message", { to: "broken@localhost", type: "chat" }, xml("body", null, "lost in the gateway")));
    const tries = () => hits.filter((h) => h.json.user === "broken@localhost");
    await until(() => server.output().includes("push webhook: dead letter"), 15_000, "the dead-letter log line");
    assert.equal(tries().length, 3, "webhook.attempts tries, each answered 503");
    assert.ok(tries().every((h) => h.body === tries()[0].body), "the same event each time");
    const line = server.output().split("\n").find((l) => l.includes("push webhook: dead letter"))!;
    const logged = JSON.parse(line) as { attempts: number; event: string; problem: string };
    assert.equal(logged.attempts, 3);
    assert.equal(logged.problem, "HTTP 503");
    assert.equal(JSON.parse(logged.event).user, "broken@localhost");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(tries().length, 3, "nothing after the dead letter");
  });
});
