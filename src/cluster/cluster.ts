// The cluster interface (DESIGN.md "src/cluster"): the session directory every caller reads, and the
// lifecycle that connects it to the other nodes. Without cluster.redisUrl a node runs the in-process
// directory; with it, the Redis one. Nothing above this interface knows which.
import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import type { HookBuses } from "../events/hooks.js";
import type { Router } from "../router/router.js";
import type { Store } from "../storage/types.js";
import { SessionRegistry } from "../sessions/registry.js";
import { RedisCluster } from "./redis.js";

/** What the cluster needs from the server once the modules are loaded. */
export interface ClusterContext {
  readonly hooks: HookBuses;
  readonly router: Router;
}

export interface Cluster {
  /** This node's id ("local" on a single node). */
  readonly nodeId: string;
  /** Every bound session: this node's and, in a cluster, proxies of the other nodes' ones. */
  readonly sessions: SessionRegistry;
  /** Joins the cluster: replica, bus and heartbeat. Called before the listeners open. */
  start(ctx: ClusterContext): Promise<void>;
  /** Leaves it, after the listeners closed the local sessions. */
  stop(): Promise<void>;
  /** The nodes in the cluster; rejects while Redis does not answer (readiness, metrics). One without Redis. */
  probe(): Promise<{ nodes: number }>;
}

export function createCluster(config: Config, deps: { store: Store; log: Logger }): Cluster {
  if (config.cluster.redisUrl === null) return inProcessCluster();
  return new RedisCluster(config, deps.store, deps.log.child({ component: "cluster" }));
}

/** One node, no Redis: the plain registry. */
export function inProcessCluster(): Cluster {
  return {
    nodeId: "local",
    sessions: new SessionRegistry(),
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    probe: () => Promise.resolve({ nodes: 1 }),
  };
}
