// Starting and stopping the server under test as a child process, with cleanup
// on every way out (normal end, exceptions, SIGINT/SIGTERM/SIGHUP).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (ok: boolean) => {
      s.removeAllListeners();
      s.on('error', () => {});
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface ChildServerSpec {
  name: string;
  /** argv after `node` */
  args: string[];
  cwd: string;
  host: string;
  port: number;
  /** where stdout+stderr go */
  logFile: string;
  startTimeoutMs: number;
  /** accounts survive a restart (false for the in-memory fake server) */
  persistent: boolean;
}

/** A server child process; start() returns once its port accepts TCP connections. */
export class ChildServer {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private exitInfo: string | null = null;

  constructor(readonly spec: ChildServerSpec) {}

  get pid(): number | null {
    return this.child && this.exitInfo === null ? (this.child.pid ?? null) : null;
  }

  async start(): Promise<void> {
    const s = this.spec;
    const fd = openSync(s.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, s.args, { cwd: s.cwd, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.exitInfo = null;
    live.add(this);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, sig) => {
        this.exitInfo = sig ? `signal ${sig}` : `exit code ${code}`;
        live.delete(this);
        resolve();
      });
      child.once('error', (e) => {
        this.exitInfo = `spawn error: ${e.message}`;
        live.delete(this);
        resolve();
      });
    });
    const deadline = Date.now() + s.startTimeoutMs;
    while (Date.now() < deadline) {
      if (this.exitInfo !== null)
        throw new Error(`${s.name} exited during startup (${this.exitInfo}); log ${s.logFile}:\n${this.logTail()}`);
      if (await tryConnect(s.host, s.port)) return;
      await sleep(100);
    }
    await this.stop();
    throw new Error(`${s.name} did not open ${s.host}:${s.port} within ${s.startTimeoutMs} ms; log ${s.logFile}:\n${this.logTail()}`);
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.spec.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (!child || this.exitInfo !== null) return;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.exitInfo === null) child.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    await this.exited;
  }

  /** Synchronous best effort for process 'exit': SIGTERM, wait up to graceMs, SIGKILL. */
  stopSync(graceMs = 5000): void {
    const pid = this.pid;
    if (pid === null) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const wait = new Int32Array(new SharedArrayBuffer(4));
    const end = Date.now() + graceMs;
    while (Date.now() < end) {
      if (!alive(pid)) return;
      Atomics.wait(wait, 0, 0, 50);
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie (exited, not yet reaped by us) still answers kill 0
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const live = new Set<ChildServer>();
const tempDirs = new Set<string>();
let handlersInstalled = false;

/** Make sure child servers die with us, whatever way we go. */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const s of live) s.stopSync();
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n[bench] ${sig}: stopping the server\n`);
      void Promise.all([...live].map((s) => s.stop())).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

export function makeTempDir(prefix: string, keep: boolean): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  if (!keep) tempDirs.add(d);
  return d;
}

export function keepTempDir(d: string): void {
  tempDirs.delete(d);
}

export function hearthConfigYaml(o: { domain: string; dataDir: string; port: number; logLevel: string; extra?: string[] }): string {
  return [
    `hosts: [${o.domain}]`,
    `dataDir: ${JSON.stringify(o.dataDir)}`,
    `log: { level: ${o.logLevel} }`,
    `c2s: { bind: 127.0.0.1, port: ${o.port}, directTlsPort: null, requireTls: false }`,
    // federation off unless the caller configures it (the s2s scenario)
    ...(o.extra?.some((l) => l.startsWith('s2s:')) ? [] : ["s2s: { port: null, directTlsPort: null }"]),
    `http: { port: null }`,
    // maxFailures 0: no per-address lockout after failed logins (the whole run comes from 127.0.0.1)
    `auth: { allowPlainInsecure: true, maxFailures: 0 }`,
    // minPasswordLength 1: the benchmark accounts' password is "pw" (same as the shared comparison rig)
    `registration: { policy: open, minPasswordLength: 1 }`,
    `limits: { maxConnectionsPerIp: 0, stanzasPerSecond: 0 }`,
    // no XEP-0077 throttle: the benchmark registers thousands of accounts from 127.0.0.1
    `modules: { register: { perIpPerHour: 0 } }`,
    ...(o.extra ?? []),
    '',
  ].join('\n');
}

/** The real server: `node bin/hearth.js start --config <tmp>/hearth.yaml` on a free loopback port. */
export async function hearthServer(repoRoot: string, domain: string, keep: boolean, logLevel = 'warn', extra: string[] = [], name = 'hearth'): Promise<ChildServer> {
  const dir = makeTempDir('hearth-bench-', keep);
  const port = await freePort();
  const config = join(dir, 'hearth.yaml');
  writeFileSync(config, hearthConfigYaml({ domain, dataDir: join(dir, 'data'), port, logLevel, extra }));
  return new ChildServer({
    name,
    // BENCH_SERVER_NODE_ARGS: node flags for the server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
    // (the profile is written when the server exits on the bench's SIGTERM).
    args: [...hearthNodeFlags(repoRoot), ...serverNodeArgs(), 'bin/hearth.js', 'start', '--config', config],
    cwd: repoRoot,
    host: '127.0.0.1',
    port,
    logFile: join(dir, 'server.log'),
    startTimeoutMs: 30_000,
    persistent: true,
  });
}

/** The node flags of the server: those on bin/hearth.js's `#!/usr/bin/env -S node ...` line. */
export function hearthNodeFlags(repoRoot: string): string[] {
  const first = readFileSync(join(repoRoot, 'bin/hearth.js'), 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  if (!m) throw new Error(`bin/hearth.js does not start with "#!/usr/bin/env -S node": ${first}`);
  return m[1].split(/\s+/).filter((a) => a !== '');
}

function serverNodeArgs(): string[] {
  return (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
}

/** The fake server (fake-server.js) as a separate process. */
export async function fakeServerChild(script: string, repoRoot: string, domain: string, keep: boolean): Promise<ChildServer> {
  const dir = makeTempDir('hearth-bench-fake-', keep);
  const port = await freePort();
  return new ChildServer({
    name: 'fake-server',
    args: [script, '--port', String(port), '--domain', domain],
    cwd: repoRoot,
    host: '127.0.0.1',
    port,
    logFile: join(dir, 'server.log'),
    startTimeoutMs: 15_000,
    persistent: false,
  });
}
