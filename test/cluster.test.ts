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
import { MobileClient } from "./helpers/mobile-sdk.js";
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

async function startNode(name: string, storage: Record<string, unknown>, redisUrl: string, opts: { httpPort?: number } = {}): Promise<Node> {
  const dir = mkdtempSync(path.join(tmpdir(), `hearth-cluster-${name}-`));
  const c2sPort = await freePort();
  const config = path.join(dir, "hearth.yaml");
  writeFileSync(config, [
    `hosts: [${HOST}]`,
    `dataDir: ${dir}/data`,
    "log: { level: warn }",
    `c2s: { bind: 127.0.0.1, port: ${c2sPort}, directTlsPort: null, requireTls: false }`,
    "s2s: { port: null, directTlsPort: null }",
    opts.httpPort ? `http: { bind: 127.0.0.1, port: ${opts.httpPort} }` : "http: { port: null }",
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
  /** n1 serves the mobile protocol on this port too. */
  let n1Http: number;
  const clients: RawClient[] = [];

  before(async function () {
    const pg = await sharedPostgres();
    const dbUrl = await pg.createDatabase("hearth_cluster");
    storage = { driver: "postgres", postgres: { url: dbUrl, poolSize: 4 } };
    redis = await startRedis();
    const config = loadConfig({ file: null, env: {}, overrides: { storage } as never });
    store = await openStore(config);
    accounts = new AccountService(store, new HookBuses(() => {}), new SessionRegistry(), { hosts: [HOST], iterations: 4096, minPasswordLength: 1 }, createLoginService(store, config.auth));
    n1Http = await freePort();
    const started = await Promise.allSettled([startNode("n1", storage, redis.url, { httpPort: n1Http }), startNode("n2", storage, redis.url)]);
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

  it("keeps both changes when two nodes change one roster item at once (roster set on one, the contact's subscribe on the other)", async function () {
    const sue = await connect(n1, "sue", { resource: "a" });
    const contacts = await Promise.all(Array.from({ length: 8 }, (_, i) => connect(n2, `tim${i}`, { resource: "t" })));
    // Each contact's subscribe is handled on n2 (where it is sent) and writes sue's item for it (pending
    // in); at the same time sue, on n1, names the same contact and puts it in a group.
    await Promise.all(contacts.map(async (c, i) => {
      c.send(xml("presence", { type: "subscribe", to: "sue@localhost" }));
      const set = await sue.iq(xml("iq", { type: "set" }, xml("query", { xmlns: "jabber:iq:roster" },
        xml("item", { jid: `tim${i}@localhost`, name: `Tim ${i}` }, xml("group", null, "team")))));
      assert.equal(set.attrs.type, "result");
    }));
    for (let i = 0; i < contacts.length; i++) {
      await sue.receive((el) => el.name === "presence" && el.attrs.type === "subscribe" && el.attrs.from === `tim${i}@localhost`);
    }
    for (let i = 0; i < contacts.length; i++) {
      const item = await store.roster.getItem("sue@localhost", `tim${i}@localhost`);
      assert.equal(item?.name, `Tim ${i}`, `tim${i}: the roster set survived`);
      assert.deepEqual(item?.groups, ["team"]);
      assert.ok(item?.pendingIn, `tim${i}: the subscription request survived`);
    }
    for (const c of [sue, ...contacts]) c.close();
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

  it("serves one MUC room across three nodes: one occupant list, messages, subject, history, MAM and kicks", async function () {
    const n3 = await startNode("n3", storage, redis.url);
    try {
    const room = "lounge@conference.localhost";
    const isRoomPresence = (nick: string, type?: string) => (el: Element) =>
      el.name === "presence" && el.attrs.from === `${room}/${nick}` && el.attrs.type === type;
    const isGroupchat = (nick: string, body: string) => (el: Element) =>
      el.name === "message" && el.attrs.type === "groupchat" && el.attrs.from === `${room}/${nick}` && el.getChildText("body") === body;
    const join = (c: RawClient, nick: string) => c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    // The owner creates the room on n1 (an instant room); the others join on n2 and n1.
    const olga = await connect(n1, "olga", { resource: "o" });
    join(olga, "olga");
    await olga.receive(isRoomPresence("olga"));
    const created = await olga.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, xml("x", { xmlns: "jabber:x:data", type: "submit" }))));
    assert.equal(created.attrs.type, "result");
    olga.send(xml("message", { to: room, type: "groupchat" }, xml("subject", null, "one room")));
    olga.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "before you came")));
    await olga.receive(isGroupchat("olga", "before you came"));
    const pavel = await connect(n2, "pavel", { resource: "p" });
    join(pavel, "pavel");
    // Joined on n2, pavel sees the room olga made on n1: her presence, the history and the subject.
    await pavel.receive(isRoomPresence("olga"));
    await pavel.receive(isRoomPresence("pavel"));
    const history = await pavel.receive(isGroupchat("olga", "before you came"));
    assert.ok(history.getChild("delay", "urn:xmpp:delay"), "history is delayed");
    const subject = await pavel.receive((el) => el.name === "message" && el.getChildText("subject") === "one room");
    assert.equal(subject.attrs.from, `${room}/olga`);
    await olga.receive(isRoomPresence("pavel"));
    const quinn = await connect(n3, "quinn", { resource: "q" });
    join(quinn, "quinn");
    await quinn.receive(isRoomPresence("pavel"));
    await quinn.receive(isRoomPresence("quinn"));
    await pavel.receive(isRoomPresence("quinn"));
    // A message from n2 reaches the occupants on n1 and n3 once, and its sender.
    pavel.send(xml("message", { to: room, type: "groupchat", id: "p1" }, xml("body", null, "hello from n2")));
    for (const c of [olga, quinn, pavel]) await c.receive(isGroupchat("pavel", "hello from n2"));
    await olga.nothing(isGroupchat("pavel", "hello from n2"), 500);
    // The owner (n1) kicks the occupant on n2: everyone sees status 307, and pavel is out of the room.
    const kicked = await olga.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#admin" },
      xml("item", { nick: "pavel", role: "none" }))));
    assert.equal(kicked.attrs.type, "result");
    for (const c of [pavel, quinn]) {
      const p = await c.receive(isRoomPresence("pavel", "unavailable"));
      assert.ok(p.getChild("x", "http://jabber.org/protocol/muc#user")?.getChildren("status").some((st) => st.attrs.code === "307"));
    }
    pavel.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "still here?")));
    const refused = await pavel.receive((el) => el.name === "message" && el.attrs.type === "error");
    assert.equal(errorCondition(refused), "not-acceptable");
    await quinn.nothing(isGroupchat("pavel", "still here?"), 300);
    // The room's archive (XEP-0313), asked from n3, is the one room's: every message, in order, once.
    const queryid = "q1";
    quinn.send(xml("iq", { type: "set", id: "mam1", to: room }, xml("query", { xmlns: "urn:xmpp:mam:2", queryid })));
    const archived: string[] = [];
    for (;;) {
      const el = await quinn.receive((e) => (e.name === "iq" && e.attrs.id === "mam1") ||
        (e.name === "message" && e.getChild("result", "urn:xmpp:mam:2")?.attrs.queryid === queryid), 10_000);
      if (el.name === "iq") { assert.equal(el.attrs.type, "result"); break; }
      const body = el.getChild("result", "urn:xmpp:mam:2")?.getChild("forwarded", "urn:xmpp:forward:0")?.getChild("message")?.getChildText("body");
      if (body) archived.push(body);
    }
    assert.deepEqual(archived, ["before you came", "hello from n2"]);
    for (const c of [olga, pavel, quinn]) c.close();
    } finally {
      await stopNode(n3);
    }
  });

  it("takes a persistent room over from the store when its owner node dies; occupants learn it by self-ping and rejoin", async function () {
    const room = "council@conference.localhost";
    const isRoomPresence = (nick: string, type?: string) => (el: Element) =>
      el.name === "presence" && el.attrs.from === `${room}/${nick}` && el.attrs.type === type;
    const join = (c: RawClient, nick: string) => c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: "http://jabber.org/protocol/muc" })));
    const n3 = await startNode("n3", storage, redis.url);
    try {
      // The room is made on n3 (which then owns it), persistent, with a member list.
      const rita = await connect(n3, "rita", { resource: "r" });
      join(rita, "rita");
      await rita.receive(isRoomPresence("rita"));
      const form = xml("x", { xmlns: "jabber:x:data", type: "submit" },
        xml("field", { var: "FORM_TYPE" }, xml("value", null, "http://jabber.org/protocol/muc#roomconfig")),
        xml("field", { var: "muc#roomconfig_persistentroom" }, xml("value", null, "1")),
        xml("field", { var: "muc#roomconfig_roomname" }, xml("value", null, "The Council")));
      assert.equal((await rita.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#owner" }, form)))).attrs.type, "result");
      const sam = await connect(n1, "sam", { resource: "s" });
      join(sam, "sam");
      await sam.receive(isRoomPresence("sam"));
      const admin = await rita.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/muc#admin" },
        xml("item", { jid: "sam@localhost", affiliation: "admin" }))));
      assert.equal(admin.attrs.type, "result");
      sam.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "kept in the archive")));
      await sam.receive((el) => el.name === "message" && el.getChildText("body") === "kept in the archive", 10_000);
      const exited = new Promise((r) => n3.proc.once("exit", r));
      n3.proc.kill("SIGKILL");
      await exited;
      // XEP-0410: once the dead node is cleaned up, a surviving node owns the room, loaded from the store
      // without its occupants: sam's self-ping says he is no longer joined.
      const deadline = Date.now() + (DEAD_AFTER_S + 3 * HEARTBEAT_S + 5) * 1000;
      let answer: Element | null = null;
      for (;;) {
        // Until the cleanup, a ping waits in the dead node's bus (it is answered later, or not at all).
        answer = await sam.iq(xml("iq", { type: "get", to: `${room}/sam` }, xml("ping", { xmlns: "urn:xmpp:ping" })), 2000).catch(() => null);
        if (answer?.attrs.type === "error" || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(errorCondition(answer), "not-acceptable", String(answer));
      // He rejoins: the room kept its configuration, his affiliation and its history.
      join(sam, "sam");
      const self = await sam.receive(isRoomPresence("sam"), 10_000);
      assert.equal(self.getChild("x", "http://jabber.org/protocol/muc#user")?.getChild("item")?.attrs.affiliation, "admin");
      await sam.receive((el) => el.name === "message" && el.getChildText("body") === "kept in the archive" && !!el.getChild("delay", "urn:xmpp:delay"), 10_000);
      const info = await sam.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
      assert.equal(info.getChild("query")?.getChild("identity")?.attrs.name, "The Council");
      sam.close();
    } finally {
      await stopNode(n3);
    }
  });

  it("keeps a user who reconnected to another node before the dead one was reaped online, and hands them the stranded messages", async function () {
    const n3 = await startNode("n3", storage, redis.url);
    try {
      const nora = await connect(n1, "nora", { resource: "n" });
      const otto = await connect(n3, "otto", { resource: "phone" });
      await subscribe(nora, otto);
      await subscribe(otto, nora);
      // Freeze n3, so what nora sends now waits undelivered in its bus stream; then kill it.
      n3.proc.kill("SIGSTOP");
      for (let i = 0; i < 3; i++) nora.send(xml("message", { to: "otto@localhost", type: "chat", id: `s${i}` }, xml("body", null, `stranded ${i}`)));
      await new Promise((r) => setTimeout(r, 500));
      const exited = new Promise((r) => n3.proc.once("exit", r));
      n3.proc.kill("SIGKILL");
      await exited;
      // The phone reconnects at once to n2 with the same resource, long before the TTL runs out.
      const otto2 = await connect(n2, "otto", { resource: "phone", available: false });
      otto2.send(xml("presence"));
      await otto2.receive(isPresence(otto2.jid));
      await nora.receive(isPresence("otto@localhost/phone"));
      // The cleanup after n3 hands the stranded messages to the session that is online now, in order,
      // and does not tell nora that otto/phone went offline.
      const bodies: string[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await otto2.receive(isMessage("nora@localhost"), (DEAD_AFTER_S + 3 * HEARTBEAT_S + 3) * 1000);
        bodies.push(m.getChildText("body")!);
      }
      assert.deepEqual(bodies, ["stranded 0", "stranded 1", "stranded 2"]);
      await nora.nothing(isPresence("otto@localhost/phone", "unavailable"), 1500);
      assert.equal(await store.timeline.countPending("otto@localhost"), 0);
      // Still online for nora: a message reaches the new session directly.
      nora.send(xml("message", { to: "otto@localhost/phone", type: "chat" }, xml("body", null, "are you back?")));
      assert.equal((await otto2.receive(isMessage("nora@localhost"))).getChildText("body"), "are you back?");
      nora.close();
      otto2.close();
    } finally {
      await stopNode(n3);
    }
  });

  it("serves a mobile group whose room lives on another node: acks carry the room's seq", async function () {
    const httpPort = await freePort();
    const n3 = await startNode("n3", storage, redis.url, { httpPort });
    try {
      for (const u of ["yan", "zoe"]) if (!(await accounts.exists(HOST, u))) await accounts.create(HOST, u, PASSWORD);
      const url = `ws://127.0.0.1:${httpPort}/mobile`;
      const yan = await MobileClient.connect(url);
      await yan.login({ username: "yan", deviceId: "d", password: PASSWORD });
      // zoe makes the group on n1, so n1 owns its room; yan, on n3, is a member.
      const zoe = await MobileClient.connect(`ws://127.0.0.1:${n1Http}/mobile`);
      await zoe.login({ username: "zoe", deviceId: "d", password: PASSWORD });
      const group = await zoe.request("createGroup", { name: "Crew", members: ["yan@localhost"] });
      await yan.request("joinGroup", { group: group.jid });
      const ack = await yan.send(group.jid, "sent from n3");
      assert.ok(ack.seq >= 1, `the owner's seq came back: ${JSON.stringify(ack)}`);
      const atZoe = await zoe.nextMessage((m) => m.body === "sent from n3", 10_000);
      assert.equal(atZoe.seq, ack.seq, "one room, one seq");
      const rows = await store.timeline.query(group.jid, { limit: 10, reverse: true });
      assert.equal(rows[0]?.seq, ack.seq, "the ack names the room's row");
      zoe.close();
      yan.close();
    } finally {
      await stopNode(n3);
    }
  });

  it("loses no acknowledged message when a node is killed with SIGKILL in the middle of a chat and group burst", async function () {
    const httpPort = await freePort();
    const n3 = await startNode("n3", storage, redis.url, { httpPort });
    try {
      // Mobile senders on n3 (their acknowledgement is the durability promise), recipients online on n1
      // and offline.
      const senders = ["tara", "uwe", "vera"];
      const online = await connect(n1, "wim", { resource: "w" });
      if (!(await accounts.exists(HOST, "xena"))) await accounts.create(HOST, "xena", PASSWORD);
      const acked = new Map<string, { to: string; body: string }>();
      const devices: MobileClient[] = [];
      for (const user of senders) {
        if (!(await accounts.exists(HOST, user))) await accounts.create(HOST, user, PASSWORD);
        const m = await MobileClient.connect(`ws://127.0.0.1:${httpPort}/mobile`, { requestTimeoutMs: 20_000 });
        devices.push(m);
        await m.login({ username: user, deviceId: "d", password: PASSWORD });
      }
      // A group (a MUC room) made on n3, so n3 owns it: its messages are acknowledged by the node that dies.
      const group = await devices[0].request("createGroup", { name: "Burst", members: ["uwe@localhost", "vera@localhost"] });
      for (const m of devices.slice(1)) await m.request("joinGroup", { group: group.jid });
      let failures = 0;
      // Each device keeps 8 messages in flight, alternating the two recipients, until its socket dies.
      const burst = devices.map(async (m, d) => {
        let i = 0;
        const one = async (): Promise<void> => {
          for (;;) {
            const n = i++;
            const to = n % 3 === 0 ? "wim@localhost" : n % 3 === 1 ? "xena@localhost" : group.jid;
            const body = `${senders[d]} ${n}`;
            try {
              await m.send(to, body);
              acked.set(body, { to, body });
            } catch {
              failures++;
              return;
            }
          }
        };
        await Promise.all(Array.from({ length: 8 }, one));
      });
      await new Promise((r) => setTimeout(r, 700));
      const exited = new Promise((r) => n3.proc.once("exit", r));
      n3.proc.kill("SIGKILL");
      await exited;
      await Promise.all(burst);
      assert.ok(acked.size >= 20, `a real burst: ${acked.size} acknowledged`);
      assert.ok(failures > 0, "the kill cut requests in flight");
      // Every acknowledged message is in its recipient's timeline, once.
      assert.ok([...acked.values()].some((a) => a.to === group.jid), "group messages were acknowledged");
      for (const owner of ["wim@localhost", "xena@localhost", group.jid]) {
        const rows = await store.timeline.query(owner, { limit: 100_000 });
        const bodies = rows.map((r) => /<body>([^<]*)<\/body>/.exec(r.xml)?.[1]).filter((b): b is string => b !== undefined);
        const expected = [...acked.values()].filter((a) => a.to === owner).map((a) => a.body);
        const have = new Set(bodies);
        const lost = expected.filter((b) => !have.has(b));
        assert.deepEqual(lost, [], `${owner}: acknowledged but not stored`);
        assert.equal(bodies.length, have.size, `${owner}: no message stored twice`);
      }
      for (const m of devices) m.close();
      online.close();
    } finally {
      await stopNode(n3);
    }
  });

  it("loses nothing in a rolling restart under load: every message is acknowledged once and reaches its recipient", async function () {
    this.timeout(180_000);
    const ports = [await freePort(), await freePort()];
    const urls = ports.map((p) => `ws://127.0.0.1:${p}/mobile`);
    const nodes: Node[] = [];
    nodes[0] = await startNode("ra", storage, redis.url, { httpPort: ports[0] });
    nodes[1] = await startNode("rb", storage, redis.url, { httpPort: ports[1] });
    const devices: MobileClient[] = [];
    try {
      const senders = ["ada", "ben"], recipients = ["cyd", "dov"];
      for (const u of [...senders, ...recipients]) if (!(await accounts.exists(HOST, u))) await accounts.create(HOST, u, PASSWORD);
      /** A device that logs in again on the other node whenever its connection ends, from its last ack. */
      const device = (user: string, first: number) => {
        let at = first;
        let current: Promise<MobileClient> | null = null;
        const bodies = new Set<string>();
        const connect = async (): Promise<MobileClient> => {
          for (let attempt = 0; ; attempt++) {
            const c = await MobileClient.connect(urls[at]).catch(() => null);
            if (c) {
              try {
                await c.login({ username: user, deviceId: "d", password: PASSWORD, resumeAfterSeq: lastAck });
                devices.push(c);
                c.onMessage = (m) => { bodies.add(m.body); };
                void c.closed(3_600_000).then(() => { if (current !== null) { lastAck = Math.max(lastAck, c.ackedSeq); at = 1 - at; current = connect(); } }, () => {});
                return c;
              } catch { c.close(); }
            }
            at = 1 - at; // that node is restarting: the other one
            if (attempt > 100) throw new Error(`${user} could not log in again`);
            await new Promise((r) => setTimeout(r, 200));
          }
        };
        let lastAck = 0;
        current = connect();
        return { client: () => current!, bodies, stop: () => { const c = current; current = null; return c?.then((x) => x.close()); } };
      };
      const senderDevices = senders.map((u) => device(u, 0));
      const recipientDevices = recipients.map((u) => device(u, 1));
      await Promise.all([...senderDevices, ...recipientDevices].map((d) => d.client()));
      const PER_SENDER = 60;
      const acked = new Map<string, string>();
      // Each sender sends its messages one after another, retrying an unacknowledged one (same id) on
      // whichever node it is connected to now: the server takes a resend once.
      const sending = senderDevices.map(async (d, k) => {
        for (let i = 0; i < PER_SENDER; i++) {
          const body = `${senders[k]} ${i}`;
          const to = `${recipients[i % 2]}@localhost`;
          const id = `${senders[k]}-${i}`;
          for (let tries = 0; ; tries++) {
            try {
              await (await d.client()).sendMessage({ clientMsgId: id, to, body });
              acked.set(body, to);
              break;
            } catch {
              if (tries > 100) throw new Error(`${body} never acknowledged`);
              await new Promise((r) => setTimeout(r, 100));
            }
          }
          await new Promise((r) => setTimeout(r, 15));
        }
      });
      // Roll: stop node A cleanly and start it again, then node B.
      for (const i of [0, 1]) {
        await new Promise((r) => setTimeout(r, 800));
        await stopNode(nodes[i]);
        nodes[i] = await startNode(i === 0 ? "ra" : "rb", storage, redis.url, { httpPort: ports[i] });
      }
      await Promise.all(sending);
      assert.equal(acked.size, senders.length * PER_SENDER);
      // Every recipient gets every message sent to it, whichever node it ended up on.
      const deadline = Date.now() + 30_000;
      for (let r = 0; r < recipients.length; r++) {
        const expected = [...acked].filter(([, to]) => to === `${recipients[r]}@localhost`).map(([b]) => b);
        while (expected.some((b) => !recipientDevices[r].bodies.has(b)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
        assert.deepEqual(expected.filter((b) => !recipientDevices[r].bodies.has(b)), [], `${recipients[r]} is missing messages`);
        const rows = await store.timeline.query(`${recipients[r]}@localhost`, { limit: 100_000 });
        assert.equal(rows.length, expected.length, `${recipients[r]}: each message stored once`);
      }
      for (const d of [...senderDevices, ...recipientDevices]) await d.stop();
    } finally {
      for (const c of devices) c.close();
      for (const n of nodes) await stopNode(n);
    }
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
