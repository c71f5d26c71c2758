// XEP-0363 HTTP File Upload over real sockets: slots over XMPP, PUT and GET over HTTP on the built-in port.
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const NS_UPLOAD = "urn:xmpp:http:upload:0";
const INFO = "http://jabber.org/protocol/disco#info";
const ITEMS = "http://jabber.org/protocol/disco#items";

interface SlotUrls { put: string; get: string; headers: Record<string, string> }

const request = (filename: string, size: number | string, type?: string) =>
  xml("iq", { type: "get", to: "upload.localhost" }, xml("request", { xmlns: NS_UPLOAD, filename, size: String(size), "content-type": type }));

async function slot(c: RawClient, filename: string, size: number, type?: string): Promise<SlotUrls> {
  const res = await c.iq(request(filename, size, type));
  assert.equal(res.attrs.type, "result", res.toString());
  const s = res.getChild("slot", NS_UPLOAD)!;
  const headers: Record<string, string> = {};
  for (const h of s.getChild("put")!.getChildren("header")) headers[h.attrs.name as string] = h.getText();
  return { put: s.getChild("put")!.attrs.url as string, get: s.getChild("get")!.attrs.url as string, headers };
}

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

/** One HTTP request on a fresh connection (127.0.0.1, whatever host the URL names). */
function httpRequest(url: string, method: string, headers: Record<string, string | number> = {}, body?: Buffer): Promise<Reply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: Number(u.port), path: u.pathname + u.search, method, headers: { host: u.host, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const put = (s: SlotUrls, body: Buffer, type = "application/octet-stream", extra: Record<string, string> = {}) =>
  httpRequest(s.put, "PUT", { ...s.headers, "content-type": type, "content-length": body.length, ...extra }, body);

async function pollUntil(cond: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("XEP-0363 HTTP File Upload", function () {
  let ts: TestServer;
  let alice: RawClient;
  before(async () => {
    ts = await startTestServer({
      modules: { upload: { maxFileSize: 1_000_000, quotaBytes: 2_500_000, quotaWindowSeconds: 3600, slotSeconds: 2, fileExpirySeconds: 4 } },
    });
    alice = await onlineUser(ts, "alice");
  });
  after(async () => {
    alice.close();
    await ts.stop();
  });

  it("is found among the server's items with identity store/file and max-file-size", async () => {
    const items = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: ITEMS })));
    assert.ok(items.getChild("query", ITEMS)!.getChildren("item").some((i) => i.attrs.jid === "upload.localhost"));
    const info = (await alice.iq(xml("iq", { type: "get", to: "upload.localhost" }, xml("query", { xmlns: INFO })))).getChild("query", INFO)!;
    const id = info.getChild("identity")!;
    assert.deepEqual([id.attrs.category, id.attrs.type], ["store", "file"]);
    assert.ok(info.getChildren("feature").some((f) => f.attrs.var === NS_UPLOAD));
    const form = info.getChild("x", "jabber:x:data")!;
    const field = (v: string) => form.getChildren("field").find((f) => f.attrs.var === v)?.getChildText("value");
    assert.equal(field("FORM_TYPE"), NS_UPLOAD);
    assert.equal(field("max-file-size"), "1000000");
  });

  it("takes a file through a slot and serves it byte-identical with safe headers", async () => {
    const data = randomBytes(300_000);
    const s = await slot(alice, "../../etc/holiday photo.jpg", data.length, "image/jpeg");
    assert.equal(s.put, s.get);
    assert.match(s.get, /^http:\/\/localhost:\d+\/upload\/[A-Za-z0-9_-]+\/holiday%20photo\.jpg$/);
    assert.match(s.headers.Authorization!, /^Bearer /);
    // Nothing is served before the upload.
    assert.equal((await httpRequest(s.get, "GET")).status, 404);
    assert.equal((await put(s, data, "image/jpeg")).status, 201);
    const got = await httpRequest(s.get, "GET");
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(data), "the downloaded file differs");
    assert.equal(got.headers["content-type"], "image/jpeg");
    assert.equal(got.headers["content-length"], String(data.length));
    assert.equal(got.headers["x-content-type-options"], "nosniff");
    assert.match(String(got.headers["content-security-policy"]), /default-src 'none'/);
    assert.match(String(got.headers["content-security-policy"]), /sandbox/);
    assert.equal(got.headers["content-disposition"], `inline; filename="holiday photo.jpg"; filename*=UTF-8''holiday%20photo.jpg`);
    assert.equal(got.headers["access-control-allow-origin"], "*");
    const head = await httpRequest(s.get, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    // One use: the slot takes no second upload.
    assert.equal((await put(s, randomBytes(data.length), "image/jpeg")).status, 409);
    assert.ok((await httpRequest(s.get, "GET")).body.equals(data));
  });

  it("offers active content as a download, never inline", async () => {
    const page = Buffer.from("<script>alert(1)</script>");
    const s = await slot(alice, "page.html", page.length, "text/html");
    assert.equal((await put(s, page, "text/html")).status, 201);
    const got = await httpRequest(s.get, "GET");
    assert.match(got.headers["content-disposition"]!, /^attachment;/);
    assert.equal(got.headers["x-content-type-options"], "nosniff");
  });

  it("refuses a slot for an oversized file with file-too-large and the maximum (§3)", async () => {
    const res = await alice.iq(request("big.bin", 1_000_001));
    assert.equal(res.attrs.type, "error");
    assert.equal(errorCondition(res), "not-acceptable");
    assert.equal(res.getChild("error")!.attrs.type, "modify");
    const tooLarge = res.getChild("error")!.getChild("file-too-large", NS_UPLOAD)!;
    assert.equal(tooLarge.getChildText("max-file-size"), "1000000");
  });

  it("hands out slots only to users of this server", async () => {
    const service = ts.server.modules.service("upload")!;
    await assert.rejects(service.requestSlot("mallory@elsewhere.example", "x.bin", 10, undefined),
      (err: Error & { condition?: string }) => err.condition === "forbidden");
  });

  it("refuses malformed requests: bad-request", async () => {
    for (const [name, size, type] of [["x.bin", "-5"], ["x.bin", "many"], ["", 10], ["/", 10], ["x.bin", 10, "not a type"]] as const) {
      assert.equal(errorCondition(await alice.iq(request(name, size, type))), "bad-request", `${name} ${size} ${type}`);
    }
  });

  it("refuses an upload larger or smaller than the slot, and chunked bodies", async () => {
    const s = await slot(alice, "a.bin", 1000);
    assert.equal((await put(s, randomBytes(1001))).status, 413);
    assert.equal((await put(s, randomBytes(999))).status, 400);
    const chunked = await httpRequest(s.put, "PUT", { ...s.headers, "transfer-encoding": "chunked" }, randomBytes(1000));
    assert.equal(chunked.status, 411);
    // A body that stops short of its Content-Length leaves nothing behind, and the slot usable.
    await new Promise<void>((resolve) => {
      const u = new URL(s.put);
      const sock = net.connect(Number(u.port), "127.0.0.1", () => {
        sock.write(`PUT ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: ${s.headers.Authorization}\r\nContent-Length: 1000\r\n\r\n`);
        sock.write(randomBytes(400));
        setTimeout(() => sock.destroy(), 300);
      });
      sock.on("close", () => resolve());
      sock.on("error", () => undefined);
    });
    await pollUntil(async () => (await put(s, randomBytes(1000))).status === 201, "the slot to take a retry");
  });

  it("refuses a wrong or missing token, a wrong content type, and a slot of another name", async () => {
    const data = randomBytes(100);
    const s = await slot(alice, "b.png", 100, "image/png");
    assert.equal((await put({ ...s, headers: { Authorization: "Bearer AAAA" } }, data, "image/png")).status, 403);
    assert.equal((await put({ ...s, headers: {} }, data, "image/png")).status, 403);
    const other = await slot(alice, "c.png", 100, "image/png");
    assert.equal((await put({ ...s, headers: other.headers }, data, "image/png")).status, 403);
    assert.equal((await put(s, data, "text/html")).status, 415);
    assert.equal((await httpRequest(s.put.replace("b.png", "x.png"), "PUT", { ...s.headers, "content-length": 100 }, data)).status, 404);
    assert.equal((await put(s, data, "image/png")).status, 201);
  });

  it("refuses an expired slot", async () => {
    const s = await slot(alice, "late.bin", 10);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await put(s, randomBytes(10))).status, 410);
  });

  it("answers a CORS preflight for a web client's PUT", async () => {
    const s = await slot(alice, "cors.bin", 10);
    const pre = await httpRequest(s.put, "OPTIONS", {
      origin: "https://web.example", "access-control-request-method": "PUT", "access-control-request-headers": "authorization, content-type",
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers["access-control-allow-origin"], "*");
    assert.match(pre.headers["access-control-allow-methods"]!, /PUT/);
    assert.match(pre.headers["access-control-allow-headers"]!.toLowerCase(), /authorization/);
    assert.match(pre.headers["access-control-allow-headers"]!.toLowerCase(), /content-type/);
  });

  it("deletes stored files when they expire", async () => {
    const s = await slot(alice, "short.bin", 10);
    assert.equal((await put(s, randomBytes(10))).status, 201);
    const id = new URL(s.get).pathname.split("/")[2]!;
    const file = path.join(ts.dataDir, "upload", id);
    assert.ok(existsSync(file));
    await pollUntil(async () => (await httpRequest(s.get, "GET")).status === 404, "the file to expire");
    await pollUntil(async () => !existsSync(file), "the expiry sweep to delete the file");
    assert.ok(!readdirSync(path.join(ts.dataDir, "upload")).some((n) => n.startsWith(id)));
  });
});

describe("XEP-0363 quota and content types", function () {
  let ts: TestServer;
  let bob: RawClient;
  let carol: RawClient;
  before(async () => {
    ts = await startTestServer({ modules: { upload: { quotaBytes: 1000, quotaSlots: 3, quotaWindowSeconds: 3600, allowedTypes: ["image/*", "application/pdf"] } } });
    bob = await onlineUser(ts, "bob");
    carol = await onlineUser(ts, "carol");
  });
  after(async () => {
    bob.close();
    carol.close();
    await ts.stop();
  });

  it("refuses a user past the quota with resource-constraint and a retry time; others are unaffected", async () => {
    await slot(bob, "one.png", 600, "image/png");
    const res = await bob.iq(request("two.png", 600, "image/png"));
    assert.equal(errorCondition(res), "resource-constraint");
    assert.equal(res.getChild("error")!.attrs.type, "wait");
    const stamp = Date.parse(res.getChild("error")!.getChild("retry", NS_UPLOAD)!.attrs.stamp as string);
    assert.ok(stamp > Date.now() + 3_000_000, "retry after the window");
    await slot(bob, "three.png", 400, "image/png");
    await slot(carol, "mine.png", 1000, "image/png");
  });

  it("limits the number of slots per window too", async () => {
    const erin = await onlineUser(ts, "erin");
    for (let i = 0; i < 3; i++) await slot(erin, `${i}.png`, 1, "image/png");
    const res = await erin.iq(request("3.png", 1, "image/png"));
    assert.equal(errorCondition(res), "resource-constraint");
    assert.ok(res.getChild("error")!.getChild("retry", NS_UPLOAD));
    erin.close();
  });

  it("cuts a very long filename to 200 bytes of whole characters, at once", async () => {
    const frank = await onlineUser(ts, "frank");
    const started = Date.now();
    const long = await slot(frank, `${"é".repeat(100_000)}.png`, 1, "image/png");
    assert.ok(Date.now() - started < 3000, "the name was cut without quadratic work");
    assert.equal(decodeURIComponent(new URL(long.get).pathname.split("/").pop()!), "é".repeat(100));
    frank.close();
  });

  it("refuses content types outside the allowed list: not-acceptable", async () => {
    assert.equal(errorCondition(await carol.iq(request("x.exe", 10, "application/x-msdownload"))), "not-acceptable");
    assert.equal(errorCondition(await carol.iq(request("x.bin", 10))), "not-acceptable");
  });

  it("keeps slots and their tokens across a restart", async () => {
    const dave = await onlineUser(ts, "dave");
    const s = await slot(dave, "doc.pdf", 5, "application/pdf");
    dave.close();
    await ts.restart();
    const port = ts.httpPort;
    const moved = { ...s, put: s.put.replace(/:\d+\//, `:${port}/`), get: s.get.replace(/:\d+\//, `:${port}/`) };
    assert.equal((await put(moved, Buffer.from("%PDF-"), "application/pdf")).status, 201);
    assert.equal((await httpRequest(moved.get, "GET")).body.toString(), "%PDF-");
  });
});
