// A failing store must not take the node down (issue 9 point 6). The real store sits under a proxy that
// makes chosen methods reject while switched on; the node must stay up, answer the client with the
// matching error, and lose nothing it had acknowledged.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { StoreFaults } from "./helpers/faulty-store.js";
import { startMobileServer, mobileUser, MobileRequestError, ErrorCode, type MobileTestServer } from "./helpers/mobile-client.js";
import { xml, type Element } from "../src/xml/element.js";

const PING = "urn:xmpp:ping";
const MUC = "http://jabber.org/protocol/muc";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Rejections that reached the process: each is a failure that escaped its call site. */
const escaped: unknown[] = [];
const recordEscape = (reason: unknown) => { escaped.push(reason); };
function expectNoEscapes(): void {
  before(() => { process.on("unhandledRejection", recordEscape); });
  after(() => { process.off("unhandledRejection", recordEscape); });
  afterEach(() => {
    const found = escaped.splice(0);
    assert.deepEqual(found.map(String), [], "a store failure escaped its call site as an unhandled rejection");
  });
}

/** The node still serves: a new client logs in and gets a ping answered. */
async function stillServing(ts: TestServer): Promise<void> {
  const probe = await onlineUser(ts, fresh("probe"));
  const pong = await probe.iq(xml("iq", { type: "get", to: ts.host }, xml("ping", { xmlns: PING })));
  assert.equal(pong.attrs.type, "result");
  probe.close();
}

describe("a failing store", function () {
  expectNoEscapes();
  const faults = new StoreFaults();
  let ts: TestServer;
  before(async () => { ts = await startTestServer({}, { wrapStore: faults.wrap }); });
  afterEach(() => faults.heal());
  after(() => ts.stop());

  it("while a client disconnects (resource-unbind reads the roster) does not end the node", async () => {
    const alice = await onlineUser(ts, fresh("alice"));
    const bob = await onlineUser(ts, fresh("bob"));
    faults.fail("roster.get", "accounts.exists");
    alice.close();
    bob.destroy();
    await sleep(200);
    assert.ok((faults.injected.get("roster.get") ?? 0) > 0, "the disconnect did not reach the store");
    faults.heal();
    await stillServing(ts);
  });

  it("during a login answers SASL temporary-auth-failure, and the next login works", async () => {
    const user = fresh("carol");
    await ts.accounts.create(ts.host, user, "password");
    faults.fail("accounts.get");
    const c = await RawClient.connect(ts);
    await c.open();
    // RFC 6120 §6.5.12: a temporary error within the receiving entity.
    const failure = await c.authenticate(user, "password").then(() => null, (e: { element?: Element }) => e.element ?? null);
    assert.equal(failure?.name, "failure");
    assert.ok(failure?.getChild("temporary-auth-failure"), failure?.toString());
    c.close();
    faults.heal();
    const ok = await RawClient.connect(ts);
    await ok.login(user, "password");
    ok.close();
  });

  it("answers an iq whose handler reads the store with internal-server-error (RFC 6120 §8.3.3.5)", async () => {
    const dave = await onlineUser(ts, fresh("dave"));
    faults.fail("keyValue:vcard.get");
    const res = await dave.iq(xml("iq", { type: "get", to: dave.jid.split("/")[0] }, xml("vCard", { xmlns: "vcard-temp" })));
    assert.equal(res.attrs.type, "error");
    assert.equal(errorCondition(res), "internal-server-error");
    faults.heal();
    const again = await dave.iq(xml("iq", { type: "get" }, xml("vCard", { xmlns: "vcard-temp" })));
    assert.equal(again.attrs.type, "result");
    dave.close();
  });

  it("while a message is stored keeps the node up, and the resent message is delivered and archived once", async () => {
    const erin = await onlineUser(ts, fresh("erin"));
    const frank = await onlineUser(ts, fresh("frank"));
    const msg = () => xml("message", { to: frank.jid.split("/")[0], type: "chat", id: "m1" },
      xml("body", null, "hello"), xml("origin-id", { xmlns: "urn:xmpp:sid:0", id: "o-store-1" }));
    faults.fail("timeline.append");
    erin.send(msg());
    await erin.iq(xml("iq", { type: "get", to: ts.host }, xml("ping", { xmlns: PING })));
    await frank.nothing((el) => el.name === "message" && el.getChildText("body") === "hello");
    faults.heal();
    erin.send(msg());
    const got = await frank.receive((el) => el.name === "message" && el.getChildText("body") === "hello");
    assert.ok(got.getChild("stanza-id", "urn:xmpp:sid:0"), "not stored");
    erin.close();
    frank.close();
  });

  it("during a MUC join keeps the node up, and the join works once the store is back", async () => {
    const gina = await onlineUser(ts, fresh("gina"));
    const room = `${fresh("room")}@conference.${ts.host}`;
    faults.fail("keyValue:muc.get");
    gina.send(xml("presence", { to: `${room}/gina` }, xml("x", { xmlns: MUC })));
    await sleep(200);
    assert.ok((faults.injected.get("keyValue:muc.get") ?? 0) > 0, "the join did not reach the store");
    faults.heal();
    await stillServing(ts);
    gina.send(xml("presence", { to: `${room}/gina` }, xml("x", { xmlns: MUC })));
    await gina.receive((el) => el.name === "presence" && el.attrs.from === `${room}/gina` && el.attrs.type === undefined);
    gina.close();
  });
});

describe("a failing store (mobile)", function () {
  expectNoEscapes();
  const faults = new StoreFaults();
  let ts: MobileTestServer;
  before(async () => {
    const start = startMobileServer;
    ts = await start({}, {});
    await ts.stop();
    // The same mobile server, now on the faulty store.
    ts = Object.assign(await startTestServer({ modules: { mobile: { port: ts.mobilePort, bind: "127.0.0.1" } } }, { wrapStore: faults.wrap }), { mobilePort: ts.mobilePort, mobileUrl: ts.mobileUrl });
  });
  afterEach(() => faults.heal());
  after(() => ts.stop());

  it("answers a send that could not be stored with an error, never a SendAck, and the resend is stored once", async () => {
    const peer = await mobileUser(ts, fresh("mpeer"));
    const device = await mobileUser(ts, fresh("mdev"));
    const to = `${peer.session!.jid.split("/")[0]}`;
    faults.fail("timeline.append");
    const failed = await device.sendMessage({ clientMsgId: "c-1", to, body: "kept?" }).then(() => null, (e: unknown) => e);
    assert.ok(failed instanceof MobileRequestError, String(failed));
    assert.notEqual(failed.code, ErrorCode.UNSPECIFIED);
    faults.heal();
    const ack = await device.sendMessage({ clientMsgId: "c-1", to, body: "kept?" });
    assert.equal(ack.duplicate, false);
    const m = await peer.nextMessage((x) => x.body === "kept?");
    assert.ok(m.seq > 0);
    device.close();
    peer.close();
  });

  it("while a device disconnects does not end the node", async () => {
    const device = await mobileUser(ts, fresh("mgone"));
    faults.fail("roster.get", "accounts.exists", "keyValue:mobile.set");
    device.drop();
    await sleep(200);
    faults.heal();
    await stillServing(ts);
  });
});
