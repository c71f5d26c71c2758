// An in-process server on free loopback ports with a temp data dir, for tests over real sockets.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, type Config, type DeepPartial } from "../../src/config/config.js";
import { startServer, type Server, type StartOptions } from "../../src/server.js";
import { nullLogger } from "../../src/log.js";
import type { ModuleDefinition } from "../../src/modules/module.js";
import type { AccountService } from "../../src/auth/accounts.js";
import { extensions } from "../../extensions/index.js";
import { sharedPostgres } from "./postgres.js";

/**
 * The store driver the integration suites run on: HEARTH_TEST_STORE=postgres starts one private PostgreSQL
 * per test process (test/helpers/postgres.ts) and gives every test server a database of its own; unset (or
 * sqlite), the server keeps a SQLite file in its data directory.
 */
export const testStoreDriver: "sqlite" | "postgres" = (() => {
  const chosen = process.env.HEARTH_TEST_STORE ?? "sqlite";
  if (chosen !== "sqlite" && chosen !== "postgres") throw new Error(`HEARTH_TEST_STORE must be sqlite or postgres, not "${chosen}"`);
  return chosen;
})();

let databaseCounter = 0;

/** Storage config for a test server on PostgreSQL: a fresh database, or the one kept for a reused data dir. */
async function postgresStorage(dataDir: string, reused: boolean): Promise<{ storage: Record<string, unknown>; drop(): Promise<void> }> {
  const server = await sharedPostgres();
  // A data dir passed in by the test outlives one server (what a restart keeps): so does its database.
  const name = reused
    ? `keep_${dataDir.replace(/[^A-Za-z0-9]/g, "_").slice(-40)}`
    : `test_${process.pid}_${databaseCounter++}`;
  const url = reused ? await server.ensureDatabase(name) : await server.createDatabase(name);
  return {
    storage: { driver: "postgres", postgres: { url, poolSize: 4 } },
    drop: () => (reused ? Promise.resolve() : server.dropDatabase(name)),
  };
}

export interface TestServer {
  host: string;
  c2sPort: number;
  tlsPort: number;
  httpPort: number;
  dataDir: string;
  config: Config;
  server: Server;
  accounts: AccountService;
  stop(): Promise<void>;
  /** Stops and starts again on the same ports and data (what a process restart keeps). */
  restart(): Promise<void>;
}

function deepMerge(a: any, b: any): any {
  if (b === undefined) return a;
  if (a === null || typeof a !== "object" || Array.isArray(a) || b === null || typeof b !== "object" || Array.isArray(b)) return b;
  const out: any = { ...a };
  for (const k of Object.keys(b)) out[k] = deepMerge(a[k], b[k]);
  return out;
}

export async function startTestServer(
  overrides: DeepPartial<Config> | Record<string, unknown> = {},
  opts: { modules?: ModuleDefinition<any>[]; dataDir?: string; wrapStore?: StartOptions["wrapStore"]; log?: StartOptions["log"] } = {},
): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "hearth-test-"));
  const base = {
    hosts: ["localhost"],
    dataDir,
    log: { level: "silent" },
    c2s: { bind: "127.0.0.1", port: 0, directTlsPort: 0, requireTls: false },
    http: { bind: "127.0.0.1", port: 0 },
    s2s: { bind: "127.0.0.1", port: null, directTlsPort: null },
    // No growing wait after failed logins (the throttle tests set it): suites share accounts and addresses.
    auth: { scramIterations: 4096, allowPlainInsecure: true, failureDelayMs: 0 },
    registration: { policy: "open" },
    limits: { maxConnectionsPerIp: 0, stanzasPerSecond: 0 },
  };
  const modules = opts.modules ?? extensions;
  const postgres = testStoreDriver === "postgres" ? await postgresStorage(dataDir, opts.dataDir !== undefined) : null;
  if (postgres) (base as Record<string, unknown>).storage = postgres.storage;
  let config = loadConfig({ file: null, env: {}, overrides: deepMerge(base, overrides), cwd: dataDir });
  let server = await startServer(config, modules, { log: opts.log ?? nullLogger, wrapStore: opts.wrapStore });
  const ts: TestServer = {
    host: config.hosts[0],
    c2sPort: server.ports.c2s ?? 0,
    tlsPort: server.ports.directTls ?? 0,
    httpPort: server.ports.http ?? 0,
    dataDir,
    config,
    server,
    accounts: server.context.accounts,
    async stop() {
      await server.stop();
      await postgres?.drop();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
    async restart() {
      await server.stop();
      config = loadConfig({
        file: null, env: {}, cwd: dataDir,
        overrides: deepMerge(deepMerge(base, overrides), { c2s: { port: ts.c2sPort, directTlsPort: ts.tlsPort || null }, http: { port: ts.httpPort || null } }),
      });
      server = await startServer(config, modules, { log: opts.log ?? nullLogger, wrapStore: opts.wrapStore });
      ts.server = server;
      ts.config = config;
      ts.accounts = server.context.accounts;
    },
  };
  return ts;
}
