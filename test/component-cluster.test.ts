// XEP-0114 in a cluster: two hearth nodes on one PostgreSQL and one Redis. A component connected to one node
// serves the users of both: stanzas for its domain go to the node it is connected to, wherever they start.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { type RawClient, onlineUser } from "./helpers/raw-client.js";
import { sharedPostgres } from "./helpers/postgres.js";
import { startRedis, type PrivateRedis } from "./helpers/redis.js";
import { GATEWAY, SECRET, RawComponent } from "./helpers/raw-component.js";
import { xml, type Element } from "../src/xml/element.js";

const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;
const conditionOf = (el: Element) => el.getChild("error")?.children.find((c): c is Element => typeof c !== "string")?.name;

describe("XEP-0114 components in a two-node cluster", function () {
  this.timeout(60_000);
  let redis: PrivateRedis;
  let n1: TestServer;
  let n2: TestServer;
  let carol: RawClient;
  let dave: RawClient;
  const dbName = `component_cluster_${process.pid}`;
  const portOf = (n: TestServer) => n.server.modules.service("components")!.port!;

  before(async () => {
    const pg = await sharedPostgres();
    const url = await pg.createDatabase(dbName);
    redis = await startRedis();
    const node = () => startTestServer({
      storage: { driver: "postgres", postgres: { url, poolSize: 4 } },
      cluster: { redisUrl: redis.url, heartbeatSeconds: 1, deadAfterSeconds: 3 },
      components: { port: 0, secrets: { [GATEWAY]: SECRET } },
    });
    n1 = await node();
    n2 = await node();
    carol = await onlineUser(n1, "carol");
    dave = await onlineUser(n2, "dave");
  });
  after(async () => {
    for (const c of [carol, dave]) c?.close();
    await Promise.all([n1?.stop(), n2?.stop()]);
    await redis?.stop();
    await (await sharedPostgres()).dropDatabase(dbName).catch(() => {});
  });

  it("a user on the other node messages the component and gets its reply; iq requests are answered too", async () => {
    const { c: gateway, answer } = await RawComponent.login(portOf(n1));
    assert.equal(answer.name, "handshake");
    try {
      dave.send(xml("message", { to: `bot@${GATEWAY}`, type: "chat" }, xml("body", null, "hello from node 2")));
      const got = await gateway.receive(isMessageWith("hello from node 2"), 10_000);
      assert.equal(got.attrs.from, dave.jid, "the sender's full JID, stamped on node 2");
      gateway.send(xml("message", { from: `bot@${GATEWAY}/gw`, to: dave.jid, type: "chat" }, xml("body", null, "hello dave")));
      assert.equal((await dave.receive(isMessageWith("hello dave"), 10_000)).attrs.from, `bot@${GATEWAY}/gw`);

      dave.send(xml("iq", { type: "get", id: "v1", to: GATEWAY }, xml("query", { xmlns: "jabber:iq:version" })));
      const req = await gateway.receive((el) => el.name === "iq" && el.attrs.type === "get" && el.attrs.from === dave.jid, 10_000);
      gateway.send(xml("iq", { type: "result", id: req.attrs.id, from: GATEWAY, to: dave.jid },
        xml("query", { xmlns: "jabber:iq:version" }, xml("name", null, "gateway"))));
      const res = await dave.receive((el) => el.name === "iq" && el.attrs.id === "v1", 10_000);
      assert.equal(res.attrs.type, "result", res.toString());

      // A user on the component's own node is still served there, once.
      carol.send(xml("message", { to: `bot@${GATEWAY}`, type: "chat" }, xml("body", null, "hello from node 1")));
      await gateway.receive(isMessageWith("hello from node 1"), 10_000);
      await gateway.nothing(isMessageWith("hello from node 1"), 500);
    } finally {
      gateway.close();
      await gateway.closed;
    }
  });

  it("when the component disconnects, the other node answers service-unavailable", async () => {
    for (let i = 0; i < 100 && n1.server.modules.service("components")!.connected().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    dave.send(xml("message", { to: `bot@${GATEWAY}`, id: "gone1", type: "chat" }, xml("body", null, "are you gone?")));
    const err = await dave.receive((el) => el.name === "message" && el.attrs.id === "gone1", 10_000);
    assert.equal(err.attrs.type, "error", err.toString());
    assert.equal(conditionOf(err), "service-unavailable");
  });

  it("a component that reconnects to the other node takes its domain along", async () => {
    const { c: gateway, answer } = await RawComponent.login(portOf(n2));
    assert.equal(answer.name, "handshake");
    try {
      carol.send(xml("message", { to: `bot@${GATEWAY}`, type: "chat" }, xml("body", null, "found you on node 2")));
      assert.equal((await gateway.receive(isMessageWith("found you on node 2"), 10_000)).attrs.from, carol.jid);
      gateway.send(xml("message", { from: `bot@${GATEWAY}`, to: carol.jid, type: "chat" }, xml("body", null, "yes")));
      await carol.receive(isMessageWith("yes"), 10_000);
    } finally {
      gateway.close();
      await gateway.closed;
    }
  });
});
