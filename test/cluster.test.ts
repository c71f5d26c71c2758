// Several nodes behind one domain: real server processes (node bin/hearth.js start) sharing one private
// PostgreSQL and one private Redis. Users on different nodes subscribe, see presence and chat; a node that
// is killed leaves no ghost presence and loses no message.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "redis";
import { xml, type Element } from "../src/xml/element.js";
import { loadConfig } from "../src/config/config.js";
import { openStore } from "../src/storage/open.js";
import { AccountService } from "../src/auth/accounts.js";
import { createLoginService } from "../src/auth/login.js";
import { HookBuses } from "../src/events/hooks.js";
import { SessionRegistry } from "../src/sessions/registry.js";
import type { Store } from "../src/storage/types.js";
import { RawClient, errorCondition } from "./helpers/raw-client.js";
import type { TestServer } from "./helpers/server.js";
import { sharedPostgres } from "./helpers/postgres.js";
import { startRedis, type PrivateRedis } from "./helpers/redis.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = path.join(root, "bin/hearth.js");
const HOST = "localhost";
const PASSWORD = "password";
const HEARTBEAT_S = 1;
const DEAD_AFTER_S = 3;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** One server process; shaped like a TestServer so RawClient can connect to it. */
interface Node {
  name: string;
  host: string;
  c2sPort: number;
  tlsPort: number;
  proc: ChildProcess;
  dir: string;
  /** What the process wrote to stderr (warnings and errors), for failure messages. */
  output(): string;
}

async function startNode(name: string, storage: Record<string, unknown>, redisUrl: string): Promise<Node> {
  const dir = mkdtempSync(path.join(tmpdir(), `hearth-cluster-${name}-`));
  const c2sPort = await freePort();
  const config = path.join(dir, "hearth.yaml");
  writeFileSync(config, [
    `hosts: [${HOST}]`,
    `dataDir: ${dir}/data`,
    "log: { level: warn }",
    `c2s: { bind: 127.0.0.1, port: ${c2sPort}, directTlsPort: null, requireTls: false }`,
    "s2s: { port: null, directTlsPort: null }",
    "http: { port: null }",
    "auth: { allowPlainInsecure: true, maxFailures: 0 }",
    "limits: { maxConnectionsPerIp: 0, stanzasPerSecond: 0 }",
    `storage: ${JSON.stringify(storage)}`,
    `cluster: { redisUrl: "${redisUrl}", nodeId: ${name}, heartbeatSeconds: ${HEARTBEAT_S}, deadAfterSeconds: ${DEAD_AFTER_S} }`,
    "",
  ].join("\n"));
  const proc = spawn(process.execPath, [bin, "start", "--config", config], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  try {
    await new Promise<void>((resolve, reject) => {
      proc.stderr!.on("data", (d) => {
        err += d;
        if (err.includes("hearth: serving")) resolve();
      });
      proc.once("exit", (code, signal) => reject(new Error(`node ${name} exited (${code ?? signal}): ${err}`)));
      setTimeout(() => reject(new Error(`node ${name} did not start within 20 s: ${err}`)), 20_000).unref();
    });
  } catch (e) {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { name, host: HOST, c2sPort, tlsPort: 0, proc, dir, output: () => err };
}

async function stopNode(node: Node, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (node.proc.exitCode === null && node.proc.signalCode === null) {
    const exited = new Promise((r) => node.proc.once("exit", r));
    node.proc.kill("SIGCONT"); // in case a test froze it
    node.proc.kill(signal);
    await exited;
  }
  rmSync(node.dir, { recursive: true, force: true });
}

const isPresence = (from: string, type?: string) => (el: Element) =>
  el.name === "presence" && el.attrs.from === from && el.attrs.type === type;
const isMessage = (from: string) => (el: Element) => el.name === "message" && el.attrs.from?.startsWith(from) === true;

describe("cluster: two server processes sharing PostgreSQL and Redis", function () {
  this.timeout(60_000);
  let redis: PrivateRedis;
  let storage: Record<string, unknown>;
  let store: Store;
  let accounts: AccountService;
  let n1: Node;
  let n2: Node;
  const clients: RawClient[] = [];

  before(async function () {
    const pg = await sharedPostgres();
    const dbUrl = await pg.createDatabase("hearth_cluster");
    storage = { driver: "postgres", postgres: { url: dbUrl, poolSize: 4 } };
    redis = await startRedis();
    const config = loadConfig({ file: null, env: {}, overrides: { storage } as never });
    store = await openStore(config);
    accounts = new AccountService(store, new HookBuses(() => {}), new SessionRegistry(), { hosts: [HOST], iterations: 4096, minPasswordLength: 1 }, createLoginService(store, config.auth));
    const started = await Promise.allSettled([startNode("n1", storage, redis.url), startNode("n2", storage, redis.url)]);
    if (started[0].status === "fulfilled") n1 = started[0].value;
    if (started[1].status === "fulfilled") n2 = started[1].value;
    for (const s of started) if (s.status === "rejected") throw s.reason;
  });

  after(async function () {
    for (const c of clients) c.destroy();
    await Promise.all([n1, n2].filter(Boolean).map((n) => stopNode(n)));
    await store?.close();
    await redis?.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") {
      for (const n of [n1, n2]) if (n) process.stderr.write(`--- ${n.name} stderr ---\n${n.output()}\n`);
    }
  });

  /** A logged-in client on `node`; with `available`, after its initial presence came back. */
  async function connect(node: Node, user: string, opts: { resource?: string; available?: boolean; roster?: boolean } = {}): Promise<RawClient> {
    if (!(await accounts.exists(HOST, user))) await accounts.create(HOST, user, PASSWORD);
    const c = await RawClient.connect(node as unknown as TestServer);
    clients.push(c);
    await c.login(user, PASSWORD, opts.resource);
    if (opts.roster ?? true) await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" })));
    if (opts.available ?? true) {
      c.send(xml("presence"));
      await c.receive(isPresence(c.jid));
    }
    return c;
  }

  const bare = (c: RawClient) => c.jid.split("/")[0];

  /** RFC 6121 §3.1: `a` subscribes to `b`, `b` approves. */
  async function subscribe(a: RawClient, b: RawClient): Promise<void> {
    a.send(xml("presence", { type: "subscribe", to: bare(b) }));
    await b.receive((el) => el.name === "presence" && el.attrs.type === "subscribe" && el.attrs.from === bare(a));
    b.send(xml("presence", { type: "subscribed", to: bare(a) }));
    // The roster push of the new subscription, then b's current presence (§3.1.5).
    await a.receive((el) => {
      const item = el.name === "iq" && el.attrs.type === "set" ? el.getChild("query", "jabber:iq:roster")?.getChild("item") : undefined;
      return item?.attrs.jid === bare(b) && (item.attrs.subscription === "to" || item.attrs.subscription === "both");
    });
    await a.receive(isPresence(b.jid));
  }

  it("lets users on different nodes subscribe to each other and see presence", async function () {
    const alice = await connect(n1, "alice", { resource: "home" });
    const bob = await connect(n2, "bob", { resource: "work" });
    await subscribe(alice, bob);
    await subscribe(bob, alice);
    // A presence change on one node reaches the contact on the other.
    bob.send(xml("presence", null, xml("show", null, "away"), xml("status", null, "lunch")));
    const away = await alice.receive(isPresence(bob.jid));
    assert.equal(away.getChildText("show"), "away");
    alice.send(xml("presence", { type: "unavailable" }));
    await bob.receive(isPresence(alice.jid, "unavailable"));
    alice.send(xml("presence"));
    await bob.receive(isPresence(alice.jid));
    // A probe answered across nodes: a new resource of alice on n2 learns bob's presence.
    const alice2 = await connect(n2, "alice", { resource: "tablet" });
    await alice2.receive(isPresence(bob.jid));
    await alice.receive(isPresence(alice2.jid));
    alice.close();
    alice2.close();
    bob.close();
  });

  it("delivers chat both ways between nodes, archived once, with stanza ids", async function () {
    const carol = await connect(n1, "carol", { resource: "c" });
    const dave = await connect(n2, "dave", { resource: "d" });
    for (let i = 0; i < 20; i++) carol.send(xml("message", { to: "dave@localhost", type: "chat", id: `c${i}` }, xml("body", null, `to dave ${i}`)));
    for (let i = 0; i < 20; i++) {
      const m = await dave.receive(isMessage("carol@localhost"));
      assert.equal(m.getChildText("body"), `to dave ${i}`, "in order");
      assert.ok(m.getChild("stanza-id", "urn:xmpp:sid:0"), "stamped with the recipient's stanza id");
    }
    dave.send(xml("message", { to: carol.jid, type: "chat", id: "d1" }, xml("body", null, "to carol's full JID")));
    const back = await carol.receive(isMessage("dave@localhost"));
    assert.equal(back.getChildText("body"), "to carol's full JID");
    assert.equal(back.attrs.from, dave.jid);
    // Nothing became an offline message: both timelines have the messages as delivered.
    assert.equal(await store.timeline.countPending("dave@localhost"), 0);
    assert.equal(await store.timeline.countPending("carol@localhost"), 0);
    assert.equal((await store.timeline.query("dave@localhost", { limit: 100 })).length, 21);
    carol.close();
    dave.close();
  });

  it("enforces a block set on one node for a sender on the other, and its removal (XEP-0191, no per-node cache)", async function () {
    const grace = await connect(n1, "grace", { resource: "g" });
    const heidi = await connect(n2, "heidi", { resource: "h" });
    const blocking = (name: string) => xml("iq", { type: "set" }, xml(name, { xmlns: "urn:xmpp:blocking" }, xml("item", { jid: "heidi@localhost" })));
    // Heidi's node decides delivery of her messages to grace; it has looked at grace's list before the block.
    heidi.send(xml("message", { to: "grace@localhost", type: "chat", id: "h0" }, xml("body", null, "before")));
    assert.equal((await grace.receive(isMessage("heidi@localhost"))).getChildText("body"), "before");
    assert.equal((await grace.iq(blocking("block"))).attrs.type, "result");
    heidi.send(xml("message", { to: "grace@localhost", type: "chat", id: "h1" }, xml("body", null, "blocked")));
    const refused = await heidi.receive((el) => el.attrs.type === "error" && el.attrs.id === "h1");
    assert.equal(errorCondition(refused), "service-unavailable");
    assert.equal((await grace.iq(blocking("unblock"))).attrs.type, "result");
    heidi.send(xml("message", { to: "grace@localhost", type: "chat", id: "h2" }, xml("body", null, "after")));
    assert.equal((await grace.receive(isMessage("heidi@localhost"))).getChildText("body"), "after");
    grace.close();
    heidi.close();
  });

  it("routes iq requests and their results to a full JID on the other node", async function () {
    const erin = await connect(n1, "erin", { resource: "e" });
    const frank = await connect(n2, "frank", { resource: "f" });
    erin.send(xml("iq", { type: "get", id: "ping1", to: frank.jid }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    const req = await frank.receive((el) => el.name === "iq" && el.attrs.id === "ping1");
    assert.equal(req.attrs.from, erin.jid);
    frank.send(xml("iq", { type: "result", id: "ping1", to: erin.jid }));
    const res = await erin.receive((el) => el.name === "iq" && el.attrs.id === "ping1");
    assert.equal(res.attrs.type, "result");
    assert.equal(res.attrs.from, frank.jid);
    erin.close();
    frank.close();
  });

  it("pushes roster changes and own presence to the user's resources on every node", async function () {
    const a = await connect(n1, "gina", { resource: "a" });
    const b = await connect(n2, "gina", { resource: "b" });
    await a.receive(isPresence(b.jid));
    a.send(xml("iq", { type: "set", id: "r1" }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: "someone@localhost", name: "Someone" }))));
    const push = await b.receive((el) => el.name === "iq" && el.attrs.type === "set" && el.getChild("query")?.getChild("item")?.attrs.jid === "someone@localhost");
    assert.equal(push.attrs.to, b.jid);
    // A message to the bare JID goes to the resource with the highest priority, wherever it is.
    b.send(xml("presence", null, xml("priority", null, "5")));
    await a.receive((el) => isPresence(b.jid)(el) && el.getChildText("priority") === "5");
    const sender = await connect(n1, "hank");
    sender.send(xml("message", { to: "gina@localhost", type: "chat" }, xml("body", null, "to the best resource")));
    await b.receive(isMessage("hank@localhost"));
    await a.nothing(isMessage("hank@localhost"));
    a.close();
    b.close();
    sender.close();
  });

  it("sends message carbons (XEP-0280) to the user's resources on the other node", async function () {
    const enableCarbons = async (c: RawClient) => {
      const r = await c.iq(xml("iq", { type: "set" }, xml("enable", { xmlns: "urn:xmpp:carbons:2" })));
      assert.equal(r.attrs.type, "result");
    };
    const phone = await connect(n1, "nora", { resource: "phone" });
    const laptop = await connect(n2, "nora", { resource: "laptop" });
    const oscar = await connect(n2, "oscar", { resource: "o" });
    await enableCarbons(phone);
    await enableCarbons(laptop);
    const isCarbon = (kind: string) => (el: Element) => el.name === "message" && el.attrs.from === "nora@localhost" && el.getChild(kind, "urn:xmpp:carbons:2") !== undefined;
    // Delivered to the phone (n1) by oscar's node (n2): the laptop gets a <received/> copy.
    oscar.send(xml("message", { to: phone.jid, type: "chat" }, xml("body", null, "for the phone")));
    await phone.receive(isMessage("oscar@localhost"));
    const received = await laptop.receive(isCarbon("received"));
    assert.equal(received.getChild("received")!.getChild("forwarded")!.getChild("message")!.getChildText("body"), "for the phone");
    // Sent from the phone (n1): the laptop (n2) gets a <sent/> copy, the phone none.
    phone.send(xml("message", { to: "oscar@localhost", type: "chat" }, xml("body", null, "from the phone")));
    await oscar.receive(isMessage("nora@localhost/phone"));
    const sent = await laptop.receive(isCarbon("sent"));
    assert.equal(sent.getChild("sent")!.getChild("forwarded")!.getChild("message")!.getChildText("body"), "from the phone");
    await phone.nothing(isCarbon("sent"));
    phone.close();
    laptop.close();
    oscar.close();
  });

  it("replaces a resource bound on the other node (conflict)", async function () {
    const first = await connect(n1, "ivan", { resource: "phone" });
    const watcher = await connect(n1, "ivan", { resource: "desk" });
    const second = await connect(n2, "ivan", { resource: "phone", available: false });
    const err = await first.closed(5000);
    assert.equal(errorCondition(err), "conflict");
    // The old session's end is an unavailable presence; the new one is the bound one everywhere.
    await watcher.receive(isPresence("ivan@localhost/phone", "unavailable"));
    second.send(xml("presence"));
    await watcher.receive(isPresence("ivan@localhost/phone"));
    watcher.send(xml("message", { to: "ivan@localhost/phone", type: "chat" }, xml("body", null, "still there?")));
    await second.receive(isMessage("ivan@localhost/desk"));
    watcher.close();
    second.close();
  });

  it("lets a node that joins later see the sessions already bound (directory bootstrap)", async function () {
    const judy = await connect(n1, "judy", { resource: "j" });
    const n3 = await startNode("n3", storage, redis.url);
    try {
      const karl = await connect(n3, "karl", { resource: "k" });
      await subscribe(karl, judy);
      karl.send(xml("message", { to: "judy@localhost", type: "chat" }, xml("body", null, "from the new node")));
      await judy.receive(isMessage("karl@localhost"));
      // A node that stops cleanly announces the end of its sessions at once, not after the TTL.
      await subscribe(judy, karl);
      const t0 = Date.now();
      const gone = judy.receive(isPresence(karl.jid, "unavailable"), 3000);
      n3.proc.kill("SIGTERM");
      await gone;
      assert.ok(Date.now() - t0 < DEAD_AFTER_S * 1000, "before the TTL");
    } finally {
      await stopNode(n3);
    }
    judy.close();
  });

  it("cleans up after a node killed with SIGKILL: unavailable after the TTL, messages in flight and later ones offline", async function () {
    const lena = await connect(n1, "lena", { resource: "l" });
    const mike = await connect(n2, "mike", { resource: "m" });
    await subscribe(lena, mike);
    await subscribe(mike, lena);
    // Freeze n2: what lena sends now is archived as delivered and waits in n2's bus stream.
    n2.proc.kill("SIGSTOP");
    for (let i = 0; i < 5; i++) lena.send(xml("message", { to: "mike@localhost", type: "chat", id: `f${i}` }, xml("body", null, `in flight ${i}`)));
    await new Promise((r) => setTimeout(r, 500));
    const exited = new Promise((r) => n2.proc.once("exit", r));
    n2.proc.kill("SIGKILL");
    await exited;
    const killedAt = Date.now();
    // No ghost: after the TTL the surviving node tells lena that mike is gone, once.
    await lena.receive(isPresence(mike.jid, "unavailable"), (DEAD_AFTER_S + 3 * HEARTBEAT_S + 2) * 1000);
    assert.ok(Date.now() - killedAt >= 1000, "not before the TTL");
    await lena.nothing(isPresence(mike.jid, "unavailable"), 1500);
    // Sent after the cleanup: stored offline at once.
    lena.send(xml("message", { to: "mike@localhost", type: "chat", id: "after" }, xml("body", null, "after the crash")));
    await lena.nothing(isMessage("mike@localhost"), 300);
    assert.equal(await store.timeline.countPending("mike@localhost"), 6);
    // mike comes back on the surviving node and gets all of them, in order, as offline messages.
    const mike2 = await connect(n1, "mike", { resource: "m2", available: false });
    mike2.send(xml("presence"));
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) {
      const m = await mike2.receive(isMessage("lena@localhost"));
      assert.ok(m.getChild("delay", "urn:xmpp:delay"), "delivered from offline storage");
      bodies.push(m.getChildText("body")!);
    }
    assert.deepEqual(bodies, [0, 1, 2, 3, 4].map((i) => `in flight ${i}`).concat("after the crash"));
    // The dead node left nothing in Redis.
    const r = createClient({ url: redis.url });
    await r.connect();
    try {
      const members = await r.sMembers("hearth:nodes");
      assert.equal(members.length, 1, `one node left: ${members.join(", ")}`);
      assert.equal((await r.keys("hearth:bus:*")).length, 1);
      assert.equal((await r.keys("hearth:sessions:*")).length, 1);
    } finally {
      await r.quit();
    }
    lena.close();
    mike2.close();
  });
});
