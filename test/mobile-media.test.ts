// Media on the mobile protocol (media.proto): a phone uploads through an XEP-0363 slot of the server's
// upload service and sends the URL; an XMPP client gets it as body and XEP-0066 out-of-band data and
// downloads the same bytes; a phone gets the image as an IMAGE message.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { onlineUser } from "./helpers/raw-client.js";
import {
  ContentType, ErrorCode, mobileUser, rejectsWith as rejects, startMobileServer, type MobileTestServer,
} from "./helpers/mobile-client.js";

const OOB = "jabber:x:oob";

describe("mobile media through XEP-0363 slots", function () {
  let ts: MobileTestServer;
  before(async () => {
    ts = await startMobileServer({}, { modules: { upload: { maxFileSize: 500_000, quotaBytes: 1_200_000, allowedTypes: ["image/*", "audio/*"] } } });
  });
  after(() => ts.stop());

  it("announces the largest upload at login", async () => {
    const m = await mobileUser(ts, "announce");
    assert.equal(m.session!.maxUploadBytes, 500_000);
    m.close();
  });

  it("uploads a photo and sends it: the XMPP client gets body + OOB and downloads the same bytes", async () => {
    const phone = await mobileUser(ts, "phone");
    const xmpp = await onlineUser(ts, "desktop");
    const photo = randomBytes(200_000);
    const { url, ack } = await phone.sendFile("desktop@localhost", photo, "cat.jpg", "image/jpeg", ContentType.IMAGE);
    assert.ok(ack.seq > 0);
    assert.match(url, /^http:\/\/localhost:\d+\/upload\/[A-Za-z0-9_-]+\/cat\.jpg$/);
    const msg = await xmpp.receive((el) => el.name === "message" && el.getChildText("body") === url);
    assert.equal(msg.getChild("x", OOB)?.getChildText("url"), url, "XEP-0066 out-of-band data carries the URL");
    const res = await fetch(msg.getChild("x", OOB)!.getChildText("url")!);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/jpeg");
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(photo), "the downloaded photo differs");
    phone.close();
    xmpp.close();
  });

  it("delivers a photo from a phone to a phone as an IMAGE message with the URL", async () => {
    const a = await mobileUser(ts, "pa");
    const b = await mobileUser(ts, "pb");
    const { url } = await a.sendFile("pb@localhost", randomBytes(1000), "x.png", "image/png", ContentType.IMAGE);
    const got = await b.nextMessage((m) => m.body === url);
    assert.equal(got.contentType, ContentType.IMAGE);
    a.close();
    b.close();
  });

  it("maps refusals to protocol errors: too large, wrong type, bad arguments, quota with retry_after_ms", async () => {
    const m = await mobileUser(ts, "limits");
    await rejects(m.request("requestUpload", { filename: "big.jpg", size: 500_001, contentType: "image/jpeg" }), ErrorCode.INVALID_ARGUMENT);
    await rejects(m.request("requestUpload", { filename: "a.exe", size: 10, contentType: "application/x-msdownload" }), ErrorCode.FORBIDDEN);
    await rejects(m.request("requestUpload", { filename: "", size: 10, contentType: "image/png" }), ErrorCode.INVALID_ARGUMENT);
    await rejects(m.request("requestUpload", { filename: "z.png", size: 0, contentType: "image/png" }), ErrorCode.INVALID_ARGUMENT);
    await m.request("requestUpload", { filename: "1.png", size: 500_000, contentType: "image/png" });
    await m.request("requestUpload", { filename: "2.png", size: 500_000, contentType: "image/png" });
    const err = await rejects(m.request("requestUpload", { filename: "3.png", size: 500_000, contentType: "image/png" }), ErrorCode.RATE_LIMITED);
    assert.ok(err.retryAfterMs > 3_600_000, `retry after the window, got ${err.retryAfterMs}`);
    // The connection is still fine.
    assert.equal((await m.request("ping", { clientTime: 1 })).clientTime, 1);
    m.close();
  });
});

describe("mobile media without an upload service", function () {
  let ts: MobileTestServer;
  before(async () => { ts = await startMobileServer({}, { modules: { disabled: ["upload"] } }); });
  after(() => ts.stop());

  it("says so at login and answers RequestUpload with UNSUPPORTED", async () => {
    const m = await mobileUser(ts, "noupload");
    assert.equal(m.session!.maxUploadBytes, 0);
    await rejects(m.request("requestUpload", { filename: "a.png", size: 10, contentType: "image/png" }), ErrorCode.UNSUPPORTED);
    m.close();
  });
});
