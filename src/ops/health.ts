// Health checks for systemd, Kubernetes and load balancers. Live: the process serves HTTP. Ready: the
// store answers a read, Redis answers (when configured), every configured listener is listening, and
// the server is not stopping. Each check has a deadline, so a hung store reads as "not ready", not as
// a probe that never returns.
import type { Server as NetServer } from "node:net";
import type { Store } from "../storage/types.js";
import type { Cluster } from "../cluster/cluster.js";
import { withTimeout } from "./metrics.js";

export interface HealthDeps {
  store: Store;
  cluster: Cluster;
  /** cluster.redisUrl is set: Redis must answer. */
  redis: boolean;
  /** The configured listeners (null entries are turned off in the config and not checked). */
  listeners: () => Record<string, NetServer | null>;
  host: string;
  stopping: () => boolean;
}

export interface Readiness { ready: boolean; checks: Record<string, string> }

const DEADLINE_MS = 2000;

export async function readiness(deps: HealthDeps): Promise<Readiness> {
  const checks: Record<string, string> = {};
  const probe = async (name: string, fn: () => Promise<unknown>) => {
    try {
      await withTimeout(fn(), DEADLINE_MS);
      checks[name] = "ok";
    } catch (err) {
      checks[name] = `failing: ${err instanceof Error ? err.message : String(err)}`;
    }
  };
  // A real read on the store's own connection(s): a lookup of an account no one can have (an empty name).
  await Promise.all([
    probe("store", () => deps.store.accounts.get(deps.host, "")),
    !deps.redis ? Promise.resolve() : probe("redis", () => deps.cluster.probe()),
  ]);
  for (const [name, server] of Object.entries(deps.listeners())) {
    if (server !== null) checks[`listener:${name}`] = server.listening ? "ok" : "failing: not listening";
  }
  if (deps.stopping()) checks.server = "failing: stopping";
  return { ready: Object.values(checks).every((v) => v === "ok"), checks };
}
