// The composition root of one node: store, hook bus, router, modules, listeners. Everything is passed
// in explicitly (STYLE: factories with their dependencies as arguments, nothing global).
import type { AddressInfo } from "node:net";
import type { Config } from "./config/config.js";
import { loadTls, buildSniOptions } from "./config/tls.js";
import { createLogger, type Logger } from "./log.js";
import { HookBuses } from "./events/hooks.js";
import { Router } from "./router/router.js";
import { createCluster, type Cluster } from "./cluster/cluster.js";
import { ModuleHost, type ModuleDefinition, type ServerContext } from "./modules/module.js";
import { AccountService } from "./auth/accounts.js";
import { openStore } from "./storage/open.js";
import { FailureThrottle } from "./c2s/throttle.js";
import { startListeners, type ListenerSet } from "./c2s/listeners.js";
import type { C2sSession } from "./c2s/session.js";
import { coreModules } from "./im/index.js";
import { mobileModule } from "./mobile/index.js";
import { startS2s, type S2s } from "./s2s/index.js";
import type { Store } from "./storage/types.js";

export interface Server {
  readonly context: ServerContext;
  readonly modules: ModuleHost;
  /** The session directory and node-to-node bus (in-process without cluster.redisUrl). */
  readonly cluster: Cluster;
  /** Bound ports (useful when the config asked for port 0). */
  readonly ports: { c2s: number | null; directTls: number | null; http: number | null; s2s: number | null };
  /** Federation: the s2s listener and outgoing streams. */
  readonly s2s: S2s;
  stop(): Promise<void>;
}

export async function startServer(config: Config, extensions: ModuleDefinition<any>[], opts: { log?: Logger } = {}): Promise<Server> {
  const log = opts.log ?? createLogger(config.log);
  const store: Store = await openStore(config);
  const hooks = new HookBuses((event, err) => log.error({ err, event }, "an observer failed"));
  const cluster = createCluster(config, { store, log });
  const sessions = cluster.sessions;
  const router = new Router(hooks, sessions, new Set(config.hosts), log);
  const accounts = new AccountService(store, hooks, sessions, {
    hosts: config.hosts, iterations: config.auth.scramIterations, minPasswordLength: config.registration.minPasswordLength,
  });
  const context: ServerContext = { config, log, store, hooks, router, sessions, accounts, features: { host: new Set(), account: new Set() }, identities: [], httpUpgrades: new Map() };
  const modules = new ModuleHost(context);
  let listeners: ListenerSet | null = null;
  let s2s: S2s | null = null;
  try {
    await modules.loadAll([...coreModules, mobileModule, ...extensions]);
    await cluster.start({ hooks, router });
    const tlsMaterial = await loadTls(config, log);
    const tlsOptions = buildSniOptions(tlsMaterial, config.hosts[0]);
    const tracker = new Set<C2sSession>();
    listeners = await startListeners({
      config, log, logStanzas: config.log.stanzas, hooks, router, sessions, store, tracker, httpUpgrades: context.httpUpgrades,
      throttle: new FailureThrottle(config.auth.maxFailures, config.auth.failureWindowSeconds * 1000),
    }, tlsOptions);
    s2s = await startS2s({ config, log, hooks, router, tlsMaterial });
  } catch (err) {
    await s2s?.stop();
    await listeners?.close();
    await cluster.stop();
    modules.unloadAll();
    await store.close();
    throw err;
  }
  const port = (s: { address(): AddressInfo | string | null } | null) => {
    const a = s?.address();
    return a && typeof a === "object" ? a.port : null;
  };
  const ports = { c2s: port(listeners.c2s), directTls: port(listeners.directTls), http: port(listeners.http), s2s: s2s.port };
  log.info({ hosts: config.hosts, ports, storage: store.driver, modules: modules.names }, "server started");
  await hooks.server.notify("server-started", {});
  let stopping: Promise<void> | null = null;
  const ls = listeners;
  const federation = s2s;
  return {
    context, modules, cluster, ports, s2s: federation,
    stop() {
      stopping ??= (async () => {
        await hooks.server.notify("server-stopping", {});
        await federation.stop();
        await ls.close();
        await cluster.stop();
        modules.unloadAll();
        await store.close();
        log.info("server stopped");
      })();
      return stopping;
    },
  };
}
