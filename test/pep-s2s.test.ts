// XEP-0163 PEP across federation between two hearth servers (a.test on 127.0.0.2, b.test on 127.0.0.3):
// each server learns the remote contact's +notify interest from the caps in the presence that crossed the
// link (XEP-0115, disco#info asked over s2s), sends it the owner's last item when its available presence
// arrives and every later notification, and delivers the remote contact's events only to the local
// resources that asked for them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { TestServer } from "./helpers/server.js";
import type { RawClient } from "./helpers/raw-client.js";
import { ScriptedPeer, federatedPair, B_ADDR } from "./helpers/s2s-peer.js";
import { dialbackKey } from "../src/s2s/dialback.js";
import { xml, type Element } from "../src/xml/element.js";
import {
  EVENT, INFO, CAPS, DEVICELIST, publishOptions, publish, devicelist, eventFor, anyEvent, capsOf, login, online, friends, until,
} from "./helpers/pep.js";

const LINK_MS = 15_000;
const devices = (ev: Element) =>
  ev.getChild("event", EVENT)!.getChild("items")!.getChild("item")!.getChild("list", "eu.siacs.conversations.axolotl")!.getChildren("device").map((d) => d.attrs.id);

describe("XEP-0163 PEP across federation (two hearth servers over s2s)", function () {
  let a: TestServer;
  let b: TestServer;
  const clients: RawClient[] = [];
  before(async () => { [a, b] = await federatedPair(); });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("OMEMO devicelists reach the remote contact through +notify, both ways, with the last item on initial presence", async () => {
    const alice = await login(a, "alice"), bob = await login(b, "bob");
    clients.push(alice, bob);
    await friends(alice, bob, LINK_MS);
    // Published while the contact is away: it arrives as the last item when the contact comes online.
    const open = publishOptions({ "pubsub#access_model": "open" });
    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(11), open)).attrs.type, "result");
    assert.equal((await publish(bob, DEVICELIST, "current", devicelist(22), open)).attrs.type, "result");

    const aliceCaps = capsOf([INFO, CAPS, `${DEVICELIST}+notify`]);
    const bobCaps = capsOf([INFO, CAPS, `${DEVICELIST}+notify`]);
    await online(alice, aliceCaps);
    // b.test asks alice's client over s2s what its caps mean, then sends bob's last item to her full JID.
    const fromBob = await alice.receive(eventFor("bob@b.test", DEVICELIST), LINK_MS);
    assert.equal(fromBob.attrs.to, alice.jid);
    assert.equal(fromBob.attrs.type, "headline");
    assert.deepEqual(devices(fromBob), ["22"]);
    assert.ok(aliceCaps.queries >= 2, "asked by her own server and by b.test");

    await online(bob, bobCaps);
    const fromAlice = await bob.receive(eventFor("alice@a.test", DEVICELIST), LINK_MS);
    assert.equal(fromAlice.attrs.to, bob.jid);
    assert.deepEqual(devices(fromAlice), ["11"]);

    // Live notifications, both ways.
    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(11, 33), open)).attrs.type, "result");
    assert.deepEqual(devices(await bob.receive(eventFor("alice@a.test", DEVICELIST), LINK_MS)), ["11", "33"]);
    assert.equal((await publish(bob, DEVICELIST, "current", devicelist(22, 44), open)).attrs.type, "result");
    assert.deepEqual(devices(await alice.receive(eventFor("bob@b.test", DEVICELIST), LINK_MS)), ["22", "44"]);
  });

  it("sends nothing to a remote resource without +notify, and learns a cached hash without asking again", async () => {
    const alice = clients[0]!;
    const plain = await login(b, "bob", "plain");
    const second = await login(b, "bob", "second");
    clients.push(plain, second);
    const plainCaps = capsOf([INFO, CAPS]);
    await online(plain, plainCaps);
    const capsA = a.server.modules.service("caps")!;
    await until(() => capsA.remoteResources("bob@b.test").some((r) => r.jid === plain.jid && r.features !== null), "a.test to learn the plain resource's caps", LINK_MS);
    // The same hash as bob's first resource: a.test knows it already and sends the last item at once.
    const secondCaps = capsOf([INFO, CAPS, `${DEVICELIST}+notify`]);
    await online(second, secondCaps);
    assert.deepEqual(devices(await second.receive(eventFor("alice@a.test", DEVICELIST), LINK_MS)), ["11", "33"]);
    assert.equal(secondCaps.queries, 0, "neither server asked about a hash it had verified");

    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(11, 33, 55))).attrs.type, "result");
    for (const c of [clients[1]!, second]) assert.deepEqual(devices(await c.receive(eventFor("alice@a.test", DEVICELIST), LINK_MS)), ["11", "33", "55"]);
    // Stanzas from a.test to b.test keep their order on the link: a chat sent after the publish arrives after
    // any notification would have.
    alice.send(xml("message", { to: plain.jid, type: "chat" }, xml("body", null, "after the publish")));
    await plain.receive((el) => el.name === "message" && el.getChildText("body") === "after the publish", LINK_MS);
    // nothing() looks at what arrived before too.
    await plain.nothing(anyEvent, 300);
  });

  it("does not track or ask a remote stranger whose presence arrives (only contacts the user is subscribed to)", async () => {
    const alice = clients[0]!;
    const carol = await login(b, "carol");
    clients.push(carol);
    const caps = capsOf([INFO, CAPS, `${DEVICELIST}+notify`, "urn:example:carol"]);
    carol.send(xml("presence", { to: "alice@a.test" }, xml("c", { xmlns: CAPS, hash: "sha-1", node: "urn:hearth:test", ver: caps.ver })));
    // Delivered to Alice after the caps module looked at it.
    await alice.receive((el) => el.name === "presence" && el.attrs.from === carol.jid, LINK_MS);
    assert.deepEqual(a.server.modules.service("caps")!.remoteResources("carol@b.test"), []);
    await carol.nothing((el) => el.name === "iq" && el.getChild("query", INFO) !== undefined, 300);
  });

  it("stops notifying a remote resource that went unavailable", async () => {
    const alice = clients[0]!;
    const second = clients.find((c) => c.jid.endsWith("/second"))!;
    second.send(xml("presence", { type: "unavailable" }));
    const capsA = a.server.modules.service("caps")!;
    await until(() => !capsA.remoteResources("bob@b.test").some((r) => r.jid === second.jid), "a.test to forget the resource", LINK_MS);
    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(77))).attrs.type, "result");
    await clients[1]!.receive(eventFor("alice@a.test", DEVICELIST), LINK_MS);
    await second.nothing(eventFor("alice@a.test", DEVICELIST), 500);
  });

  it("delivers a remote PEP event sent to the bare JID only to the resources with +notify, and never stores it", async () => {
    // A stream to b.test authenticated as a.test with a.test's dialback key: the event arrives as a server
    // would send it to the bare JID.
    const peer = await ScriptedPeer.connect(B_ADDR, b.server.ports.s2s!);
    try {
      await peer.open("a.test", "b.test");
      await peer.startTls("b.test");
      await peer.open("a.test", "b.test");
      const secret = readFileSync(path.join(a.dataDir, "s2s-dialback.secret"), "utf8").trim();
      peer.send(xml("db:result", { from: "a.test", to: "b.test" }, dialbackKey(secret, "b.test", "a.test", peer.streamId)));
      assert.equal((await peer.receive((el) => el.name === "db:result")).attrs.type, "valid");
      const event = (id: string) => xml("message", { from: "carol@a.test", to: "bob@b.test", type: "headline", id },
        xml("event", { xmlns: EVENT }, xml("items", { node: DEVICELIST }, xml("item", { id: "current" }, devicelist(99)))));
      peer.send(event("bare-1"));
      const bob = clients[1]!;
      const plain = clients.find((c) => c.jid.endsWith("/plain"))!;
      const got = await bob.receive(eventFor("carol@a.test", DEVICELIST), LINK_MS);
      assert.equal(got.attrs.id, "bare-1");
      await plain.nothing(eventFor("carol@a.test", DEVICELIST), 500);

      // With no resource online, the event is dropped: it is not an offline chat message.
      for (const c of [bob, plain]) {
        c.send(xml("presence", { type: "unavailable" }));
        await c.receive((el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === c.jid);
      }
      peer.send(event("bare-2"));
      peer.send(xml("message", { from: "carol@a.test/x", to: "bob@b.test", type: "chat" }, xml("body", null, "marker")));
      const later = await login(b, "bob", "later");
      clients.push(later);
      later.send(xml("presence", null, xml("priority", null, "1")));
      await later.receive((el) => el.name === "message" && el.getChildText("body") === "marker", LINK_MS);
      // The event was not kept for later (nothing() looks at what arrived before the marker too).
      await later.nothing(eventFor("carol@a.test", DEVICELIST), 300);
    } finally {
      peer.destroy();
    }
  });
});
