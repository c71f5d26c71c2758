// XEP-0313 MUC archives: MAM queries to a room's bare JID, answered from the room timeline, with the
// paging of user archives, the room's access rules and its anonymity.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const MUC = "http://jabber.org/protocol/muc";
const USER = "http://jabber.org/protocol/muc#user";
const OWNER = "http://jabber.org/protocol/muc#owner";
const ADMIN = "http://jabber.org/protocol/muc#admin";
const INFO = "http://jabber.org/protocol/disco#info";
const DATA = "jabber:x:data";
const MAM = "urn:xmpp:mam:2";
const RSM = "http://jabber.org/protocol/rsm";
const FORWARD = "urn:xmpp:forward:0";
const SID = "urn:xmpp:sid:0";
const SERVICE = "conference.localhost";

let n = 0;
const fresh = (p: string) => `${p}${++n}`;
const bareOf = (c: RawClient) => c.jid.split("/")[0];
const codes = (el: Element) => (el.getChild("x", USER)?.getChildren("status") ?? []).map((s) => s.attrs.code as string).sort();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------------------------------------ rooms

async function join(c: RawClient, room: string, nick: string, x: Element | null = xml("x", { xmlns: MUC })): Promise<Element> {
  c.send(xml("presence", { to: `${room}/${nick}` }, x));
  const self = await c.receive((el) => el.name === "presence" && el.attrs.from?.startsWith(`${room}/`) && (el.attrs.type === "error" || codes(el).includes("110")));
  if (self.attrs.type === "error") throw new Error(`join failed: ${self.toString()}`);
  await c.receive((el) => el.name === "message" && el.attrs.from?.startsWith(room) && el.getChild("subject") !== undefined && !el.getChild("body"));
  return self;
}

async function submitConfig(c: RawClient, room: string, fields: Record<string, string>): Promise<Element> {
  return c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: OWNER },
    xml("x", { xmlns: DATA, type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", null, "http://jabber.org/protocol/muc#roomconfig")),
      ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, xml("value", null, v)))))));
}

/** A configured room owned by `owner`, who is in it as `nick`. */
async function createRoom(owner: RawClient, nick: string, fields: Record<string, string> = {}, name = fresh("room")): Promise<string> {
  const room = `${name}@${SERVICE}`;
  await join(owner, room, nick);
  const res = await submitConfig(owner, room, fields);
  assert.equal(res.attrs.type, "result", res.toString());
  return room;
}

async function admin(c: RawClient, room: string, item: Element): Promise<void> {
  const res = await c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: ADMIN }, item)));
  assert.equal(res.attrs.type, "result", res.toString());
}

/** Sends a groupchat message and returns the room's reflection of it (with the room's stanza-id). */
async function say(c: RawClient, room: string, body: string, ...extra: Element[]): Promise<Element> {
  c.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, body), ...extra));
  return c.receive((el) => el.name === "message" && el.attrs.from?.startsWith(`${room}/`) && el.getChildText("body") === body, 10_000);
}

const stanzaIdOf = (el: Element, room: string): string => {
  const sid = el.getChildren("stanza-id", SID).find((s) => s.attrs.by === room);
  assert.ok(sid, `no stanza-id by ${room} in ${el.toString()}`);
  return sid.attrs.id;
};

async function features(c: RawClient, room: string): Promise<string[]> {
  const info = await c.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
  return info.getChild("query", INFO)!.getChildren("feature").map((f) => f.attrs.var as string);
}

// -------------------------------------------------------------------------------------------- queries

interface Query {
  with?: string; start?: string; end?: string; beforeId?: string; afterId?: string; ids?: string[]; fulltext?: string;
  max?: number; after?: string; before?: string; flip?: boolean;
}
interface Result { id: string; body: string | undefined; stamp: string; message: Element; wrapper: Element }
interface Page { iq: Element; results: Result[]; complete: boolean; first?: string; index?: number; last?: string; count?: number }

let queryCounter = 0;

function field(name: string, ...values: string[]): Element {
  return xml("field", { var: name }, ...values.map((v) => xml("value", null, v)));
}

/** Sends a MAM query to the room; collects the result messages (in arrival order) up to the iq that ends it. */
async function query(c: RawClient, room: string, q: Query = {}): Promise<Page> {
  const queryId = `mq${++queryCounter}`;
  const id = `muc-mam-${queryCounter}`;
  const fields: Element[] = [field("FORM_TYPE", MAM)];
  if (q.with !== undefined) fields.push(field("with", q.with));
  if (q.start !== undefined) fields.push(field("start", q.start));
  if (q.end !== undefined) fields.push(field("end", q.end));
  if (q.beforeId !== undefined) fields.push(field("before-id", q.beforeId));
  if (q.afterId !== undefined) fields.push(field("after-id", q.afterId));
  if (q.ids !== undefined) fields.push(field("ids", ...q.ids));
  if (q.fulltext !== undefined) fields.push(field("{urn:xmpp:fulltext:0}fulltext", q.fulltext));
  const hasSet = q.max !== undefined || q.after !== undefined || q.before !== undefined;
  c.send(xml("iq", { type: "set", id, to: room }, xml("query", { xmlns: MAM, queryid: queryId },
    xml("x", { xmlns: DATA, type: "submit" }, ...fields),
    hasSet ? xml("set", { xmlns: RSM },
      q.max !== undefined ? xml("max", null, String(q.max)) : null,
      q.after !== undefined ? xml("after", null, q.after) : null,
      q.before !== undefined ? xml("before", null, q.before) : null) : null,
    q.flip ? xml("flip-page") : null)));
  const results: Result[] = [];
  for (;;) {
    const el = await c.receive((e) => (e.name === "iq" && e.attrs.id === id) ||
      (e.name === "message" && e.getChild("result", MAM)?.attrs.queryid === queryId), 10_000);
    if (el.name === "iq") {
      if (el.attrs.type !== "result") return { iq: el, results, complete: false };
      assert.equal(el.attrs.from, room);
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

const bodies = (page: Page) => page.results.map((r) => r.body);
const ids = (page: Page) => page.results.map((r) => r.id);
/** The real JIDs a result shows (XEP-0313 §6.1.2: muc#user <x/><item jid/>). */
const jidsIn = (page: Page) => page.results.map((r) => r.message.getChild("x", USER)?.getChild("item")?.attrs.jid);

describe("XEP-0313 MUC archives", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  it("advertises MAM on the room while its `mam` option is on (the default), and serves the query form", async () => {
    const alice = await onlineUser(ts, fresh("alice"));
    const room = await createRoom(alice, "alice", { "muc#roomconfig_persistentroom": "1" });
    const form = await alice.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: OWNER })));
    const mamField = form.getChild("query", OWNER)!.getChild("x", DATA)!.getChildren("field").find((f) => f.attrs.var === "mam");
    assert.ok(mamField, "the configuration form has the mam option");
    assert.equal(mamField.attrs.type, "boolean");
    assert.equal(mamField.getChildText("value"), "1");
    const on = await features(alice, room);
    for (const f of [MAM, `${MAM}#extended`, "urn:xmpp:fulltext:0"]) assert.ok(on.includes(f), `room lacks ${f}`);
    const queryForm = await alice.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: MAM })));
    const vars = queryForm.getChild("query", MAM)!.getChild("x", DATA)!.getChildren("field").map((f) => f.attrs.var);
    assert.deepEqual(vars, ["FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids", "{urn:xmpp:fulltext:0}fulltext"]);

    await say(alice, room, "before the archive was turned off");
    assert.equal((await submitConfig(alice, room, { mam: "0" })).attrs.type, "result");
    assert.ok(!(await features(alice, room)).includes(MAM));
    assert.equal(errorCondition((await query(alice, room)).iq), "service-unavailable");
    assert.equal((await submitConfig(alice, room, { mam: "1" })).attrs.type, "result");
    assert.deepEqual(bodies(await query(alice, room)), ["before the archive was turned off"], "the timeline kept it meanwhile");
    alice.close();
  });

  describe("paging through 250 room messages", function () {
    const TOTAL = 250;
    const all = Array.from({ length: TOTAL }, (_, i) => `m${i}`);
    let alice: RawClient, bob: RawClient;
    let room: string;
    /** The stanza-ids Bob got live, and Alice in her reflections. */
    let liveIds: string[];

    before(async function () {
      this.timeout(60_000);
      alice = await onlineUser(ts, fresh("alice"), { resource: "desk" });
      bob = await onlineUser(ts, fresh("bob"));
      room = await createRoom(alice, "alice", { "muc#roomconfig_persistentroom": "1" });
      await join(bob, room, "bob");
      for (let i = 0; i < TOTAL; i++) alice.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, `m${i}`)));
      const reflected: string[] = [];
      for (let i = 0; i < TOTAL; i++) reflected.push(stanzaIdOf(await alice.receive((el) => el.getChildText("body") === `m${i}`, 10_000), room));
      liveIds = [];
      for (let i = 0; i < TOTAL; i++) liveIds.push(stanzaIdOf(await bob.receive((el) => el.getChildText("body") === `m${i}`, 10_000), room));
      assert.deepEqual(reflected, liveIds, "every occupant got the same stanza-id");
      assert.equal(new Set(liveIds).size, TOTAL);
    });
    after(() => { alice.close(); bob.close(); });

    it("forwards with <after/>, 100 at a time, with exact counts, indexes, and the stanza-ids delivered live", async () => {
      const seen: string[] = [];
      const seenIds: string[] = [];
      let after: string | undefined;
      const sizes = [100, 100, 50];
      for (let p = 0; p < 3; p++) {
        const page = await query(bob, room, { max: 100, after });
        assert.equal(page.count, TOTAL);
        assert.equal(page.results.length, sizes[p]);
        assert.equal(page.index, p * 100);
        assert.equal(page.first, page.results[0].id);
        assert.equal(page.last, page.results[page.results.length - 1].id);
        assert.equal(page.complete, p === 2, `complete only on the last page (page ${p})`);
        seen.push(...bodies(page) as string[]);
        seenIds.push(...ids(page));
        after = page.last;
      }
      assert.deepEqual(seen, all);
      assert.deepEqual(seenIds, liveIds, "archive ids are the room's stanza-ids");
      const beyond = await query(bob, room, { max: 100, after });
      assert.deepEqual(beyond.results, []);
      assert.equal(beyond.complete, true);
      assert.equal(beyond.first, undefined);
      assert.equal(beyond.count, TOTAL);
    });

    it("backwards from <before/> (the last page), with exact counts, indexes and ids", async () => {
      const pages: string[][] = [];
      let before = "";
      const bounds = [[150, 250], [50, 150], [0, 50]];
      for (let p = 0; p < 3; p++) {
        const page = await query(bob, room, { max: 100, before });
        const [from, to] = bounds[p];
        assert.equal(page.count, TOTAL);
        assert.equal(page.index, from);
        assert.deepEqual(bodies(page), all.slice(from, to), "each page in chronological order");
        assert.deepEqual(ids(page), liveIds.slice(from, to));
        assert.equal(page.complete, p === 2, `complete once the start is reached (page ${p})`);
        pages.push(bodies(page) as string[]);
        before = page.first!;
      }
      assert.deepEqual(pages.reverse().flat(), all);
    });

    it("sends each result from the room, forwarding the message as the room sent it, without `to`", async () => {
      const page = await query(bob, room, { max: 1, before: "" });
      const [r] = page.results;
      assert.equal(r.wrapper.attrs.from, room);
      assert.equal(r.wrapper.attrs.to, bob.jid);
      assert.equal(r.message.attrs.xmlns, "jabber:client");
      assert.equal(r.message.attrs.from, `${room}/alice`);
      assert.equal(r.message.attrs.to, undefined);
      assert.equal(r.message.attrs.type, "groupchat");
      assert.equal(stanzaIdOf(r.message, room), liveIds[TOTAL - 1]);
      assert.match(r.stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    });

    it("flips a page, caps pages at maxPageSize, defaults to defaultPageSize, and counts with <max>0</max>", async () => {
      const straight = await query(bob, room, { max: 10, before: "" });
      const flipped = await query(bob, room, { max: 10, before: "", flip: true });
      assert.deepEqual(ids(flipped), [...ids(straight)].reverse());
      assert.deepEqual([flipped.first, flipped.last, flipped.complete], [straight.first, straight.last, straight.complete]);
      const forward = await query(bob, room, { max: 3, after: liveIds[4], flip: true });
      assert.deepEqual(bodies(forward), ["m7", "m6", "m5"]);
      assert.equal(forward.first, liveIds[5]);

      const plain = await query(bob, room);
      assert.deepEqual(bodies(plain), all.slice(0, 50));
      assert.equal(plain.complete, false);
      const big = await query(bob, room, { max: 100_000 });
      assert.equal(big.results.length, 250);
      assert.equal(big.complete, true, "all 250 fit in the largest page");
      const none = await query(bob, room, { max: 0 });
      assert.deepEqual([none.results.length, none.count, none.complete, none.first], [0, TOTAL, false, undefined]);
    });

    it("limits by before-id, after-id and ids", async () => {
      const between = await query(bob, room, { afterId: liveIds[10], beforeId: liveIds[20] });
      assert.deepEqual(bodies(between), all.slice(11, 20));
      assert.deepEqual([between.count, between.complete], [9, true]);
      const lastOfRange = await query(bob, room, { beforeId: liveIds[100], max: 2, before: "" });
      assert.deepEqual(bodies(lastOfRange), ["m98", "m99"]);
      assert.deepEqual([lastOfRange.count, lastOfRange.index], [100, 98]);
      const some = await query(bob, room, { ids: [liveIds[7], liveIds[3], liveIds[249]] });
      assert.deepEqual(bodies(some), ["m3", "m7", "m249"]);
      assert.equal(some.count, 3);
    });

    it("answers ids that are not in this room's archive with item-not-found", async () => {
      const other = await createRoom(alice, "alice");
      const foreign = stanzaIdOf(await say(alice, other, "elsewhere"), other);
      for (const q of [{ after: "nope" }, { before: "nope" }, { afterId: "nope" }, { beforeId: foreign }, { ids: [liveIds[0], foreign] }, { after: foreign }]) {
        const page = await query(bob, room, q);
        assert.equal(errorCondition(page.iq), "item-not-found", JSON.stringify(q));
        assert.deepEqual(page.results, []);
      }
    });

    it("answers the archive metadata", async () => {
      const res = await bob.iq(xml("iq", { type: "get", to: room }, xml("metadata", { xmlns: MAM })));
      const metadata = res.getChild("metadata", MAM)!;
      assert.equal(metadata.getChild("start")!.attrs.id, liveIds[0]);
      assert.equal(metadata.getChild("end")!.attrs.id, liveIds[TOTAL - 1]);
    });
  });

  describe("filters", function () {
    let alice: RawClient, bob: RawClient, carol: RawClient;
    let room: string;
    let stamps: string[];
    const lines: Array<[string, string]> = [
      ["alice", "Good morning, everyone"],
      ["bob", "Morning! Coffee is ready"],
      ["carol", "I brought croissants"],
      ["bob", "Croissants and coffee, perfect"],
      ["alice", "Meeting at ten"],
      ["robert", "Call me Robert from now on"],
    ];

    before(async function () {
      alice = await onlineUser(ts, fresh("alice"));
      bob = await onlineUser(ts, fresh("bob"));
      carol = await onlineUser(ts, fresh("carol"));
      room = await createRoom(alice, "alice");
      await join(bob, room, "bob");
      await join(carol, room, "carol");
      const byNick: Record<string, RawClient> = { alice, bob, carol, robert: bob };
      for (const [nick, body] of lines) {
        if (nick === "robert") {
          bob.send(xml("presence", { to: `${room}/robert` }));
          await bob.receive((el) => el.name === "presence" && el.attrs.from === `${room}/robert` && codes(el).includes("110"));
        }
        await say(byNick[nick], room, body);
        await sleep(15); // distinct millisecond timestamps
      }
      stamps = (await query(alice, room)).results.map((r) => r.stamp);
    });
    after(() => { alice.close(); bob.close(); carol.close(); });

    it("by occupant JID: what that nick sent", async () => {
      const page = await query(carol, room, { with: `${room}/bob` });
      assert.deepEqual(bodies(page), ["Morning! Coffee is ready", "Croissants and coffee, perfect"]);
      assert.equal(page.complete, true);
      assert.deepEqual(bodies(await query(carol, room, { with: `${room}/robert` })), ["Call me Robert from now on"]);
      assert.deepEqual(bodies(await query(carol, room, { with: `${room}/nobody` })), []);
      const paged = await query(carol, room, { with: `${room}/alice`, max: 1 });
      assert.deepEqual([bodies(paged), paged.complete], [["Good morning, everyone"], false]);
      const next = await query(carol, room, { with: `${room}/alice`, max: 1, after: paged.last });
      assert.deepEqual([bodies(next), next.complete], [["Meeting at ten"], true]);
      assert.equal((await query(carol, room, { with: room })).results.length, lines.length, "the room's bare JID matches every message");
    });

    it("by real JID only for who may see real JIDs: a moderator of a semi-anonymous room, not a participant", async () => {
      const mine = await query(alice, room, { with: bareOf(bob) });
      assert.deepEqual(bodies(mine), ["Morning! Coffee is ready", "Croissants and coffee, perfect", "Call me Robert from now on"], "under every nick");
      assert.equal(mine.count, 3);
      assert.equal(errorCondition((await query(carol, room, { with: bareOf(bob) })).iq), "forbidden");
    });

    it("by time, inclusive at both ends", async () => {
      assert.equal(stamps.length, lines.length);
      const texts = lines.map(([, body]) => body);
      assert.deepEqual(bodies(await query(carol, room, { start: stamps[2], end: stamps[4] })), texts.slice(2, 5));
      assert.deepEqual(bodies(await query(carol, room, { start: stamps[5] })), texts.slice(5));
      assert.deepEqual(bodies(await query(carol, room, { end: stamps[0] })), texts.slice(0, 1));
      assert.deepEqual(bodies(await query(carol, room, { with: `${room}/bob`, start: stamps[2] })), [texts[3]]);
      assert.equal(errorCondition((await query(carol, room, { start: "yesterday" })).iq), "bad-request");
    });

    it("by full text", async () => {
      assert.deepEqual(bodies(await query(carol, room, { fulltext: "coffee" })), ["Morning! Coffee is ready", "Croissants and coffee, perfect"]);
      assert.deepEqual(bodies(await query(carol, room, { fulltext: "CROISS perfect" })), ["Croissants and coffee, perfect"]);
      const page = await query(carol, room, { fulltext: "croissants", max: 1 });
      assert.deepEqual([page.results.length, page.count, page.complete], [1, 2, false]);
    });
  });

  describe("who may read the archive", function () {
    it("members of a members-only room, occupants or not; nobody else", async () => {
      const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((u) => onlineUser(ts, fresh(u))));
      const room = await createRoom(alice, "alice", { "muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1" });
      await admin(alice, room, xml("item", { jid: bareOf(bob), affiliation: "member" }));
      await say(alice, room, "members only");
      assert.deepEqual(bodies(await query(alice, room)), ["members only"], "the owner, an occupant");
      assert.deepEqual(bodies(await query(bob, room)), ["members only"], "a member who never entered");
      await join(bob, room, "bob");
      assert.deepEqual(bodies(await query(bob, room)), ["members only"], "a member in the room");
      const refused = await query(carol, room);
      assert.equal(errorCondition(refused.iq), "forbidden");
      assert.deepEqual(refused.results, []);
      assert.equal(errorCondition(await carol.iq(xml("iq", { type: "get", to: room }, xml("metadata", { xmlns: MAM })))), "forbidden");
      // Losing membership loses the archive.
      await admin(alice, room, xml("item", { jid: bareOf(bob), affiliation: "none" }));
      assert.equal(errorCondition((await query(bob, room)).iq), "forbidden");
      alice.close(); bob.close(); carol.close();
    });

    it("anyone but outcasts in an open room; occupants and members in a password-protected one", async () => {
      const [alice, bob, carol, dave] = await Promise.all(["alice", "bob", "carol", "dave"].map((u) => onlineUser(ts, fresh(u))));
      const room = await createRoom(alice, "alice");
      await join(bob, room, "bob");
      await say(bob, room, "open to all");
      assert.deepEqual(bodies(await query(bob, room)), ["open to all"], "an occupant");
      assert.deepEqual(bodies(await query(carol, room)), ["open to all"], "someone who never entered");
      await admin(alice, room, xml("item", { jid: bareOf(dave), affiliation: "outcast" }));
      assert.equal(errorCondition((await query(dave, room)).iq), "forbidden");

      const secret = await createRoom(alice, "alice", { "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "s3cret" });
      await say(alice, secret, "behind a password");
      assert.equal(errorCondition((await query(carol, secret)).iq), "forbidden");
      await join(carol, secret, "carol", xml("x", { xmlns: MUC }, xml("password", null, "s3cret")));
      assert.deepEqual(bodies(await query(carol, secret)), ["behind a password"]);
      alice.close(); bob.close(); carol.close(); dave.close();
    });

    it("answers item-not-found for unknown rooms, rooms that ended, and locked rooms (but to their owner)", async () => {
      const [alice, bob] = await Promise.all(["alice", "bob"].map((u) => onlineUser(ts, fresh(u))));
      assert.equal(errorCondition((await query(bob, `${fresh("nowhere")}@${SERVICE}`)).iq), "item-not-found");
      const locked = `${fresh("locked")}@${SERVICE}`;
      await join(alice, locked, "alice");
      assert.equal(errorCondition((await query(bob, locked)).iq), "item-not-found");
      assert.equal((await query(alice, locked)).iq.attrs.type, "result");
      const temporary = await createRoom(alice, "alice");
      await say(alice, temporary, "soon gone");
      alice.send(xml("presence", { to: `${temporary}/alice`, type: "unavailable" }));
      await alice.receive((el) => el.name === "presence" && el.attrs.from === `${temporary}/alice` && el.attrs.type === "unavailable");
      assert.equal(errorCondition((await query(bob, temporary)).iq), "item-not-found");
      alice.close(); bob.close();
    });
  });

  describe("anonymity of the results", function () {
    it("semi-anonymous: real JIDs for moderators only, from their role at the time of the query", async () => {
      const [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((u) => onlineUser(ts, fresh(u))));
      const room = await createRoom(alice, "alice");
      await join(bob, room, "bob");
      await join(carol, room, "carol");
      await say(bob, room, "hello from bob");
      // A sender's own muc#user <x/> claiming a JID is not what the archive shows.
      await say(carol, room, "hello from carol", xml("x", { xmlns: USER }, xml("item", { jid: bareOf(alice) })));

      const asParticipant = await query(bob, room);
      assert.deepEqual(bodies(asParticipant), ["hello from bob", "hello from carol"]);
      assert.deepEqual(jidsIn(asParticipant), [undefined, undefined]);
      for (const r of asParticipant.results) {
        const text = r.wrapper.toString();
        for (const u of [alice, carol]) assert.ok(!text.includes(bareOf(u)), `a participant sees ${bareOf(u)} in ${text}`);
      }
      const stranger = await onlineUser(ts, fresh("stranger"));
      assert.deepEqual(jidsIn(await query(stranger, room)), [undefined, undefined], "nor does someone outside the room");

      const asModerator = await query(alice, room);
      assert.deepEqual(jidsIn(asModerator), [bareOf(bob), bareOf(carol)]);
      for (const r of asModerator.results) assert.equal(r.message.getChildren("x", USER).length, 1, "the room's <x/> only");

      // Bob becomes a moderator: now he sees them; an admin outside the room would be a moderator too.
      await admin(alice, room, xml("item", { nick: "bob", role: "moderator" }));
      assert.deepEqual(jidsIn(await query(bob, room)), [bareOf(bob), bareOf(carol)]);
      await admin(alice, room, xml("item", { jid: bareOf(stranger), affiliation: "admin" }));
      assert.deepEqual(jidsIn(await query(stranger, room)), [bareOf(bob), bareOf(carol)]);
      alice.close(); bob.close(); carol.close(); stranger.close();
    });

    it("non-anonymous: real JIDs for everyone; fully anonymous: for no one", async () => {
      const [alice, bob] = await Promise.all(["alice", "bob"].map((u) => onlineUser(ts, fresh(u))));
      const open = await createRoom(alice, "alice", { "muc#roomconfig_whois": "anyone" });
      await join(bob, open, "bob");
      await say(alice, open, "I am alice");
      assert.deepEqual(jidsIn(await query(bob, open)), [bareOf(alice)]);
      assert.equal((await query(bob, open, { with: bareOf(alice) })).count, 1, "and filter by them");

      const hidden = await createRoom(alice, "alice", { "muc#roomconfig_whois": "none" });
      await say(alice, hidden, "who am I?");
      assert.deepEqual(jidsIn(await query(alice, hidden)), [undefined]);
      assert.equal(errorCondition((await query(alice, hidden, { with: bareOf(alice) })).iq), "forbidden");
      alice.close(); bob.close();
    });
  });

  describe("persistence", function () {
    it("keeps a persistent room's archive across a restart; a room re-created under an old name starts empty", async function () {
      const other = await startTestServer();
      try {
        const a = fresh("alice"), b = fresh("bob");
        let alice = await onlineUser(other, a);
        let bob = await onlineUser(other, b);
        const room = await createRoom(alice, "alice", { "muc#roomconfig_persistentroom": "1", "muc#roomconfig_membersonly": "1" });
        await admin(alice, room, xml("item", { jid: `${b}@localhost`, affiliation: "member" }));
        await join(bob, room, "bob");
        const live: string[] = [];
        for (let i = 0; i < 5; i++) {
          await say(alice, room, `kept ${i}`);
          live.push(stanzaIdOf(await bob.receive((el) => el.getChildText("body") === `kept ${i}`), room));
        }
        const temporary = await createRoom(alice, "alice", {}, fresh("fleeting"));
        await say(alice, temporary, "from the first room of that name");
        alice.close(); bob.close();
        await other.restart();

        alice = await onlineUser(other, a);
        bob = await onlineUser(other, b);
        assert.ok((await features(bob, room)).includes(MAM));
        const page = await query(bob, room, { max: 3, before: "" });
        assert.deepEqual(bodies(page), ["kept 2", "kept 3", "kept 4"]);
        assert.deepEqual(ids(page), live.slice(2));
        assert.deepEqual([page.count, page.index, page.complete], [5, 2, false]);
        const rest = await query(bob, room, { before: page.first });
        assert.deepEqual([ids(rest), rest.complete], [live.slice(0, 2), true]);
        assert.deepEqual(jidsIn(await query(alice, room, { max: 1 })), [`${a}@localhost`]);
        const eve = await onlineUser(other, fresh("eve"));
        assert.equal(errorCondition((await query(eve, room)).iq), "forbidden", "still members-only");

        await createRoom(alice, "alice", {}, temporary.split("@")[0]);
        const recreated = await query(alice, temporary);
        assert.deepEqual([recreated.results.length, recreated.count, recreated.complete], [0, 0, true]);
        alice.close(); bob.close(); eve.close();
      } finally {
        await other.stop();
      }
    });
  });
});
