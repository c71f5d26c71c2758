// XEP-0054 vcard-temp: one's own vCard, other users' vCards, and what is refused.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const VCARD = "vcard-temp";
const getVcard = (to?: string) => xml("iq", { type: "get", to }, xml("vCard", { xmlns: VCARD }));
const setVcard = (card: Element, to?: string) => xml("iq", { type: "set", to }, card);
const card = (fn: string, desc?: string) => xml("vCard", { xmlns: VCARD },
  xml("FN", null, fn), xml("N", null, xml("FAMILY", null, "Saint-Andre"), xml("GIVEN", null, "Peter")),
  desc ? xml("DESC", null, desc) : null);

describe("XEP-0054 vcard-temp", function () {
  let ts: TestServer;
  let alice: RawClient;
  let bob: RawClient;
  before(async () => {
    ts = await startTestServer({ modules: { vcard: { maxBytes: 2048 } } });
    alice = await onlineUser(ts, "alice");
    bob = await onlineUser(ts, "bob");
  });
  after(async () => {
    alice.close();
    bob.close();
    await ts.stop();
  });

  it("answers an empty <vCard/> for one's own vCard when none is stored (§3.1)", async () => {
    const res = await bob.iq(getVcard());
    assert.equal(res.attrs.type, "result");
    const v = res.getChild("vCard", VCARD)!;
    assert.equal(v.getChildElements().length, 0);
  });

  it("stores one's own vCard and returns it whole (§3.2)", async () => {
    const set = await alice.iq(setVcard(card("Alice", "Check out my blog")));
    assert.equal(set.attrs.type, "result");
    assert.equal(set.children.length, 0);
    const res = await alice.iq(getVcard());
    const v = res.getChild("vCard", VCARD)!;
    assert.equal(v.getChildText("FN"), "Alice");
    assert.equal(v.getChild("N")!.getChildText("GIVEN"), "Peter");
    assert.equal(v.getChildText("DESC"), "Check out my blog");
    // There are no partial updates: the next set replaces everything.
    await alice.iq(setVcard(card("Alice A.")));
    const again = (await alice.iq(getVcard("alice@localhost"))).getChild("vCard", VCARD)!;
    assert.equal(again.getChildText("FN"), "Alice A.");
    assert.equal(again.getChild("DESC"), undefined);
  });

  it("shows a user's vCard to others at the bare JID, answered by the server (§3.3)", async () => {
    await alice.iq(setVcard(card("Alice")));
    const res = await bob.iq(getVcard("alice@localhost"));
    assert.equal(res.attrs.type, "result");
    assert.equal(res.attrs.from, "alice@localhost");
    assert.equal(res.getChild("vCard", VCARD)!.getChildText("FN"), "Alice");
    await alice.nothing((el) => el.name === "iq" && el.attrs.type === "get");
  });

  it("answers service-unavailable alike for a user without vCard and for no user (§3.3)", async () => {
    await ts.accounts.create(ts.host, "carol", "password");
    assert.equal(errorCondition(await alice.iq(getVcard("carol@localhost"))), "service-unavailable");
    assert.equal(errorCondition(await alice.iq(getVcard("nobody@localhost"))), "service-unavailable");
  });

  it("refuses to set another user's vCard or the server's: forbidden (§3.2)", async () => {
    assert.equal(errorCondition(await bob.iq(setVcard(card("Not Alice"), "alice@localhost"))), "forbidden");
    assert.equal(errorCondition(await bob.iq(setVcard(card("Server"), "localhost"))), "forbidden");
    await alice.iq(setVcard(card("Alice")));
    assert.equal((await bob.iq(getVcard("alice@localhost"))).getChild("vCard", VCARD)!.getChildText("FN"), "Alice");
  });

  it("refuses a vCard over the size limit (option maxBytes): policy-violation", async () => {
    await alice.iq(setVcard(card("Alice")));
    const res = await alice.iq(setVcard(card("Alice", "x".repeat(3000))));
    assert.equal(errorCondition(res), "policy-violation");
    assert.equal((await alice.iq(getVcard())).getChild("vCard", VCARD)!.getChildText("FN"), "Alice", "the old vCard stays");
  });

  it("an empty vCard removes the stored one", async () => {
    await bob.iq(setVcard(card("Bob")));
    assert.equal((await bob.iq(setVcard(xml("vCard", { xmlns: VCARD })))).attrs.type, "result");
    assert.equal((await bob.iq(getVcard())).getChild("vCard", VCARD)!.getChildElements().length, 0);
    assert.equal(errorCondition(await alice.iq(getVcard("bob@localhost"))), "service-unavailable");
  });

  it("keeps vCards across a restart", async () => {
    const other = await startTestServer();
    try {
      const dave = await onlineUser(other, "dave");
      await dave.iq(setVcard(card("Dave")));
      dave.close();
      await other.restart();
      const again = await onlineUser(other, "dave");
      assert.equal((await again.iq(getVcard())).getChild("vCard", VCARD)!.getChildText("FN"), "Dave");
      again.close();
    } finally {
      await other.stop();
    }
  });

  it("removes the vCard with the account", async () => {
    const erin = await onlineUser(ts, "erin");
    await erin.iq(setVcard(card("Erin")));
    erin.close();
    await ts.accounts.delete(ts.host, "erin");
    const reborn = await onlineUser(ts, "erin");
    assert.equal((await reborn.iq(getVcard())).getChild("vCard", VCARD)!.getChildElements().length, 0);
    assert.equal(errorCondition(await alice.iq(getVcard("erin@localhost"))), "service-unavailable");
    reborn.close();
  });

  it("is advertised for the server and for accounts (§4)", async () => {
    const disco = (to?: string) => alice.iq(xml("iq", { type: "get", to }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    for (const to of ["localhost", undefined]) {
      assert.ok((await disco(to)).getChild("query")!.getChildren("feature").some((f) => f.attrs.var === VCARD));
    }
  });
});
