// The one login path and failure throttle (src/auth) over real sockets: counted per (address, account)
// and per address, shared by c2s SASL and mobile logins, never turned against the owner elsewhere or the
// other users behind one address; and the one resource binding (src/sessions) on the mobile endpoint.
// Clients bind 127.0.0.2, 127.0.0.3… as local addresses to stand for different hosts.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient } from "./helpers/raw-client.js";
import { ErrorCode, MobileClient, MobileRequestError, mobileUser, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";
import { AuthThrottle } from "../src/auth/throttle.js";
import { NetworkList } from "../src/auth/networks.js";
import { loadConfig } from "../src/config/config.js";
import type { Element } from "../src/xml/element.js";

/** The SASL outcome of one SCRAM attempt on a fresh connection: "success" or the failure condition. */
async function attempt(ts: TestServer, username: string, password: string, localAddress?: string): Promise<string> {
  const c = await RawClient.connect(ts, { localAddress });
  try {
    await c.open();
    return await c.authenticate(username, password).then(
      () => "success",
      (e: { element?: Element }) => e.element?.children.find((x): x is Element => typeof x !== "string" && x.name !== "text")?.name ?? String(e),
    );
  } finally {
    c.close();
  }
}

async function mobileLogin(ts: MobileTestServer, username: string, password: string, deviceId = "d"): Promise<number | "success"> {
  const c = await MobileClient.connect(ts.mobileUrl);
  try {
    await c.login({ username, password, deviceId });
    return "success";
  } catch (err) {
    if (err instanceof MobileRequestError) return err.code;
    throw err;
  } finally {
    c.close();
  }
}

describe("auth: one failure throttle for every protocol", () => {
  describe("per (address, account) and per address", () => {
    let ts: TestServer;
    before(async () => {
      // The per-address ceiling applies to loopback here (exemptNetworks: []), as to any client address.
      ts = await startTestServer({ auth: { exemptNetworks: [], failureDelayMs: 0 } });
      for (const u of ["alice", "anna", "bert", "carl"]) await ts.accounts.create(ts.host, u, "right-password");
    });
    after(() => ts.stop());

    it("an office NAT: one user failing 6 times does not lock out the other accounts behind the address", async () => {
      for (let i = 0; i < 6; i++) {
        const outcome = await attempt(ts, "anna", "typo", "127.0.0.5");
        assert.equal(outcome, i < 5 ? "not-authorized" : "temporary-auth-failure", `attempt ${i + 1}`);
      }
      assert.equal(await attempt(ts, "bert", "right-password", "127.0.0.5"), "success");
      assert.equal(await attempt(ts, "carl", "right-password", "127.0.0.5"), "success");
    });

    it("the owner elsewhere: guesses at alice from one address never stop alice from another", async () => {
      for (let i = 0; i < 5; i++) assert.equal(await attempt(ts, "alice", `guess-${i}`, "127.0.0.2"), "not-authorized");
      // The guesser's pair is locked: even the right password gets temporary-auth-failure, never not-authorized.
      assert.equal(await attempt(ts, "alice", "right-password", "127.0.0.2"), "temporary-auth-failure");
      assert.equal(await attempt(ts, "alice", "guess-6", "127.0.0.2"), "temporary-auth-failure");
      assert.equal(await attempt(ts, "alice", "right-password", "127.0.0.3"), "success");
      assert.equal(await attempt(ts, "alice", "right-password", "127.0.0.1"), "success");
    });

    it("refuses an address over auth.maxFailures (20) for every account; other addresses are served", async () => {
      const users = Array.from({ length: 20 }, (_, i) => `nobody${i}`);
      for (const u of users) assert.equal(await attempt(ts, u, "x", "127.0.0.6"), "not-authorized", u);
      assert.equal(await attempt(ts, "bert", "right-password", "127.0.0.6"), "temporary-auth-failure");
      assert.equal(await attempt(ts, "bert", "right-password", "127.0.0.7"), "success");
    });
  });

  it("exempt networks have no per-address ceiling; their pairs are still counted", async () => {
    const ts = await startTestServer({ auth: { exemptNetworks: ["127.0.0.8/32"], maxFailures: 2, failureDelayMs: 0 } });
    try {
      await ts.accounts.create(ts.host, "dora", "right-password");
      for (let i = 0; i < 5; i++) assert.equal(await attempt(ts, `ghost${i}`, "x", "127.0.0.8"), "not-authorized");
      for (let i = 0; i < 5; i++) assert.equal(await attempt(ts, "dora", "x", "127.0.0.8"), "not-authorized");
      assert.equal(await attempt(ts, "dora", "right-password", "127.0.0.8"), "temporary-auth-failure");
      for (let i = 0; i < 2; i++) assert.equal(await attempt(ts, `ghost${i}`, "x", "127.0.0.9"), "not-authorized");
      assert.equal(await attempt(ts, "dora", "right-password", "127.0.0.9"), "temporary-auth-failure");
    } finally {
      await ts.stop();
    }
  });

  it("slows the guesser: each failure delays the pair's next attempt (doubling), not the owner's from elsewhere", async () => {
    const ts = await startTestServer({ auth: { failureDelayMs: 300, maxFailureDelayMs: 600 } });
    try {
      await ts.accounts.create(ts.host, "erin", "right-password");
      const timed = async (password: string, from: string) => {
        const t0 = Date.now();
        const outcome = await attempt(ts, "erin", password, from);
        return { outcome, ms: Date.now() - t0 };
      };
      assert.ok((await timed("x", "127.0.0.2")).ms < 300, "the first attempt is not delayed");
      const second = await timed("x", "127.0.0.2");
      assert.ok(second.ms >= 250, `second attempt after ${second.ms} ms`);
      const third = await timed("x", "127.0.0.2");
      assert.ok(third.ms >= 550, `third attempt after ${third.ms} ms (600 ms: doubled, capped)`);
      const owner = await timed("right-password", "127.0.0.3");
      assert.equal(owner.outcome, "success");
      assert.ok(owner.ms < 300, `the owner elsewhere waited ${owner.ms} ms`);
    } finally {
      await ts.stop();
    }
  });

  it("keeps time per pair with a window, a capped delay, and success clearing the pair only", () => {
    let now = 1_000_000;
    const t = new AuthThrottle({
      perPair: 3, perAddress: 5, windowMs: 60_000, delayMs: 100, maxDelayMs: 250, exempt: new NetworkList(["10.0.0.0/8"]),
    }, () => now);
    t.failed("192.0.2.1", "a@h");
    assert.deepEqual(t.verdict("192.0.2.1", "a@h"), { allowed: true, delayMs: 100 });
    assert.deepEqual(t.verdict("::ffff:192.0.2.1", "a@h"), { allowed: true, delayMs: 100 }, "IPv4-mapped is the same address");
    assert.deepEqual(t.verdict("192.0.2.2", "a@h"), { allowed: true, delayMs: 0 });
    now += 40;
    t.failed("192.0.2.1", "a@h");
    assert.deepEqual(t.verdict("192.0.2.1", "a@h"), { allowed: true, delayMs: 200 });
    t.failed("192.0.2.1", "a@h");
    assert.deepEqual(t.verdict("192.0.2.1", "a@h"), { allowed: false, retryAfterMs: 59_960 });
    t.succeeded("192.0.2.1", "a@h");
    assert.deepEqual(t.verdict("192.0.2.1", "a@h"), { allowed: true, delayMs: 0 });
    t.failed("192.0.2.1", "b@h");
    t.failed("192.0.2.1", null);
    assert.equal(t.addressVerdict("192.0.2.1").allowed, false, "a success does not reset the address budget");
    for (let i = 0; i < 9; i++) t.failed("10.1.2.3", null);
    assert.equal(t.addressVerdict("10.1.2.3").allowed, true, "exempt network");
    now += 60_001;
    assert.equal(t.addressVerdict("192.0.2.1").allowed, true, "aged out");
    for (let i = 0; i < 3; i++) t.failed("192.0.2.9", "c@h");
    assert.deepEqual(t.verdict("192.0.2.9", "c@h"), { allowed: false, retryAfterMs: 60_000 });
    for (let i = 0; i < 5; i++) t.failed("192.0.2.9", "c@h");
    now += 1;
    assert.equal(t.verdict("192.0.2.9", "d@h").allowed, false);
  });

  it("rejects invalid exempt networks in the config", () => {
    assert.throws(() => loadConfig({ file: null, env: {}, overrides: { auth: { exemptNetworks: ["10.0.0.0/33"] } } as never }), /auth\.exemptNetworks\[0\].*CIDR/);
    assert.throws(() => loadConfig({ file: null, env: {}, overrides: { auth: { exemptNetworks: ["office"] } } as never }), /CIDR/);
    const ok = loadConfig({ file: null, env: {}, overrides: { auth: { exemptNetworks: ["192.0.2.7", "2001:DB8::/32"] } } as never });
    assert.deepEqual(ok.auth.exemptNetworks, ["192.0.2.7/32", "2001:db8::/32"]);
  });

  describe("c2s and mobile share one budget and one binding", () => {
    let ts: MobileTestServer;
    before(async () => {
      ts = await startMobileServer({}, { auth: { maxFailuresPerAccount: 4, failureDelayMs: 0 }, c2s: { resourceConflict: "refuse" } });
      await ts.accounts.create(ts.host, "fay", "right-password");
    });
    after(() => ts.stop());

    it("failures over XMPP and over mobile count together", async () => {
      assert.equal(await attempt(ts, "fay", "x"), "not-authorized");
      assert.equal(await mobileLogin(ts, "fay", "x"), ErrorCode.AUTH_FAILED);
      assert.equal(await attempt(ts, "fay", "x"), "not-authorized");
      assert.equal(await mobileLogin(ts, "fay", "x"), ErrorCode.AUTH_FAILED);
      // Four in all: both protocols now refuse the pair, whatever the password.
      assert.equal(await mobileLogin(ts, "fay", "right-password"), ErrorCode.AUTH_THROTTLED);
      assert.equal(await attempt(ts, "fay", "right-password"), "temporary-auth-failure");
      assert.equal(await attempt(ts, "fay", "right-password", "127.0.0.4"), "success");
    });

    it("closes a mobile connection after its third failed login with 1008 (schemas/proto/README.md)", async () => {
      // loginTimeoutSeconds is 15 s here: the close must come from the failures, not from the timeout.
      const c = await MobileClient.connect(ts.mobileUrl);
      const t0 = Date.now();
      for (const username of ["nobody-a", "nobody-b", "nobody-c@elsewhere.example"]) {
        await assert.rejects(c.login({ username, password: "x", deviceId: "d" }), (err: unknown) => err instanceof MobileRequestError && err.code === ErrorCode.AUTH_FAILED);
      }
      assert.equal((await c.closed(2000)).code, 1008);
      assert.ok(Date.now() - t0 < 5000);
    });

    it("c2s.resourceConflict: refuse also refuses a mobile device already online on another connection", async () => {
      const first = await mobileUser(ts, "gus", { deviceId: "phone" });
      const second = await MobileClient.connect(ts.mobileUrl);
      await assert.rejects(second.login({ username: "gus", password: "password", deviceId: "phone" }),
        (err: unknown) => err instanceof MobileRequestError && err.code === ErrorCode.CONFLICT);
      await first.noPush("kicked", () => true, 300);
      assert.equal(first.isClosed, false);
      assert.equal((await first.request("ping", { clientTime: 1 })).clientTime, 1);
      // An XMPP client asking for the device's resource is refused the same way.
      const x = await RawClient.connect(ts);
      await x.open();
      await x.authenticate("gus", "password");
      await x.open();
      await assert.rejects(x.bind("mobile-phone"), /conflict/);
      first.close(); second.close(); x.close();
    });
  });
});
