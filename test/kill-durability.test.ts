// The durability promise under a crash (DESIGN.md "the timeline"): nothing is delivered to a recipient or
// acknowledged to a sender before it is committed. The server runs as a child process; mobile senders keep
// many messages in flight to XMPP recipients, and the process is SIGKILLed in the middle of the burst.
// After a restart, every message a recipient received and every message a sender got an ack for is in
// both timelines (the sender's at the acknowledged seq).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { RawClient } from "./helpers/raw-client.js";
import { MobileClient, freePort } from "./helpers/mobile-client.js";
import type { TestServer } from "./helpers/server.js";
import { openSqliteStore } from "../src/storage/sqlite/index.js";
import { NS } from "../src/xml/ns.js";
import { xml } from "../src/xml/element.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const PAIRS = 3;
const IN_FLIGHT = 32; // per mobile sender

async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("durability: SIGKILL in the middle of a burst", function () {
  this.timeout(120_000);
  let dir: string;
  let child: ChildProcess | null = null;
  let c2sPort: number;
  let mobilePort: number;
  const config = () => path.join(dir, "hearth.yaml");

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hearth-kill-"));
    c2sPort = await freePort();
    mobilePort = await freePort();
    writeFileSync(config(), [
      "hosts: [localhost]",
      `dataDir: ${JSON.stringify(path.join(dir, "data"))}`,
      `storage: { sqlite: { path: ${JSON.stringify(path.join(dir, "data", "hearth.db"))} } }`,
      "log: { level: warn }",
      `c2s: { bind: 127.0.0.1, port: ${c2sPort}, directTlsPort: null, requireTls: false }`,
      "s2s: { port: null, directTlsPort: null }",
      "http: { port: null }",
      "auth: { allowPlainInsecure: true, scramIterations: 4096 }",
      "limits: { stanzasPerSecond: 0 }",
      `modules: { mobile: { port: ${mobilePort}, bind: 127.0.0.1, requestsPerSecond: 0 } }`,
      "",
    ].join("\n"));
  });

  after(() => {
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  async function cli(...args: string[]): Promise<void> {
    const p = spawn(process.execPath, [path.join(root, "bin/hearth.js"), ...args, "--config", config()], { cwd: dir, stdio: ["pipe", "ignore", "pipe"] });
    p.stdin!.end("password\n");
    let err = "";
    p.stderr!.on("data", (d) => { err += d; });
    const code = await new Promise<number | null>((r) => p.on("exit", r));
    assert.equal(code, 0, `hearth ${args.join(" ")}: ${err}`);
  }

  async function start(): Promise<void> {
    const p = spawn(process.execPath, [path.join(root, "bin/hearth.js"), "start", "--config", config()], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    child = p;
    let err = "";
    p.stderr!.on("data", (d) => { err += d; });
    const url = `ws://127.0.0.1:${mobilePort}/mobile`;
    const end = Date.now() + 30_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`the server exited: ${err}`);
      try {
        (await MobileClient.connect(url)).close();
        (await RawClient.connect({ c2sPort, host: "localhost" } as TestServer)).destroy();
        return;
      } catch { /* not yet */ }
      if (Date.now() > end) throw new Error("the server did not listen within 30 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function stop(signal: NodeJS.Signals): Promise<void> {
    const p = child!;
    child = null;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill(signal);
    await exited;
  }

  it("keeps every message that was delivered or acknowledged before the kill", async () => {
    const senders = Array.from({ length: PAIRS }, (_, i) => `ksend${i}`);
    const recipients = Array.from({ length: PAIRS }, (_, i) => `krecv${i}`);
    await cli("adduser", `${senders[0]}@localhost`); // the first one creates and migrates the database
    await Promise.all([...senders.slice(1), ...recipients].map((u) => cli("adduser", `${u}@localhost`)));
    await start();

    // XMPP recipients: record the origin-id of every message that reaches them.
    const received = new Map<string, string>(); // origin-id -> recipient
    const server = { c2sPort, host: "localhost" } as TestServer;
    const listening: Promise<void>[] = [];
    for (const user of recipients) {
      const c = await RawClient.connect(server);
      await c.login(user, "password", "r");
      c.send(xml("presence"));
      await c.receive((el) => el.name === "presence");
      listening.push((async () => {
        for (;;) {
          let el;
          try { el = await c.receive((m) => m.name === "message", 60_000); } catch { return; }
          const id = el.getChild("origin-id", NS.sid)?.attrs.id;
          if (id !== undefined) received.set(id, `${user}@localhost`);
        }
      })());
    }

    // Mobile senders: IN_FLIGHT sends outstanding each, until the connection dies with the process.
    const url = `ws://127.0.0.1:${mobilePort}/mobile`;
    const acked = new Map<string, { sender: string; recipient: string; seq: number }>();
    let sent = 0;
    const failures: string[] = [];
    const sending = senders.map(async (user, k) => {
      const c = await MobileClient.connect(url);
      await c.login({ username: user, password: "password", deviceId: "d" });
      const to = `${recipients[k]}@localhost`;
      let i = 0;
      const lane = async (): Promise<void> => {
        for (;;) {
          const id = `${user}-${i++}`;
          sent++;
          let ack;
          try { ack = await c.send(to, `burst ${id}`, { clientMsgId: id }); } catch (err) { failures.push(String(err)); return; }
          acked.set(id, { sender: `${user}@localhost`, recipient: to, seq: ack.seq });
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    });

    await until(() => acked.size >= 1500 && received.size >= 1000, 60_000,
      () => `1500 acknowledged and 1000 received messages (${sent} sent, ${acked.size} acknowledged, ${received.size} received; ${failures.slice(0, 3).join("; ")})`);
    await stop("SIGKILL");
    await Promise.all(sending);
    await Promise.all(listening);
    const ackedAtKill = new Map(acked);
    const receivedAtKill = new Map(received);
    // The kill came in the middle of the burst: messages were still on their way.
    assert.ok(sent > ackedAtKill.size, `some messages were in flight at the kill (${sent} sent, ${ackedAtKill.size} acked)`);

    // The restarted server recovers the database; then read both timelines through the store.
    await start();
    await stop("SIGTERM");
    const store = openSqliteStore({ path: path.join(dir, "data", "hearth.db") });
    try {
      const rows = async (owner: string, outgoing: boolean) => {
        const all = await store.timeline.query(owner, { limit: 1_000_000 });
        return new Map(all.filter((e) => e.outgoing === outgoing && e.originId !== null).map((e) => [e.originId!, e]));
      };
      const outgoingOf = new Map<string, Awaited<ReturnType<typeof rows>>>();
      const incomingOf = new Map<string, Awaited<ReturnType<typeof rows>>>();
      for (const u of senders) outgoingOf.set(`${u}@localhost`, await rows(`${u}@localhost`, true));
      for (const u of recipients) incomingOf.set(`${u}@localhost`, await rows(`${u}@localhost`, false));
      for (const [id, a] of ackedAtKill) {
        assert.equal(outgoingOf.get(a.sender)!.get(id)?.seq, a.seq, `${id}: acknowledged, the sender's row at its seq`);
        assert.ok(incomingOf.get(a.recipient)!.has(id), `${id}: acknowledged, the recipient's row`);
      }
      for (const [id, recipient] of receivedAtKill) {
        assert.ok(incomingOf.get(recipient)!.has(id), `${id}: received, the recipient's row`);
        const sender = `${id.slice(0, id.lastIndexOf("-"))}@localhost`;
        assert.ok(outgoingOf.get(sender)!.has(id), `${id}: received, the sender's row`);
      }
    } finally {
      await store.close();
    }
  });
});
