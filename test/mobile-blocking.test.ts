// One block list for both protocols: a block set by a mobile device is enforced for XMPP senders and seen by
// the user's XMPP clients, and a block set over XMPP (XEP-0191) is enforced for mobile senders and pushed to
// the user's devices.
import assert from "node:assert/strict";
import { onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { ErrorCode, MobileRequestError, mobileUser, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";

const BLOCKING = "urn:xmpp:blocking";
const blocklist = (el: Element) => el.getChild("blocklist", BLOCKING)!.getChildren("item").map((i) => i.attrs.jid);

async function rejects(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err) => err instanceof MobileRequestError && err.code === code);
}

describe("blocking across protocols", () => {
  let ts: MobileTestServer;
  before(async () => { ts = await startMobileServer(); });
  after(async () => { await ts?.stop(); });
  let n = 0;
  const fresh = (p: string) => `${p}${++n}${Date.now().toString(36)}`;

  it("a block from a mobile device: pushed to the user's XMPP client, enforced for an XMPP sender", async () => {
    const u = fresh("mb"), x = fresh("xs");
    const device = await mobileUser(ts, u);
    const laptop = await onlineUser(ts, u, { resource: "laptop" });
    const sender = await onlineUser(ts, x);
    const X = `${x}@localhost`;
    assert.deepEqual(blocklist(await laptop.iq(xml("iq", { type: "get" }, xml("blocklist", { xmlns: BLOCKING })))), []);
    await device.request("blockContact", { jid: X });
    const push = await laptop.receive((el) => el.name === "iq" && el.getChild("block", BLOCKING) !== undefined);
    assert.deepEqual(push.getChild("block")!.getChildren("item").map((i) => i.attrs.jid), [X]);
    assert.deepEqual(blocklist(await laptop.iq(xml("iq", { type: "get" }, xml("blocklist", { xmlns: BLOCKING })))), [X]);
    sender.send(xml("message", { to: `${u}@localhost`, type: "chat", id: "m1" }, xml("body", null, "hello?")));
    const bounce = await sender.receive((el) => el.attrs.type === "error" && el.attrs.id === "m1");
    assert.ok(bounce.getChild("error")!.getChild("service-unavailable"));
    await laptop.nothing((el) => el.getChildText("body") === "hello?");
    device.close(); laptop.close(); sender.close();
  });

  it("a block over XMPP: pushed to the user's devices, enforced for a mobile sender both ways", async () => {
    const u = fresh("xb"), m = fresh("ms");
    const laptop = await onlineUser(ts, u, { resource: "laptop" });
    const device = await mobileUser(ts, u);
    const blocked = await mobileUser(ts, m);
    const M = `${m}@localhost`;
    const answer = await laptop.iq(xml("iq", { type: "set" }, xml("block", { xmlns: BLOCKING }, xml("item", { jid: M }))));
    assert.equal(answer.attrs.type, "result");
    const push = await device.nextPush("rosterPush", (r) => r.contact.jid === M);
    assert.equal(push.contact.blocked, true);
    assert.deepEqual((await device.request("getRoster", {})).blocked, [M]);
    // The blocked user's message is refused (XEP-0191 §3.5), and the blocking user's device may not send to it.
    await rejects(blocked.send(`${u}@localhost`, "let me talk"), ErrorCode.RECIPIENT_UNAVAILABLE);
    await device.noPush("messagePush", (b) => b.messages.some((msg) => msg.body === "let me talk"));
    await rejects(device.send(M, "hi"), ErrorCode.FORBIDDEN);

    await laptop.iq(xml("iq", { type: "set" }, xml("unblock", { xmlns: BLOCKING })));
    const unblocked = await device.nextPush("rosterPush", (r) => r.contact.jid === M && !r.contact.blocked);
    assert.equal(unblocked.contact.blocked, false);
    await blocked.send(`${u}@localhost`, "now?");
    await device.nextMessage((msg) => msg.body === "now?");
    laptop.close(); device.close(); blocked.close();
  });
});
