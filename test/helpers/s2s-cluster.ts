// Federation from a cluster: two hearth nodes serving c.test on one private PostgreSQL database and one
// private Redis (node 1 on 127.0.0.2, node 2 on 127.0.0.3), and a third server x.test (127.0.0.4) whose
// only route to c.test is node 2. Both nodes share `secret` as s2s.dialbackSecret.
import { startTestServer, type TestServer } from "./server.js";
import { freePort } from "./s2s-peer.js";
import { sharedPostgres } from "./postgres.js";
import { startRedis } from "./redis.js";

export interface FederatedCluster {
  n1: TestServer;
  n2: TestServer;
  x: TestServer;
  stop(): Promise<void>;
}

export async function startFederatedCluster(dbName: string, secret: string): Promise<FederatedCluster> {
  const pg = await sharedPostgres();
  const url = await pg.createDatabase(dbName);
  const redis = await startRedis();
  const servers: TestServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await redis.stop();
    await pg.dropDatabase(dbName).catch(() => {});
  };
  try {
    const [p1, p2, px] = [await freePort("127.0.0.2"), await freePort("127.0.0.3"), await freePort("127.0.0.4")];
    const node = async (bind: string, port: number) => {
      const ts = await startTestServer({
        hosts: ["c.test"],
        storage: { driver: "postgres", postgres: { url, poolSize: 4 } },
        cluster: { redisUrl: redis.url, heartbeatSeconds: 1, deadAfterSeconds: 3 },
        s2s: { bind, port, routes: { "x.test": `127.0.0.4:${px}` }, dialbackSecret: secret, connectTimeoutSeconds: 8 },
      });
      servers.push(ts);
      return ts;
    };
    const n1 = await node("127.0.0.2", p1);
    const n2 = await node("127.0.0.3", p2);
    const x = await startTestServer({ hosts: ["x.test"], s2s: { bind: "127.0.0.4", port: px, routes: { "c.test": `127.0.0.3:${p2}` }, connectTimeoutSeconds: 8 } });
    servers.push(x);
    return { n1, n2, x, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
