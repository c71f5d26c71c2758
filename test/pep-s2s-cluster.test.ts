// XEP-0163 PEP from a two-node cluster to a contact on a third server: c.test runs on two hearth nodes (one
// PostgreSQL, one Redis) and x.test's route to c.test reaches node 2 only, so the remote contact's presence
// (and its caps) arrives on node 2 while the publishing user's session is on node 1. Node 1 learns the
// remote resource from the presence node 2 relays to the user's session, and its features from the
// verified-hash cache node 2 filled, so the notification still goes out.
import assert from "node:assert/strict";
import type { TestServer } from "./helpers/server.js";
import type { RawClient } from "./helpers/raw-client.js";
import { startFederatedCluster, type FederatedCluster } from "./helpers/s2s-cluster.js";
import { xml, type Element } from "../src/xml/element.js";
import { EVENT, INFO, CAPS, DEVICELIST, publishOptions, publish, devicelist, eventFor, capsOf, login, online, friends, until } from "./helpers/pep.js";

const SECRET = "one secret for every node of c.test";
const LINK_MS = 15_000;
const devices = (ev: Element) =>
  ev.getChild("event", EVENT)!.getChild("items")!.getChild("item")!.getChild("list", "eu.siacs.conversations.axolotl")!.getChildren("device").map((d) => d.attrs.id);

describe("XEP-0163 PEP from a two-node cluster to a contact on another server (s2s)", function () {
  this.timeout(90_000);
  let cluster: FederatedCluster;
  let n1: TestServer;
  let n2: TestServer;
  let x: TestServer;
  const clients: RawClient[] = [];
  const dbName = `pep_s2s_cluster_${process.pid}`;

  before(async () => {
    cluster = await startFederatedCluster(dbName, SECRET);
    ({ n1, n2, x } = cluster);
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it("notifies the remote contact with +notify of a devicelist published on the node that did not get its presence", async () => {
    const carol = await login(n1, "carol"), xavier = await login(x, "xavier");
    clients.push(carol, xavier);
    await friends(carol, xavier, LINK_MS);
    await online(carol, capsOf([INFO, CAPS, `${DEVICELIST}+notify`]));
    const xavierCaps = capsOf([INFO, CAPS, `${DEVICELIST}+notify`, "urn:example:xavier"]);
    await online(xavier, xavierCaps);
    // Xavier's presence came in on node 2 and node 2 relayed it to Carol's session on node 1.
    await carol.receive((el) => el.name === "presence" && el.attrs.from === xavier.jid && el.attrs.type === undefined, LINK_MS);
    assert.equal(n1.server.s2s.incoming().length, 0, "nothing connected to node 1");
    const caps2 = n2.server.modules.service("caps")!;
    await until(() => caps2.remoteResources("xavier@x.test").some((r) => r.jid === xavier.jid && r.features !== null), "node 2 to learn xavier's caps", LINK_MS);
    assert.equal(xavierCaps.queries, 2, "asked by his own server and by node 2 only");
    // Node 1 knows the resource from the relayed presence (its features come from the shared cache on publish).
    const caps1 = n1.server.modules.service("caps")!;
    await until(() => caps1.remoteResources("xavier@x.test").some((r) => r.jid === xavier.jid), "node 1 to hear of xavier's resource", LINK_MS);
    // Node 2 writes the verified hash to the shared store right after learning it: wait for the write.
    const end = Date.now() + LINK_MS;
    while (!(await caps1.remoteRecipients("xavier@x.test")).some((r) => r.jid === xavier.jid && r.features?.has(`${DEVICELIST}+notify`))) {
      assert.ok(Date.now() < end, "node 1 to read xavier's features from the shared cache");
      await new Promise((r) => setTimeout(r, 20));
    }

    const open = publishOptions({ "pubsub#access_model": "open" });
    assert.equal((await publish(carol, DEVICELIST, "current", devicelist(7, 8), open)).attrs.type, "result");
    const ev = await xavier.receive(eventFor("carol@c.test", DEVICELIST), LINK_MS);
    assert.equal(ev.attrs.to, xavier.jid);
    assert.equal(ev.attrs.type, "headline");
    assert.deepEqual(devices(ev), ["7", "8"]);
  });

  it("stops notifying the remote resource once its unavailable presence was relayed", async () => {
    const [carol, xavier] = clients;
    xavier.send(xml("presence", { type: "unavailable" }));
    await carol.receive((el) => el.name === "presence" && el.attrs.from === xavier.jid && el.attrs.type === "unavailable", LINK_MS);
    const caps1 = n1.server.modules.service("caps")!;
    await until(() => !caps1.remoteResources("xavier@x.test").some((r) => r.jid === xavier.jid), "node 1 to forget xavier's resource", LINK_MS);
    assert.equal((await publish(carol, DEVICELIST, "current", devicelist(9))).attrs.type, "result");
    // Carol's own resource (+notify) gets it; xavier's stream stays quiet.
    await carol.receive((el) => eventFor("carol@c.test", DEVICELIST)(el) && devices(el).includes("9"), LINK_MS);
    await xavier.nothing((el) => eventFor("carol@c.test", DEVICELIST)(el) && devices(el).includes("9"), 1000);
  });
});
