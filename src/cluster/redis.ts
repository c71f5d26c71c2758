// The cluster on Redis.
//
// Directory: each node keeps its sessions in a hash (KEYS.sessions) and announces every change on a
// pub/sub channel with a per-node version. Every node holds a replica of the whole directory (bootstrapped
// from the hashes, kept current by the events, re-read on a version gap), so the IM rules read it
// synchronously as on one node.
//
// Bus: one Redis stream per node (KEYS.bus). A stanza for a session on node B is XADDed to B's stream
// with NOMKSTREAM and stays there until B has handed it to the session (B deletes what it processed).
// So a node that dies leaves exactly the stanzas it had not delivered in its stream; the survivor that
// cleans up after it turns the archived messages among them back into offline messages. Once the
// stream is gone, XADD NOMKSTREAM fails and the sender does the same itself. Pub/sub could not do this:
// it drops messages for a subscriber that is not listening and never says which were consumed.
//
// Liveness: each node refreshes KEYS.alive (TTL cluster.deadAfterSeconds) every heartbeat and checks the
// others; for a dead one, every node drops its sessions from its replica and one survivor (SET NX on
// KEYS.reap) fires the normal `resource-unbind` for each of them (the presence module broadcasts
// unavailable) and requeues its undelivered messages.
import { createClient } from "redis";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { Config } from "../config/config.js";
import { ConfigError } from "../config/config.js";
import type { Logger } from "../log.js";
import type { Store } from "../storage/types.js";
import type { Delivered, DeliveryMeta } from "../sessions/session.js";
import type { Element } from "../xml/element.js";
import { parseFramedElement } from "../xml/parser.js";
import { StanzaError, type StanzaErrorCondition, type StreamErrorCondition } from "../xml/stanza.js";
import type { HookResult } from "../events/hooks.js";
import type { Cluster, ClusterContext } from "./cluster.js";
import type { Ownership, Router } from "../router/router.js";
import { ClusterRegistry, type DirectoryLink } from "./registry.js";
import { RemoteSession } from "./remote-session.js";
import { KEYS, VERSION_FIELD, itemsOf, metaOf, stanzaItem, type BusItem, type DirectoryEvent, type SessionRecord } from "./wire.js";

type RedisClient = ReturnType<typeof createClient>;

/** Bus entries read at once. */
const BUS_BATCH = 512;
/** How long a bus entry waits for the directory events its sender published before sending it. */
const VERSION_WAIT_MS = 1000;
const REAP_LOCK_MS = 60_000;
/** How long a node waits for the result of a stanza it forwarded to the owner of its key. */
const ANSWER_TIMEOUT_MS = 15_000;
/** How long a stopping node waits for Redis to take its leave. */
const LEAVE_TIMEOUT_MS = 3_000;
/** Sessions of a dead node ended at once. */
const REAP_PARALLEL = 32;
const FORGET_AFTER_MS = 3_600_000;
/**
 * Ownership of a partitioned key: the recorded owner while its liveness key exists, else the caller, at
 * once (one script, so two nodes never both win). KEYS[1] owners hash; ARGV key, node, alive-key prefix.
 */
const CLAIM = `local o = redis.call('HGET', KEYS[1], ARGV[1])
if o and redis.call('EXISTS', ARGV[3] .. o) == 1 then return o end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]`;
/** The owner of a held key (Router.hold) while that node is alive, else nil. KEYS[1] owners hash; ARGV key, alive-key prefix. */
const HELD_BY = `local o = redis.call('HGET', KEYS[1], ARGV[1])
if o and redis.call('EXISTS', ARGV[2] .. o) == 1 then return o end
return false`;
/** Drops a held key if this node still holds it (another node may have taken it since). ARGV key, node. */
const RELEASE = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1`;
/** Stanzas on the bus were accepted by the sending node already: only sanity limits here. */
const BUS_LIMITS = { maxStanzaBytes: 64 * 1024 * 1024, maxDepth: 1000, maxAttributes: 10_000, maxNameLength: 10_000 };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class RedisCluster implements Cluster, DirectoryLink {
  nodeId: string;
  readonly sessions: ClusterRegistry;
  private readonly url: string;
  private readonly heartbeatMs: number;
  private readonly deadAfterMs: number;
  private readonly cmd: RedisClient;
  private readonly sub: RedisClient;
  private readonly reader: RedisClient;
  private ctx: ClusterContext | null = null;
  private token = randomBytes(8).toString("hex");
  private connected = false;
  private running = false;
  /** False while the node is not (or no longer) a member: its changes are not published. */
  private registered = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private ticking = false;
  private readLoopDone: Promise<void> = Promise.resolve();
  /** Version of the last directory event this node published. */
  private ver = 0;
  /** Replica: version of the last event applied, per node. */
  private readonly versions = new Map<string, number>();
  /** Events are held back during the first read of the directory and while a node's hash is re-read. */
  private bootstrapping = true;
  private readonly resyncing = new Set<string>();
  private held: DirectoryEvent[] = [];
  /** Nodes that stopped or died, and when: their late events are ignored. */
  private readonly gone = new Map<string, number>();
  private readonly waiters = new Map<string, Array<{ ver: number; resolve: () => void }>>();
  private readonly outbox = new Map<string, BusItem[]>();
  private flushing = false;
  /** Forwarded stanzas whose result this node waits for, by request id. */
  private readonly awaiting = new Map<string, (result: HookResult) => void>();
  private requestSeq = 0;
  /** Owners of partitioned keys this node asked for (a pending claim while the answer is out). */
  private readonly owners = new Map<string, string | Promise<string>>();
  private inflight = 0;
  private lastSend = 0;

  constructor(config: Config, private readonly store: Store, private readonly log: Logger) {
    this.url = config.cluster.redisUrl!;
    this.nodeId = newNodeId(config.cluster.nodeId);
    this.heartbeatMs = config.cluster.heartbeatSeconds * 1000;
    this.deadAfterMs = config.cluster.deadAfterSeconds * 1000;
    this.sessions = new ClusterRegistry(this, config.c2s.resourceConflict, log);
    this.cmd = createClient({
      url: this.url,
      socket: {
        // At start a wrong URL fails fast with a clear message; later, Redis going away is waited out.
        reconnectStrategy: (retries, cause) => this.connected ? Math.min(100 * retries, 2000) : retries >= 5 ? cause : 200,
      },
    });
    this.sub = this.cmd.duplicate();
    this.reader = this.cmd.duplicate();
    for (const [name, c] of [["commands", this.cmd], ["events", this.sub], ["bus", this.reader]] as const) {
      c.on("error", (err: Error) => { if (this.connected) this.log.warn({ err: err.message, connection: name }, "Redis connection error"); });
    }
    this.sub.on("ready", () => {
      // After a reconnect: whatever was published meanwhile is lost to pub/sub; read the hashes again.
      if (this.connected && this.running) void this.resync(this.sessions.knownNodes(), true);
    });
  }

  // ---- lifecycle ----

  async start(ctx: ClusterContext): Promise<void> {
    this.ctx = ctx;
    try {
      await this.cmd.connect();
      await Promise.all([this.sub.connect(), this.reader.connect()]);
    } catch (err) {
      await this.disconnectAll();
      throw new ConfigError("cluster.redisUrl", `cluster.redisUrl: cannot connect to ${redact(this.url)}: ${(err as Error).message}`);
    }
    this.connected = true;
    this.running = true;
    await this.register();
    ctx.router.setForwarder(this.forward, this.ownership);
    await this.sub.subscribe(KEYS.events, (message) => this.onEvent(message));
    const members = (await this.cmd.sMembers(KEYS.nodes)).filter((n) => n !== this.nodeId);
    await this.resync(members, true);
    this.bootstrapping = false;
    this.replayHeld();
    this.readLoopDone = this.readLoop();
    this.heartbeat = setInterval(() => void this.tick(), this.heartbeatMs);
    this.heartbeat.unref();
    // Reaps a node that died while no other was running (e.g. this node's previous run).
    await this.tick();
    this.log.info({ node: this.nodeId, nodes: members.length + 1, remoteSessions: this.sessions.size }, "joined the cluster");
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    // The listeners just closed the local sessions: let their unavailable presences leave first.
    const deadline = Date.now() + 2000;
    await sleep(100);
    while (Date.now() < deadline && (this.inflight > 0 || Date.now() - this.lastSend < 100)) await sleep(20);
    this.running = false;
    this.ctx?.router.setForwarder(null);
    if (this.heartbeat) clearInterval(this.heartbeat);
    // Redis may be gone: leaving is bounded, and the others clean up after the heartbeat TTL instead.
    const left = await Promise.race([this.leave().then(() => true), sleep(LEAVE_TIMEOUT_MS).then(() => false)]);
    if (!left) this.log.warn({ node: this.nodeId }, "Redis did not answer while leaving the cluster; the others will clean up after the heartbeat TTL");
    await this.disconnectAll(left);
    this.log.info({ node: this.nodeId }, "left the cluster");
  }

  async probe(): Promise<{ nodes: number }> {
    if (!this.cmd.isReady) throw new Error("Redis is not connected");
    return { nodes: await this.cmd.sCard(KEYS.nodes) };
  }

  /** Requeues what this node's stream still holds and removes the node from the cluster. */
  private async leave(): Promise<void> {
    await this.reader.disconnect().catch(() => {});
    await this.readLoopDone;
    try {
      const id = this.nodeId;
      const [entries] = await this.cmd.multi().xRange(KEYS.bus(id), "-", "+").del(KEYS.bus(id)).exec();
      await this.undeliverable((entries as unknown as Array<{ message: Record<string, string> }>).flatMap((e) => itemsOf(e.message)));
      this.registered = false;
      await this.cmd.multi().sRem(KEYS.nodes, id).del(KEYS.alive(id)).del(KEYS.sessions(id))
        .publish(KEYS.events, JSON.stringify({ t: "down", node: id } satisfies DirectoryEvent)).exec();
    } catch (err) {
      this.log.warn({ err }, "leaving the cluster failed; the others will clean up after the heartbeat TTL");
    }
  }

  /** `graceful`: QUIT (waits for the replies of what was sent); otherwise the sockets are just closed. */
  private async disconnectAll(graceful = true): Promise<void> {
    for (const c of [this.sub, this.reader, this.cmd]) {
      if (!c.isOpen) continue;
      if (graceful) await c.quit().catch(() => c.disconnect().catch(() => {}));
      else await c.disconnect().catch(() => {});
    }
  }

  /** Makes this node a member: liveness key, empty bus stream, empty hash, all at once. */
  private async register(): Promise<void> {
    const id = this.nodeId;
    await this.cmd.multi()
      .sAdd(KEYS.nodes, id)
      .set(KEYS.alive(id), this.token, { PX: this.deadAfterMs })
      .xAdd(KEYS.bus(id), "*", { k: "init" })
      .xTrim(KEYS.bus(id), "MAXLEN", 0)
      .hSet(KEYS.sessions(id), VERSION_FIELD, "0")
      .exec();
    this.ver = 0;
    this.registered = true;
  }

  // ---- publishing local changes (DirectoryLink) ----

  publishBind(record: SessionRecord): void { this.publishRecord("bind", record); }
  publishUpdate(record: SessionRecord): void { this.publishRecord("update", record); }

  private publishRecord(t: "bind" | "update", record: SessionRecord): void {
    if (!this.registered) return;
    const ver = ++this.ver;
    const event: DirectoryEvent = { t, node: this.nodeId, ver, session: record };
    this.cmd.multi()
      .hSet(KEYS.sessions(this.nodeId), { [record.id]: JSON.stringify(record), [VERSION_FIELD]: String(ver) })
      .publish(KEYS.events, JSON.stringify(event))
      .exec().catch((err) => this.log.warn({ err }, "publishing a session change failed"));
  }

  publishUnbind(id: string): void {
    if (!this.registered) return;
    const ver = ++this.ver;
    const event: DirectoryEvent = { t: "unbind", node: this.nodeId, ver, id };
    this.cmd.multi()
      .hDel(KEYS.sessions(this.nodeId), id)
      .hSet(KEYS.sessions(this.nodeId), VERSION_FIELD, String(ver))
      .publish(KEYS.events, JSON.stringify(event))
      .exec().catch((err) => this.log.warn({ err }, "publishing a session end failed"));
  }

  // ---- partitioned keys (Router.partition): each is handled on the node that owns it ----

  /** Held keys (a component connected here) name this node as their owner until it lets them go. */
  private readonly ownership: Ownership = {
    hold: async (key) => { await this.cmd.hSet(KEYS.owners, key, this.nodeId); },
    release: async (key) => { await this.cmd.eval(RELEASE, { keys: [KEYS.owners], arguments: [key, this.nodeId] }); },
  };

  private readonly forward = (key: string, stanza: Element, answer: boolean, held: boolean): false | HookResult | Promise<false | HookResult> => {
    // A held key moves with its holder (a component reconnecting to another node): asked every time, never
    // cached; nobody holding it means this node answers (e.g. service-unavailable).
    if (held) {
      return (this.cmd.eval(HELD_BY, { keys: [KEYS.owners], arguments: [key, KEYS.alive("")] }) as Promise<string | null>)
        .then((node) => (node === null ? false as const : this.toOwner(node, stanza, answer)), (err: unknown) => {
          this.log.warn({ err, key }, "finding the node holding a key failed; handling the stanza here");
          return false as const;
        });
    }
    const known = this.owners.get(key);
    if (typeof known === "string") return this.toOwner(known, stanza, answer);
    // Stanzas for a key whose owner is being asked wait on the same answer, so they keep their order.
    return (known ?? this.claim(key)).then((node) => this.toOwner(node, stanza, answer), (err: unknown) => {
      this.log.warn({ err, key }, "finding the owner node failed; handling the stanza here");
      return false as const;
    });
  };

  private claim(key: string): Promise<string> {
    const asked: Promise<string> = (this.cmd.eval(CLAIM, { keys: [KEYS.owners], arguments: [key, this.nodeId, KEYS.alive("")] }) as Promise<string>)
      .then((node) => {
        if (this.owners.get(key) === asked) this.owners.set(key, node);
        return node;
      }, (err: unknown) => {
        if (this.owners.get(key) === asked) this.owners.delete(key);
        throw err;
      });
    this.owners.set(key, asked);
    return asked;
  }

  private toOwner(node: string, stanza: Element, answer: boolean): false | HookResult | Promise<HookResult> {
    if (node === this.nodeId) return false;
    if (!answer) {
      this.post(node, { k: "r", s: "", x: stanza.toString() });
      return true;
    }
    const id = `${this.nodeId}:${++this.requestSeq}`;
    this.post(node, { k: "r", s: id, x: stanza.toString() });
    return new Promise<HookResult>((resolve) => {
      // The owner died with the request: the sender learns the stanza was not taken.
      const timer = setTimeout(() => { this.awaiting.delete(id); resolve(new StanzaError("remote-server-timeout", "the node owning the room did not answer")); }, ANSWER_TIMEOUT_MS);
      timer.unref();
      this.awaiting.set(id, (result) => { clearTimeout(timer); resolve(result); });
    });
  }

  /** The owner's result of a forwarded stanza, as it travels back (JSON). */
  private answerTo(node: string, id: string, result: HookResult): void {
    const wire = result instanceof StanzaError ? { error: result.condition, text: result.text }
      : result !== null && typeof result === "object" && "duplicate" in result ? { delivered: result }
        : { handled: !!result };
    this.post(node, { k: "a", s: id, x: JSON.stringify(wire) });
  }

  private answered(id: string, text: string): void {
    let result: HookResult;
    try {
      const wire = JSON.parse(text) as { error?: StanzaErrorCondition; text?: string; delivered?: Delivered; handled?: boolean };
      result = wire.error ? new StanzaError(wire.error, wire.text) : wire.delivered ?? wire.handled ?? true;
    } catch {
      result = new StanzaError("internal-server-error");
    }
    this.settleAwaiting(id, result);
  }

  private settleAwaiting(id: string, result: HookResult): void {
    const done = this.awaiting.get(id);
    if (!done) return;
    this.awaiting.delete(id);
    done(result);
  }

  // ---- sending to other nodes (RemoteLink) ----

  sendRemote(session: RemoteSession, stanza: Element, meta: DeliveryMeta | undefined): void {
    this.post(session.node, stanzaItem(session.id, stanza.toString(), session.jid!.bareString(), meta));
  }

  closeRemote(session: RemoteSession, error: StreamErrorCondition | undefined, text: string | undefined): void {
    this.post(session.node, { k: "c", s: session.id, e: error ?? "", x: text ?? "" });
  }

  /** Queues an item; the items of one event-loop turn go to each node as one stream entry. */
  private post(node: string, item: BusItem): void {
    const queued = this.outbox.get(node);
    if (queued) queued.push(item);
    else this.outbox.set(node, [item]);
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    const outbox = [...this.outbox];
    this.outbox.clear();
    for (const [node, items] of outbox) {
      this.inflight++;
      this.lastSend = Date.now();
      const fields = { n: this.nodeId, v: String(this.ver), b: JSON.stringify(items) };
      // NOMKSTREAM: a node that is gone has no stream; the items then come back here instead of vanishing.
      (this.cmd.xAdd(KEYS.bus(node), "*", fields, { NOMKSTREAM: true }) as Promise<string | null>).then((id) => {
        this.inflight--;
        if (id !== null) return;
        this.forget(node);
        void this.undeliverable(items);
      }, (err) => {
        this.inflight--;
        this.log.warn({ err, node }, "sending to another node failed");
        void this.undeliverable(items);
      });
    }
  }

  /**
   * Items that never reached their session: an archived message becomes pending (offline) again in the
   * recipient's timeline; an iq request is answered with service-unavailable; the rest is dropped, as a
   * stanza to a session that just closed is on a single node.
   */
  private async undeliverable(items: BusItem[], owners?: Set<string>): Promise<number> {
    const pending = new Map<string, number[]>();
    let requeued = 0;
    for (const e of items) {
      if (e.k === "r") {
        // Its owner is gone: the stanza goes to whichever node owns the key now (claimed again), and a
        // node waiting for its result (the request id starts with that node's id) gets this one.
        let result: ReturnType<Router["route"]>;
        try { result = this.ctx?.router.route(parseFramedElement(e.x, BUS_LIMITS)); } catch { continue; /* unreadable: dropped */ }
        if (e.s) {
          const asker = e.s.slice(0, e.s.lastIndexOf(":"));
          void Promise.resolve(result).then((r) => asker === this.nodeId ? this.settleAwaiting(e.s, r) : this.answerTo(asker, e.s, r), () => {});
        }
        continue;
      }
      if (e.k !== "s") continue;
      if (e.q !== undefined && e.o) {
        let seqs = pending.get(e.o);
        if (!seqs) pending.set(e.o, (seqs = []));
        seqs.push(e.q);
      } else if (e.x?.startsWith("<iq") && this.ctx) {
        try {
          const el = parseFramedElement(e.x, BUS_LIMITS);
          if (el.attrs.type === "get" || el.attrs.type === "set") this.ctx.router.bounce(el, "service-unavailable");
        } catch { /* unreadable: dropped */ }
      }
    }
    for (const [owner, seqs] of pending) {
      try {
        await this.store.timeline.markPending(owner, seqs);
        requeued += seqs.length;
        owners?.add(owner);
      } catch (err) {
        this.log.error({ err, owner, seqs }, "could not move undelivered messages back to offline storage");
      }
    }
    return requeued;
  }

  // ---- receiving from other nodes ----

  private async readLoop(): Promise<void> {
    let key = KEYS.bus(this.nodeId);
    let last = "0-0";
    while (this.running) {
      if (key !== KEYS.bus(this.nodeId)) { key = KEYS.bus(this.nodeId); last = "0-0"; }
      let batch;
      try {
        batch = await this.reader.xRead({ key, id: last }, { BLOCK: 2000, COUNT: BUS_BATCH });
      } catch (err) {
        if (!this.running) return;
        this.log.warn({ err }, "reading the bus failed");
        await sleep(500);
        continue;
      }
      if (!batch) continue;
      const ids: string[] = [];
      for (const stream of batch) {
        for (const { id, message } of stream.messages) {
          last = id;
          ids.push(id);
          const from = message.n;
          const ver = Number(message.v);
          // Causality: the directory changes the sender made before sending this are visible before it is.
          if (from && from !== this.nodeId && ver > (this.versions.get(from) ?? 0)) await this.waitForVersion(from, ver);
          for (const item of itemsOf(message)) {
            try {
              this.deliverItem(item, from);
            } catch (err) {
              this.log.error({ err }, "delivering a stanza from another node failed");
            }
          }
        }
      }
      // Only what was handed over leaves the stream: the rest is what a survivor requeues if this node dies.
      try { await this.cmd.xDel(key, ids); } catch (err) { this.log.warn({ err }, "trimming the bus failed"); }
    }
  }

  private deliverItem(e: BusItem, from: string | undefined): void {
    if (e.k === "a") {
      this.answered(e.s, e.x);
      return;
    }
    if (e.k === "r") {
      let el: Element;
      try { el = parseFramedElement(e.x, BUS_LIMITS); } catch (err) {
        this.log.warn({ err }, "dropping an unreadable stanza from another node");
        return;
      }
      const result = this.ctx?.router.fromCluster(el);
      if (e.s && from) {
        void Promise.resolve(result).then((r) => this.answerTo(from, e.s, r), () => this.answerTo(from, e.s, new StanzaError("internal-server-error")));
      }
      return;
    }
    const session = this.sessions.localSession(e.s);
    if (e.k === "c") {
      session?.close((e.e || undefined) as StreamErrorCondition | undefined, e.x || undefined);
      return;
    }
    if (e.k !== "s") return;
    if (!session || session.closed) {
      void this.undeliverable([e]);
      return;
    }
    let el: Element;
    try {
      el = parseFramedElement(e.x, BUS_LIMITS);
    } catch (err) {
      this.log.warn({ err }, "dropping an unreadable stanza from another node");
      return;
    }
    session.send(el, metaOf(e));
    if (el.name === "presence") void this.ctx?.hooks.notify(session.host, "presence-relayed", { session, stanza: el });
  }

  // ---- the replica ----

  private onEvent(message: string): void {
    let ev: DirectoryEvent;
    try { ev = JSON.parse(message) as DirectoryEvent; } catch { return; }
    if (ev.node === this.nodeId) return;
    if (this.bootstrapping || this.resyncing.has(ev.node)) { this.held.push(ev); return; }
    this.apply(ev);
  }

  private apply(ev: DirectoryEvent): void {
    if (this.gone.has(ev.node)) return;
    if (ev.t === "down") { this.forget(ev.node); return; }
    const last = this.versions.get(ev.node) ?? 0;
    if (ev.ver <= last) return;
    if (ev.ver > last + 1) {
      // A lost event: the hash has the truth.
      this.held.push(ev);
      void this.resync([ev.node]);
      return;
    }
    if (ev.t === "unbind") this.sessions.removeRemote(ev.node, ev.id);
    else this.sessions.upsertRemote(ev.node, ev.session);
    this.setVersion(ev.node, ev.ver);
  }

  private replayHeld(): void {
    const held = this.held;
    this.held = [];
    for (const ev of held) {
      if (this.resyncing.has(ev.node)) this.held.push(ev);
      else this.apply(ev);
    }
  }

  /** Re-reads the hashes of `nodes` into the replica. */
  private async resync(nodes: string[], force = false): Promise<void> {
    const todo = nodes.filter((n) => force || !this.resyncing.has(n));
    if (todo.length === 0) return;
    for (const n of todo) this.resyncing.add(n);
    try {
      const hashes = await Promise.all(todo.map((n) => this.cmd.hGetAll(KEYS.sessions(n))));
      todo.forEach((n, i) => this.applySnapshot(n, hashes[i]));
    } catch (err) {
      this.log.warn({ err }, "reading the session directory failed");
    } finally {
      for (const n of todo) this.resyncing.delete(n);
      if (!this.bootstrapping) this.replayHeld();
    }
  }

  private applySnapshot(node: string, hash: Record<string, string>): void {
    if (this.gone.has(node)) return;
    // Registration creates the hash with its version, and only leaving or dying deletes it.
    if (hash[VERSION_FIELD] === undefined) { this.forget(node); return; }
    const records: SessionRecord[] = [];
    for (const [field, value] of Object.entries(hash)) {
      if (field === VERSION_FIELD) continue;
      try { records.push(JSON.parse(value) as SessionRecord); } catch { /* skipped */ }
    }
    this.sessions.resetNode(node, records);
    this.setVersion(node, Number(hash[VERSION_FIELD] ?? 0));
  }

  private setVersion(node: string, ver: number): void {
    this.versions.set(node, ver);
    const list = this.waiters.get(node);
    if (!list) return;
    const ready = list.filter((w) => w.ver <= ver);
    if (ready.length === 0) return;
    const rest = list.filter((w) => w.ver > ver);
    if (rest.length) this.waiters.set(node, rest); else this.waiters.delete(node);
    for (const w of ready) w.resolve();
  }

  private waitForVersion(node: string, ver: number): Promise<void> {
    if (this.gone.has(node)) return Promise.resolve();
    return new Promise((resolve) => {
      let done = false;
      const finish = () => { if (!done) { done = true; clearTimeout(timer); resolve(); } };
      const timer = setTimeout(() => {
        // The event is late or lost: read the node's hash instead.
        void this.resync([node], true).then(finish);
      }, VERSION_WAIT_MS);
      const list = this.waiters.get(node) ?? [];
      list.push({ ver, resolve: finish });
      this.waiters.set(node, list);
    });
  }

  /** Drops a node that stopped or died from the replica, for good. */
  private forget(node: string): void {
    this.gone.set(node, Date.now());
    for (const [key, owner] of this.owners) if (owner === node) this.owners.delete(key);
    this.sessions.dropNode(node);
    this.versions.delete(node);
    const list = this.waiters.get(node);
    this.waiters.delete(node);
    for (const w of list ?? []) w.resolve();
  }

  // ---- liveness ----

  private async tick(): Promise<void> {
    if (this.ticking || !this.running) return;
    this.ticking = true;
    try {
      const refreshed = await this.cmd.set(KEYS.alive(this.nodeId), this.token, { PX: this.deadAfterMs, XX: true });
      if (refreshed === null) {
        await this.rejoin();
        return;
      }
      const members = await this.cmd.sMembers(KEYS.nodes);
      const others = members.filter((n) => n !== this.nodeId);
      const alive = others.length ? await this.cmd.mGet(others.map((n) => KEYS.alive(n))) : [];
      for (let i = 0; i < others.length; i++) if (alive[i] === null) await this.nodeDead(others[i]);
      // A node that left while its "down" event was lost: its hash is gone, and the re-read forgets it.
      const registered = new Set(members);
      const stale = this.sessions.knownNodes().filter((n) => !registered.has(n));
      if (stale.length) await this.resync(stale);
      const now = Date.now();
      for (const [n, at] of this.gone) if (now - at > FORGET_AFTER_MS) this.gone.delete(n);
    } catch (err) {
      this.log.warn({ err }, "cluster heartbeat failed");
    } finally {
      this.ticking = false;
    }
  }

  private async nodeDead(node: string): Promise<void> {
    this.forget(node);
    const won = await this.cmd.set(KEYS.reap(node), this.nodeId, { NX: true, PX: REAP_LOCK_MS });
    if (won === null) return;
    // Not awaited: the heartbeat goes on while the sessions are ended. The lock is held meanwhile; if this
    // node dies too, another one repeats the cleanup after the lock expires.
    const hold = setInterval(() => void this.cmd.pExpire(KEYS.reap(node), REAP_LOCK_MS).catch(() => {}), REAP_LOCK_MS / 3);
    void this.reap(node)
      .catch((err) => this.log.error({ err, node }, "cleaning up after a dead node failed"))
      .finally(() => clearInterval(hold));
  }

  /**
   * Cleans up after a dead node: its undelivered stanzas, then its sessions, then its keys. A client that
   * reconnected to another node before the cleanup keeps what it has: its full JID, bound again elsewhere,
   * is not ended (no `unavailable` to its contacts), and the messages stranded on the dead node go to the
   * user's available resource now instead of waiting for the next login.
   */
  private async reap(node: string): Promise<void> {
    // Requeue first, then delete the stream with whatever arrived meanwhile: marking pending twice is
    // harmless, so a reaper that dies half-way loses nothing. After the DEL, senders requeue themselves.
    const owners = new Set<string>();
    const first = await this.cmd.xRange(KEYS.bus(node), "-", "+");
    let requeued = await this.undeliverable(first.flatMap((e) => itemsOf(e.message)), owners);
    const after = first.length ? `(${first[first.length - 1].id}` : "-";
    const [rest, , hash] = await this.cmd.multi()
      .xRange(KEYS.bus(node), after, "+")
      .del(KEYS.bus(node))
      .hGetAll(KEYS.sessions(node))
      .exec();
    requeued += await this.undeliverable((rest as unknown as Array<{ message: Record<string, string> }>).flatMap((e) => itemsOf(e.message)), owners);
    const sessions: RemoteSession[] = [];
    let rebound = 0;
    for (const [field, value] of Object.entries(hash as unknown as Record<string, string>)) {
      if (field === VERSION_FIELD) continue;
      let session: RemoteSession;
      try { session = new RemoteSession(node, JSON.parse(value) as SessionRecord, this); } catch { continue; }
      // forget(node) already dropped the dead node's sessions from the replica: whoever holds the full
      // JID now is a live session that replaced this one.
      if (this.sessions.get(session.jid!)) rebound++;
      else sessions.push(session);
    }
    for (let i = 0; i < sessions.length; i += REAP_PARALLEL) {
      await Promise.all(sessions.slice(i, i + REAP_PARALLEL).map(async (session) => {
        session.closed = true;
        try {
          // The normal end of a session: the presence module tells the contacts it is unavailable.
          await this.ctx?.hooks.notify(session.host, "resource-unbind", { session, reason: "node down" });
        } catch (err) {
          this.log.error({ err }, "ending a session of a dead node failed");
        }
      }));
    }
    await this.cmd.multi().del(KEYS.sessions(node)).sRem(KEYS.nodes, node)
      .publish(KEYS.events, JSON.stringify({ t: "down", node } satisfies DirectoryEvent)).exec();
    for (const owner of owners) {
      const host = owner.slice(owner.indexOf("@") + 1);
      try {
        await this.ctx?.hooks.notify(host, "messages-requeued", { owner });
      } catch (err) {
        this.log.error({ err, owner }, "handing stranded messages to an online resource failed");
      }
    }
    this.log.warn({ node, sessions: sessions.length, rebound, requeued }, "a cluster node died: its sessions were ended, its undelivered messages moved to offline storage");
  }

  /**
   * This node's liveness key expired (Redis unreachable or the process stalled longer than the TTL): the
   * others consider it dead and may have cleaned up after it. Its sessions end (the clients reconnect)
   * and it joins again under a new id.
   */
  private async rejoin(): Promise<void> {
    this.log.error({ node: this.nodeId }, "this node was declared dead by the cluster; closing its sessions and joining again");
    this.registered = false;
    this.owners.clear();
    for (const s of this.sessions.localSessions()) s.close("internal-server-error", "the server lost contact with its cluster");
    this.nodeId = newNodeId(this.nodeId.replace(/-[0-9a-f]{6}$/, ""));
    this.token = randomBytes(8).toString("hex");
    await this.register();
    // The keys this node holds were recorded under its old id: record them under the new one.
    this.ctx?.router.setForwarder(this.forward, this.ownership);
  }
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

function newNodeId(name: string | null): string {
  return `${name ?? `${hostname()}-${process.pid}`}-${randomBytes(3).toString("hex")}`;
}
