// Administration of a two-node cluster (one PostgreSQL, one Redis): the admin API of node 1 lists the
// sessions of node 2 with their node, kicks one there, disables an account whose session is there, and
// announces to users of both nodes.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { errorCondition, onlineUser, type RawClient } from "./helpers/raw-client.js";
import { sharedPostgres } from "./helpers/postgres.js";
import { startRedis, type PrivateRedis } from "./helpers/redis.js";
import { adminFile, type AdminFile } from "../src/admin/index.js";
import type { SessionInfo } from "../src/admin/service.js";

describe("admin across a cluster", function () {
  this.timeout(60_000);
  let redis: PrivateRedis;
  let n1: TestServer, n2: TestServer;
  let api: AdminFile;
  const clients: RawClient[] = [];
  const dbName = `admin_cluster_${process.pid}`;

  const call = async (path: string, body?: unknown) => {
    const res = await fetch(new URL(path, api.url), {
      method: body ? "POST" : "GET",
      headers: { authorization: `Bearer ${api.token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    assert.equal(res.status, 200, await res.clone().text());
    return res.json() as Promise<Record<string, unknown>>;
  };
  const until = async (what: string, check: () => Promise<boolean>) => {
    const end = Date.now() + 10_000;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    const url = await (await sharedPostgres()).createDatabase(dbName);
    redis = await startRedis();
    const node = (nodeId: string) => startTestServer({
      storage: { driver: "postgres", postgres: { url, poolSize: 4 } },
      cluster: { redisUrl: redis.url, nodeId, heartbeatSeconds: 1, deadAfterSeconds: 3 },
      admin: { accounts: ["root@localhost"] },
    });
    n1 = await node("n1");
    n2 = await node("n2");
    api = JSON.parse(readFileSync(adminFile(n1.dataDir), "utf8")) as AdminFile;
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([n1?.stop(), n2?.stop()]);
    await redis?.stop();
    await (await sharedPostgres()).dropDatabase(dbName).catch(() => {});
  });

  it("lists, kicks, disables and announces to sessions of the other node", async () => {
    const carol = await onlineUser(n1, "carol");
    const dave = await onlineUser(n2, "dave");
    const erin = await onlineUser(n2, "erin");
    clients.push(carol, dave, erin);
    let sessions: SessionInfo[] = [];
    await until("node 1 sees node 2's sessions", async () => {
      sessions = (await call("api/state")).sessions as SessionInfo[];
      return sessions.length === 3;
    });
    // A node id is the configured name plus a suffix of its current run.
    assert.deepEqual(sessions.map((s) => [s.jid, s.node.split("-")[0]]), [[carol.jid, "n1"], [dave.jid, "n2"], [erin.jid, "n2"]]);

    assert.deepEqual(await call("api/announce", { host: "localhost", body: "to everyone" }), { sent: 3 });
    for (const c of [carol, dave, erin]) assert.equal((await c.receive((el) => el.name === "message" && el.attrs.from === "localhost")).getChildText("body"), "to everyone");

    await call("api/kick", { jid: dave.jid });
    assert.equal(errorCondition(await dave.closed(5000)), "policy-violation", "kicked on node 2 from node 1");
    await call("api/disable", { jid: "erin@localhost" });
    assert.equal(errorCondition(await erin.closed(5000)), "policy-violation");
    assert.equal(carol.isClosed, false);
  });
});
