// XEP-0163 PEP between hearth and Debian's Prosody (its mod_pep), over dialback on loopback: each side
// learns the other's +notify interest from the caps in presence and sends the devicelist to the other's
// resource, both ways, the last item included.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient } from "./helpers/raw-client.js";
import { freePort } from "./helpers/s2s-peer.js";
import { startProsody, type Prosody } from "./helpers/prosody.js";
import { xml, type Element } from "../src/xml/element.js";
import {
  EVENT, INFO, CAPS, ROSTER, DEVICELIST, publishOptions, publish, devicelist, eventFor, capsOf, login, online, subscribe,
} from "./helpers/pep.js";

const HEARTH = "127.0.0.2";
const PROSODY = "127.0.0.6";
const devices = (ev: Element) =>
  ev.getChild("event", EVENT)!.getChild("items")!.getChild("item")!.getChild("list", "eu.siacs.conversations.axolotl")!.getChildren("device").map((d) => d.attrs.id);

describe("XEP-0163 PEP interop with Prosody's mod_pep over s2s", function () {
  this.timeout(60_000);
  let hearth: TestServer;
  let prosody: Prosody;
  let alice: RawClient;
  let romeo: RawClient;

  before(async () => {
    const [hearthPort, s2sPort, c2sPort] = [await freePort(HEARTH), await freePort(PROSODY), await freePort("127.0.0.1")];
    [hearth, prosody] = await Promise.all([
      startTestServer({
        hosts: ["hearth.test"],
        s2s: { bind: HEARTH, port: hearthPort, routes: { "prosody.test": `${PROSODY}:${s2sPort}` }, connectTimeoutSeconds: 8 },
      }),
      startProsody({
        domain: "prosody.test", address: PROSODY, c2sPort, s2sPort, routes: { "hearth.test": [HEARTH, hearthPort] },
        users: { romeo: "romeo-secret" }, modules: ["pep"],
      }),
    ]);
    alice = await login(hearth, "alice");
    romeo = await RawClient.connect({ host: "prosody.test", c2sPort } as TestServer);
    await romeo.open();
    // Prosody 0.12 stores SCRAM-SHA-1 credentials.
    await romeo.authenticate("romeo", "romeo-secret", "SHA-1");
    await romeo.open();
    await romeo.bind("interop");
    await romeo.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER })));
  });
  after(async () => {
    alice?.close();
    romeo?.close();
    await hearth?.stop();
    await prosody?.stop();
  });

  it("devicelists cross both ways through +notify, the last item on initial presence included", async () => {
    for (const c of [alice, romeo]) {
      c.send(xml("presence"));
      await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid && el.attrs.type === undefined, 10_000);
    }
    await subscribe(alice, romeo, 15_000);
    await subscribe(romeo, alice, 15_000);
    for (const c of [alice, romeo]) {
      c.send(xml("presence", { type: "unavailable" }));
      await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid && el.attrs.type === "unavailable", 10_000);
    }
    const open = publishOptions({ "pubsub#access_model": "open" });
    assert.equal((await publish(romeo, DEVICELIST, "current", devicelist(7), open)).attrs.type, "result");
    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(8), open)).attrs.type, "result");

    const features = [INFO, CAPS, `${DEVICELIST}+notify`];
    // Prosody asks alice's client (over s2s) what her caps mean, then sends romeo's last item.
    await online(alice, capsOf(features));
    const fromRomeo = await alice.receive(eventFor("romeo@prosody.test", DEVICELIST), 15_000);
    assert.equal(fromRomeo.attrs.to, alice.jid);
    assert.deepEqual(devices(fromRomeo), ["7"]);

    await online(romeo, capsOf(features));
    const fromAlice = await romeo.receive(eventFor("alice@hearth.test", DEVICELIST), 15_000);
    assert.equal(fromAlice.attrs.to, romeo.jid);
    assert.deepEqual(devices(fromAlice), ["8"]);

    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(8, 9), open)).attrs.type, "result");
    assert.deepEqual(devices(await romeo.receive(eventFor("alice@hearth.test", DEVICELIST), 15_000)), ["8", "9"]);
    assert.equal((await publish(romeo, DEVICELIST, "current", devicelist(7, 6), open)).attrs.type, "result");
    assert.deepEqual(devices(await alice.receive(eventFor("romeo@prosody.test", DEVICELIST), 15_000)), ["7", "6"]);
  });
});
