// XEP-0049 private XML storage.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const PRIVATE = "jabber:iq:private";
const get = (child?: Element | string, to?: string) => {
  const q = xml("query", { xmlns: PRIVATE });
  if (typeof child === "string") q.children.push(child);
  else if (child) q.cnode(child);
  return xml("iq", { type: "get", to }, q);
};
const set = (children: Element[], to?: string) => xml("iq", { type: "set", to }, xml("query", { xmlns: PRIVATE }, ...children));
const prefs = (nick?: string) => xml("exodus", { xmlns: "exodus:prefs" }, nick ? xml("defaultnick", null, nick) : null);
const bookmarks = (...names: string[]) => xml("storage", { xmlns: "storage:bookmarks" },
  ...names.map((n) => xml("conference", { jid: `${n}@rooms.localhost`, name: n })));
const stored = (res: Element, name: string, ns: string) => res.getChild("query", PRIVATE)!.getChild(name, ns);

describe("XEP-0049 private XML storage", function () {
  let ts: TestServer;
  let hamlet: RawClient;
  before(async () => {
    ts = await startTestServer({ modules: { private: { maxBytesPerUser: 4096 } } });
    hamlet = await onlineUser(ts, "hamlet");
    await ts.accounts.create(ts.host, "macbeth", "password");
  });
  after(async () => {
    hamlet.close();
    await ts.stop();
  });

  it("stores a fragment and returns it (§2.3)", async () => {
    const res = await hamlet.iq(set([prefs("Hamlet")]));
    assert.equal(res.attrs.type, "result");
    const got = await hamlet.iq(get(prefs()));
    assert.equal(got.attrs.type, "result");
    assert.equal(stored(got, "exodus", "exodus:prefs")!.getChildText("defaultnick"), "Hamlet");
  });

  it("keeps fragments of different namespaces apart, several in one set", async () => {
    assert.equal((await hamlet.iq(set([prefs("Prince"), bookmarks("elsinore", "wittenberg")]))).attrs.type, "result");
    const b = stored(await hamlet.iq(get(bookmarks())), "storage", "storage:bookmarks")!;
    assert.deepEqual(b.getChildren("conference").map((c) => c.attrs.name), ["elsinore", "wittenberg"]);
    assert.equal(stored(await hamlet.iq(get(prefs())), "exodus", "exodus:prefs")!.getChildText("defaultnick"), "Prince");
    // Same local name, other namespace: another fragment.
    await hamlet.iq(set([xml("exodus", { xmlns: "urn:example:other" }, xml("x", null, "1"))]));
    assert.equal(stored(await hamlet.iq(get(prefs())), "exodus", "exodus:prefs")!.getChildText("defaultnick"), "Prince");
  });

  it("returns the requested element empty when nothing is stored", async () => {
    const res = await hamlet.iq(get(xml("nothing", { xmlns: "urn:example:nothing" })));
    assert.equal(res.attrs.type, "result");
    const el = stored(res, "nothing", "urn:example:nothing")!;
    assert.equal(el.getChildElements().length, 0);
  });

  it("keeps a fragment whose namespace is declared with a prefix on the query", async () => {
    hamlet.send(`<iq type='set' id='pfx1'><query xmlns='jabber:iq:private' xmlns:p='urn:example:prefixed'><p:data><p:item>one</p:item></p:data></query></iq>`);
    assert.equal((await hamlet.receive((el) => el.attrs.id === "pfx1")).attrs.type, "result");
    const res = await hamlet.iq(get(xml("data", { xmlns: "urn:example:prefixed" })));
    const data = res.getChild("query", PRIVATE)!.getChildElements()[0];
    assert.equal(data.getNS(), "urn:example:prefixed");
    assert.equal(data.getChildElements()[0].getText(), "one");
  });

  it("refuses a query without a child element: not-acceptable (§2.3)", async () => {
    assert.equal(errorCondition(await hamlet.iq(get())), "not-acceptable");
    assert.equal(errorCondition(await hamlet.iq(set([]))), "not-acceptable");
    assert.equal(errorCondition(await hamlet.iq(get("just text"))), "not-acceptable");
  });

  it("refuses reserved namespaces: not-acceptable (§2.3)", async () => {
    for (const ns of ["jabber:iq:roster", "http://jabber.org/protocol/muc", "vcard-temp"]) {
      assert.equal(errorCondition(await hamlet.iq(set([xml("x", { xmlns: ns })]))), "not-acceptable", ns);
      assert.equal(errorCondition(await hamlet.iq(get(xml("x", { xmlns: ns })))), "not-acceptable", ns);
    }
    // A child without a namespace of its own is in jabber:iq:private, reserved too.
    hamlet.send(`<iq type='set' id='nons'><query xmlns='jabber:iq:private'><plain/></query></iq>`);
    assert.equal(errorCondition(await hamlet.receive((el) => el.attrs.id === "nons")), "not-acceptable");
  });

  it("refuses another user's storage and the server's: forbidden (§2.3)", async () => {
    assert.equal(errorCondition(await hamlet.iq(set([prefs("Macbeth")], "macbeth@localhost"))), "forbidden");
    assert.equal(errorCondition(await hamlet.iq(get(prefs(), "macbeth@localhost"))), "forbidden");
    assert.equal(errorCondition(await hamlet.iq(get(prefs(), "localhost"))), "forbidden");
    assert.equal(errorCondition(await hamlet.iq(get(prefs(), "nobody@localhost"))), "forbidden");
  });

  it("accepts one's own bare JID as the address", async () => {
    await hamlet.iq(set([prefs("Dane")], "hamlet@localhost"));
    assert.equal(stored(await hamlet.iq(get(prefs(), "hamlet@localhost")), "exodus", "exodus:prefs")!.getChildText("defaultnick"), "Dane");
  });

  it("limits the storage of one user (option maxBytesPerUser): resource-constraint", async () => {
    const res = await hamlet.iq(set([xml("big", { xmlns: "urn:example:big" }, "x".repeat(5000))]));
    assert.equal(errorCondition(res), "resource-constraint");
    assert.equal(stored(await hamlet.iq(get(xml("big", { xmlns: "urn:example:big" }))), "big", "urn:example:big")!.getText(), "");
  });

  it("keeps every fragment when two resources of one user store at once", async () => {
    const a = await onlineUser(ts, "ophelia", { resource: "a" });
    const b = await onlineUser(ts, "ophelia", { resource: "b" });
    const writes: Array<Promise<Element>> = [];
    for (let i = 0; i < 10; i++) {
      writes.push(a.iq(set([xml(`a${i}`, { xmlns: "urn:example:race" })])));
      writes.push(b.iq(set([xml(`b${i}`, { xmlns: "urn:example:race" })])));
    }
    for (const r of await Promise.all(writes)) assert.equal(r.attrs.type, "result");
    for (let i = 0; i < 10; i++) {
      for (const name of [`a${i}`, `b${i}`]) {
        const res = await a.iq(get(xml(name, { xmlns: "urn:example:race" })));
        assert.ok(stored(res, name, "urn:example:race"));
      }
    }
    a.close();
    b.close();
  });

  it("removes the data with the account", async () => {
    const yorick = await onlineUser(ts, "yorick");
    await yorick.iq(set([prefs("Yorick")]));
    yorick.close();
    await ts.accounts.delete(ts.host, "yorick");
    const again = await onlineUser(ts, "yorick");
    assert.equal(stored(await again.iq(get(prefs())), "exodus", "exodus:prefs")!.getChild("defaultnick"), undefined);
    again.close();
  });

  it("is advertised in disco#info", async () => {
    const res = await hamlet.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(res.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === PRIVATE));
  });
});
