// Bad input and limits of the mobile protocol: every case answered with its documented error code
// (schemas/proto/README.md "Error codes"), and neither the session nor the process falls over.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import protobuf from "protobufjs";
import { decodeFrame, encodeFrame, peekRequestId } from "../src/mobile/codec.js";
import { KickReason, protoRoot, schema, type Envelope } from "../src/mobile/schema.js";
import { ErrorCode, MobileClient, MobileRequestError, mobileUser, rejectsWith, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

const rejects = rejectsWith;

/** The next Error push (request_id 0, or the given one) on a raw connection. */
function nextError(c: MobileClient, requestId = 0, timeoutMs = 3000): Promise<{ code: number; message: string; requestId: number }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { c.ws.off("message", on); reject(new Error("no error frame")); }, timeoutMs);
    const on = (data: Buffer) => {
      const r = decodeFrame(data, 1 << 30);
      if (r.ok && r.envelope.payload === "error" && r.envelope.requestId === requestId) {
        clearTimeout(t);
        c.ws.off("message", on);
        resolve({ ...r.envelope.body, requestId });
      }
    };
    c.ws.on("message", on);
  });
}

describe("mobile protocol: bad input, limits, permissions", function () {
  let ts: MobileTestServer;
  before(async () => {
    ts = await startMobileServer({
      maxFrameBytes: 4096, requestsPerSecond: 20, requestBurst: 20, loginTimeoutSeconds: 0.5,
      heartbeatSeconds: 0.25, heartbeatTimeoutMultiplier: 2,
    });
  });
  after(() => ts.stop());

  describe("frames", () => {
    it("answers text frames, garbage and truncated frames with BAD_FRAME and keeps the connection", async () => {
      const c = await MobileClient.connect(ts.mobileUrl);
      c.sendRaw("hello?", false);
      assert.equal((await nextError(c)).code, ErrorCode.BAD_FRAME);
      c.sendRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
      assert.equal((await nextError(c)).code, ErrorCode.BAD_FRAME);
      const good = encodeFrame(9, "ping", { clientTime: 123456789 });
      c.sendRaw(good.subarray(0, good.length - 2));
      const truncated = await nextError(c, 9);
      assert.equal(truncated.code, ErrorCode.BAD_FRAME, "the request id is still recovered from a broken frame");
      assert.equal((await c.request("ping", { clientTime: 7 })).clientTime, 7);
      c.close();
    });

    it("answers oversized frames with FRAME_TOO_LARGE and the request id, and closes on absurd ones", async () => {
      const c = await MobileClient.connect(ts.mobileUrl);
      const big = encodeFrame(77, "ping", { clientTime: 1 });
      const frame = new Uint8Array(10_000);
      frame.set(big);
      // A valid envelope padded with an unknown length-delimited field, 10 kB in all.
      const padded = Buffer.concat([Buffer.from(big), Buffer.from([0xfa, 0x3e]), Buffer.from(varint(9990)), Buffer.alloc(9990)]);
      c.sendRaw(padded);
      const err = await nextError(c, 77);
      assert.equal(err.code, ErrorCode.FRAME_TOO_LARGE);
      assert.match(err.message, /4096/);
      assert.equal((await c.request("ping", { clientTime: 2 })).clientTime, 2);
      c.sendRaw(Buffer.alloc(4096 * 4 + 1));
      assert.equal((await c.closed()).code, 1009);
    });

    it("answers envelopes without a known payload, and pushes sent as requests, with UNKNOWN_PAYLOAD", async () => {
      const c = await MobileClient.connect(ts.mobileUrl);
      c.sendRaw(schema().envelope.encode({ requestId: 5 }).finish());
      assert.equal((await nextError(c, 5)).code, ErrorCode.UNKNOWN_PAYLOAD);
      // A field number from a future version of the protocol.
      c.sendRaw(Buffer.concat([Buffer.from([0x08, 6]), Buffer.from([0x80, 0x7d, 0x01])]));
      assert.equal((await nextError(c, 6)).code, ErrorCode.UNKNOWN_PAYLOAD);
      c.sendRaw(encodeFrame(8, "messagePush", { messages: [] }));
      assert.equal((await nextError(c, 8)).code, ErrorCode.UNKNOWN_PAYLOAD);
      c.sendRaw(encodeFrame(10, "sendAck", { clientMsgId: "x", serverMsgId: "y", seq: 1, serverTime: 1, duplicate: false }));
      assert.equal((await nextError(c, 10)).code, ErrorCode.UNKNOWN_PAYLOAD);
      c.close();
    });

    it("survives random frames (fuzz) and still serves everyone", async () => {
      const c = await mobileUser(ts, fresh("fuzz"));
      let seed = 12345;
      const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const base = encodeFrame(3, "send", { clientMsgId: "f", to: "x@localhost", body: "hello", contentType: 0, mentions: [], searchableText: "", payload: new Uint8Array(0) });
      for (let i = 0; i < 300; i++) {
        const f = Buffer.from(base);
        for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) f[Math.floor(rnd() * f.length)] = Math.floor(rnd() * 256);
        c.sendRaw(f.subarray(0, 1 + Math.floor(rnd() * f.length)));
      }
      assert.equal((await c.request("ping", { clientTime: 99 })).clientTime, 99);
      const other = await mobileUser(ts, fresh("bystander"));
      assert.equal((await other.request("ping", { clientTime: 1 })).clientTime, 1);
      c.close(); other.close();
    });

    it("reads the request id of a frame from its first bytes", () => {
      assert.equal(peekRequestId(encodeFrame(300, "ping", { clientTime: 1 })), 300);
      assert.equal(peekRequestId(encodeFrame(0xffffffff, "ping", { clientTime: 1 })), 0xffffffff);
      assert.equal(peekRequestId(new Uint8Array([0x12, 0x00])), 0);
      const r = decodeFrame(encodeFrame(4, "readMarker", { conversation: "a@b", seq: 2 ** 40 }), 1000);
      assert.ok(r.ok);
      assert.deepEqual((r as { envelope: Envelope }).envelope, { requestId: 4, payload: "readMarker", body: { conversation: "a@b", seq: 2 ** 40 } });
    });
  });

  describe("authentication", () => {
    it("answers requests before login with NOT_AUTHENTICATED, and ping without", async () => {
      const c = await MobileClient.connect(ts.mobileUrl);
      await rejects(c.request("getRoster", {}), ErrorCode.NOT_AUTHENTICATED);
      await rejects(c.request("send", { clientMsgId: "1", to: "a@localhost", body: "x" }), ErrorCode.NOT_AUTHENTICATED);
      await rejects(c.request("ack", { seq: 1 }), ErrorCode.NOT_AUTHENTICATED);
      assert.equal((await c.request("ping", { clientTime: 3 })).clientTime, 3);
      c.close();
    });

    it("refuses bad credentials with AUTH_FAILED and closes after three failures", async () => {
      const user = fresh("victim");
      await ts.accounts.create(ts.host, user, "the-password");
      const c = await MobileClient.connect(ts.mobileUrl);
      await rejects(c.login({ username: user, password: "wrong", deviceId: "d" }), ErrorCode.AUTH_FAILED);
      await rejects(c.login({ username: "no-such-user", password: "wrong", deviceId: "d" }), ErrorCode.AUTH_FAILED);
      await rejects(c.login({ username: `${user}@elsewhere.example`, password: "the-password", deviceId: "d" }), ErrorCode.AUTH_FAILED);
      assert.equal((await c.closed()).code, 1008);
      const ok = await MobileClient.connect(ts.mobileUrl);
      await ok.login({ username: user, password: "the-password", deviceId: "d" });
      await rejects(ok.login({ username: user, password: "the-password", deviceId: "d" }), ErrorCode.ALREADY_AUTHENTICATED);
      ok.close();
    });

    it("checks login fields", async () => {
      const user = fresh("fields");
      await ts.accounts.create(ts.host, user, "password");
      const c = await MobileClient.connect(ts.mobileUrl);
      await rejects(c.login({ username: user, password: "password", deviceId: "not a device id!" }), ErrorCode.INVALID_ARGUMENT);
      await rejects(c.login({ username: user, password: "password", deviceId: "d", protocolVersion: 99 }), ErrorCode.UNSUPPORTED_VERSION);
      await rejects(c.request("login", { username: user, deviceId: "d" }), ErrorCode.INVALID_ARGUMENT);
      c.close();
    });

    it("closes connections that do not log in in time", async () => {
      const c = await MobileClient.connect(ts.mobileUrl);
      const t0 = Date.now();
      assert.equal((await c.closed(3000)).code, 1008);
      assert.ok(Date.now() - t0 >= 400);
    });

    it("closes silent connections after heartbeat × multiplier with Kicked HEARTBEAT_TIMEOUT, and keeps beating ones", async () => {
      const silent = await mobileUser(ts, fresh("silent"), { heartbeat: false });
      const beating = await mobileUser(ts, fresh("beating"));
      const kicked = await silent.nextPush("kicked", () => true, 3000);
      assert.equal(kicked.reason, KickReason.HEARTBEAT_TIMEOUT);
      await silent.closed();
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(beating.isClosed, false);
      beating.close();
    });
  });

  describe("permissions and limits", () => {
    it("refuses other users' data with FORBIDDEN or NOT_FOUND", async () => {
      const a = fresh("owner"), b = fresh("stranger");
      const ca = await mobileUser(ts, a);
      const cb = await mobileUser(ts, b);
      // Presence of someone who has not accepted you.
      await rejects(cb.request("getPresence", { jids: [`${a}@localhost`] }), ErrorCode.FORBIDDEN);
      // Recalling someone else's message.
      const ack = await ca.send(`${b}@localhost`, "mine, not yours");
      const theirs = await cb.nextMessage((m) => m.body === "mine, not yours");
      await rejects(cb.request("recall", { conversation: `${a}@localhost`, seq: theirs.seq }), ErrorCode.FORBIDDEN);
      // Another user's token, or a seq outside one's own timeline.
      const { token } = await ca.request("issueToken", {});
      await rejects(cb.request("revokeToken", { token }), ErrorCode.NOT_FOUND);
      await rejects(cb.request("readMarker", { conversation: `${a}@localhost`, seq: ack.seq + 1000 }), ErrorCode.INVALID_ARGUMENT);
      await rejects(cb.request("receipt", { conversation: `${a}@localhost`, seq: ack.seq + 1000 }), ErrorCode.NOT_FOUND);
      // A conversation is always one's own copy: the stranger pulls nothing of a and c's chat.
      const c = fresh("third");
      const cc = await mobileUser(ts, c);
      await ca.send(`${c}@localhost`, "private");
      const peek = await cb.request("pull", { conversation: `${c}@localhost` });
      assert.equal(peek.messages.length, 0);
      assert.equal(peek.isEnd, true);
      await rejects(cb.request("pull", { conversation: "not a jid@@" }), ErrorCode.INVALID_ARGUMENT);
      await rejects(cb.request("pull", { limit: 501 }), ErrorCode.INVALID_ARGUMENT);
      ca.close(); cb.close(); cc.close();
    });

    it("answers UNSUPPORTED for groups when the server runs no MUC service", async () => {
      const plain = await startMobileServer({}, { modules: { disabled: ["muc"] } });
      try {
        const c = await mobileUser(plain, fresh("grp"));
        assert.equal(c.session!.groupsEnabled, false);
        await rejects(c.request("createGroup", { name: "g" }), ErrorCode.UNSUPPORTED);
        await rejects(c.request("getGroups", {}), ErrorCode.UNSUPPORTED);
        c.close();
      } finally {
        await plain.stop();
      }
    });

    it("rate-limits requests with RATE_LIMITED and a retry delay, not pings and acks", async () => {
      const c = await mobileUser(ts, fresh("flood"));
      const results = await Promise.allSettled(Array.from({ length: 60 }, () => c.request("getRoster", {})));
      const limited = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason as MobileRequestError);
      assert.ok(limited.length > 0, "some requests were limited");
      assert.ok(limited.every((e) => e.code === ErrorCode.RATE_LIMITED && e.retryAfterMs > 0));
      assert.ok(results.some((r) => r.status === "fulfilled"));
      assert.equal((await c.request("ping", { clientTime: 5 })).clientTime, 5);
      await new Promise((r) => setTimeout(r, limited[0]!.retryAfterMs + 50));
      await c.request("getRoster", {});
      c.close();
    });
  });
});

describe("mobile schema", () => {
  it("loads, and the TypeScript constants match the .proto files", () => {
    const s = schema();
    assert.ok(s.envelope.oneofs.payload!.fieldsArray.length > 40);
    const root = new protobuf.Root();
    root.resolvePath = (_o, t) => path.join(protoRoot(), t);
    root.loadSync("hearth/mobile/v1/envelope.proto");
    for (const f of readdirSync(path.join(protoRoot(), "hearth/mobile/v1"))) {
      assert.ok(f.endsWith(".proto"), f);
    }
  });

  it("generates Java and Kotlin with protoc, and the Java compiles", function () {
    this.timeout(120_000);
    // .ci/run installs Debian's protobuf-compiler and libprotobuf-java; javac comes with the JDK.
    assert.equal(spawnSync("protoc", ["--version"]).status, 0, "protoc is required (apt-get install protobuf-compiler)");
    const out = mkdtempSync(path.join(tmpdir(), "hearth-proto-"));
    try {
      const files = readdirSync(path.join(protoRoot(), "hearth/mobile/v1")).map((f) => `hearth/mobile/v1/${f}`);
      execFileSync("protoc", [`-I${protoRoot()}`, `--java_out=${out}/java`, `--kotlin_out=${out}/kt`, ...files], { stdio: "pipe", env: process.env, cwd: protoRoot(), ...mkdirs(out) });
      assert.ok(existsSync(path.join(out, "java/im/hearth/mobile/v1/Envelope.java")));
      assert.ok(existsSync(path.join(out, "kt/im/hearth/mobile/v1/EnvelopeKt.kt")));
      const jar = "/usr/share/java/protobuf.jar";
      assert.ok(existsSync(jar), "apt-get install libprotobuf-java");
      assert.equal(spawnSync("javac", ["-version"]).status, 0, "javac is required (a JDK)");
      {
        const sources: string[] = [];
        const walk = (d: string) => { for (const e of readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(path.join(d, e.name)) : sources.push(path.join(d, e.name)); };
        walk(path.join(out, "java"));
        execFileSync("javac", ["-nowarn", "-cp", jar, "-d", path.join(out, "classes"), ...sources], { stdio: "pipe" });
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

function mkdirs(out: string): Record<string, never> {
  for (const d of ["java", "kt", "classes"]) execFileSync("mkdir", ["-p", path.join(out, d)]);
  return {};
}

function varint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
  out.push(v);
  return out;
}

