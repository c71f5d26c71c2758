// XEP-0402 bookmarks with #compat: a bookmark set with PEP is read through XEP-0048 private XML storage
// (XEP-0049), and one set there reaches the PEP clients as +notify events, over real sockets.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { errorCondition, type RawClient } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { mobileUser, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";
import { CAPS, EVENT, INFO, PUBSUB, capsOf, eventFor, fresh, getItems, itemIds, login, online, publish, publishOptions, until } from "./helpers/pep.js";

const NATIVE = "urn:xmpp:bookmarks:1";
const PRIVATE = "jabber:iq:private";
const LEGACY = "storage:bookmarks";

const legacyGet = async (c: RawClient) =>
  (await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: PRIVATE }, xml("storage", { xmlns: LEGACY }))))).getChild("query", PRIVATE)!.getChild("storage", LEGACY)!;
const legacySet = (c: RawClient, ...conferences: Element[]) =>
  c.iq(xml("iq", { type: "set" }, xml("query", { xmlns: PRIVATE }, xml("storage", { xmlns: LEGACY }, ...conferences))));
const native = (name: string, autojoin: boolean, nick?: string) =>
  xml("conference", { xmlns: NATIVE, name, autojoin: autojoin ? "true" : "false" }, nick ? xml("nick", null, nick) : null);
const NODE_OPTIONS = { "pubsub#persist_items": "true", "pubsub#max_items": "max", "pubsub#send_last_published_item": "never", "pubsub#access_model": "whitelist" };

describe("XEP-0402 bookmarks kept with XEP-0048 (private XML)", () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(async () => { await ts?.stop(); });

  it("announces urn:xmpp:bookmarks:1#compat on the account", async () => {
    const c = await login(ts, fresh("disco"));
    const info = (await c.iq(xml("iq", { type: "get", to: c.jid.split("/")[0] }, xml("query", { xmlns: INFO })))).getChild("query", INFO)!;
    assert.ok(info.getChildren("feature").some((f) => f.attrs.var === `${NATIVE}#compat`));
    c.close();
  });

  it("a bookmark published with XEP-0402 is read with XEP-0048, and the reverse reaches the PEP client as events", async () => {
    const u = fresh("romeo");
    const U = `${u}@localhost`;
    const modern = await login(ts, u, "modern");
    const caps = capsOf([INFO, CAPS, `${NATIVE}+notify`]);
    await online(modern, caps);
    await until(() => caps.queries === 1, "the caps question");
    const legacy = await login(ts, u, "legacy");
    await online(legacy, null);

    const r = await publish(modern, NATIVE, "verona@conference.localhost", native("Verona", true, "romeo"), publishOptions(NODE_OPTIONS));
    assert.equal(r.attrs.type, "result", r.toString());
    await modern.receive(eventFor(U, NATIVE), 10_000);
    let storage = await legacyGet(legacy);
    let conferences = storage.getChildren("conference");
    assert.equal(conferences.length, 1);
    assert.equal(conferences[0].attrs.jid, "verona@conference.localhost");
    assert.equal(conferences[0].attrs.name, "Verona");
    assert.equal(conferences[0].attrs.autojoin, "true");
    assert.equal(conferences[0].getChildText("nick"), "romeo");

    // The legacy client adds a room and renames the first: the modern one hears both as events.
    const set = await legacySet(legacy,
      xml("conference", { jid: "verona@conference.localhost", name: "Fair Verona", autojoin: "true" }, xml("nick", null, "romeo")),
      xml("conference", { jid: "mantua@conference.localhost", name: "Mantua", autojoin: "false" }, xml("password", null, "exile")));
    assert.equal(set.attrs.type, "result", set.toString());
    const ids = new Set<string>();
    while (ids.size < 2) {
      const ev = await modern.receive(eventFor(U, NATIVE), 10_000);
      ids.add(ev.getChild("event", EVENT)!.getChild("items")!.getChild("item")!.attrs.id);
    }
    assert.deepEqual([...ids].sort(), ["mantua@conference.localhost", "verona@conference.localhost"]);
    const items = await getItems(modern, U, NATIVE);
    assert.deepEqual(itemIds(items).sort(), ["mantua@conference.localhost", "verona@conference.localhost"]);
    const mantua = items.getChild("pubsub", PUBSUB)!.getChild("items")!.getChildren("item").find((i) => i.attrs.id === "mantua@conference.localhost")!.getChild("conference", NATIVE)!;
    assert.equal(mantua.attrs.name, "Mantua");
    assert.equal(mantua.getChildText("password"), "exile");

    // Removing a room in XEP-0048 retracts its item.
    assert.equal((await legacySet(legacy, xml("conference", { jid: "mantua@conference.localhost", name: "Mantua" }))).attrs.type, "result");
    const retract = await modern.receive((el) => eventFor(U, NATIVE)(el) && el.getChild("event")!.getChild("items")!.getChild("retract") !== undefined, 10_000);
    assert.equal(retract.getChild("event")!.getChild("items")!.getChild("retract")!.attrs.id, "verona@conference.localhost");
    storage = await legacyGet(legacy);
    conferences = storage.getChildren("conference");
    assert.deepEqual(conferences.map((c) => c.attrs.jid), ["mantua@conference.localhost"]);

    // Bookmarks are private (XEP-0223 whitelist): another account cannot read them.
    const other = await login(ts, fresh("tybalt"));
    assert.equal(errorCondition(await getItems(other, U, NATIVE)), "not-allowed");
    // Other private XML is untouched by the conversion.
    const note = xml("note", { xmlns: "urn:example:notes" }, "hello");
    assert.equal((await legacy.iq(xml("iq", { type: "set" }, xml("query", { xmlns: PRIVATE }, note)))).attrs.type, "result");
    const back = await legacy.iq(xml("iq", { type: "get" }, xml("query", { xmlns: PRIVATE }, xml("note", { xmlns: "urn:example:notes" }))));
    assert.equal(back.getChild("query")!.getChildText("note"), "hello");
    for (const c of [modern, legacy, other]) c.close();
  });
});

describe("XEP-0402 bookmarks of mobile groups", function () {
  this.timeout(30_000);
  let ts: MobileTestServer;
  before(async () => { ts = await startMobileServer(); });
  after(async () => { await ts?.stop(); });

  it("bookmarks a mobile group for its members (read through XEP-0402 and XEP-0048), and removes it when they leave it", async () => {
    const owner = fresh("gown"), x = fresh("gx"), y = fresh("gy");
    const X = `${x}@localhost`, Y = `${y}@localhost`;
    const phone = await mobileUser(ts, owner);
    const pc = await login(ts, x), laptop = await login(ts, y);
    const group = await phone.request("createGroup", { name: "Book club", members: [X] });
    const bookmark = async (c: RawClient, jid: string) =>
      (await getItems(c, jid, NATIVE)).getChild("pubsub", PUBSUB)?.getChild("items")?.getChildren("item").find((i) => i.attrs.id === group.jid)?.getChild("conference", NATIVE);
    const mine = await bookmark(pc, X);
    assert.ok(mine, "the invited member has the group bookmarked");
    assert.equal(mine.attrs.name, "Book club");
    assert.equal(mine.attrs.autojoin, "true");
    assert.ok((await legacyGet(pc)).getChildren("conference").some((c) => c.attrs.jid === group.jid && c.attrs.autojoin === "true"));

    // A room the user bookmarked already keeps the user's own settings.
    assert.equal((await publish(laptop, NATIVE, group.jid, native("My name for it", false), publishOptions(NODE_OPTIONS))).attrs.type, "result");
    await phone.request("inviteMembers", { group: group.jid, jids: [Y] });
    const kept = await bookmark(laptop, Y);
    assert.equal(kept?.attrs.name, "My name for it");
    assert.equal(kept?.attrs.autojoin, "false");

    await phone.request("kickMember", { group: group.jid, jid: X });
    assert.equal(await bookmark(pc, X), undefined, "removed from the group, the bookmark goes");
    for (const c of [pc, laptop]) c.close();
    phone.close();
  });
});
