// Delivery guarantees of the mobile adapter: sync after being offline (exactly once, in order), resume
// from the device's acknowledged seq, idempotent resends, and no acknowledged message lost when the
// server stops or is killed.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { encodeFrame } from "../src/mobile/codec.js";
import { ContentType, type Message } from "../src/mobile/schema.js";
import { ErrorCode, MobileClient, MobileRequestError, Platform, freePort, mobileUser, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
let n = 0;
const fresh = (name: string) => `${name}${++n}`;

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Asserts that `pushed` holds each of `bodies` exactly once, in this order, with increasing seqs. */
function assertExactlyOnceInOrder(pushed: Message[], bodies: string[]): void {
  assert.equal(pushed.length, bodies.length, `expected ${bodies.length} pushed messages, got ${pushed.length}`);
  assert.deepEqual(pushed.map((m) => m.body), bodies);
  for (let i = 1; i < pushed.length; i++) assert.ok(pushed[i]!.seq > pushed[i - 1]!.seq, "seqs increase");
  assert.equal(new Set(pushed.map((m) => m.seq)).size, pushed.length, "no seq twice");
}

describe("mobile delivery guarantees", function () {
  this.timeout(60_000);
  let ts: MobileTestServer;
  // A small window and batch, so that the sync below goes through many acknowledged rounds.
  before(async () => { ts = await startMobileServer({ syncWindow: 100, syncBatch: 40 }); });
  after(() => ts.stop());

  it("syncs 1,000 messages received while offline exactly once, in order, then nothing twice", async () => {
    const mu = fresh("offline"), xu = fresh("sender");
    const owner = `${mu}@localhost`;
    const first = await mobileUser(ts, mu, { deviceId: "phone" });
    first.close();
    await first.closed();
    const x = await onlineUser(ts, xu);
    const bodies = Array.from({ length: 1000 }, (_, i) => `offline message ${i}`);
    for (const b of bodies) x.send(xml("message", { to: owner, type: "chat" }, xml("body", null, b)));
    const timeline = ts.server.context.store.timeline;
    await until(async () => (await timeline.lastSeq(owner)) >= 1000, 20_000, "1000 stored messages");

    const m = await mobileUser(ts, mu, { deviceId: "phone" });
    const state = await m.syncComplete();
    assert.equal(state.syncedSeq, await timeline.lastSeq(owner));
    assertExactlyOnceInOrder(m.pushed, bodies);
    await until(() => m.ackedSeq === state.syncedSeq, 2000, "the last ack");
    await new Promise((r) => setTimeout(r, 50));
    m.close();
    await m.closed();

    // Everything was acknowledged: the next login pushes nothing, and new messages continue the seq.
    const again = await mobileUser(ts, mu, { deviceId: "phone" });
    assert.equal(again.session!.resumeAfterSeq, state.syncedSeq);
    assert.equal(again.pushed.length, 0);
    x.send(xml("message", { to: owner, type: "chat" }, xml("body", null, "one more")));
    const more = await again.nextMessage((msg) => msg.body === "one more");
    assert.equal(more.seq, state.syncedSeq + 1);
    // Another device of the same user syncs the whole timeline on its own.
    const tablet = await mobileUser(ts, mu, { deviceId: "tablet", platform: Platform.IPADOS });
    assert.equal(tablet.pushed.length, 1001);
    again.close(); tablet.close(); x.close();
  });

  it("resumes after a drop from the last acknowledged seq: nothing lost, nothing acknowledged twice", async () => {
    const mu = fresh("resume"), xu = fresh("resumex");
    const owner = `${mu}@localhost`;
    const x = await onlineUser(ts, xu);
    const bodies = Array.from({ length: 300 }, (_, i) => `m${i}`);
    await ts.accounts.create(ts.host, mu, "password");
    for (const b of bodies) x.send(xml("message", { to: owner, type: "chat" }, xml("body", null, b)));
    await until(async () => (await ts.server.context.store.timeline.lastSeq(owner)) >= 300, 10_000, "300 stored messages");

    // This device acknowledges by hand: 130 of them, then its network goes.
    const m = await mobileUser(ts, mu, { deviceId: "flaky", autoAck: false, waitSync: false });
    await until(() => m.pushed.length >= 100, 5000, "the first window");
    // The server stops at the window (100 unacknowledged) until the device acknowledges.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(m.pushed.length, 100);
    m.ws.send(encodeFrame(0, "ack", { seq: m.pushed[59]!.seq, conversation: "" }));
    await until(() => m.pushed.length >= 160, 5000, "the window to move");
    m.ws.send(encodeFrame(0, "ack", { seq: m.pushed[129]!.seq, conversation: "" }));
    await until(() => m.pushed.length >= 200, 5000, "more pushes");
    await new Promise((r) => setTimeout(r, 100));
    m.drop();

    const back = await mobileUser(ts, mu, { deviceId: "flaky" });
    assert.equal(back.session!.resumeAfterSeq, m.pushed[129]!.seq);
    assertExactlyOnceInOrder(back.pushed, bodies.slice(130));
    back.close(); x.close();
  });

  it("takes a client message id reused for another recipient as a new message: delivered, stored and acknowledged as one", async () => {
    const [mu, bu, cu] = [fresh("reuse"), fresh("reuseb"), fresh("reusec")];
    const b = await mobileUser(ts, bu);
    const c = await mobileUser(ts, cu);
    const m = await mobileUser(ts, mu);
    const first = await m.send(`${bu}@localhost`, "for b", { clientMsgId: "reuse-1" });
    assert.equal(first.duplicate, false);
    await b.nextMessage((x) => x.body === "for b");
    // Delivery and ack agree: never the first message's ack while the second is delivered.
    const second = await m.send(`${cu}@localhost`, "for c", { clientMsgId: "reuse-1" });
    assert.equal(second.duplicate, false);
    assert.ok(second.seq > first.seq);
    assert.notEqual(second.serverMsgId, first.serverMsgId);
    await c.nextMessage((x) => x.body === "for c");
    // A true resend (same recipient) is still answered with the first ack.
    const again = await m.send(`${bu}@localhost`, "for b", { clientMsgId: "reuse-1" });
    assert.deepEqual({ ...again, serverTime: 0 }, { ...first, duplicate: true, serverTime: 0 });
    m.close(); b.close(); c.close();
  });

  it("makes a resend with the same client message id after a dropped connection one message on both sides", async () => {
    const mu = fresh("resend"), xu = fresh("resendx");
    const X = `${xu}@localhost`;
    const x = await onlineUser(ts, xu);
    const m = await mobileUser(ts, mu, { deviceId: "d" });
    // The request leaves, the server stores and delivers it, the connection drops before the ack is read.
    const req = { clientMsgId: "resend-1", to: X, body: "exactly once", contentType: ContentType.TEXT, mentions: [], searchableText: "", payload: new Uint8Array(0) };
    m.ws.send(encodeFrame(4242, "send", req));
    const delivered = await x.receive((el: Element) => el.name === "message" && el.getChildText("body") === "exactly once");
    m.drop();

    const again = await mobileUser(ts, mu, { deviceId: "d" });
    const ack = await again.sendMessage(req);
    assert.equal(ack.duplicate, true);
    const stored = await ts.server.context.store.timeline.query(`${mu}@localhost`, { with: X, limit: 100 });
    assert.deepEqual(stored.map((r) => r.originId), ["resend-1"]);
    assert.equal(ack.seq, stored[0]!.seq);
    assert.equal(ack.serverMsgId, stored[0]!.stanzaId);
    // The same answer every time; the XMPP user got it once; the recipient's timeline has it once.
    const third = await again.sendMessage(req);
    assert.deepEqual(third, ack);
    await x.nothing((el) => el.name === "message" && el.getChildText("body") === "exactly once", 500);
    const theirs = await ts.server.context.store.timeline.query(X, { with: `${mu}@localhost`, limit: 100 });
    assert.equal(theirs.filter((r) => r.originId === "resend-1").length, 1);
    assert.equal(delivered.getChild("origin-id", "urn:xmpp:sid:0")?.attrs.id, "resend-1");

    // Two sends of one id racing on one connection: one message, the same ack twice.
    const [a, b] = await Promise.all([again.send(X, "raced", { clientMsgId: "race-1" }), again.send(X, "raced", { clientMsgId: "race-1" })]);
    assert.equal(a.seq, b.seq);
    assert.deepEqual([a.duplicate, b.duplicate].sort(), [false, true]);
    await x.receive((el) => el.name === "message" && el.getChildText("body") === "raced");
    await x.nothing((el) => el.name === "message" && el.getChildText("body") === "raced", 300);
    again.close(); x.close();
  });

  it("keeps every acknowledged message and every device ack across a restart", async () => {
    const a = fresh("rsa"), b = fresh("rsb");
    const sender = await mobileUser(ts, a, { deviceId: "s" });
    await ts.accounts.create(ts.host, b, "password");
    const acks = [];
    for (let i = 0; i < 20; i++) acks.push(await sender.send(`${b}@localhost`, `before restart ${i}`));
    const reader = await mobileUser(ts, b, { deviceId: "r" });
    await until(() => reader.ackedSeq === 20, 3000, "the reader's acks");
    await new Promise((r) => setTimeout(r, 50));
    reader.close();
    for (let i = 20; i < 30; i++) acks.push(await sender.send(`${b}@localhost`, `before restart ${i}`));
    await ts.restart();
    await sender.closed();

    const readerAgain = await mobileUser(ts, b, { deviceId: "r" });
    assert.equal(readerAgain.session!.resumeAfterSeq, 20);
    assertExactlyOnceInOrder(readerAgain.pushed, Array.from({ length: 10 }, (_, i) => `before restart ${i + 20}`));
    const senderAgain = await mobileUser(ts, a, { deviceId: "s" });
    const history = await senderAgain.request("pull", { limit: 100 });
    assert.deepEqual(history.messages.map((msg) => msg.seq), acks.map((ack) => ack.seq));
    assert.deepEqual(history.messages.map((msg) => msg.serverMsgId), acks.map((ack) => ack.serverMsgId));
    readerAgain.close(); senderAgain.close();
  });
});

describe("mobile: killing the server process", function () {
  this.timeout(90_000);
  let dir: string;
  let child: ChildProcess | null = null;
  let c2sPort: number;
  let mobilePort: number;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hearth-mobile-kill-"));
    c2sPort = await freePort();
    mobilePort = await freePort();
    writeFileSync(path.join(dir, "hearth.yaml"), [
      "hosts: [localhost]",
      `dataDir: ${dir}/data`,
      "log: { level: warn }",
      `c2s: { bind: 127.0.0.1, port: ${c2sPort}, directTlsPort: null, requireTls: false }`,
      "s2s: { port: null, directTlsPort: null }",
      "http: { port: null }",
      "auth: { allowPlainInsecure: true, scramIterations: 4096 }",
      "registration: { policy: open }",
      `modules: { mobile: { port: ${mobilePort}, bind: 127.0.0.1 } }`,
      "",
    ].join("\n"));

  });

  after(() => {
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(): Promise<void> {
    const p = spawn(process.execPath, [path.join(root, "bin/hearth.js"), "start", "--config", path.join(dir, "hearth.yaml")], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    child = p;
    let err = "";
    p.stderr!.on("data", (d) => { err += d; });
    const url = `ws://127.0.0.1:${mobilePort}/mobile`;
    await until(async () => {
      if (p.exitCode !== null) throw new Error(`the server exited: ${err}`);
      try { (await MobileClient.connect(url)).close(); return true; } catch { return false; }
    }, 20_000, "the server to listen");
  }

  async function addUser(name: string): Promise<void> {
    const p = spawn(process.execPath, [path.join(root, "bin/hearth.js"), "adduser", `${name}@localhost`, "--config", path.join(dir, "hearth.yaml")], { cwd: dir, stdio: ["pipe", "ignore", "pipe"] });
    p.stdin!.end("password\n");
    const code = await new Promise<number | null>((r) => p.on("exit", r));
    assert.equal(code, 0, "account add");
  }

  it("loses no acknowledged message when the process is SIGKILLed mid-conversation", async () => {
    await addUser("killa");
    await addUser("killb");
    await start();
    const url = `ws://127.0.0.1:${mobilePort}/mobile`;
    const login = async (user: string, deviceId: string) => {
      const c = await MobileClient.connect(url);
      await c.login({ username: user, password: "password", deviceId });
      return c;
    };
    const a = await login("killa", "a");
    const b = await login("killb", "b");
    // Both keep talking; whatever was acknowledged to its sender must survive.
    const acked = new Map<string, number>();
    let stop = false;
    const talk = async (c: MobileClient, to: string, prefix: string) => {
      for (let i = 0; !stop; i++) {
        const id = `${prefix}-${i}`;
        try {
          const ack = await c.send(to, id, { clientMsgId: id });
          acked.set(id, ack.seq);
        } catch {
          return;
        }
      }
    };
    const talking = Promise.all([talk(a, "killb@localhost", "a"), talk(b, "killa@localhost", "b")]);
    await until(() => acked.size >= 200, 20_000, "200 acknowledged messages");
    child!.kill("SIGKILL");
    await new Promise((r) => child!.once("exit", r));
    stop = true;
    await talking;
    const ackedAtKill = new Map(acked);

    await start();
    const a2 = await MobileClient.connect(url);
    await a2.login({ username: "killa", password: "password", deviceId: "a", resumeAfterSeq: 0 });
    await a2.syncComplete();
    const b2 = await MobileClient.connect(url);
    await b2.login({ username: "killb", password: "password", deviceId: "b", resumeAfterSeq: 0 });
    await b2.syncComplete();
    const idsOf = (c: MobileClient) => new Map([...c.messages.values()].map((m) => [m.clientMsgId, m]));
    const aHas = idsOf(a2), bHas = idsOf(b2);
    let checked = 0;
    for (const [id, seq] of ackedAtKill) {
      const [senderView, recipientView] = id.startsWith("a-") ? [aHas, bHas] : [bHas, aHas];
      assert.equal(senderView.get(id)?.seq, seq, `${id}: the sender's copy at its acknowledged seq`);
      assert.ok(recipientView.has(id), `${id}: the recipient's copy`);
      checked++;
    }
    assert.ok(checked >= 200);
    a2.close(); b2.close();
  });
});
