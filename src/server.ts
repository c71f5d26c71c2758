// The composition root of one node: store, hook bus, router, modules, listeners. Everything is passed
// in explicitly (STYLE: factories with their dependencies as arguments, nothing global).
import type { AddressInfo } from "node:net";
import type { TlsOptions } from "node:tls";
import type { Config } from "./config/config.js";
import { loadTls, buildSniOptions, checkCertificates, replaceTlsMaterial, type TlsMaterial } from "./config/tls.js";
import { createLogger, type Logger } from "./log.js";
import { HookBuses } from "./events/hooks.js";
import { Router } from "./router/router.js";
import { createCluster, type Cluster } from "./cluster/cluster.js";
import { ModuleHost, type ModuleDefinition, type ServerContext } from "./modules/module.js";
import { AccountService } from "./auth/accounts.js";
import { createLoginService } from "./auth/login.js";
import { openStore } from "./storage/open.js";
import { startListeners, type ListenerSet } from "./c2s/listeners.js";
import type { C2sSession } from "./c2s/session.js";
import { coreModules } from "./im/index.js";
import { mobileModule } from "./mobile/index.js";
import { apiModule } from "./api/index.js";
import { startS2s, type S2s } from "./s2s/index.js";
import type { Store } from "./storage/types.js";
import { startOps, type Ops } from "./ops/index.js";
import { HEARTH_VERSION } from "./ops/version.js";
import { adminModule } from "./admin/index.js";
import { componentModule } from "./component/index.js";
import { RecentErrors } from "./admin/service.js";

export interface Server {
  readonly context: ServerContext;
  readonly modules: ModuleHost;
  /** The session directory and node-to-node bus (in-process without cluster.redisUrl). */
  readonly cluster: Cluster;
  /** Bound ports (useful when the config asked for port 0). */
  readonly ports: { c2s: number | null; directTls: number | null; http: number | null; s2s: number | null };
  /** Federation: the s2s listener and outgoing streams. */
  readonly s2s: S2s;
  /**
   * Reads the certificates again (SIGHUP): new connections get them, open ones keep theirs. Rejects (and
   * keeps the old ones) when a file is missing or does not match its key.
   */
  reloadTls(): Promise<void>;
  stop(): Promise<void>;
}

/** Every module a server loads: core IM, the mobile adapter, the server API, administration, external components, then the given extensions. */
export function serverModules(extensions: ModuleDefinition<any>[]): ModuleDefinition<any>[] {
  return [...coreModules, mobileModule, apiModule, adminModule, componentModule, ...extensions];
}

export interface StartOptions {
  log?: Logger;
  /** Wraps the opened store (tests inject store failures this way; the store under it stays real). */
  wrapStore?: (store: Store) => Store;
}

export async function startServer(config: Config, extensions: ModuleDefinition<any>[], opts: StartOptions = {}): Promise<Server> {
  // Warnings, errors and refused logins of the last while, for the admin console.
  const recent = new RecentErrors();
  const log = opts.log ?? createLogger(config.log, undefined, (line) => recent.fromLogLine(line));
  const opened = await openStore(config);
  const store: Store = opts.wrapStore ? opts.wrapStore(opened) : opened;
  const hooks = new HookBuses((event, err) => log.error({ err, event }, "an observer failed"));
  const cluster = createCluster(config, { store, log });
  const sessions = cluster.sessions;
  const router = new Router(hooks, sessions, new Set(config.hosts), log);
  const login = createLoginService(store, config.auth, log);
  login.refusals.add((r) => recent.fromRefusal(r));
  const accounts = new AccountService(store, hooks, sessions, {
    hosts: config.hosts, iterations: config.auth.scramIterations, minPasswordLength: config.registration.minPasswordLength,
  }, login);
  const context: ServerContext = { config, log, store, hooks, router, sessions, accounts, features: { host: new Set(), account: new Set() }, identities: [], httpUpgrades: new Map(), httpRequests: new Map(), httpPort: { value: null } };
  const modules = new ModuleHost(context);
  let listeners: ListenerSet | null = null;
  let s2s: S2s | null = null;
  let ops: Ops | null = null;
  let stopped = false;
  let tlsMaterial: Map<string, TlsMaterial> = new Map();
  let tlsOptions: TlsOptions = {};
  try {
    await modules.loadAll(serverModules(extensions));
    await cluster.start({ hooks, router });
    modules.service("admin")?.attach({ nodeId: () => cluster.nodeId, probe: () => cluster.probe(), recent });
    tlsMaterial = await loadTls(config, log);
    tlsOptions = buildSniOptions(tlsMaterial, config.hosts[0]);
    const tracker = new Set<C2sSession>();
    listeners = await startListeners({
      config, log, logStanzas: config.log.stanzas, hooks, router, sessions, store, tracker, httpUpgrades: context.httpUpgrades, httpRequests: context.httpRequests, login,
    }, tlsOptions);
    s2s = await startS2s({ config, log, hooks, router, tlsMaterial });
    const bound = listeners;
    ops = startOps({
      context, modules, cluster, login, tracker, s2s, version: HEARTH_VERSION, log,
      health: {
        store, cluster, redis: config.cluster.redisUrl !== null, host: config.hosts[0], stopping: () => stopped,
        listeners: () => ({ c2s: bound.c2s, directTls: bound.directTls, http: bound.http }),
      },
    });
    // Health and metrics are plain HTTP endpoints on the HTTP port, beside the modules' ones.
    const endpoints = ops;
    for (const prefix of ["/health/", "/metrics"]) {
      context.httpRequests.set(prefix, (req, res) => {
        if (endpoints.handle(req, res)) return;
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("Not found\n");
      });
    }
  } catch (err) {
    ops?.close();
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
  context.httpPort.value = ports.http;
  log.info({ hosts: config.hosts, ports, storage: store.driver, modules: modules.names }, "server started");
  let stopping: Promise<void> | null = null;
  const ls = listeners;
  const federation = s2s;
  const operations = ops;
  // RFC 6125 certificates expire: warned at start (loadTls) and once a day after.
  const expiryCheck = setInterval(() => checkCertificates(tlsMaterial, log), 86_400_000);
  expiryCheck.unref();
  const server: Server = {
    context, modules, cluster, ports, s2s: federation,
    async reloadTls() {
      const fresh = await loadTls(config, log);
      replaceTlsMaterial(tlsMaterial, fresh, tlsOptions, config.hosts[0]);
      const { SNICallback: _sni, ...defaults } = tlsOptions;
      ls.directTls?.setSecureContext(defaults);
      log.info({ domains: [...fresh.keys()] }, "TLS certificates reloaded");
    },
    stop() {
      stopping ??= (async () => {
        unguard();
        clearInterval(expiryCheck);
        stopped = true;
        await hooks.server.notify("server-stopping", {});
        await federation.stop();
        await ls.close();
        operations.close();
        await cluster.stop();
        modules.unloadAll();
        await store.close();
        log.info("server stopped");
      })();
      return stopping;
    },
  };
  const unguard = guardProcess(server, log);
  await hooks.server.notify("server-started", {});
  return server;
}

/**
 * The last resort while a server runs in this process. A rejected promise that nothing handled (a store
 * call failing in a task whose result was dropped) is logged and the node keeps serving: the failure
 * came after the synchronous part of that task, and everything else is as it was. An exception thrown up
 * to the event loop is different: it stopped synchronous code half-way, so in-memory state (the session
 * registry, a stream parser) may be inconsistent, and serving on could misroute or lose stanzas. The node
 * logs it, stops (stream errors to its clients) and exits with code 1 for its supervisor to restart it;
 * every acknowledged message is in the store, so the restart loses nothing acknowledged. That part is
 * left to the host when it handles uncaught exceptions itself (an embedding application, a test runner).
 */
function guardProcess(server: Server, log: Logger): () => void {
  const onRejection = (reason: unknown): void => {
    log.error({ err: reason }, "unhandled promise rejection (contained; the server keeps serving)");
  };
  process.on("unhandledRejection", onRejection);
  let onException: ((err: Error) => void) | null = null;
  if (process.listenerCount("uncaughtException") === 0) {
    onException = (err) => {
      log.fatal({ err }, "uncaught exception: stopping so that the node restarts from the store");
      const exit = () => process.exit(1);
      setTimeout(exit, 5000).unref();
      server.stop().then(exit, exit);
    };
    process.on("uncaughtException", onException);
  }
  return () => {
    process.off("unhandledRejection", onRejection);
    if (onException) process.off("uncaughtException", onException);
  };
}
