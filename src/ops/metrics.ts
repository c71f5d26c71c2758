// Prometheus metrics (prom-client). Nothing here runs per stanza: the hot paths bump plain integers they
// own (Router.traffic, LoginService.counts) and the collect callbacks read them, and the session counts,
// rooms and pool at scrape time. Only a timeline group commit (one per event-loop turn at most) observes
// its two histograms directly.
import client from "prom-client";
import type { ServerContext, ModuleHost } from "../modules/module.js";
import type { Cluster } from "../cluster/cluster.js";
import { RemoteSession } from "../cluster/remote-session.js";
import type { LoginService } from "../auth/login.js";
import type { C2sSession } from "../c2s/session.js";
import type { S2s } from "../s2s/index.js";

export interface MetricsDeps {
  context: ServerContext;
  modules: ModuleHost;
  cluster: Cluster;
  login: LoginService;
  tracker: ReadonlySet<C2sSession>;
  s2s: S2s;
  version: string;
}

export interface Metrics {
  readonly contentType: string;
  /** The exposition text: this server's metrics and the process's (event loop, GC, memory). */
  render(): Promise<string>;
  close(): void;
}

/** Process metrics describe the process, not one server: collected once however many servers it runs (tests). */
let processRegistry: client.Registry | null = null;
function processMetrics(): client.Registry {
  if (processRegistry === null) {
    processRegistry = new client.Registry();
    client.collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: 20 });
  }
  return processRegistry;
}

const TRANSPORTS = ["tcp", "tls", "websocket", "bosh", "mobile", "s2s_in", "s2s_out"] as const;

export function createMetrics(deps: MetricsDeps): Metrics {
  const { context, cluster, login, tracker, s2s } = deps;
  const registry = new client.Registry();
  const undo: Array<() => void> = [];

  new client.Gauge({
    name: "hearth_info", help: "Version, node and storage driver of this server (always 1).",
    labelNames: ["version", "node", "storage"], registers: [registry],
    collect() { this.set({ version: deps.version, node: cluster.nodeId, storage: context.store.driver }, 1); },
  });

  new client.Gauge({
    name: "hearth_connections", help: "Open client and server connections of this node, by transport.",
    labelNames: ["transport"], registers: [registry],
    collect() {
      const n: Record<(typeof TRANSPORTS)[number], number> = { tcp: 0, tls: 0, websocket: 0, bosh: 0, mobile: 0, s2s_in: 0, s2s_out: 0 };
      for (const s of tracker) n[s.protocol]++;
      for (const s of context.sessions.all()) if (s.protocol === "mobile" && !(s instanceof RemoteSession)) n.mobile++;
      n.s2s_in = s2s.incoming().length;
      n.s2s_out = s2s.outgoing().length;
      for (const t of TRANSPORTS) this.set({ transport: t }, n[t]);
    },
  });

  new client.Gauge({
    name: "hearth_sessions", help: "Bound sessions (resources) of this node, every transport.", registers: [registry],
    collect() {
      let n = 0;
      for (const s of context.sessions.all()) if (!(s instanceof RemoteSession)) n++;
      this.set(n);
    },
  });

  const loginCounter = (name: string, help: string, pick: "succeeded" | "failed") => new client.Counter({
    name, help, labelNames: ["mechanism"], registers: [registry],
    collect() {
      this.reset();
      for (const [mechanism, c] of login.counts) this.inc({ mechanism }, c[pick]);
    },
  });
  loginCounter("hearth_logins_total", "Successful logins, by mechanism (SASL name, mobile-password, mobile-token).", "succeeded");
  loginCounter("hearth_login_failures_total", "Logins refused for wrong credentials, by mechanism.", "failed");

  new client.Counter({
    name: "hearth_stanzas_total", help: "Stanzas from (in) and to (out) local client sessions, by kind.",
    labelNames: ["direction", "kind"], registers: [registry],
    collect() {
      this.reset();
      const { in: i, out: o } = context.router.traffic;
      this.inc({ direction: "in", kind: "message" }, i.message);
      this.inc({ direction: "in", kind: "presence" }, i.presence);
      this.inc({ direction: "in", kind: "iq" }, i.iq);
      this.inc({ direction: "out", kind: "message" }, o.message);
      this.inc({ direction: "out", kind: "presence" }, o.presence);
      this.inc({ direction: "out", kind: "iq" }, o.iq);
    },
  });

  let archived = 0;
  const onDelivered = (ev: { meta: unknown; duplicate: boolean }) => { if (ev.meta !== null && !ev.duplicate) archived++; };
  for (const host of context.config.hosts) {
    const bus = context.hooks.of(host);
    if (bus) undo.push(bus.observe("message-delivered", onDelivered as never));
  }
  new client.Counter({
    name: "hearth_messages_archived_total", help: "One-to-one messages written to their recipient's timeline (archive, offline, sync).",
    registers: [registry],
    collect() { this.reset(); this.inc(archived); },
  });

  const batchSize = new client.Histogram({
    name: "hearth_timeline_commit_batch_size", help: "Appends written by one timeline group commit.",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers: [registry],
  });
  const commitSeconds = new client.Histogram({
    name: "hearth_timeline_commit_duration_seconds", help: "Time one timeline group commit took.",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
  });
  const monitor = context.store.monitor;
  monitor.onCommit = (appends, seconds) => { batchSize.observe(appends); commitSeconds.observe(seconds); };
  undo.push(() => { monitor.onCommit = null; });

  new client.Gauge({
    name: "hearth_muc_rooms", help: "Group chat rooms in memory on this node (those with occupants or just used).", registers: [registry],
    collect() { this.set(deps.modules.service("rooms")?.live().length ?? 0); },
  });
  new client.Gauge({
    name: "hearth_muc_occupants", help: "Occupants of the rooms in memory on this node.", registers: [registry],
    collect() {
      let n = 0;
      for (const r of deps.modules.service("rooms")?.live() ?? []) n += r.occupants;
      this.set(n);
    },
  });

  new client.Gauge({
    name: "hearth_cluster_nodes", help: "Nodes in the cluster as Redis lists them (1 without Redis; 0 while Redis does not answer).",
    registers: [registry],
    async collect() {
      try { this.set((await withTimeout(cluster.probe(), 2000)).nodes); } catch { this.set(0); }
    },
  });

  new client.Gauge({
    name: "hearth_store_pool_connections", help: "Connections of the PostgreSQL pool, by state (absent on SQLite).",
    labelNames: ["state"], registers: [registry],
    collect() {
      const p = monitor.pool();
      if (p === null) return;
      this.set({ state: "total" }, p.total);
      this.set({ state: "idle" }, p.idle);
      this.set({ state: "waiting" }, p.waiting);
    },
  });

  return {
    contentType: registry.contentType,
    async render() {
      return client.Registry.merge([processMetrics(), registry]).metrics();
    },
    close() {
      for (const fn of undo.reverse()) fn();
      registry.clear();
    },
  };
}

/** Rejects when `p` has not settled within `ms` (a Redis or store call that hangs while its peer is gone). */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    t.unref();
    p.then((v) => { clearTimeout(t); resolve(v); }, (err) => { clearTimeout(t); reject(err); });
  });
}
