// XEP-0313 Message Archive Management dialogues: the archive is the timeline the IM rules write, queried
// with data-form filters and RSM (XEP-0059) pages; preferences (XEP-0441) decide what is archived.
import assert from "node:assert/strict";
import { client } from "@xmpp/client";
import { startTestServer, testStoreDriver, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const MAM = "urn:xmpp:mam:2";
const RSM = "http://jabber.org/protocol/rsm";
const DATA = "jabber:x:data";
const FORWARD = "urn:xmpp:forward:0";
const SID = "urn:xmpp:sid:0";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;
let queryCounter = 0;

interface Query {
  with?: string; start?: string; end?: string; beforeId?: string; afterId?: string; ids?: string[]; fulltext?: string;
  fields?: Array<[string, string]>;
  max?: number; after?: string; before?: string; flip?: boolean; to?: string;
}
interface Result { id: string; body: string | undefined; stamp: string; message: Element; wrapper: Element }
interface Page {
  iq: Element; results: Result[]; complete: boolean; first?: string; index?: number; last?: string; count?: number;
}

function field(name: string, ...values: string[]): Element {
  return xml("field", { var: name }, ...values.map((v) => xml("value", null, v)));
}

function queryElement(q: Query, queryId: string): Element {
  const fields: Element[] = [field("FORM_TYPE", MAM)];
  if (q.with !== undefined) fields.push(field("with", q.with));
  if (q.start !== undefined) fields.push(field("start", q.start));
  if (q.end !== undefined) fields.push(field("end", q.end));
  if (q.beforeId !== undefined) fields.push(field("before-id", q.beforeId));
  if (q.afterId !== undefined) fields.push(field("after-id", q.afterId));
  if (q.ids !== undefined) fields.push(field("ids", ...q.ids));
  if (q.fulltext !== undefined) fields.push(field("{urn:xmpp:fulltext:0}fulltext", q.fulltext));
  for (const [name, value] of q.fields ?? []) fields.push(field(name, value));
  const hasSet = q.max !== undefined || q.after !== undefined || q.before !== undefined;
  return xml("query", { xmlns: MAM, queryid: queryId },
    xml("x", { xmlns: DATA, type: "submit" }, ...fields),
    hasSet ? xml("set", { xmlns: RSM },
      q.max !== undefined ? xml("max", null, String(q.max)) : null,
      q.after !== undefined ? xml("after", null, q.after) : null,
      q.before !== undefined ? xml("before", null, q.before) : null) : null,
    q.flip ? xml("flip-page") : null);
}

/** Sends a query; collects the result messages (in arrival order) up to the iq that ends it. */
async function query(c: RawClient, q: Query = {}): Promise<Page> {
  const queryId = `q${++queryCounter}`;
  const id = `mam-${queryCounter}`;
  c.send(xml("iq", { type: "set", id, to: q.to }, queryElement(q, queryId)));
  const results: Result[] = [];
  for (;;) {
    const el = await c.receive((e) => (e.name === "iq" && e.attrs.id === id) ||
      (e.name === "message" && e.getChild("result", MAM)?.attrs.queryid === queryId), 10_000);
    if (el.name === "iq") {
      if (el.attrs.type !== "result") return { iq: el, results, complete: false };
      const fin = el.getChild("fin", MAM)!;
      const set = fin.getChild("set", RSM)!;
      const first = set.getChild("first");
      const count = set.getChildText("count");
      return {
        iq: el, results, complete: fin.attrs.complete === "true",
        first: first?.getText(), index: first?.attrs.index === undefined ? undefined : Number(first.attrs.index),
        last: set.getChildText("last") ?? undefined, count: count === null ? undefined : Number(count),
      };
    }
    const result = el.getChild("result", MAM)!;
    const forwarded = result.getChild("forwarded", FORWARD)!;
    const message = forwarded.getChild("message")!;
    results.push({
      id: result.attrs.id, body: message.getChildText("body") ?? undefined,
      stamp: forwarded.getChild("delay", "urn:xmpp:delay")!.attrs.stamp, message, wrapper: el,
    });
  }
}

/** Waits until every stanza sent before has been handled: one stanza at a time per session. */
/** Waits until the server has handled everything `c` sent before (a ping round trip; generous for 1,000 stores on a busy machine). */
async function settle(c: RawClient): Promise<void> {
  await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })), 15_000);
}

function chat(to: string, body: string, extra: Element[] = []): Element {
  return xml("message", { to, type: "chat" }, xml("body", null, body), ...extra);
}

const bodies = (page: Page) => page.results.map((r) => r.body);
const ids = (page: Page) => page.results.map((r) => r.id);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("XEP-0313 message archive", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ offline: { maxPerUser: 5000 } }); });
  after(() => ts.stop());

  it(`runs on the ${testStoreDriver} store`, () => {
    assert.equal(ts.server.context.store.driver, testStoreDriver);
  });

  it("advertises MAM, the extended queries and full-text search on the account, and serves the query form", async () => {
    const romeo = await onlineUser(ts, fresh("romeo"));
    const bare = romeo.jid.split("/")[0];
    const info = await romeo.iq(xml("iq", { type: "get", to: bare }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    const features = info.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
    for (const f of [MAM, `${MAM}#extended`, "urn:xmpp:fulltext:0"]) assert.ok(features.includes(f), f);
    const form = await romeo.iq(xml("iq", { type: "get" }, xml("query", { xmlns: MAM })));
    const vars = form.getChild("query", MAM)!.getChild("x", DATA)!.getChildren("field").map((f) => f.attrs.var);
    assert.deepEqual(vars, ["FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids", "{urn:xmpp:fulltext:0}fulltext"]);
    romeo.close();
  });

  describe("paging through 1,000 messages", function () {
    let romeo: RawClient, juliet: RawClient;
    let R: string, J: string;
    const TOTAL = 1000;
    const all: string[] = Array.from({ length: TOTAL }, (_, i) => `m${i}`);
    let offlineIds: string[];

    before(async function () {
      this.timeout(60_000);
      const r = fresh("romeo"), j = fresh("juliet");
      R = `${r}@localhost`; J = `${j}@localhost`;
      await ts.accounts.create("localhost", j, "password");
      romeo = await onlineUser(ts, r, { resource: "orchard" });
      for (let i = 0; i < TOTAL; i++) romeo.send(chat(J, `m${i}`));
      await settle(romeo);
      // Juliet was offline: her copies are the pending part of her timeline, and her MAM archive.
      juliet = await onlineUser(ts, j, { resource: "balcony" });
      offlineIds = [];
      for (let i = 0; i < TOTAL; i++) {
        const m = await juliet.receive((e) => e.name === "message" && e.getChildText("body") === `m${i}`, 10_000);
        const sid = m.getChild("stanza-id", SID)!;
        assert.equal(sid.attrs.by, J);
        offlineIds.push(sid.attrs.id);
      }
    });
    after(() => { romeo.close(); juliet.close(); });

    it("forwards with <after/>, 100 at a time, with exact counts, indexes and ids", async () => {
      const seen: string[] = [];
      const seenIds: string[] = [];
      let after: string | undefined;
      for (let p = 0; p < 10; p++) {
        const page = await query(juliet, { max: 100, after });
        assert.equal(page.count, TOTAL);
        assert.equal(page.results.length, 100);
        assert.equal(page.index, p * 100);
        assert.equal(page.first, page.results[0].id);
        assert.equal(page.last, page.results[99].id);
        assert.equal(page.complete, p === 9, `complete only on the last page (page ${p})`);
        seen.push(...bodies(page) as string[]);
        seenIds.push(...ids(page));
        after = page.last;
      }
      assert.deepEqual(seen, all);
      assert.deepEqual(seenIds, offlineIds, "archive ids are the stanza-ids the messages were delivered with");
      const beyond = await query(juliet, { max: 100, after });
      assert.deepEqual(beyond.results, []);
      assert.equal(beyond.complete, true);
      assert.equal(beyond.first, undefined);
      assert.equal(beyond.count, TOTAL);
    });

    it("backwards from <before/> (the last page), with exact counts, indexes and ids", async () => {
      const pages: string[][] = [];
      let before = "";
      for (let p = 0; p < 10; p++) {
        const page = await query(juliet, { max: 100, before });
        assert.equal(page.count, TOTAL);
        assert.equal(page.index, TOTAL - (p + 1) * 100);
        assert.deepEqual(bodies(page), all.slice(TOTAL - (p + 1) * 100, TOTAL - p * 100), "each page in chronological order");
        assert.deepEqual(ids(page), offlineIds.slice(TOTAL - (p + 1) * 100, TOTAL - p * 100));
        assert.equal(page.complete, p === 9, `complete once the start is reached (page ${p})`);
        pages.push(bodies(page) as string[]);
        before = page.first!;
      }
      assert.deepEqual(pages.reverse().flat(), all);
    });

    it("pages the sender's own archive of the same conversation", async () => {
      const first = await query(romeo, { with: J, max: 250 });
      assert.equal(first.count, TOTAL);
      assert.deepEqual(bodies(first), all.slice(0, 250));
      assert.equal(first.results[0].message.attrs.to, J);
      assert.equal(first.results[0].message.attrs.from, `${R}/orchard`);
      assert.ok(!first.results.some((r) => offlineIds.includes(r.id)), "romeo's rows have ids of their own");
      const last = await query(romeo, { with: J, max: 250, before: "" });
      assert.deepEqual(bodies(last), all.slice(750));
    });

    it("caps a page at maxPageSize and defaults to defaultPageSize", async () => {
      const big = await query(juliet, { max: 100_000 });
      assert.equal(big.results.length, 250);
      assert.equal(big.complete, false);
      const plain = await query(juliet);
      assert.equal(plain.results.length, 50);
      assert.deepEqual(bodies(plain), all.slice(0, 50));
    });

    it("flips a page: the same page, sent newest first", async () => {
      const straight = await query(juliet, { max: 10, before: "" });
      const flipped = await query(juliet, { max: 10, before: "", flip: true });
      assert.deepEqual(ids(flipped), [...ids(straight)].reverse());
      assert.equal(flipped.first, straight.first);
      assert.equal(flipped.last, straight.last);
      assert.equal(flipped.complete, straight.complete);
      const forward = await query(juliet, { max: 3, after: offlineIds[4], flip: true });
      assert.deepEqual(bodies(forward), ["m7", "m6", "m5"]);
      assert.equal(forward.first, offlineIds[5]);
    });

    it("counts without results for <max>0</max>", async () => {
      const page = await query(juliet, { max: 0 });
      assert.deepEqual(page.results, []);
      assert.equal(page.count, TOTAL);
      assert.equal(page.complete, false);
      assert.equal(page.first, undefined);
    });

    it("limits by before-id and after-id without changing the paging direction", async () => {
      const between = await query(juliet, { afterId: offlineIds[10], beforeId: offlineIds[20] });
      assert.deepEqual(bodies(between), all.slice(11, 20));
      assert.equal(between.count, 9);
      assert.equal(between.complete, true);
      const tail = await query(juliet, { afterId: offlineIds[990] });
      assert.deepEqual(bodies(tail), all.slice(991));
      const lastOfRange = await query(juliet, { beforeId: offlineIds[500], max: 2, before: "" });
      assert.deepEqual(bodies(lastOfRange), ["m498", "m499"]);
      assert.equal(lastOfRange.count, 500);
      assert.equal(lastOfRange.index, 498);
    });

    it("fetches messages by ids, in archive order", async () => {
      const page = await query(juliet, { ids: [offlineIds[7], offlineIds[3], offlineIds[999]] });
      assert.deepEqual(bodies(page), ["m3", "m7", "m999"]);
      assert.equal(page.count, 3);
      assert.equal(page.complete, true);
    });

    it("answers unknown ids with item-not-found (XEP-0313 §4.1.3, §4.3.2)", async () => {
      for (const q of [{ after: "nope" }, { before: "nope" }, { afterId: "nope" }, { beforeId: "nope" }, { ids: [offlineIds[0], "nope"] },
        { after: (await query(romeo, { max: 1 })).first! }]) {
        const page = await query(juliet, q);
        assert.equal(errorCondition(page.iq), "item-not-found", JSON.stringify(q));
        assert.deepEqual(page.results, []);
      }
    });
  });

  describe("filters", function () {
    let romeo: RawClient, juliet: RawClient, nurse: RawClient;
    let R: string, J: string, N: string;
    before(async function () {
      const r = fresh("romeo"), j = fresh("juliet"), nu = fresh("nurse");
      R = `${r}@localhost`; J = `${j}@localhost`; N = `${nu}@localhost`;
      romeo = await onlineUser(ts, r, { resource: "orchard" });
      juliet = await onlineUser(ts, j, { resource: "balcony" });
      nurse = await onlineUser(ts, nu, { resource: "kitchen" });
      const lines: Array<[RawClient, string, string]> = [
        [juliet, R, "Wherefore art thou Romeo?"],
        [romeo, J, "Call me but love, and I'll be new baptized"],
        [nurse, R, "Your lady mother is coming to your chamber"],
        [juliet, R, "A rose by any other name would smell as sweet"],
        [romeo, N, "Commend me to thy lady"],
        [juliet, `${R}/orchard`, "Good night, good night! Parting is such sweet sorrow"],
      ];
      for (const [from, to, body] of lines) {
        from.send(chat(to, body));
        await settle(from);
        await sleep(15); // distinct millisecond timestamps
      }
    });
    after(() => { romeo.close(); juliet.close(); nurse.close(); });

    it("by bare JID: both directions of one conversation", async () => {
      const page = await query(romeo, { with: J });
      assert.deepEqual(bodies(page), [
        "Wherefore art thou Romeo?", "Call me but love, and I'll be new baptized",
        "A rose by any other name would smell as sweet", "Good night, good night! Parting is such sweet sorrow",
      ]);
      assert.equal(page.count, 4);
      assert.equal(page.complete, true);
      assert.deepEqual(bodies(await query(romeo, { with: N })), ["Your lady mother is coming to your chamber", "Commend me to thy lady"]);
      assert.deepEqual(bodies(await query(romeo, { with: "montague@localhost" })), []);
    });

    it("by full JID: only messages to or from that resource", async () => {
      const page = await query(romeo, { with: `${J}/balcony` });
      assert.equal(page.results.length, 3, "juliet's three messages came from her balcony");
      assert.deepEqual(bodies(await query(juliet, { with: `${R}/orchard` })), [
        "Call me but love, and I'll be new baptized", "Good night, good night! Parting is such sweet sorrow",
      ], "one romeo sent from the orchard, one juliet sent to it");
      assert.deepEqual(bodies(await query(romeo, { with: `${J}/elsewhere` })), []);
    });

    it("by time, inclusive at both ends", async () => {
      const all = await query(romeo);
      const stamps = all.results.map((r) => r.stamp);
      assert.equal(all.results.length, 6);
      assert.deepEqual(bodies(await query(romeo, { start: stamps[2], end: stamps[4] })), bodies(all).slice(2, 5));
      assert.deepEqual(bodies(await query(romeo, { start: stamps[5] })), bodies(all).slice(5));
      assert.deepEqual(bodies(await query(romeo, { end: stamps[0] })), bodies(all).slice(0, 1));
      assert.deepEqual(bodies(await query(romeo, { with: J, start: stamps[2] })), bodies(all).filter((_, i) => i >= 2 && i !== 2 && i !== 4));
      const bad = await query(romeo, { start: "yesterday" });
      assert.equal(errorCondition(bad.iq), "bad-request");
    });

    it("by full text: every word, as a word or the beginning of one, ignoring case", async () => {
      assert.deepEqual(bodies(await query(romeo, { fulltext: "sweet" })), [
        "A rose by any other name would smell as sweet", "Good night, good night! Parting is such sweet sorrow",
      ]);
      assert.deepEqual(bodies(await query(romeo, { fulltext: "SWEET rose" })), ["A rose by any other name would smell as sweet"]);
      assert.deepEqual(bodies(await query(romeo, { fulltext: "bapt" })), ["Call me but love, and I'll be new baptized"]);
      assert.deepEqual(bodies(await query(romeo, { fulltext: "lady", with: N })), [
        "Your lady mother is coming to your chamber", "Commend me to thy lady",
      ]);
      assert.deepEqual(bodies(await query(romeo, { fulltext: "weet" })), [], "not from the middle of a word");
      const page = await query(romeo, { fulltext: "good", max: 1 });
      assert.equal(page.count, 1);
      // COMPAT: ejabberd's and MongooseIM's names for the same field.
      assert.deepEqual(bodies(await query(romeo, { fields: [["withtext", "chamber"]] })), ["Your lady mother is coming to your chamber"]);
      assert.deepEqual(bodies(await query(romeo, { fields: [["full-text-search", "commend"]] })), ["Commend me to thy lady"]);
    });

    it("refuses fields it does not know with feature-not-implemented, and a wrong FORM_TYPE", async () => {
      const unknown = await query(romeo, { fields: [["{urn:example}color", "red"]] });
      assert.equal(errorCondition(unknown.iq), "feature-not-implemented");
      juliet.send(xml("iq", { type: "set", id: "wrong-form" }, xml("query", { xmlns: MAM },
        xml("x", { xmlns: DATA, type: "submit" }, field("FORM_TYPE", "urn:xmpp:mam:1")))));
      assert.equal(errorCondition(await juliet.receive((e) => e.attrs.id === "wrong-form")), "bad-request");
    });

    it("forwards each message with its delay stamp, from the archive's JID, with the queryid", async () => {
      const page = await query(romeo, { with: N, max: 1 });
      const [r] = page.results;
      assert.equal(r.wrapper.attrs.from, R);
      assert.equal(r.wrapper.attrs.to, `${R}/orchard`);
      assert.equal(r.message.attrs.xmlns, "jabber:client");
      assert.equal(r.message.attrs.from, `${N}/kitchen`);
      assert.match(r.stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    });

    it("answers the archive metadata", async () => {
      const all = await query(juliet);
      const res = await juliet.iq(xml("iq", { type: "get" }, xml("metadata", { xmlns: MAM })));
      const metadata = res.getChild("metadata", MAM)!;
      assert.equal(metadata.getChild("start")!.attrs.id, all.results[0].id);
      assert.equal(metadata.getChild("end")!.attrs.id, all.results[all.results.length - 1].id);
      assert.equal(metadata.getChild("end")!.attrs.timestamp, all.results[all.results.length - 1].stamp);
    });

    it("refuses a query on another user's archive", async () => {
      const page = await query(juliet, { to: R });
      assert.equal(errorCondition(page.iq), "forbidden");
      assert.deepEqual(page.results, []);
      const prefs = await juliet.iq(xml("iq", { type: "get", to: R }, xml("prefs", { xmlns: MAM })));
      assert.equal(errorCondition(prefs), "forbidden");
      const own = await query(juliet, { to: J, max: 1 });
      assert.equal(own.iq.attrs.type, "result", "addressing one's own bare JID is fine");
    });
  });

  describe("preferences (XEP-0441)", function () {
    const prefs = (def: string, always: string[] = [], never: string[] = []) =>
      xml("prefs", { xmlns: MAM, default: def },
        xml("always", null, ...always.map((j) => xml("jid", null, j))),
        xml("never", null, ...never.map((j) => xml("jid", null, j))));
    const readPrefs = (el: Element) => {
      const p = el.getChild("prefs", MAM)!;
      return {
        default: p.attrs.default,
        always: p.getChild("always")!.getChildren("jid").map((j) => j.getText()),
        never: p.getChild("never")!.getChildren("jid").map((j) => j.getText()),
      };
    };

    it("archives everything by default, and reads back what was set", async () => {
      const c = await onlineUser(ts, fresh("prefs"));
      assert.deepEqual(readPrefs(await c.iq(xml("iq", { type: "get" }, xml("prefs", { xmlns: MAM })))),
        { default: "always", always: [], never: [] });
      const set = await c.iq(xml("iq", { type: "set" }, prefs("roster", ["a@localhost"], ["b@localhost/res"])));
      assert.deepEqual(readPrefs(set), { default: "roster", always: ["a@localhost"], never: ["b@localhost/res"] });
      assert.deepEqual(readPrefs(await c.iq(xml("iq", { type: "get" }, xml("prefs", { xmlns: MAM })))),
        { default: "roster", always: ["a@localhost"], never: ["b@localhost/res"] });
      assert.equal(errorCondition(await c.iq(xml("iq", { type: "set" }, prefs("sometimes")))), "bad-request");
      assert.equal(errorCondition(await c.iq(xml("iq", { type: "set" }, prefs("always", ["x@localhost"], ["x@localhost"])))), "bad-request");
      c.close();
    });

    it("never: delivered, kept for offline delivery, but not archived; always-listed JIDs still are", async () => {
      const u = fresh("shy"), f = fresh("friend"), s = fresh("stranger");
      const shy = await onlineUser(ts, u);
      const friend = await onlineUser(ts, f);
      const stranger = await onlineUser(ts, s);
      await shy.iq(xml("iq", { type: "set" }, prefs("never", [`${f}@localhost`])));
      friend.send(chat(`${u}@localhost`, "from a friend"));
      stranger.send(chat(`${u}@localhost`, "from a stranger"));
      await shy.receive((e) => e.getChildText("body") === "from a friend");
      const delivered = await shy.receive((e) => e.getChildText("body") === "from a stranger");
      assert.ok(delivered.getChild("stanza-id", SID), "still stored, for delivery");
      shy.send(chat(`${s}@localhost`, "to a stranger"));
      await settle(shy);
      assert.deepEqual(bodies(await query(shy)), ["from a friend"]);
      // The other side keeps its own copy by its own preferences.
      assert.deepEqual(bodies(await query(stranger)), ["from a stranger", "to a stranger"]);
      // Offline messages from a never-archived contact still arrive.
      shy.close();
      await sleep(100);
      stranger.send(chat(`${u}@localhost`, "while you were away"));
      await settle(stranger);
      const back = await onlineUser(ts, u);
      await back.receive((e) => e.getChildText("body") === "while you were away");
      assert.deepEqual(bodies(await query(back)), ["from a friend"]);
      back.close(); friend.close(); stranger.close();
    });

    it("always with a never list: full JIDs match one resource, bare JIDs every resource", async () => {
      const u = fresh("picky"), o = fresh("other");
      const picky = await onlineUser(ts, u);
      const home = await onlineUser(ts, o, { resource: "home" });
      const work = await onlineUser(ts, o, { resource: "work" });
      await picky.iq(xml("iq", { type: "set" }, prefs("always", [], [`${o}@localhost/work`])));
      home.send(chat(`${u}@localhost`, "from home"));
      work.send(chat(`${u}@localhost`, "from work"));
      await settle(home); await settle(work);
      await picky.receive((e) => e.getChildText("body") === "from work");
      assert.deepEqual(bodies(await query(picky)), ["from home"]);
      await picky.iq(xml("iq", { type: "set" }, prefs("always", [], [`${o}@localhost`])));
      home.send(chat(`${u}@localhost`, "again from home"));
      await settle(home);
      await picky.receive((e) => e.getChildText("body") === "again from home");
      assert.deepEqual(bodies(await query(picky)), ["from home"]);
      picky.close(); home.close(); work.close();
    });

    it("roster: contacts in the roster are archived, strangers are not", async () => {
      const u = fresh("social"), f = fresh("contact"), s = fresh("unknown");
      const social = await onlineUser(ts, u);
      const contact = await onlineUser(ts, f);
      const unknown = await onlineUser(ts, s);
      await social.iq(xml("iq", { type: "set" }, xml("query", { xmlns: "jabber:iq:roster" }, xml("item", { jid: `${f}@localhost` }))));
      await social.iq(xml("iq", { type: "set" }, prefs("roster")));
      contact.send(chat(`${u}@localhost`, "hello, friend"));
      unknown.send(chat(`${u}@localhost`, "who am I?"));
      await settle(contact); await settle(unknown);
      await social.receive((e) => e.getChildText("body") === "who am I?");
      social.send(chat(`${f}@localhost`, "to my contact"));
      social.send(chat(`${s}@localhost`, "to the unknown"));
      await settle(social);
      assert.deepEqual(bodies(await query(social)), ["hello, friend", "to my contact"]);
      social.close(); contact.close(); unknown.close();
    });
  });

  it("storage.retention removes old rows from the timeline and so from the archive, but keeps undelivered ones", async function () {
    const other = await startTestServer({ storage: { retention: { days: 1, intervalSeconds: 1 } } });
    try {
      const u = fresh("old");
      const away = `${fresh("away")}@localhost`;
      const c = await onlineUser(other, u);
      const owner = `${u}@localhost`;
      const old = Date.now() - 3 * 86_400_000;
      const entry = (to: string, body: string, pending: boolean) => ({
        owner: to, peer: "ghost@localhost", outgoing: false, stanzaId: `old-${body}`, originId: null, ts: old, pending,
        xml: `<message from='ghost@localhost/x' to='${to}' type='chat'><body>${body}</body></message>`,
      });
      const timeline = other.server.context.store.timeline;
      // The user who stays offline never had its row delivered: it must survive for the next login.
      await timeline.append([entry(owner, "ancient", false), entry(away, "undelivered", true)]);
      c.send(chat(`${owner}`, "new note to self"));
      await settle(c);
      assert.deepEqual(bodies(await query(c)), ["ancient", "new note to self"]);
      for (let i = 0; i < 50 && (await query(c)).results.length !== 1; i++) await sleep(100);
      assert.deepEqual(bodies(await query(c)), ["new note to self"]);
      assert.deepEqual((await timeline.pending(away, 10)).map((e) => e.stanzaId), ["old-undelivered"]);
      c.close();
    } finally {
      await other.stop();
    }
  });

  it("rejects bad options at start", async () => {
    await assert.rejects(startTestServer({ storage: { retention: { days: -1 } } }), /^ConfigError: storage\.retention\.days: must be an integer 0-100000, got -1 \(in overrides\)$/);
    await assert.rejects(startTestServer({ modules: { mam: { defaultPageSize: 500, maxPageSize: 100 } } }), /^ConfigError: modules\.mam\.defaultPageSize: must not exceed maxPageSize$/);
  });

  describe("@xmpp/client", () => {
    it("sends a message, then finds it in the archive", async () => {
      const u = fresh("xmppjs");
      await ts.accounts.create("localhost", u, "password");
      const peer = await onlineUser(ts, fresh("peer"));
      const xmpp = client({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username: u, password: "password", resource: "js" });
      // COMPAT: @xmpp/client upgrades whenever STARTTLS is offered and checks the certificate; the test
      // server's is self-signed and TLS is optional here, so the client is shown no STARTTLS.
      xmpp.prependListener("element", (el: Element) => {
        if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
      });
      xmpp.on("error", () => {});
      const results: Element[] = [];
      xmpp.on("stanza", (el: Element) => { if (el.is("message") && el.getChild("result", MAM)) results.push(el); });
      try {
        await xmpp.start();
        await xmpp.send(xml("message", { to: peer.jid.split("/")[0], type: "chat" }, xml("body", null, "for the record")));
        await peer.receive((e) => e.getChildText("body") === "for the record");
        const response = await xmpp.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: MAM, queryid: "js1" },
          xml("x", { xmlns: DATA, type: "submit" }, field("FORM_TYPE", MAM), field("with", peer.jid.split("/")[0])))));
        const fin = response.getChild("fin", MAM)!;
        assert.equal(fin.attrs.complete, "true");
        assert.equal(results.length, 1);
        const forwarded = results[0].getChild("result", MAM)!.getChild("forwarded", FORWARD)!;
        assert.equal(forwarded.getChild("message")!.getChildText("body"), "for the record");
        assert.equal(fin.getChild("set", RSM)!.getChildText("first"), results[0].getChild("result", MAM)!.attrs.id);
      } finally {
        await xmpp.stop();
        peer.close();
      }
    });
  });
});
