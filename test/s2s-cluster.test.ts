// Federation from a cluster: two hearth nodes serving c.test on one PostgreSQL and one Redis, and a third
// server x.test whose route to c.test reaches node 2 only. Either node may hold an outgoing stream; the
// incoming one lands on node 2 and still reaches a user on node 1; node 2 answers the dialback
// verification of keys node 1 generated, because both derive them from the same s2s.dialbackSecret.
import assert from "node:assert/strict";
import type { TestServer } from "./helpers/server.js";
import { type RawClient, onlineUser } from "./helpers/raw-client.js";
import { startFederatedCluster, type FederatedCluster } from "./helpers/s2s-cluster.js";
import { xml, type Element } from "../src/xml/element.js";

const SECRET = "one secret for every node of c.test";
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

describe("s2s: a two-node cluster federating with a third server", function () {
  this.timeout(60_000);
  let cluster: FederatedCluster;
  let n1: TestServer;
  let n2: TestServer;
  let x: TestServer;
  let carol: RawClient;
  let dave: RawClient;
  let xavier: RawClient;
  const dbName = `s2s_cluster_${process.pid}`;

  before(async () => {
    cluster = await startFederatedCluster(dbName, SECRET);
    ({ n1, n2, x } = cluster);
    carol = await onlineUser(n1, "carol");
    dave = await onlineUser(n2, "dave");
    xavier = await onlineUser(x, "xavier");
  });
  after(async () => {
    for (const c of [carol, dave, xavier]) c?.close();
    await cluster?.stop();
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
