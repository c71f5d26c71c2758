// Test helpers for the mobile adapter: a test server with the mobile module on a fixed free port (so that
// ts.restart() keeps it), and logged-in mobile clients (test/helpers/mobile-sdk.ts).
import assert from "node:assert/strict";
import net from "node:net";
import { startTestServer, type TestServer } from "./server.js";
import { extensions } from "../../extensions/index.js";
import { MobileClient, MobileRequestError, Platform, type MobileClientOptions, type LoginOptions } from "./mobile-sdk.js";
import type { Platform as PlatformType } from "../../src/mobile/schema.js";

export { MobileClient, MobileRequestError, Platform, ErrorCode, ContentType } from "./mobile-sdk.js";

export interface MobileTestServer extends TestServer {
  mobilePort: number;
  mobileUrl: string;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A test server with the mobile module; `mobile` options are merged over test-friendly defaults. */
export async function startMobileServer(mobile: Record<string, unknown> = {}, overrides: Record<string, unknown> = {}): Promise<MobileTestServer> {
  const port = await freePort();
  const modules = (overrides.modules ?? {}) as Record<string, unknown>;
  const ts = await startTestServer(
    { ...overrides, modules: { ...modules, mobile: { port, bind: "127.0.0.1", ...mobile } } },
    { modules: extensions },
  );
  return Object.assign(ts, { mobilePort: port, mobileUrl: `ws://127.0.0.1:${port}/mobile` });
}

let deviceSeq = 0;

export interface MobileUserOptions extends MobileClientOptions {
  password?: string;
  deviceId?: string;
  platform?: PlatformType;
  login?: Partial<LoginOptions>;
  /** Wait for the login sync to finish (default true). */
  waitSync?: boolean;
}

/** Connects and logs in (creating the account if needed). */
export async function mobileUser(ts: MobileTestServer, username: string, opts: MobileUserOptions = {}): Promise<MobileClient> {
  const password = opts.password ?? "password";
  if (!(await ts.accounts.exists(ts.host, username))) await ts.accounts.create(ts.host, username, password);
  const c = await MobileClient.connect(ts.mobileUrl, opts);
  await c.login({ username, password, deviceId: opts.deviceId ?? `dev${++deviceSeq}`, platform: opts.platform ?? Platform.ANDROID, ...opts.login });
  if (opts.waitSync ?? true) await c.syncComplete();
  return c;
}

/** Awaits a request that must fail with `code`; returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: number): Promise<MobileRequestError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MobileRequestError, `expected a MobileRequestError, got ${err}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected error ${code}`);
}
