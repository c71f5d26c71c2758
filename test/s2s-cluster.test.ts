// Federation from a cluster: two hearth nodes serving c.test on one PostgreSQL and one Redis, and a third
// server x.test whose route to c.test reaches node 2 only. Either node may hold an outgoing stream; the
// incoming one lands on node 2 and still reaches a user on node 1; node 2 answers the dialback
// verification of keys node 1 generated, because both derive them from the same s2s.dialbackSecret.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { type RawClient, onlineUser } from "./helpers/raw-client.js";
import { freePort } from "./helpers/s2s-peer.js";
import { sharedPostgres } from "./helpers/postgres.js";
import { startRedis, type PrivateRedis } from "./helpers/redis.js";
import { xml, type Element } from "../src/xml/element.js";

const SECRET = "one secret for every node of c.test";
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

describe("s2s: a two-node cluster federating with a third server", function () {
  this.timeout(60_000);
  let redis: PrivateRedis;
  let n1: TestServer;
  let n2: TestServer;
  let x: TestServer;
  let carol: RawClient;
  let dave: RawClient;
  let xavier: RawClient;
  const dbName = `s2s_cluster_${process.pid}`;

  before(async () => {
    const pg = await sharedPostgres();
    const url = await pg.createDatabase(dbName);
    redis = await startRedis();
    const [p1, p2, px] = [await freePort("127.0.0.2"), await freePort("127.0.0.3"), await freePort("127.0.0.4")];
    const node = (bind: string, port: number) => startTestServer({
      hosts: ["c.test"],
      storage: { driver: "postgres", postgres: { url, poolSize: 4 } },
      cluster: { redisUrl: redis.url, heartbeatSeconds: 1, deadAfterSeconds: 3 },
      s2s: { bind, port, routes: { "x.test": `127.0.0.4:${px}` }, dialbackSecret: SECRET, connectTimeoutSeconds: 8 },
    });
    n1 = await node("127.0.0.2", p1);
    n2 = await node("127.0.0.3", p2);
    x = await startTestServer({ hosts: ["x.test"], s2s: { bind: "127.0.0.4", port: px, routes: { "c.test": `127.0.0.3:${p2}` }, connectTimeoutSeconds: 8 } });
    carol = await onlineUser(n1, "carol");
    dave = await onlineUser(n2, "dave");
    xavier = await onlineUser(x, "xavier");
  });
  after(async () => {
    for (const c of [carol, dave, xavier]) c?.close();
    await Promise.all([n1?.stop(), n2?.stop(), x?.stop()]);
    await redis?.stop();
    await (await sharedPostgres()).dropDatabase(dbName).catch(() => {});
  });

  it("sends a stanza for the remote domain from a session on either node, and it arrives once", async () => {
    carol.send(xml("message", { to: "xavier@x.test", type: "chat" }, xml("body", null, "from node 1")));
    dave.send(xml("message", { to: "xavier@x.test", type: "chat" }, xml("body", null, "from node 2")));
    assert.equal((await xavier.receive(isMessageWith("from node 1"), 15_000)).attrs.from, carol.jid);
    assert.equal((await xavier.receive(isMessageWith("from node 2"), 15_000)).attrs.from, dave.jid);
    await xavier.nothing(isMessageWith("from node 1"), 1000);
    await xavier.nothing(isMessageWith("from node 2"), 500);
    // Node 1's dialback key was verified by node 2 (x.test's only route to c.test): the shared secret.
    assert.deepEqual(n1.server.s2s.outgoing().map((s) => [s.remote, s.method, s.ready]), [["x.test", "dialback", true]]);
    assert.equal(n1.server.s2s.incoming().length, 0, "nothing ever connected to node 1");
  });

  it("delivers what arrives on node 2's incoming stream to a user on node 1, once", async () => {
    xavier.send(xml("message", { to: "carol@c.test", type: "chat" }, xml("body", null, "to node 1")));
    xavier.send(xml("message", { to: "dave@c.test", type: "chat" }, xml("body", null, "to node 2")));
    assert.equal((await carol.receive(isMessageWith("to node 1"), 15_000)).attrs.from, xavier.jid);
    assert.equal((await dave.receive(isMessageWith("to node 2"), 15_000)).attrs.from, xavier.jid);
    await carol.nothing(isMessageWith("to node 1"), 1000);
    assert.ok(n2.server.s2s.incoming().some((s) => s.pairs.includes("x.test c.test")));
  });
});
