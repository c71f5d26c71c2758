// Scenario registry. To add a scenario (e.g. `muc`, `mobile`): write
// `async function x(ctx: BenchContext): Promise<ScenarioResult>` in its own file
// in this folder and add it below; `bench.js x` runs it. A scenario should:
//   - get its sizes with ctx.num('x-n', 'X_N', default, 'n') (flag, env, default);
//   - prepare accounts with ctx.ensureAccounts(n) (user1..userN, password "pw",
//     registered + logged in once, so PBKDF2 stays out of measured windows);
//   - open clients only through ctx.loginMany() / ctx.clients.open() so the runner
//     closes them at the end or on timeout, and wait only with ctx.sleep() /
//     ctx.waitFor() (they stop when the scenario is aborted);
//   - wrap each measured window in `new CpuWindow(ctx.server.pid)` / `.stop(ops, per)`;
//   - throw on setup failure; report losses / errors in `ok`, `error`, `warnings`.
import type { BenchContext, ScenarioResult } from '../context.js';
import { login } from './login.js';
import { chat, chatlight, chatnostore } from './chat.js';
import { idle } from './idle.js';
import { muc } from './muc.js';
import { mobile } from './mobile.js';
import { shape } from './shape.js';
import { s2s } from './s2s.js';

export type Scenario = (ctx: BenchContext) => Promise<ScenarioResult>;

export const scenarios: Record<string, Scenario> = {
  login,
  chat,
  chatlight,
  chatnostore,
  idle,
  muc,
  mobile,
  shape,
  s2s,
};

/**
 * Scenarios that need a freshly started server (e.g. RSS measurements): when the benchmark spawned
 * the server itself, it restarts it (accounts kept) before these unless they run first.
 */
export const freshServerScenarios = new Set(['idle']);

/** Run when no scenario is named on the command line. */
export const defaultScenarios = ['login', 'chat', 'chatlight', 'idle'];
