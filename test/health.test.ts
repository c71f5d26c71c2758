// Health checks: /health/live answers while the process serves HTTP; /health/ready flips to 503 when a
// dependency goes away (the store, Redis) and back when it returns, naming the failing check.
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { StoreFaults } from "./helpers/faulty-store.js";
import { spawn, type ChildProcess } from "node:child_process";
import { findRedisServer, startRedis, type PrivateRedis } from "./helpers/redis.js";
import { startPostgres, type PrivatePostgres } from "./helpers/postgres.js";

interface Health { status: number; body: { status: string; checks?: Record<string, string> } }

async function get(ts: TestServer, path: string): Promise<Health> {
  const res = await fetch(`http://127.0.0.1:${ts.httpPort}${path}`);
  return { status: res.status, body: await res.json() as Health["body"] };
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("health checks", () => {
  describe("with a store that fails", () => {
    const faults = new StoreFaults();
    let ts: TestServer;
    before(async () => { ts = await startTestServer({}, { wrapStore: faults.wrap }); });
    after(async () => { faults.heal(); await ts?.stop(); });

    it("is live and ready with every check named ok", async () => {
      assert.deepEqual(await get(ts, "/health/live"), { status: 200, body: { status: "ok" } });
      const ready = await get(ts, "/health/ready");
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.body.checks, { store: "ok", "listener:c2s": "ok", "listener:directTls": "ok", "listener:http": "ok" });
    });

    it("is not ready while the store fails, still live, and ready again once it answers", async () => {
      faults.fail("accounts.get");
      const down = await get(ts, "/health/ready");
      assert.equal(down.status, 503);
      assert.equal(down.body.status, "unavailable");
      assert.match(down.body.checks!.store, /^failing: injected store failure/);
      assert.equal((await get(ts, "/health/live")).status, 200);
      faults.heal();
      assert.equal((await get(ts, "/health/ready")).status, 200);
    });
  });

  describe("on PostgreSQL that stops", () => {
    let pg: PrivatePostgres;
    let ts: TestServer;
    before(async function () {
      this.timeout(60_000);
      pg = await startPostgres();
      ts = await startTestServer({ storage: { driver: "postgres", postgres: { url: pg.url, poolSize: 2 } } });
    });
    after(async function () {
      this.timeout(30_000);
      await ts?.stop().catch(() => {});
      await pg?.stop();
    });

    it("flips to 503 when the database server is gone", async function () {
      this.timeout(40_000);
      assert.equal((await get(ts, "/health/ready")).status, 200);
      await pg.stop();
      await until("readiness to fail", async () => (await get(ts, "/health/ready")).status === 503);
      const down = await get(ts, "/health/ready");
      assert.match(down.body.checks!.store, /^failing: /);
      assert.equal((await get(ts, "/health/live")).status, 200);
    });
  });

  describe("with Redis (cluster.redisUrl)", () => {
    let redis: PrivateRedis;
    let again: ChildProcess | null = null;
    let ts: TestServer;
    before(async function () {
      this.timeout(30_000);
      redis = await startRedis();
      ts = await startTestServer({ cluster: { redisUrl: redis.url, heartbeatSeconds: 1, deadAfterSeconds: 3 } });
    });
    after(async function () {
      this.timeout(30_000);
      await ts?.stop().catch(() => {});
      await redis?.stop();
      again?.kill("SIGKILL");
    });

    it("checks Redis, and is not ready once Redis is gone", async function () {
      this.timeout(40_000);
      const ready = await get(ts, "/health/ready");
      assert.equal(ready.status, 200);
      assert.equal(ready.body.checks!.redis, "ok");
      await redis.stop();
      await until("readiness to fail", async () => (await get(ts, "/health/ready")).status === 503);
      assert.match((await get(ts, "/health/ready")).body.checks!.redis, /^failing: /);
      assert.equal((await get(ts, "/health/ready")).body.checks!.store, "ok");
      // Redis back on its port: the client reconnects and the node is ready again.
      again = spawn(findRedisServer(), ["--port", String(redis.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore", cwd: tmpdir() });
      await until("readiness to return", async () => (await get(ts, "/health/ready")).status === 200);
    });
  });
});
