// The Redis session directory in-process: two RedisCluster instances on one private Redis, with plain
// session objects, for the cases a test over real clients cannot time: lost events, bind races.
import assert from "node:assert/strict";
import { createClient } from "redis";
import { loadConfig } from "../src/config/config.js";
import { HookBuses } from "../src/events/hooks.js";
import { parseJid, type Jid } from "../src/jid/jid.js";
import { nullLogger } from "../src/log.js";
import { xml, type Element } from "../src/xml/element.js";
import type { Router } from "../src/router/router.js";
import type { Store } from "../src/storage/types.js";
import type { DeliveryMeta, Session } from "../src/sessions/session.js";
import type { StreamErrorCondition } from "../src/xml/stanza.js";
import { RedisCluster } from "../src/cluster/redis.js";
import { RemoteSession } from "../src/cluster/remote-session.js";
import { KEYS, type SessionRecord } from "../src/cluster/wire.js";
import { startRedis, type PrivateRedis } from "./helpers/redis.js";

let nextId = 1;

class FakeSession implements Session {
  readonly id = `fake${nextId++}`;
  readonly protocol = "tcp" as const;
  readonly remoteAddress = "127.0.0.1";
  readonly secure = false;
  readonly host = "localhost";
  username: string | null;
  jid: Jid | null;
  presence: Element | null = null;
  priority = 0;
  interested = false;
  directed: Set<string> | null = null;
  readonly data = new Map<string, unknown>();
  closed = false;
  closedWith: string | undefined;
  readonly got: Array<{ stanza: Element; meta?: DeliveryMeta }> = [];

  constructor(full: string, private readonly node: RedisCluster) {
    this.jid = parseJid(full);
    this.username = this.jid.local;
  }

  send(stanza: Element, meta?: DeliveryMeta): void { this.got.push({ stanza, meta }); }

  close(error?: StreamErrorCondition): void {
    if (this.closed) return;
    this.closed = true;
    this.closedWith = error;
    this.node.sessions.remove(this);
  }
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("cluster: the Redis session directory", function () {
  this.timeout(20_000);
  let redis: PrivateRedis;
  let raw: ReturnType<typeof createClient>;
  const nodes: RedisCluster[] = [];
  const pending: Array<{ owner: string; seqs: number[] }> = [];

  async function node(name: string): Promise<RedisCluster> {
    const config = loadConfig({ file: null, env: {}, overrides: { cluster: { redisUrl: redis.url, nodeId: name, heartbeatSeconds: 1, deadAfterSeconds: 2 } } });
    const store = { timeline: { markPending: async (owner: string, seqs: number[]) => { pending.push({ owner, seqs }); } } } as unknown as Store;
    const router = { bounce: () => {}, setForwarder: () => {} } as unknown as Router;
    const c = new RedisCluster(config, store, nullLogger);
    await c.start({ hooks: new HookBuses(() => {}), router });
    nodes.push(c);
    return c;
  }

  before(async function () {
    redis = await startRedis();
    raw = createClient({ url: redis.url });
    await raw.connect();
  });

  after(async function () {
    for (const n of nodes) await n.stop();
    await raw?.quit();
    await redis?.stop();
  });

  it("stops within seconds when Redis has gone away (leaving is bounded)", async function () {
    const own = await startRedis();
    const config = loadConfig({ file: null, env: {}, overrides: { cluster: { redisUrl: own.url, nodeId: "lonely", heartbeatSeconds: 1, deadAfterSeconds: 2 } } });
    const store = { timeline: { markPending: async () => {} } } as unknown as Store;
    const c = new RedisCluster(config, store, nullLogger);
    await c.start({ hooks: new HookBuses(() => {}), router: { bounce: () => {}, setForwarder: () => {} } as unknown as Router });
    await own.stop();
    const t0 = Date.now();
    await c.stop();
    assert.ok(Date.now() - t0 < 10_000, `stopped after ${Date.now() - t0} ms`);
  });

  it("replicates binds, changes and unbinds, and delivers over the bus with the timeline seq", async function () {
    const a = await node("a");
    const b = await node("b");
    const s = new FakeSession("romeo@localhost/balcony", a);
    a.sessions.add(s);
    await until(() => b.sessions.get(s.jid!) !== undefined);
    const proxy = b.sessions.get(s.jid!)!;
    assert.ok(proxy instanceof RemoteSession);
    assert.equal(proxy.presence?.toString(), undefined, "not available yet");
    s.presence = xml("presence", { from: s.jid!.toString() }, xml("show", null, "chat"));
    s.priority = 7;
    s.data.set("carbons:enabled", true);
    s.data.set("private:object", { not: "replicated" });
    a.sessions.changed(s);
    await until(() => proxy.priority === 7);
    assert.equal(proxy.presence?.getChildText("show"), "chat");
    assert.equal(proxy.data.get("carbons:enabled"), true);
    assert.equal(proxy.data.has("private:object"), false);
    proxy.send(xml("message", { to: "romeo@localhost", from: "juliet@localhost/x" }, xml("body", null, "wherefore")), { seq: 42, stanzaId: "sid-42", ts: 1 });
    await until(() => s.got.length === 1);
    assert.equal(s.got[0].stanza.getChildText("body"), "wherefore");
    assert.deepEqual(s.got[0].meta, { seq: 42, stanzaId: "sid-42", ts: 1 });
    a.sessions.remove(s);
    await until(() => b.sessions.get(s.jid!) === undefined);
    assert.equal(b.sessions.hasResources("romeo@localhost"), false);
  });

  it("repairs a lost directory event from the node's hash", async function () {
    const b = nodes.find((n) => n.nodeId.startsWith("b-"))!;
    const record = (id: string, resource: string): SessionRecord => ({
      id, jid: `ghost@localhost/${resource}`, protocol: "tcp", addr: "", secure: false, host: "localhost", boundAt: Date.now(),
      presence: "<presence/>", priority: 0, interested: false, directed: null, data: {},
    });
    // A node whose first event (ver 1) never reached b: b sees ver 2 and reads the hash.
    await raw.multi().sAdd(KEYS.nodes, "ghost").set(KEYS.alive("ghost"), "x", { PX: 60_000 })
      .hSet(KEYS.sessions("ghost"), { g1: JSON.stringify(record("g1", "one")), g2: JSON.stringify(record("g2", "two")), "~ver": "2" }).exec();
    await raw.publish(KEYS.events, JSON.stringify({ t: "bind", node: "ghost", ver: 2, session: record("g2", "two") }));
    await until(() => b.sessions.resources("ghost@localhost").length === 2);
    await raw.multi().sRem(KEYS.nodes, "ghost").del(KEYS.alive("ghost")).del(KEYS.sessions("ghost")).exec();
    await raw.publish(KEYS.events, JSON.stringify({ t: "down", node: "ghost" }));
    await until(() => b.sessions.resources("ghost@localhost").length === 0);
  });

  it("keeps exactly one session when two nodes bind the same full JID at the same time (kick-old)", async function () {
    const [a, b] = nodes;
    const older = new FakeSession("tybalt@localhost/sword", a);
    const newer = new FakeSession("tybalt@localhost/sword", b);
    // Neither node has heard of the other's bind when it binds.
    a.sessions.add(older);
    const t = Date.now();
    while (Date.now() < t + 3) { /* a later bind time, without letting a's event arrive at b */ }
    b.sessions.add(newer);
    await until(() => older.closed);
    assert.equal(older.closedWith, "conflict");
    assert.equal(newer.closed, false);
    await until(() => a.sessions.get(newer.jid!) instanceof RemoteSession);
    assert.equal(b.sessions.get(newer.jid!), newer);
    assert.equal(a.sessions.resources("tybalt@localhost").length, 1);
    b.sessions.remove(newer);
  });

  it("requeues the archived messages of a node that died before delivering them", async function () {
    const [a] = nodes;
    const c = await node("c");
    const s = new FakeSession("mercutio@localhost/m", c);
    c.sessions.add(s);
    await until(() => a.sessions.get(s.jid!) !== undefined);
    // c stops reading its bus and its heartbeat, as a killed process would (its connections stay open).
    (c as unknown as { running: boolean }).running = false;
    await (c as unknown as { reader: { disconnect(): Promise<void> } }).reader.disconnect();
    const proxy = a.sessions.get(s.jid!)!;
    proxy.send(xml("message", { to: "mercutio@localhost" }, xml("body", null, "a plague")), { seq: 7, stanzaId: "s7", ts: 1 });
    proxy.send(xml("message", { to: "mercutio@localhost" }, xml("body", null, "on both")), { seq: 8, stanzaId: "s8", ts: 2 });
    await until(() => a.sessions.get(s.jid!) === undefined, 8000);
    await until(() => pending.some((p) => p.owner === "mercutio@localhost"), 3000);
    assert.deepEqual(pending.filter((p) => p.owner === "mercutio@localhost").flatMap((p) => p.seqs).sort(), [7, 8]);
    nodes.splice(nodes.indexOf(c), 1);
    await (c as unknown as { disconnectAll(): Promise<void> }).disconnectAll();
  });
});
