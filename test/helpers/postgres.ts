// A private PostgreSQL for the test run: initdb + pg_ctl from the system binaries, in a temp directory,
// listening on a free loopback port (and a unix socket in the same directory, never the system's
// /var/run/postgresql), trust authentication. Nothing touches a server the developer already runs.
//
// initdb refuses to run as root, and CI runs as root: the binaries then run as the `postgres` system user
// (runuser), with the temp directory owned by it.
import { spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";

export interface PrivatePostgres {
  /** Connection URL of the database `hearth` (created empty). */
  url: string;
  /** Connection URL of any other database on the same server. */
  urlFor(database: string): string;
  port: number;
  dir: string;
  /** Creates an empty database (dropping one of the same name first). */
  createDatabase(name: string): Promise<string>;
  /** Creates the database unless it exists; returns its URL. */
  ensureDatabase(name: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /**
   * Keep PostgreSQL's durability settings (fsync, synchronous_commit) as shipped. Tests turn them off for
   * speed; benchmarks that compare drivers keep them on.
   */
  durable?: boolean;
}

const SEARCH = "/usr/lib/postgresql";

/** The bin directory of the newest PostgreSQL server installed the Debian way. */
export function findPostgresBinaries(): string {
  const versions = existsSync(SEARCH)
    ? readdirSync(SEARCH).filter((v) => existsSync(path.join(SEARCH, v, "bin", "initdb")) && existsSync(path.join(SEARCH, v, "bin", "pg_ctl")))
    : [];
  if (versions.length === 0) {
    throw new Error(`PostgreSQL server binaries not found (looked for ${SEARCH}/*/bin/initdb and pg_ctl). ` +
      "Install the Debian package `postgresql` (apt-get install postgresql), which .ci/run does on CI.");
  }
  versions.sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  return path.join(SEARCH, versions[0], "bin");
}

interface RunAs { uid: number; gid: number; prefix: string[] }

/** As root, the binaries run as the `postgres` user; otherwise as ourselves. */
function runAs(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string): number => {
    const out = spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
    if (out.status !== 0) {
      throw new Error("running as root, and there is no `postgres` system user to run initdb as " +
        "(initdb refuses root); install the Debian package `postgresql`, which creates it");
    }
    return Number(out.stdout.trim());
  };
  return { uid: id("-u"), gid: id("-g"), prefix: ["runuser", "-u", "postgres", "--"] };
}

function run(user: RunAs | null, command: string, args: string[], what: string): void {
  const [file, ...rest] = user ? [...user.prefix, command, ...args] : [command, ...args];
  const out = spawnSync(file, rest, { encoding: "utf8", cwd: "/" });
  if (out.status !== 0) {
    throw new Error(`${what} failed (exit ${out.status ?? out.signal}): ${[out.stdout, out.stderr].join("\n").trim()}`);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PrivatePostgres> {
  const bin = findPostgresBinaries();
  const user = runAs();
  const dir = mkdtempSync(path.join(tmpdir(), "hearth-pg-"));
  const data = path.join(dir, "data");
  const logFile = path.join(dir, "postgres.log");
  if (user) chownSync(dir, user.uid, user.gid);
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    run(user, path.join(bin, "initdb"), [
      "-D", data, "-U", "postgres", "-A", "trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
    ], "initdb");
  } catch (err) {
    cleanup();
    throw err;
  }
  const settings = [
    "-c listen_addresses=127.0.0.1",
    `-c unix_socket_directories=${dir}`,
    "-c max_connections=300",
    "-c shared_buffers=128MB",
  ];
  if (!opts.durable) settings.push("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off");

  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      run(user, path.join(bin, "pg_ctl"), ["-D", data, "-l", logFile, "-w", "-t", "60", "-o", [`-p ${port}`, ...settings].join(" "), "start"],
        "pg_ctl start");
      break;
    } catch (err) {
      // Another process may have taken the port between freePort() and the server's bind: try another.
      if (attempt >= 3) {
        const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
        cleanup();
        throw new Error(`${(err as Error).message}\n${log}`);
      }
    }
  }

  let stopped = false;
  const stopNow = (): void => {
    if (stopped) return;
    stopped = true;
    try {
      run(user, path.join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], "pg_ctl stop");
    } finally {
      cleanup();
    }
  };
  // A test run that ends without calling stop() (a crash, --exit) must not leave a server behind.
  const onExit = (): void => { try { stopNow(); } catch { /* the process is ending anyway */ } };
  process.once("exit", onExit);

  const urlFor = (database: string): string => `postgresql://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: urlFor("postgres") });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };
  const createDatabase = (name: string): Promise<string> => admin(async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
    return urlFor(name);
  });
  const ensureDatabase = (name: string): Promise<string> => admin(async (client) => {
    const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
    return urlFor(name);
  });
  const url = await createDatabase("hearth");
  return {
    url, urlFor, port, dir, createDatabase, ensureDatabase,
    dropDatabase: (name) => admin(async (client) => { await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`); }),
    stop() {
      process.off("exit", onExit);
      stopNow();
      return Promise.resolve();
    },
  };
}

let shared: Promise<PrivatePostgres> | null = null;

/**
 * One private PostgreSQL per test process, started on first use and stopped when the run ends (a mocha
 * root `after` hook when mocha is running, and in any case at process exit).
 */
export function sharedPostgres(): Promise<PrivatePostgres> {
  if (shared === null) {
    shared = startPostgres();
    shared.catch(() => { shared = null; });
  }
  return shared;
}

if (typeof after === "function") {
  after(async function () {
    if (shared === null) return;
    const server = await shared.catch(() => null);
    shared = null;
    await server?.stop();
  });
}

