// An in-process server on free loopback ports with a temp data dir, for tests over real sockets.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, type Config, type DeepPartial } from "../../src/config/config.js";
import { startServer, type Server } from "../../src/server.js";
import { nullLogger } from "../../src/log.js";
import type { ModuleDefinition } from "../../src/modules/module.js";
import type { AccountService } from "../../src/auth/accounts.js";
import { extensions } from "../../extensions/index.js";

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

export async function startTestServer(overrides: DeepPartial<Config> | Record<string, unknown> = {}, opts: { modules?: ModuleDefinition<any>[]; dataDir?: string } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "hearth-test-"));
  const base = {
    hosts: ["localhost"],
    dataDir,
    log: { level: "silent" },
    c2s: { bind: "127.0.0.1", port: 0, directTlsPort: 0, requireTls: false },
    http: { bind: "127.0.0.1", port: 0 },
    auth: { scramIterations: 4096, allowPlainInsecure: true },
    registration: { policy: "open" },
    limits: { maxConnectionsPerIp: 0, stanzasPerSecond: 0 },
  };
  const modules = opts.modules ?? extensions;
  let config = loadConfig({ file: null, env: {}, overrides: deepMerge(base, overrides), cwd: dataDir });
  let server = await startServer(config, modules, { log: nullLogger });
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
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
    async restart() {
      await server.stop();
      config = loadConfig({
        file: null, env: {}, cwd: dataDir,
        overrides: deepMerge(deepMerge(base, overrides), { c2s: { port: ts.c2sPort, directTlsPort: ts.tlsPort || null }, http: { port: ts.httpPort || null } }),
      });
      server = await startServer(config, modules, { log: nullLogger });
      ts.server = server;
      ts.config = config;
      ts.accounts = server.context.accounts;
    },
  };
  return ts;
}
