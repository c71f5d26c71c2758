// XEP-0398: one avatar whichever way it was set. An avatar published with XEP-0084 (PEP) reaches a
// vCard-only client as a XEP-0153 hash in presence and a vCard PHOTO; a vCard PHOTO reaches a PEP client as
// XEP-0084 metadata and data. Real sockets, real store.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { xml, type Element } from "../src/xml/element.js";
import { ErrorCode, MobileRequestError, mobileUser, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";
import { Subscription } from "../src/mobile/schema.js";
import { CAPS, EVENT, INFO, PUBSUB, capsOf, eventFor, fresh, friends, getItems, login, online, publish, until } from "./helpers/pep.js";

const DATA = "urn:xmpp:avatar:data";
const METADATA = "urn:xmpp:avatar:metadata";
const UPDATE = "vcard-temp:x:update";
const VCARD = "vcard-temp";

const photoHash = (el: Element) => el.getChild("x", UPDATE)?.getChildText("photo");
const sha1 = (b: Buffer) => createHash("sha1").update(b).digest("hex");

describe("XEP-0398 avatar conversion (XEP-0084 ⇄ XEP-0153)", () => {
  let ts: MobileTestServer;
  before(async () => { ts = await startMobileServer(); });
  after(async () => { await ts?.stop(); });

  it("announces urn:xmpp:pep-vcard-conversion:0", async () => {
    const c = await login(ts, fresh("disco"));
    const info = (await c.iq(xml("iq", { type: "get", to: c.jid.split("/")[0] }, xml("query", { xmlns: INFO })))).getChild("query", INFO)!;
    assert.ok(info.getChildren("feature").some((f) => f.attrs.var === "urn:xmpp:pep-vcard-conversion:0"));
    c.close();
  });

  it("an avatar published with PEP is seen by a vCard-only contact (presence hash and vCard PHOTO)", async () => {
    const a = fresh("alice"), b = fresh("bob");
    const alice = await login(ts, a), bob = await login(ts, b);
    await friends(alice, bob);
    await online(bob, null);
    await online(alice, null);
    // No avatar yet: the server says so in the presence (an empty photo, XEP-0153 §4.1).
    const first = await bob.receive((el) => el.name === "presence" && el.attrs.from === alice.jid && el.attrs.type === undefined, 10_000);
    assert.equal(photoHash(first), "");

    const image = randomBytes(2048);
    const hash = sha1(image);
    assert.equal((await publish(alice, DATA, hash, xml("data", { xmlns: DATA }, image.toString("base64")))).attrs.type, "result");
    assert.equal((await publish(alice, METADATA, hash, xml("metadata", { xmlns: METADATA }, xml("info", { id: hash, bytes: String(image.length), type: "image/png" })))).attrs.type, "result");

    // The server broadcasts Alice's presence again with the new hash.
    const updated = await bob.receive((el) => el.name === "presence" && el.attrs.from === alice.jid && photoHash(el) === hash, 10_000);
    assert.equal(updated.attrs.type, undefined);
    const card = (await bob.iq(xml("iq", { type: "get", to: `${a}@localhost` }, xml("vCard", { xmlns: VCARD })))).getChild("vCard", VCARD)!;
    const photo = card.getChild("PHOTO")!;
    assert.equal(photo.getChildText("TYPE"), "image/png");
    assert.deepEqual(Buffer.from(photo.getChildText("BINVAL")!, "base64"), image);
    // A presence the client sends later carries the hash too.
    alice.send(xml("presence", null, xml("show", null, "away")));
    const later = await bob.receive((el) => el.name === "presence" && el.attrs.from === alice.jid && el.getChildText("show") === "away", 10_000);
    assert.equal(photoHash(later), hash);
    alice.close(); bob.close();
  });

  it("the presences the server keeps share one annotation per hash", async () => {
    const a = await login(ts, fresh("carol")), b = await login(ts, fresh("dave"));
    await online(a, null);
    await online(b, null);
    const stored = (c: typeof a) => ts.server.context.sessions.resources(c.jid.split("/")[0])[0].presence!;
    const xa = stored(a).getChild("x", UPDATE), xb = stored(b).getChild("x", UPDATE);
    assert.equal(xa?.getChildText("photo"), "");
    // The same element: two of its own per session were about 330 bytes of every idle connection.
    assert.equal(xa, xb);
    a.close(); b.close();
  });

  it("a vCard PHOTO set by a vCard client reaches a PEP client as XEP-0084 metadata and data", async () => {
    const a = fresh("alice"), b = fresh("bob");
    const alice = await login(ts, a), bob = await login(ts, b);
    await friends(alice, bob);
    const caps = capsOf([INFO, CAPS, `${METADATA}+notify`]);
    await online(alice, caps);
    await until(() => caps.queries >= 1, "the caps question");
    await online(bob, null);

    const image = randomBytes(1500);
    const hash = sha1(image);
    const set = await bob.iq(xml("iq", { type: "set" }, xml("vCard", { xmlns: VCARD },
      xml("FN", null, "Bob"), xml("PHOTO", null, xml("TYPE", null, "image/jpeg"), xml("BINVAL", null, image.toString("base64"))))));
    assert.equal(set.attrs.type, "result");

    const ev = await alice.receive(eventFor(`${b}@localhost`, METADATA), 10_000);
    const info = ev.getChild("event", EVENT)!.getChild("items")!.getChild("item")!.getChild("metadata", METADATA)!.getChild("info")!;
    assert.equal(info.attrs.id, hash);
    assert.equal(info.attrs.type, "image/jpeg");
    assert.equal(info.attrs.bytes, String(image.length));
    const data = await getItems(alice, `${b}@localhost`, DATA, {}, [hash]);
    assert.deepEqual(Buffer.from(data.getChild("pubsub", PUBSUB)!.getChild("items")!.getChild("item")!.getChildText("data")!, "base64"), image);
    // The vCard keeps its other fields.
    const card = (await alice.iq(xml("iq", { type: "get", to: `${b}@localhost` }, xml("vCard", { xmlns: VCARD })))).getChild("vCard", VCARD)!;
    assert.equal(card.getChildText("FN"), "Bob");

    // Removing the PHOTO disables the PEP avatar (empty metadata, XEP-0084 §4.2).
    await bob.iq(xml("iq", { type: "set" }, xml("vCard", { xmlns: VCARD }, xml("FN", null, "Bob"))));
    const off = await alice.receive((el) => eventFor(`${b}@localhost`, METADATA)(el)
      && el.getChild("event")!.getChild("items")!.getChild("item")!.getChild("metadata")!.getChild("info") === undefined, 10_000);
    assert.ok(off);
    alice.close(); bob.close();
  });

  it("a mobile app sees the avatar an XMPP client published: the hash on presence, the picture with GetAvatar", async () => {
    const mu = fresh("mobile"), xu = fresh("xmpp");
    const m = await mobileUser(ts, mu, { deviceId: "av" });
    const x = await login(ts, xu);
    x.send(xml("presence"));
    await m.request("addContact", { jid: `${xu}@localhost`, remark: "X", message: "" });
    const req = await x.receive((el) => el.name === "presence" && el.attrs.type === "subscribe", 10_000);
    x.send(xml("presence", { to: req.attrs.from!, type: "subscribed" }));
    await m.nextPush("rosterPush", (p) => p.contact.jid === `${xu}@localhost` && p.contact.subscription !== Subscription.NONE);
    await assert.rejects(m.request("getAvatar", { jid: `${xu}@localhost` }), (e: unknown) => e instanceof MobileRequestError && e.code === ErrorCode.NOT_FOUND);

    const image = randomBytes(900);
    const hash = sha1(image);
    await publish(x, DATA, hash, xml("data", { xmlns: DATA }, image.toString("base64")));
    await publish(x, METADATA, hash, xml("metadata", { xmlns: METADATA }, xml("info", { id: hash, bytes: String(image.length), type: "image/webp" })));
    const push = await m.nextPush("presencePush", (p) => p.presence.jid === x.jid && p.presence.avatarHash === hash);
    assert.equal(push.presence.available, true);
    const got = await m.request("getAvatar", { jid: `${xu}@localhost` });
    assert.equal(got.hash, hash);
    assert.equal(got.type, "image/webp");
    assert.deepEqual(Buffer.from(got.data), image);
    m.close(); x.close();
  });
});
