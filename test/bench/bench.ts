// hearth load generator / benchmark.
//
//   npm run bench -- [scenario ...] [options]
//   node dist/test/bench/bench.js [scenario ...] [options]
//
// Run `node dist/test/bench/bench.js --help` for the options. By default it starts
// its own hearth (node bin/hearth.js start --config <tmp>/hearth.yaml) on a free
// loopback port, runs the scenarios against it and stops it.
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AuthMode, Target } from './client.js';
import { AbortedError, AccountPool, BenchContext, type BenchOptions, type ScenarioResult, type ServerInfo } from './context.js';
import { defaultScenarios, freshServerScenarios, scenarios } from './scenarios/index.js';
import { formatResult } from './report.js';
import { isLoopback, startFakeServer, type FakeServer } from './fake-server.js';
import { ChildServer, fakeServerChild, installCleanupHandlers, keepTempDir } from './server-process.js';
import { hearthNodes, nodeOptions } from './nodes.js';

const HELP = `usage: npm run bench -- [scenario ...] [options]
scenarios: ${Object.keys(scenarios).join(' ')} (default: ${defaultScenarios.join(' ')})

server under test (default: start bin/hearth.js with a temporary config on a free port):
  --target HOST:PORT     use an already running server (loopback addresses only)
  --domain D             XMPP domain (default bench.localhost)
  --pid PID              with --target: server pid for CPU and RSS figures (/proc/PID)
  --fake                 use the in-process fake server (generator self-test; CPU/RSS include the generator)
  --fake-child           run the fake server as a separate process
  --fake-mechs M,M       SASL mechanisms the fake server offers (default SCRAM-SHA-256,SCRAM-SHA-1)
  --restart              restart the spawned server before every scenario (accounts kept; it is
                         always restarted before idle unless idle runs first)
  --keep                 keep the temporary directory (config, data, server.log)
  --log-level L          hearth log level (default warn)
  --nodes N              N hearth processes behind one domain (a cluster on a private Redis, sharing a
                         private PostgreSQL); clients alternate between the nodes, so chat partners are
                         on different nodes. CPU figures are the first node's (machine_busy covers all)
  --store S              sqlite (default with one node) or postgres (a private, durable PostgreSQL)
  --redis                with one node: run it as a cluster of one on a private Redis

sizes (flag > generic flag > env > default):
  --n N                  main size of every selected scenario (clients for login/idle, pairs for chat)
  --duration S           measured time of chat/chatlight/idle
  --login-n N (LOGIN_N=2000)  --login-c C (LOGIN_C=100, or --concurrency)
  --chat-n PAIRS (CHAT_N=200)  --chat-w W (CHAT_W=10, or --window)  --chat-t S (CHAT_T=20)
  --light-n PAIRS (LIGHT_N=10)  --light-rate R (LIGHT_RATE=1000, or --rate)  --light-t S (LIGHT_T=10)
  --idle-n N (IDLE_N=2000)  --idle-t S (IDLE_T=5)
  --warmup S (WARMUP=2)  --drain S (DRAIN=3)

other:
  --auth M               scram (SHA-256 if offered, else SHA-1; default), scram-sha-256, scram-sha-1, plain
  --op-timeout S         timeout of one login / registration (default 30)
  --timeout S            global timeout per scenario (default 300)
  --json                 also print one JSON line per scenario
  --sm                   every client enables XEP-0198 with resumption and answers the server's <r/>
                         (same as BENCH_SM=1); compare chat with and without it
  --verbose              more progress output on stderr
`;

const BOOL_FLAGS = new Set(['json', 'fake', 'fake-child', 'restart', 'keep', 'verbose', 'help', 'redis', 'sm']);

interface Args {
  positional: string[];
  flags: Map<string, string>;
  bools: Set<string>;
}

function parseArgs(argv: string[]): Args {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  const bools = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h') {
      bools.add('help');
    } else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
      if (BOOL_FLAGS.has(name)) {
        if (eq !== -1) throw new Error(`--${name} takes no value`);
        bools.add(name);
      } else if (eq !== -1) {
        flags.set(name, a.slice(eq + 1));
      } else {
        const v = argv[i + 1];
        if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
        flags.set(name, v);
        i++;
      }
    } else {
      positional.push(a);
    }
  }
  return { positional, flags, bools };
}

function parseTarget(s: string, domain: string): Target {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  if (!m) throw new Error(`--target must be HOST:PORT, got ${s}`);
  let host = (m[1] ?? m[2])!;
  if (host === 'localhost') host = '127.0.0.1';
  if (!isIP(host) || !isLoopback(host)) throw new Error(`refusing non-loopback target ${host}: the benchmark only talks to 127.0.0.0/8 or ::1`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`bad port ${m[3]}`);
  return { host, port, domain };
}

function posNum(flags: Map<string, string>, name: string, def: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

function failedResult(name: string, error: string): ScenarioResult {
  return { scenario: name, ok: false, error, warnings: [], params: {}, metrics: {} };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.bools.has('sm')) process.env.BENCH_SM = '1';
  if (args.bools.has('help')) {
    process.stdout.write(HELP);
    return 0;
  }
  const names = args.positional.length ? args.positional : defaultScenarios;
  for (const n of names) {
    if (!Object.hasOwn(scenarios, n)) throw new Error(`unknown scenario "${n}" (known: ${Object.keys(scenarios).join(', ')})`);
  }
  const auth = (args.flags.get('auth') ?? process.env.BENCH_AUTH ?? 'scram') as AuthMode;
  if (!['scram', 'scram-sha-256', 'scram-sha-1', 'plain'].includes(auth)) throw new Error(`bad --auth ${auth}`);
  const opts: BenchOptions = {
    auth,
    opTimeoutMs: posNum(args.flags, 'op-timeout', 30) * 1000,
    scenarioTimeoutS: posNum(args.flags, 'timeout', 300),
    verbose: args.bools.has('verbose'),
  };
  const domain = args.flags.get('domain') ?? 'bench.localhost';
  const json = args.bools.has('json');
  const keep = args.bools.has('keep');
  const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
  installCleanupHandlers();

  let target: Target;
  let fake: FakeServer | null = null;
  let child: ChildServer | null = null;
  /** the other nodes of --nodes N, and the PostgreSQL/Redis they share */
  let others: ChildServer[] = [];
  let stopServices = async () => {};
  const server: ServerInfo = { pid: null, inProcess: false, description: '' };
  if (args.bools.has('fake')) {
    fake = await startFakeServer({ domain, mechanisms: args.flags.get('fake-mechs')?.split(',') });
    target = { host: '127.0.0.1', port: fake.port, domain };
    server.pid = process.pid;
    server.inProcess = true;
    server.description = 'in-process fake server (test/bench/fake-server.ts)';
  } else if (args.flags.has('target')) {
    target = parseTarget(args.flags.get('target')!, domain);
    const pid = args.flags.get('pid');
    if (pid !== undefined) {
      if (!/^\d+$/.test(pid)) throw new Error(`bad --pid ${pid}`);
      server.pid = Number(pid);
    }
    server.description = `external server${server.pid === null ? ' (no --pid: no CPU/RSS figures)' : ''}`;
  } else {
    if (args.bools.has('fake-child')) {
      const script = fileURLToPath(new URL('./fake-server.js', import.meta.url));
      child = await fakeServerChild(script, repoRoot, domain, keep);
      const mechs = args.flags.get('fake-mechs');
      if (mechs) child.spec.args.push('--mechs', mechs);
      server.description = 'fake server child process';
    } else {
      if (!existsSync(join(repoRoot, 'bin', 'hearth.js')))
        throw new Error(`${join(repoRoot, 'bin', 'hearth.js')} not found: is the server built? (or use --fake / --target)`);
      const set = await hearthNodes(repoRoot, domain, keep, args.flags.get('log-level') ?? 'warn', nodeOptions(args.flags, args.bools));
      child = set.children[0]!;
      others = set.children.slice(1);
      stopServices = set.stopServices;
      server.redisUrl = set.redisUrl;
      server.description = `hearth, ${set.description} (node bin/hearth.js start --config ${child.spec.args[3]})`;
    }
    target = { host: child.spec.host, port: child.spec.port, domain };
    for (const c of [child, ...others]) {
      process.stderr.write(`[bench] starting ${c.spec.name} on ${c.spec.host}:${c.spec.port}\n`);
      try {
        await c.start();
      } catch (e) {
        keepTempDir(dirname(c.spec.logFile));
        for (const o of [child, ...others]) await o.stop();
        await stopServices();
        throw e;
      }
    }
    server.pid = child.pid;
    server.otherPids = others.map((o) => o.pid);
  }
  const targets: Target[] = [target, ...others.map((o) => ({ host: o.spec.host, port: o.spec.port, domain }))];
  const dead = () => [child, ...others].find((c) => c !== null && c.pid === null) ?? null;

  process.stdout.write(
    `# hearth bench: ${target.host}:${target.port} domain ${domain}; server: ${server.description}` +
      `${server.pid !== null ? `, pid ${server.pid}` : ''}; auth ${auth}; node ${process.version}; ${cpus().length} CPUs\n`,
  );

  const accounts = new AccountPool();
  let allOk = true;
  let serverGone = false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    let result: ScenarioResult;
    let restartError: string | null = null;
    if (!serverGone && i > 0 && (args.bools.has('restart') || freshServerScenarios.has(name))) {
      if (child) {
        process.stderr.write(`[bench] restarting ${child.spec.name} for a fresh ${name}\n`);
        try {
          for (const c of [child, ...others]) await c.stop();
          for (const c of [child, ...others]) await c.start();
          server.pid = child.pid;
          if (!child.spec.persistent) accounts.forget();
        } catch (e) {
          restartError = (e as Error).message;
          serverGone = true;
        }
      } else {
        process.stderr.write(`[bench] note: ${name} runs on a server that earlier scenarios already used\n`);
      }
    }
    if (restartError !== null) {
      result = failedResult(name, `server restart failed: ${restartError}`);
    } else if (serverGone) {
      result = failedResult(name, 'not run: the server is no longer running');
    } else {
      result = await runScenario(name, new BenchContext(name, target, server, opts, accounts, args.flags, targets));
      const gone = dead();
      if (gone) {
        serverGone = true;
        result.ok = false;
        result.error = `${result.error ? `${result.error}; ` : ''}the server process ${gone.spec.name} died; log tail:\n${gone.logTail()}`;
      }
    }
    if (!result.ok) allOk = false;
    process.stdout.write(`${formatResult(result)}\n`);
    if (json)
      process.stdout.write(
        `${JSON.stringify({ ...result, target: `${target.host}:${target.port}`, domain, server: server.description, time: new Date().toISOString() })}\n`,
      );
    if (i + 1 < names.length && !serverGone) await new Promise((r) => setTimeout(r, 1000));
  }

  for (const c of child ? [child, ...others] : []) {
    await c.stop();
    if (!allOk) {
      keepTempDir(dirname(c.spec.logFile));
      process.stderr.write(`[bench] server log kept in ${c.spec.logFile}\n`);
    }
  }
  await stopServices();
  if (fake) await fake.close();
  return allOk ? 0 : 1;
}

async function runScenario(name: string, ctx: BenchContext): Promise<ScenarioResult> {
  const t0 = performance.now();
  const limit = ctx.opts.scenarioTimeoutS;
  process.stderr.write(`[bench] === ${name} ===\n`);
  const timer = setTimeout(() => ctx.abortNow(`scenario timed out after ${limit} s`), limit * 1000);
  const aborted = new Promise<never>((_, reject) => {
    ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
  });
  aborted.catch(() => {});
  let result: ScenarioResult;
  try {
    result = await Promise.race([scenarios[name]!(ctx), aborted]);
  } catch (e) {
    const err = e as Error;
    result = failedResult(name, err instanceof AbortedError ? err.message : `${err.message}`);
    if (ctx.opts.verbose && !(err instanceof AbortedError) && err.stack) process.stderr.write(`${err.stack}\n`);
  } finally {
    clearTimeout(timer);
  }
  // whatever happened, no client of this scenario survives it
  if (!ctx.signal.aborted) ctx.abortNow('scenario finished');
  await ctx.clients.closeAll(3000);
  result.elapsed_s = Math.round((performance.now() - t0) / 100) / 10;
  return result;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`bench: ${e.message}\n`);
    process.exit(2);
  },
);
