// XEP-0045 multi-user chat dialogues over real sockets.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const MUC = "http://jabber.org/protocol/muc";
const USER = "http://jabber.org/protocol/muc#user";
const OWNER = "http://jabber.org/protocol/muc#owner";
const DATA = "jabber:x:data";
const SERVICE = "conference.localhost";

let n = 0;
const fresh = (p: string) => `${p}${++n}`;
const roomOf = (name: string) => `${name}@${SERVICE}`;
const codes = (el: Element) => (el.getChild("x", USER)?.getChildren("status") ?? []).map((s) => s.attrs.code as string).sort();
const itemOf = (el: Element) => el.getChild("x", USER)?.getChild("item");
const presenceFrom = (from: string, type?: string) => (el: Element) => el.name === "presence" && el.attrs.from === from && el.attrs.type === type;

interface Joined { self: Element; subject: Element }

async function join(c: RawClient, room: string, nick: string, x: Element | null = xml("x", { xmlns: MUC })): Promise<Joined> {
  c.send(xml("presence", { to: `${room}/${nick}` }, x));
  const self = await c.receive((el) => el.name === "presence" && el.attrs.from?.startsWith(`${room}/`) && (el.attrs.type === "error" || codes(el).includes("110")));
  if (self.attrs.type === "error") throw Object.assign(new Error(`join failed: ${self.toString()}`), { stanza: self });
  const subject = await c.receive((el) => el.name === "message" && el.attrs.from?.startsWith(room) && el.getChild("subject") !== undefined && !el.getChild("body"));
  return { self, subject };
}

async function joinError(c: RawClient, room: string, nick: string, x: Element | null = xml("x", { xmlns: MUC })): Promise<string | undefined> {
  c.send(xml("presence", { to: `${room}/${nick}` }, x));
  const el = await c.receive((e) => e.name === "presence" && e.attrs.from === `${room}/${nick}` && e.attrs.type === "error");
  return errorCondition(el);
}

async function submitConfig(c: RawClient, room: string, fields: Record<string, string | string[]>): Promise<Element> {
  return c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: OWNER },
    xml("x", { xmlns: DATA, type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", null, "http://jabber.org/protocol/muc#roomconfig")),
      ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, ...(Array.isArray(v) ? v : [v]).map((s) => xml("value", null, s))))))));
}

/** A configured (unlocked) room owned by `owner`, who is in it as `nick`. */
async function createRoom(owner: RawClient, nick: string, fields: Record<string, string | string[]> = {}): Promise<string> {
  const room = roomOf(fresh("room"));
  const { self } = await join(owner, room, nick);
  assert.deepEqual(codes(self), ["110", "170", "201"]);
  const res = await submitConfig(owner, room, fields);
  assert.equal(res.attrs.type, "result", res.toString());
  return room;
}

const ADMIN = "http://jabber.org/protocol/muc#admin";
const INFO = "http://jabber.org/protocol/disco#info";
const ITEMS = "http://jabber.org/protocol/disco#items";
const SID = "urn:xmpp:sid:0";
const OCCUPANT_ID = "urn:xmpp:occupant-id:0";
const DELAY = "urn:xmpp:delay";

const bodyIs = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;
const errorFrom = (from: string) => (el: Element) => el.attrs.type === "error" && el.attrs.from === from;
const occupantIdOf = (el: Element) => el.getChild("occupant-id", OCCUPANT_ID)?.attrs.id;

function say(c: RawClient, room: string, body: string, ...extra: Element[]): void {
  c.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, body), ...extra));
}

async function admin(c: RawClient, room: string, ...items: Element[]): Promise<Element> {
  return c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: ADMIN }, ...items)));
}

async function leave(c: RawClient, room: string, nick: string): Promise<Element> {
  c.send(xml("presence", { to: `${room}/${nick}`, type: "unavailable" }));
  return c.receive(presenceFrom(`${room}/${nick}`, "unavailable"));
}

/** Enters and returns the history messages received before the subject (which comes last). */
async function joinWithHistory(c: RawClient, room: string, nick: string, history?: Record<string, string>): Promise<Element[]> {
  c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC }, history ? xml("history", history) : null)));
  await c.receive((el) => el.name === "presence" && el.attrs.from === `${room}/${nick}` && codes(el).includes("110"));
  const out: Element[] = [];
  for (;;) {
    const m = await c.receive((el) => el.name === "message" && el.attrs.from?.startsWith(room));
    if (m.getChild("subject") && !m.getChild("body")) return out;
    out.push(m);
  }
}

async function users(ts: TestServer, ...names: string[]): Promise<RawClient[]> {
  return Promise.all(names.map((name) => onlineUser(ts, fresh(name))));
}

const closeAll = (...cs: RawClient[]) => { for (const c of cs) c.close(); };

describe("XEP-0045 multi-user chat", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  describe("discovery", () => {
    it("lists the service among the server's items, as conference/text with the MUC feature", async () => {
      const [alice] = await users(ts, "alice");
      const items = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: ITEMS })));
      assert.ok(items.getChild("query")!.getChildren("item").some((i) => i.attrs.jid === SERVICE), items.toString());
      const info = await alice.iq(xml("iq", { type: "get", to: SERVICE }, xml("query", { xmlns: INFO })));
      const q = info.getChild("query", INFO)!;
      assert.deepEqual(q.getChildren("identity").map((i) => [i.attrs.category, i.attrs.type]), [["conference", "text"]]);
      assert.ok(q.getChildren("feature").some((f) => f.attrs.var === MUC));
      const ping = await alice.iq(xml("iq", { type: "get", to: SERVICE }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(ping.attrs.type, "result");
      const unknown = await alice.iq(xml("iq", { type: "get", to: roomOf("nowhere") }, xml("query", { xmlns: INFO })));
      assert.equal(errorCondition(unknown), "item-not-found");
      alice.close();
    });
  });

  describe("creating and configuring rooms", () => {
    it("keeps a reserved room locked until its owner submits the configuration form", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = roomOf(fresh("balcony"));
      // Romeo: <presence to='room/romeo'><x xmlns='…muc'/></presence>
      const { self, subject } = await join(romeo, room, "romeo");
      assert.deepEqual(codes(self), ["110", "170", "201"]);
      assert.deepEqual([itemOf(self)!.attrs.affiliation, itemOf(self)!.attrs.role, itemOf(self)!.attrs.jid], ["owner", "moderator", romeo.jid]);
      assert.equal(subject.getChildText("subject"), "");
      // Juliet: the room does not exist for her yet.
      assert.equal(await joinError(juliet, room, "juliet"), "item-not-found");
      const hidden = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      assert.equal(errorCondition(hidden), "item-not-found");
      const notOwner = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: OWNER })));
      assert.equal(errorCondition(notOwner), "forbidden");

      // Romeo asks for the form and gets every setting.
      const form = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: OWNER })));
      const x = form.getChild("query", OWNER)!.getChild("x", DATA)!;
      assert.equal(x.attrs.type, "form");
      const vars = x.getChildren("field").map((f) => f.attrs.var);
      for (const v of ["FORM_TYPE", "muc#roomconfig_roomname", "muc#roomconfig_roomdesc", "muc#roomconfig_persistentroom", "muc#roomconfig_publicroom",
        "muc#roomconfig_membersonly", "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret", "muc#roomconfig_moderatedroom",
        "muc#roomconfig_maxusers", "muc#roomconfig_whois", "muc#maxhistoryfetch", "muc#roomconfig_allowinvites", "muc#roomconfig_allowpm",
        "muc#roomconfig_changesubject"]) assert.ok(vars.includes(v), `form lacks ${v}`);
      const whois = x.getChildren("field").find((f) => f.attrs.var === "muc#roomconfig_whois")!;
      assert.equal(whois.getChildText("value"), "moderators");

      // Bad values are refused and change nothing.
      assert.equal(errorCondition(await submitConfig(romeo, room, { "muc#roomconfig_whois": "everybody" })), "not-acceptable");
      assert.equal(errorCondition(await submitConfig(romeo, room, { "muc#roomconfig_passwordprotectedroom": "1" })), "not-acceptable");
      assert.equal(errorCondition(await submitConfig(romeo, room, { "muc#roomconfig_maxusers": "many" })), "not-acceptable");
      assert.equal(await joinError(juliet, room, "juliet"), "item-not-found");

      const ok = await submitConfig(romeo, room, { "muc#roomconfig_roomname": "Balcony", "muc#roomconfig_roomdesc": "Where it happens", "muc#roomconfig_publicroom": "1" });
      assert.equal(ok.attrs.type, "result");
      const joined = await join(juliet, room, "juliet");
      assert.deepEqual(codes(joined.self), ["110", "170"]);

      const info = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      const q = info.getChild("query", INFO)!;
      assert.equal(q.getChild("identity")!.attrs.name, "Balcony");
      const features = q.getChildren("feature").map((f) => f.attrs.var);
      for (const f of [MUC, "muc_temporary", "muc_public", "muc_open", "muc_unsecured", "muc_unmoderated", "muc_semianonymous", OCCUPANT_ID, SID,
        "http://jabber.org/protocol/muc#self-ping-optimization"]) assert.ok(features.includes(f), `room lacks feature ${f}`);
      const roominfo = q.getChild("x", DATA)!;
      const field = (v: string) => roominfo.getChildren("field").find((f) => f.attrs.var === v)?.getChildText("value");
      assert.equal(field("FORM_TYPE"), "http://jabber.org/protocol/muc#roominfo");
      assert.equal(field("muc#roominfo_description"), "Where it happens");
      assert.equal(field("muc#roominfo_occupants"), "2");

      // Hidden rooms, temporary or persistent, are not listed (§6.3).
      const hidden1 = await createRoom(romeo, "romeo", { "muc#roomconfig_publicroom": "0" });
      const hidden2 = await createRoom(romeo, "romeo", { "muc#roomconfig_publicroom": "0", "muc#roomconfig_persistentroom": "1" });
      const list = await juliet.iq(xml("iq", { type: "get", to: SERVICE }, xml("query", { xmlns: ITEMS })));
      const listed = list.getChild("query")!.getChildren("item");
      assert.equal(listed.find((i) => i.attrs.jid === room)?.attrs.name, "Balcony");
      assert.ok(!listed.some((i) => i.attrs.jid === hidden1 || i.attrs.jid === hidden2));
      closeAll(romeo, juliet);
    });

    it("creates instant rooms: an empty form, or a groupchat 1.0 join; cancelling the first configuration destroys the room", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = roomOf(fresh("instant"));
      await join(romeo, room, "romeo");
      const res = await romeo.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: OWNER }, xml("x", { xmlns: DATA, type: "submit" }))));
      assert.equal(res.attrs.type, "result");
      await join(juliet, room, "juliet");

      // COMPAT: a join without the MUC <x/> (groupchat 1.0) creates an unlocked room at once.
      const old = roomOf(fresh("gc10"));
      const { self } = await join(romeo, old, "romeo", null);
      assert.ok(codes(self).includes("201"));
      await join(juliet, old, "juliet");

      const cancelled = roomOf(fresh("cancelled"));
      await join(romeo, cancelled, "romeo");
      const cancel = await romeo.iq(xml("iq", { type: "set", to: cancelled }, xml("query", { xmlns: OWNER }, xml("x", { xmlns: DATA, type: "cancel" }))));
      assert.equal(cancel.attrs.type, "result");
      const gone = await romeo.receive(presenceFrom(`${cancelled}/romeo`, "unavailable"));
      assert.ok(gone.getChild("x", USER)!.getChild("destroy"));
      const again = await join(romeo, cancelled, "romeo");
      assert.ok(codes(again.self).includes("201"), "the room was created anew");
      closeAll(romeo, juliet);
    });

    it("announces configuration changes (104, 172, 173, 174) and removes non-members when a room becomes members-only (322)", async () => {
      const [romeo, juliet, nurse, benvolio] = await users(ts, "romeo", "juliet", "nurse", "benvolio");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      await join(nurse, room, "nurse");

      assert.equal((await submitConfig(romeo, room, { "muc#roomconfig_whois": "anyone" })).attrs.type, "result");
      for (const c of [romeo, juliet, nurse]) {
        const m = await c.receive((el) => el.name === "message" && el.attrs.from === room && el.getChild("x", USER) !== undefined);
        assert.deepEqual(codes(m), ["172"]);
      }
      // Non-anonymous: 100 on entering, and participants see real JIDs.
      benvolio.send(xml("presence", { to: `${room}/benvolio` }, xml("x", { xmlns: MUC })));
      const romeoSeen = await benvolio.receive(presenceFrom(`${room}/romeo`));
      assert.equal(itemOf(romeoSeen)!.attrs.jid, romeo.jid);
      const self = await benvolio.receive((el) => el.name === "presence" && el.attrs.from === `${room}/benvolio`);
      assert.deepEqual(codes(self), ["100", "110", "170"]);

      assert.equal((await submitConfig(romeo, room, { "muc#roomconfig_roomname": "Verona", "muc#roomconfig_whois": "moderators" })).attrs.type, "result");
      const m = await juliet.receive((el) => el.name === "message" && el.attrs.from === room && el.getChild("x", USER) !== undefined);
      assert.deepEqual(codes(m), ["104", "173"]);

      // Nobody sees real JIDs any more (174), moderators included.
      assert.equal((await submitConfig(romeo, room, { "muc#roomconfig_whois": "none" })).attrs.type, "result");
      await nurse.receive((el) => el.name === "message" && el.attrs.from === room && codes(el).join() === "174");
      juliet.send(xml("presence", { to: `${room}/juliet` }, xml("show", null, "dnd")));
      const hidden = await romeo.receive((el) => presenceFrom(`${room}/juliet`)(el) && el.getChildText("show") === "dnd");
      assert.equal(itemOf(hidden)!.attrs.jid, undefined);
      await submitConfig(romeo, room, { "muc#roomconfig_whois": "moderators" });

      assert.equal((await admin(romeo, room, xml("item", { jid: juliet.jid.split("/")[0], affiliation: "member" }))).attrs.type, "result");
      assert.equal((await submitConfig(romeo, room, { "muc#roomconfig_membersonly": "1" })).attrs.type, "result");
      const out = await nurse.receive(presenceFrom(`${room}/nurse`, "unavailable"));
      assert.deepEqual(codes(out), ["110", "322"]);
      const seen = await juliet.receive(presenceFrom(`${room}/nurse`, "unavailable"));
      assert.deepEqual(codes(seen), ["322"]);
      await juliet.nothing(presenceFrom(`${room}/juliet`, "unavailable"));
      closeAll(romeo, juliet, nurse, benvolio);
    });

    it("refuses room creation by policy: only admins, or too many rooms (not-allowed); a custom service domain", async () => {
      const other = await startTestServer({ modules: { muc: { domain: "rooms.{host}", roomCreation: "admins", admins: ["boss@localhost"] } } });
      try {
        const [user, boss] = await Promise.all([onlineUser(other, "user"), onlineUser(other, "boss")]);
        const items = await user.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: ITEMS })));
        assert.ok(items.getChild("query")!.getChildren("item").some((i) => i.attrs.jid === "rooms.localhost"));
        assert.equal(await joinError(user, "lobby@rooms.localhost", "user"), "not-allowed");
        const { self } = await join(boss, "lobby@rooms.localhost", "boss");
        assert.ok(codes(self).includes("201"));
        closeAll(user, boss);
      } finally {
        await other.stop();
      }
      const limited = await startTestServer({ modules: { muc: { maxRoomsPerUser: 1 } } });
      try {
        const user = await onlineUser(limited, "user");
        await join(user, roomOf("first"), "user");
        assert.equal(await joinError(user, roomOf("second"), "user"), "not-allowed");
        user.close();
      } finally {
        await limited.stop();
      }
    });

    it("validates its options", async () => {
      const bad: Array<[Record<string, unknown>, string]> = [
        [{ roomCreation: "nobody" }, "roomCreation"], [{ defaultHistory: 50, maxHistory: 10 }, "defaultHistory"], [{ colour: "blue" }, "colour"],
        [{ admins: ["not a jid@@"] }, "admins[0]"], [{ maxRoomsPerUser: -1 }, "maxRoomsPerUser"], [{ domain: "a@b" }, "domain"],
      ];
      for (const [muc, key] of bad) {
        await assert.rejects(startTestServer({ modules: { muc } }), (err: Error & { key?: string }) => err.key === `modules.muc.${key}`);
      }
    });
  });

  describe("entering", () => {
    it("refuses entry with the XEP-0045 errors: nick, lock, ban, members-only, password, capacity", async () => {
      const [romeo, juliet, mercutio, tybalt, benvolio] = await users(ts, "romeo", "juliet", "mercutio", "tybalt", "benvolio");
      const bare = (c: RawClient) => c.jid.split("/")[0];

      // No nickname: jid-malformed (§7.2.1).
      const room = await createRoom(romeo, "romeo");
      mercutio.send(xml("presence", { to: room }, xml("x", { xmlns: MUC })));
      assert.equal(errorCondition(await mercutio.receive(errorFrom(room))), "jid-malformed");
      // Someone else's nickname: conflict (§7.2.9).
      assert.equal(await joinError(mercutio, room, "romeo"), "conflict");
      // Banned: forbidden (§7.2.8).
      await admin(romeo, room, xml("item", { jid: bare(tybalt), affiliation: "outcast" }));
      assert.equal(await joinError(tybalt, room, "tybalt"), "forbidden");

      // Locked: item-not-found (§10.1.1).
      const locked = roomOf(fresh("locked"));
      await join(romeo, locked, "romeo");
      assert.equal(await joinError(juliet, locked, "juliet"), "item-not-found");

      // Members-only: registration-required (§7.2.7).
      const members = await createRoom(romeo, "romeo", { "muc#roomconfig_membersonly": "1" });
      assert.equal(await joinError(mercutio, members, "mercutio"), "registration-required");
      await admin(romeo, members, xml("item", { jid: bare(mercutio), affiliation: "member" }));
      await join(mercutio, members, "mercutio");

      // Password: not-authorized without it or with a wrong one (§7.2.6).
      const secret = await createRoom(romeo, "romeo", { "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "capulet" });
      assert.equal(await joinError(juliet, secret, "juliet"), "not-authorized");
      assert.equal(await joinError(juliet, secret, "juliet", xml("x", { xmlns: MUC }, xml("password", null, "montague"))), "not-authorized");
      await join(juliet, secret, "juliet", xml("x", { xmlns: MUC }, xml("password", null, "capulet")));

      // Full: service-unavailable (§7.2.10), except for admins and owners.
      const small = await createRoom(romeo, "romeo", { "muc#roomconfig_maxusers": "2" });
      await join(juliet, small, "juliet");
      assert.equal(await joinError(mercutio, small, "mercutio"), "service-unavailable");
      await admin(romeo, small, xml("item", { jid: bare(benvolio), affiliation: "admin" }));
      await join(benvolio, small, "benvolio");
      closeAll(romeo, juliet, mercutio, tybalt, benvolio);
    });

    it("sends the occupants first and the self-presence last; real JIDs only to moderators of a semi-anonymous room; leaving", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo");
      juliet.send(xml("presence", { to: `${room}/juliet` }, xml("x", { xmlns: MUC }), xml("status", null, "on the balcony")));
      const first = await juliet.receive((el) => el.name === "presence");
      assert.equal(first.attrs.from, `${room}/romeo`);
      assert.deepEqual([itemOf(first)!.attrs.affiliation, itemOf(first)!.attrs.role, itemOf(first)!.attrs.jid], ["owner", "moderator", undefined]);
      assert.ok(occupantIdOf(first));
      const second = await juliet.receive((el) => el.name === "presence");
      assert.equal(second.attrs.from, `${room}/juliet`);
      assert.deepEqual(codes(second), ["110", "170"]);
      assert.equal(second.getChildText("status"), "on the balcony");

      const seen = await romeo.receive(presenceFrom(`${room}/juliet`));
      assert.equal(itemOf(seen)!.attrs.jid, juliet.jid, "moderators see real JIDs");
      assert.equal(seen.getChildText("status"), "on the balcony");
      assert.equal(seen.getChild("x", MUC), undefined, "the join payload is not passed on");

      // A presence change is broadcast.
      juliet.send(xml("presence", { to: `${room}/juliet` }, xml("show", null, "away")));
      const away = await romeo.receive((el) => presenceFrom(`${room}/juliet`)(el) && el.getChildText("show") === "away");
      assert.deepEqual(codes(away), []);

      juliet.send(xml("presence", { to: `${room}/juliet`, type: "unavailable" }, xml("status", null, "parting is such sweet sorrow")));
      const bye = await romeo.receive(presenceFrom(`${room}/juliet`, "unavailable"));
      assert.equal(bye.getChildText("status"), "parting is such sweet sorrow");
      assert.equal(itemOf(bye)!.attrs.role, "none");
      const selfBye = await juliet.receive(presenceFrom(`${room}/juliet`, "unavailable"));
      assert.deepEqual(codes(selfBye), ["110"]);
      closeAll(romeo, juliet);
    });

    it("treats a join from a session already in the room as a full synchronization (§17.3)", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      await romeo.receive(presenceFrom(`${room}/juliet`));
      const again = await join(juliet, room, "juliet");
      assert.deepEqual(codes(again.self), ["110", "170"]);
      assert.ok(await juliet.receive(presenceFrom(`${room}/romeo`)), "the occupant list is sent again");
      const update = await romeo.receive(presenceFrom(`${room}/juliet`));
      assert.deepEqual(codes(update), [], "the others see a presence update, not a second occupant");
      closeAll(romeo, juliet);
    });

    it("removes an occupant whose client bounces the room's traffic (ghost, 333)", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      juliet.send(xml("message", { to: `${room}/romeo`, type: "error" },
        xml("error", { type: "cancel" }, xml("recipient-unavailable", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }))));
      const gone = await romeo.receive(presenceFrom(`${room}/juliet`, "unavailable"));
      assert.deepEqual(codes(gone), ["333"]);
      closeAll(romeo, juliet);
    });

    it("removes an occupant whose connection drops", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      juliet.destroy();
      await romeo.receive(presenceFrom(`${room}/juliet`, "unavailable"));
      romeo.close();
    });

    it("rewrites a nickname to its normalised form (210)", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo");
      // "Cafe" + U+0301 COMBINING ACUTE ACCENT becomes "Café" (NFC, RFC 7613 OpaqueString).
      juliet.send(xml("presence", { to: `${room}/Cafe\u0301` }, xml("x", { xmlns: MUC })));
      const self = await juliet.receive((el) => el.name === "presence" && codes(el).includes("110"));
      assert.equal(self.attrs.from, `${room}/Caf\u00e9`);
      assert.ok(codes(self).includes("210"));
      closeAll(romeo, juliet);
    });
  });

  describe("messages", () => {
    it("reflects groupchat to every occupant with the room's stanza-id and occupant-id; forged ids are replaced", async () => {
      const [romeo, juliet, mercutio] = await users(ts, "romeo", "juliet", "mercutio");
      const room = await createRoom(romeo, "romeo");
      const { self } = await join(juliet, room, "juliet");
      juliet.send(xml("message", { to: room, type: "groupchat", id: "j1" }, xml("body", null, "wherefore art thou"),
        xml("stanza-id", { xmlns: SID, by: room, id: "forged" }),
        xml("occupant-id", { xmlns: OCCUPANT_ID, id: "forged" }),
        xml("origin-id", { xmlns: SID, id: "o-1" })));
      const got = await Promise.all([romeo, juliet].map((c) => c.receive(bodyIs("wherefore art thou"))));
      for (const m of got) {
        assert.equal(m.attrs.from, `${room}/juliet`);
        assert.equal(m.attrs.id, "j1");
        const ids = m.getChildren("stanza-id", SID);
        assert.equal(ids.length, 1);
        assert.equal(ids[0].attrs.by, room);
        assert.notEqual(ids[0].attrs.id, "forged");
        assert.equal(m.getChildren("occupant-id", OCCUPANT_ID).length, 1);
        assert.equal(occupantIdOf(m), occupantIdOf(self));
      }
      assert.equal(got[0].getChild("stanza-id", SID)!.attrs.id, got[1].getChild("stanza-id", SID)!.attrs.id);

      // A resend with the same origin-id: the sender gets its reflection again, nobody else gets a copy.
      juliet.send(xml("message", { to: room, type: "groupchat", id: "j1" }, xml("body", null, "wherefore art thou"), xml("origin-id", { xmlns: SID, id: "o-1" })));
      const again = await juliet.receive(bodyIs("wherefore art thou"));
      assert.equal(again.getChild("stanza-id", SID)!.attrs.id, got[1].getChild("stanza-id", SID)!.attrs.id);
      await romeo.nothing(bodyIs("wherefore art thou"));

      // Not an occupant: not-acceptable (§7.4).
      say(mercutio, room, "a plague");
      assert.equal(errorCondition(await mercutio.receive(errorFrom(room))), "not-acceptable");
      await romeo.nothing(bodyIs("a plague"));
      // No such room: item-not-found.
      say(mercutio, roomOf("nowhere"), "hello?");
      assert.equal(errorCondition(await mercutio.receive(errorFrom(roomOf("nowhere")))), "item-not-found");
      closeAll(romeo, juliet, mercutio);
    });

    it("refuses spoofing: the room knows occupants by their real JID, never by a nick in the stanza", async () => {
      const [romeo, juliet, tybalt] = await users(ts, "romeo", "juliet", "tybalt");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      // A nick claimed in the payload changes nothing.
      say(juliet, room, "I am Romeo", xml("x", { xmlns: USER }, xml("item", { nick: "romeo", role: "moderator" })));
      const m = await romeo.receive(bodyIs("I am Romeo"));
      assert.equal(m.attrs.from, `${room}/juliet`);
      assert.equal(m.getChild("x", USER), undefined);
      // Taking over Romeo's nick: conflict, for a newcomer and for an occupant alike.
      assert.equal(await joinError(tybalt, room, "romeo"), "conflict");
      juliet.send(xml("presence", { to: `${room}/romeo` }));
      assert.equal(errorCondition(await juliet.receive(errorFrom(`${room}/romeo`))), "conflict");
      // Changing the subject without the right: forbidden.
      juliet.send(xml("message", { to: room, type: "groupchat" }, xml("subject", null, "Juliet rules")));
      assert.equal(errorCondition(await juliet.receive(errorFrom(room))), "forbidden");
      // Kicking the owner without being a moderator: forbidden (§8).
      assert.equal(errorCondition(await admin(juliet, room, xml("item", { nick: "romeo", role: "none" }))), "forbidden");
      // A 'from' that is not the sender's own JID ends the stream (RFC 6120 §8.1.2.1).
      tybalt.send(xml("message", { from: `${room}/romeo`, to: room, type: "groupchat" }, xml("body", null, "forged")));
      const err = await tybalt.closed();
      assert.equal(errorCondition(err), "invalid-from");
      await romeo.nothing(bodyIs("forged"));
      closeAll(romeo, juliet);
    });

    it("relays private messages between occupants, as the room allows", async () => {
      const [romeo, juliet, nurse] = await users(ts, "romeo", "juliet", "nurse");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      juliet.send(xml("message", { to: `${room}/romeo`, type: "chat", id: "pm1" }, xml("body", null, "meet me")));
      const pm = await romeo.receive(bodyIs("meet me"));
      assert.equal(pm.attrs.from, `${room}/juliet`);
      assert.equal(pm.attrs.type, "chat");
      assert.ok(pm.getChild("x", USER));
      assert.ok(occupantIdOf(pm));

      juliet.send(xml("message", { to: `${room}/paris`, type: "chat" }, xml("body", null, "?")));
      assert.equal(errorCondition(await juliet.receive(errorFrom(`${room}/paris`))), "item-not-found");
      juliet.send(xml("message", { to: `${room}/romeo`, type: "groupchat" }, xml("body", null, "?")));
      assert.equal(errorCondition(await juliet.receive(errorFrom(`${room}/romeo`))), "bad-request");
      nurse.send(xml("message", { to: `${room}/romeo`, type: "chat" }, xml("body", null, "psst")));
      assert.equal(errorCondition(await nurse.receive(errorFrom(`${room}/romeo`))), "not-acceptable");

      await submitConfig(romeo, room, { "muc#roomconfig_allowpm": "moderators" });
      juliet.send(xml("message", { to: `${room}/romeo`, type: "chat" }, xml("body", null, "again")));
      assert.equal(errorCondition(await juliet.receive(errorFrom(`${room}/romeo`))), "forbidden");
      romeo.send(xml("message", { to: `${room}/juliet`, type: "chat" }, xml("body", null, "I may")));
      await juliet.receive(bodyIs("I may"));
      closeAll(romeo, juliet, nurse);
    });

    it("sets the subject: moderators, or participants when allowed; newcomers get it last", async () => {
      const [romeo, juliet, mercutio] = await users(ts, "romeo", "juliet", "mercutio");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      romeo.send(xml("message", { to: room, type: "groupchat" }, xml("subject", null, "The feud")));
      for (const c of [romeo, juliet]) {
        const s = await c.receive((el) => el.name === "message" && el.getChildText("subject") === "The feud");
        assert.equal(s.attrs.from, `${room}/romeo`);
      }
      juliet.send(xml("message", { to: room, type: "groupchat" }, xml("subject", null, "Love")));
      assert.equal(errorCondition(await juliet.receive(errorFrom(room))), "forbidden");

      const { subject } = await join(mercutio, room, "mercutio");
      assert.equal(subject.getChildText("subject"), "The feud");
      assert.equal(subject.attrs.from, `${room}/romeo`);

      await submitConfig(romeo, room, { "muc#roomconfig_changesubject": "1" });
      juliet.send(xml("message", { to: room, type: "groupchat" }, xml("subject", null, "Love")));
      await mercutio.receive((el) => el.name === "message" && el.getChildText("subject") === "Love" && el.attrs.from === `${room}/juliet`);
      const info = await mercutio.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      const field = info.getChild("query")!.getChild("x", DATA)!.getChildren("field").find((f) => f.attrs.var === "muc#roominfo_subject");
      assert.equal(field?.getChildText("value"), "Love");
      closeAll(romeo, juliet, mercutio);
    });
  });

  describe("roles and affiliations", () => {
    it("kicks (307) with actor and reason; only moderators kick, never someone of higher affiliation", async () => {
      const [romeo, juliet, mercutio] = await users(ts, "romeo", "juliet", "mercutio");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      await join(mercutio, room, "mercutio");
      // §8: moderator use cases need a moderator (forbidden); the occupant must exist.
      assert.equal(errorCondition(await admin(mercutio, room, xml("item", { nick: "juliet", role: "none" }))), "forbidden");
      assert.equal(errorCondition(await admin(romeo, room, xml("item", { nick: "paris", role: "none" }))), "item-not-found");
      assert.equal(errorCondition(await admin(romeo, room, xml("item", { nick: "romeo", role: "none" }))), "conflict");
      // §17.4: one item changes a role or an affiliation, not both.
      assert.equal(errorCondition(await admin(romeo, room, xml("item", { nick: "juliet", role: "none", affiliation: "outcast" }))), "bad-request");

      const res = await admin(romeo, room, xml("item", { nick: "juliet", role: "none" }, xml("reason", null, "too young")));
      assert.equal(res.attrs.type, "result");
      const kicked = await juliet.receive(presenceFrom(`${room}/juliet`, "unavailable"));
      assert.deepEqual(codes(kicked), ["110", "307"]);
      assert.equal(itemOf(kicked)!.attrs.role, "none");
      assert.equal(itemOf(kicked)!.getChild("actor")!.attrs.nick, "romeo");
      assert.equal(itemOf(kicked)!.getChildText("reason"), "too young");
      for (const c of [romeo, mercutio]) assert.deepEqual(codes(await c.receive(presenceFrom(`${room}/juliet`, "unavailable"))), ["307"]);
      say(juliet, room, "still here?");
      assert.equal(errorCondition(await juliet.receive(errorFrom(room))), "not-acceptable");

      // Moderator status is given by admins and owners (§9.6); a moderator still cannot kick or silence
      // the owner (§8.2, §8.4: not-allowed), nor make others moderators (forbidden).
      await admin(romeo, room, xml("item", { nick: "mercutio", role: "moderator" }));
      const promoted = await mercutio.receive((el) => presenceFrom(`${room}/mercutio`)(el) && itemOf(el)?.attrs.role === "moderator");
      assert.deepEqual(codes(promoted), ["110"]);
      assert.equal(errorCondition(await admin(mercutio, room, xml("item", { nick: "romeo", role: "none" }))), "not-allowed");
      assert.equal(errorCondition(await admin(mercutio, room, xml("item", { nick: "romeo", role: "visitor" }))), "not-allowed");
      await join(juliet, room, "juliet");
      assert.equal(errorCondition(await admin(mercutio, room, xml("item", { nick: "juliet", role: "moderator" }))), "forbidden");
      closeAll(romeo, juliet, mercutio);
    });

    it("bans (301) by bare JID, keeps the outcast list, and lifts bans", async () => {
      const [romeo, juliet, tybalt] = await users(ts, "romeo", "juliet", "tybalt");
      const tybaltBare = tybalt.jid.split("/")[0];
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      await join(tybalt, room, "tybalt");
      // §9: banning is for admins and owners (forbidden), and nobody bans themselves (conflict).
      assert.equal(errorCondition(await admin(juliet, room, xml("item", { jid: tybaltBare, affiliation: "outcast" }))), "forbidden");
      assert.equal(errorCondition(await admin(romeo, room, xml("item", { jid: romeo.jid.split("/")[0], affiliation: "outcast" }))), "conflict");
      await admin(romeo, room, xml("item", { jid: tybaltBare, affiliation: "outcast" }, xml("reason", null, "slew Mercutio")));
      const banned = await tybalt.receive(presenceFrom(`${room}/tybalt`, "unavailable"));
      assert.deepEqual(codes(banned), ["110", "301"]);
      assert.equal(itemOf(banned)!.attrs.affiliation, "outcast");
      assert.equal(itemOf(banned)!.getChildText("reason"), "slew Mercutio");
      assert.deepEqual(codes(await juliet.receive(presenceFrom(`${room}/tybalt`, "unavailable"))), ["301"]);
      assert.equal(await joinError(tybalt, room, "tybalt"), "forbidden");

      const list = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { affiliation: "outcast" }))));
      const items = list.getChild("query", ADMIN)!.getChildren("item");
      assert.deepEqual(items.map((i) => [i.attrs.jid, i.getChildText("reason")]), [[tybaltBare, "slew Mercutio"]]);
      const denied = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { affiliation: "outcast" }))));
      assert.equal(errorCondition(denied), "forbidden");

      await admin(romeo, room, xml("item", { jid: tybaltBare, affiliation: "none" }));
      await join(tybalt, room, "tybalt");
      closeAll(romeo, juliet, tybalt);
    });

    it("grants and revokes membership, admin and owner with the matching roles; the last owner stays", async () => {
      const [romeo, juliet, nurse] = await users(ts, "romeo", "juliet", "nurse");
      const bare = (c: RawClient) => c.jid.split("/")[0];
      const room = await createRoom(romeo, "romeo", { "muc#roomconfig_membersonly": "1" });
      await admin(romeo, room, xml("item", { jid: bare(juliet), affiliation: "member" }));
      const { self } = await join(juliet, room, "juliet");
      assert.deepEqual([itemOf(self)!.attrs.affiliation, itemOf(self)!.attrs.role], ["member", "participant"]);

      await admin(romeo, room, xml("item", { jid: bare(juliet), affiliation: "admin" }));
      const asAdmin = await romeo.receive((el) => presenceFrom(`${room}/juliet`)(el) && itemOf(el)?.attrs.affiliation === "admin");
      assert.equal(itemOf(asAdmin)!.attrs.role, "moderator");
      // An admin manages members, but neither bans owners (§9.1: not-allowed) nor grants owner status (§10.3: forbidden).
      assert.equal((await admin(juliet, room, xml("item", { jid: bare(nurse), affiliation: "member" }))).attrs.type, "result");
      assert.equal(errorCondition(await admin(juliet, room, xml("item", { jid: bare(romeo), affiliation: "outcast" }))), "not-allowed");
      assert.equal(errorCondition(await admin(juliet, room, xml("item", { jid: bare(juliet), affiliation: "owner" }))), "forbidden");
      const members = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { affiliation: "member" }))));
      assert.deepEqual(members.getChild("query")!.getChildren("item").map((i) => i.attrs.jid), [bare(nurse)]);

      // §10.6: the only owner cannot step down.
      assert.equal(errorCondition(await admin(romeo, room, xml("item", { jid: bare(romeo), affiliation: "admin" }))), "conflict");
      await admin(romeo, room, xml("item", { jid: bare(juliet), affiliation: "owner" }));
      await romeo.receive((el) => presenceFrom(`${room}/juliet`)(el) && itemOf(el)?.attrs.affiliation === "owner");
      await admin(romeo, room, xml("item", { jid: bare(romeo), affiliation: "member" }));
      const demoted = await romeo.receive((el) => presenceFrom(`${room}/romeo`)(el) && itemOf(el)?.attrs.affiliation === "member");
      assert.equal(itemOf(demoted)!.attrs.role, "participant");

      // Losing membership in a members-only room removes the occupant (321).
      await admin(juliet, room, xml("item", { jid: bare(romeo), affiliation: "none" }));
      const removed = await romeo.receive(presenceFrom(`${room}/romeo`, "unavailable"));
      assert.deepEqual(codes(removed), ["110", "321"]);
      closeAll(romeo, juliet, nurse);
    });

    it("gives visitors of a moderated room voice on a moderator's word", async () => {
      const [romeo, juliet, nurse] = await users(ts, "romeo", "juliet", "nurse");
      const room = await createRoom(romeo, "romeo", { "muc#roomconfig_moderatedroom": "1" });
      const info = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === "muc_moderated"));
      const { self } = await join(juliet, room, "juliet");
      assert.equal(itemOf(self)!.attrs.role, "visitor");
      say(juliet, room, "may I speak?");
      assert.equal(errorCondition(await juliet.receive(errorFrom(room))), "forbidden");
      await romeo.nothing(bodyIs("may I speak?"));

      await admin(romeo, room, xml("item", { nick: "juliet", role: "participant" }, xml("reason", null, "speak")));
      const voiced = await juliet.receive((el) => presenceFrom(`${room}/juliet`)(el) && itemOf(el)?.attrs.role === "participant");
      assert.equal(itemOf(voiced)!.getChild("actor")!.attrs.nick, "romeo");
      say(juliet, room, "thank you");
      await romeo.receive(bodyIs("thank you"));
      const voices = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { role: "participant" }))));
      assert.deepEqual(voices.getChild("query")!.getChildren("item").map((i) => i.attrs.nick), ["juliet"]);

      await admin(romeo, room, xml("item", { nick: "juliet", role: "visitor" }));
      await juliet.receive((el) => presenceFrom(`${room}/juliet`)(el) && itemOf(el)?.attrs.role === "visitor");
      say(juliet, room, "silenced");
      assert.equal(errorCondition(await juliet.receive(errorFrom(room))), "forbidden");

      // Members of a moderated room enter with voice.
      await admin(romeo, room, xml("item", { jid: nurse.jid.split("/")[0], affiliation: "member" }));
      assert.equal(itemOf((await join(nurse, room, "nurse")).self)!.attrs.role, "participant");
      closeAll(romeo, juliet, nurse);
    });
  });

  describe("invitations", () => {
    it("mediates invitations (members-only: the invitee becomes a member, with the password) and declines", async () => {
      const [romeo, juliet, mercutio, nurse, benvolio] = await users(ts, "romeo", "juliet", "mercutio", "nurse", "benvolio");
      const room = await createRoom(romeo, "romeo", {
        "muc#roomconfig_membersonly": "1", "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "rosemary",
      });
      romeo.send(xml("message", { to: room }, xml("x", { xmlns: USER }, xml("invite", { to: juliet.jid.split("/")[0] }, xml("reason", null, "come to the feast")))));
      const invite = await juliet.receive((el) => el.name === "message" && el.attrs.from === room);
      const x = invite.getChild("x", USER)!;
      assert.equal(x.getChild("invite")!.attrs.from, romeo.jid);
      assert.equal(x.getChild("invite")!.getChildText("reason"), "come to the feast");
      assert.equal(x.getChildText("password"), "rosemary");
      await join(juliet, room, "juliet", xml("x", { xmlns: MUC }, xml("password", null, x.getChildText("password"))));

      romeo.send(xml("message", { to: room }, xml("x", { xmlns: USER }, xml("invite", { to: mercutio.jid.split("/")[0] }))));
      await mercutio.receive((el) => el.name === "message" && el.attrs.from === room && el.getChild("x", USER)?.getChild("invite") !== undefined);
      mercutio.send(xml("message", { to: room }, xml("x", { xmlns: USER }, xml("decline", { to: romeo.jid.split("/")[0] }, xml("reason", null, "I dreamt a dream")))));
      const decline = await romeo.receive((el) => el.name === "message" && el.getChild("x", USER)?.getChild("decline") !== undefined);
      assert.equal(decline.attrs.from, room);
      assert.equal(decline.getChild("x", USER)!.getChild("decline")!.attrs.from, mercutio.jid.split("/")[0]);
      assert.equal(decline.getChild("x", USER)!.getChild("decline")!.getChildText("reason"), "I dreamt a dream");

      // A member may not invite unless the room allows it; a non-occupant never.
      juliet.send(xml("message", { to: room }, xml("x", { xmlns: USER }, xml("invite", { to: benvolio.jid.split("/")[0] }))));
      assert.equal(errorCondition(await juliet.receive(errorFrom(room))), "forbidden");
      await submitConfig(romeo, room, { "muc#roomconfig_allowinvites": "1" });
      juliet.send(xml("message", { to: room }, xml("x", { xmlns: USER }, xml("invite", { to: benvolio.jid.split("/")[0] }))));
      await benvolio.receive((el) => el.name === "message" && el.attrs.from === room);
      nurse.send(xml("message", { to: room }, xml("x", { xmlns: USER }, xml("invite", { to: benvolio.jid.split("/")[0] }))));
      assert.equal(errorCondition(await nurse.receive(errorFrom(room))), "not-acceptable");
      romeo.send(xml("message", { to: room }, xml("x", { xmlns: USER }, xml("invite", { to: "nobody-here@localhost" }))));
      assert.equal(errorCondition(await romeo.receive(errorFrom(room))), "item-not-found");
      closeAll(romeo, juliet, mercutio, nurse, benvolio);
    });

    it("carries XEP-0249 direct invitations from client to client", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo", { "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomsecret": "nightingale" });
      romeo.send(xml("message", { to: juliet.jid.split("/")[0] }, xml("x", { xmlns: "jabber:x:conference", jid: room, password: "nightingale", reason: "it was the lark" })));
      const m = await juliet.receive((el) => el.name === "message" && el.getChild("x", "jabber:x:conference") !== undefined);
      assert.equal(m.attrs.from, romeo.jid);
      const x = m.getChild("x", "jabber:x:conference")!;
      await join(juliet, x.attrs.jid, "juliet", xml("x", { xmlns: MUC }, xml("password", null, x.attrs.password)));
      closeAll(romeo, juliet);
    });
  });

  describe("history", () => {
    it("sends history from the room timeline within maxstanzas, maxchars, seconds, since and the room's length", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo");
      for (let i = 1; i <= 5; i++) {
        say(romeo, room, `line ${i}`);
        await romeo.receive(bodyIs(`line ${i}`));
      }
      const all = await joinWithHistory(juliet, room, "juliet");
      assert.deepEqual(all.map((m) => m.getChildText("body")), ["line 1", "line 2", "line 3", "line 4", "line 5"]);
      for (const m of all) {
        assert.equal(m.attrs.from, `${room}/romeo`);
        assert.equal(m.getChild("delay", DELAY)!.attrs.from, room);
        assert.ok(Date.parse(m.getChild("delay", DELAY)!.attrs.stamp) > Date.now() - 60_000);
        assert.equal(m.getChild("stanza-id", SID)!.attrs.by, room);
      }
      await leave(juliet, room, "juliet");

      const two = await joinWithHistory(juliet, room, "juliet", { maxstanzas: "2" });
      assert.deepEqual(two.map((m) => m.getChildText("body")), ["line 4", "line 5"]);
      await leave(juliet, room, "juliet");
      assert.deepEqual(await joinWithHistory(juliet, room, "juliet", { maxchars: "0" }), []);
      await leave(juliet, room, "juliet");
      const oneLength = two[1].toString().length;
      const byChars = await joinWithHistory(juliet, room, "juliet", { maxchars: String(Math.floor(oneLength * 1.5)) });
      assert.deepEqual(byChars.map((m) => m.getChildText("body")), ["line 5"]);
      await leave(juliet, room, "juliet");

      await new Promise((r) => setTimeout(r, 2100));
      const before6 = new Date(Date.now() - 5).toISOString();
      say(romeo, room, "line 6");
      await romeo.receive(bodyIs("line 6"));
      const recent = await joinWithHistory(juliet, room, "juliet", { seconds: "2" });
      assert.deepEqual(recent.map((m) => m.getChildText("body")), ["line 6"]);
      await leave(juliet, room, "juliet");
      const since = await joinWithHistory(juliet, room, "juliet", { since: before6 });
      assert.deepEqual(since.map((m) => m.getChildText("body")), ["line 6"]);
      await leave(juliet, room, "juliet");

      await submitConfig(romeo, room, { "muc#maxhistoryfetch": "3" });
      const capped = await joinWithHistory(juliet, room, "juliet", { maxstanzas: "10" });
      assert.deepEqual(capped.map((m) => m.getChildText("body")), ["line 4", "line 5", "line 6"]);
      closeAll(romeo, juliet);
    });

    it("ends a temporary room with its last occupant; the next room of that name starts without history", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo");
      say(romeo, room, "before");
      await romeo.receive(bodyIs("before"));
      await leave(romeo, room, "romeo");
      const { self } = await join(romeo, room, "romeo");
      assert.ok(codes(self).includes("201"));
      await submitConfig(romeo, room, {});
      assert.deepEqual(await joinWithHistory(juliet, room, "juliet"), []);
      closeAll(romeo, juliet);
    });
  });

  describe("occupants", () => {
    it("changes nicknames (303), keeping the occupant-id; a taken nick is a conflict", async () => {
      const [romeo, juliet, mercutio] = await users(ts, "romeo", "juliet", "mercutio");
      const room = await createRoom(romeo, "romeo");
      const { self } = await join(juliet, room, "juliet");
      await join(mercutio, room, "mercutio");
      juliet.send(xml("presence", { to: `${room}/julia` }));
      for (const c of [romeo, juliet]) {
        const out = await c.receive(presenceFrom(`${room}/juliet`, "unavailable"));
        assert.deepEqual(codes(out), c === juliet ? ["110", "303"] : ["303"]);
        assert.equal(itemOf(out)!.attrs.nick, "julia");
        assert.equal(itemOf(out)!.attrs.role, "participant");
        const back = await c.receive(presenceFrom(`${room}/julia`));
        assert.deepEqual(codes(back), c === juliet ? ["110"] : []);
        assert.equal(occupantIdOf(back), occupantIdOf(self));
      }
      juliet.send(xml("presence", { to: `${room}/mercutio` }));
      assert.equal(errorCondition(await juliet.receive(errorFrom(`${room}/mercutio`))), "conflict");
      say(juliet, room, "a rose by any other name");
      assert.equal((await romeo.receive(bodyIs("a rose by any other name"))).attrs.from, `${room}/julia`);
      closeAll(romeo, juliet, mercutio);
    });

    it("shares one nick between the sessions of one user: presence and messages reach them all", async () => {
      const r = fresh("romeo");
      const romeoA = await onlineUser(ts, r, { resource: "a" });
      const romeoB = await onlineUser(ts, r, { resource: "b" });
      const [juliet] = await users(ts, "juliet");
      const room = await createRoom(romeoA, "romeo");
      await join(juliet, room, "juliet");
      const { self } = await join(romeoB, room, "romeo");
      assert.equal(itemOf(self)!.attrs.affiliation, "owner");
      // Juliet sees Romeo as one occupant whose presence changed, not a second one.
      await juliet.receive(presenceFrom(`${room}/romeo`));

      say(juliet, room, "two of you?");
      await Promise.all([romeoA, romeoB].map((c) => c.receive(bodyIs("two of you?"))));
      juliet.send(xml("message", { to: `${room}/romeo`, type: "chat" }, xml("body", null, "both of you")));
      await Promise.all([romeoA, romeoB].map((c) => c.receive(bodyIs("both of you"))));
      say(romeoB, room, "from b");
      assert.equal((await juliet.receive(bodyIs("from b"))).attrs.from, `${room}/romeo`);
      await romeoA.receive(bodyIs("from b"));

      // One session leaving is not the occupant leaving.
      const bye = await leave(romeoB, room, "romeo");
      assert.deepEqual(codes(bye), ["110"]);
      await juliet.nothing(presenceFrom(`${room}/romeo`, "unavailable"));
      say(juliet, room, "still there?");
      await romeoA.receive(bodyIs("still there?"));
      await romeoB.nothing(bodyIs("still there?"));
      await leave(romeoA, room, "romeo");
      await juliet.receive(presenceFrom(`${room}/romeo`, "unavailable"));
      closeAll(romeoA, romeoB, juliet);
    });

    it("answers self-pings (XEP-0410) and relays other iqs between occupants", async () => {
      const [romeo, juliet, nurse] = await users(ts, "romeo", "juliet", "nurse");
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      const ping = (c: RawClient, nick: string) => c.iq(xml("iq", { type: "get", to: `${room}/${nick}` }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      const pong = await ping(juliet, "juliet");
      assert.equal(pong.attrs.type, "result");
      assert.equal(pong.attrs.from, `${room}/juliet`);
      assert.equal(errorCondition(await ping(nurse, "juliet")), "not-acceptable");
      // §6.6: disco of an occupant JID from outside the room is a bad request.
      const disco = await nurse.iq(xml("iq", { type: "get", to: `${room}/juliet` }, xml("query", { xmlns: INFO })));
      assert.equal(errorCondition(disco), "bad-request");

      // A request to another occupant goes to that occupant, from the asker's occupant JID.
      const asked = juliet.iq(xml("iq", { type: "get", to: `${room}/romeo`, id: "v1" }, xml("query", { xmlns: "jabber:iq:version" })));
      const relayed = await romeo.receive((el) => el.name === "iq" && el.attrs.type === "get");
      assert.equal(relayed.attrs.from, `${room}/juliet`);
      assert.notEqual(relayed.attrs.id, "v1");
      romeo.send(xml("iq", { type: "result", to: relayed.attrs.from, id: relayed.attrs.id }, xml("query", { xmlns: "jabber:iq:version" }, xml("name", null, "Romeo's client"))));
      const answer = await asked;
      assert.equal(answer.attrs.type, "result");
      assert.equal(answer.attrs.from, `${room}/romeo`);
      assert.equal(answer.getChild("query")!.getChildText("name"), "Romeo's client");

      await leave(juliet, room, "juliet");
      assert.equal(errorCondition(await ping(juliet, "juliet")), "not-acceptable");
      assert.equal(errorCondition(await ping(juliet, "romeo")), "not-acceptable", "non-occupants send no iqs to occupants");
      const none = await juliet.iq(xml("iq", { type: "get", to: `${roomOf("nowhere")}/x` }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(errorCondition(none), "item-not-found");
      closeAll(romeo, juliet, nurse);
    });
  });

  describe("destroying rooms", () => {
    it("lets only owners destroy, telling occupants the reason and the alternate venue", async () => {
      const [romeo, juliet] = await users(ts, "romeo", "juliet");
      const room = await createRoom(romeo, "romeo", { "muc#roomconfig_persistentroom": "1" });
      await join(juliet, room, "juliet");
      const destroy = (c: RawClient) => c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: OWNER },
        xml("destroy", { jid: roomOf("chapel") }, xml("reason", null, "to the chapel")))));
      assert.equal(errorCondition(await destroy(juliet)), "forbidden");
      assert.equal((await destroy(romeo)).attrs.type, "result");
      for (const c of [romeo, juliet]) {
        const p = await c.receive((el) => el.name === "presence" && el.attrs.type === "unavailable" && el.getChild("x", USER)?.getChild("destroy") !== undefined);
        const d = p.getChild("x", USER)!.getChild("destroy")!;
        assert.equal(d.attrs.jid, roomOf("chapel"));
        assert.equal(d.getChildText("reason"), "to the chapel");
        assert.deepEqual([itemOf(p)!.attrs.affiliation, itemOf(p)!.attrs.role], ["none", "none"]);
      }
      const info = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      assert.equal(errorCondition(info), "item-not-found");
      const list = await juliet.iq(xml("iq", { type: "get", to: SERVICE }, xml("query", { xmlns: ITEMS })));
      assert.ok(!list.getChild("query")!.getChildren("item").some((i) => i.attrs.jid === room));
      const { self } = await join(juliet, room, "juliet");
      assert.ok(codes(self).includes("201"));
      closeAll(romeo, juliet);
    });
  });

  describe("persistence", () => {
    it("keeps persistent rooms, their affiliations, subject and the messages offline members missed across a restart", async () => {
      const r = fresh("romeo"), b = fresh("bob"), s = fresh("stranger");
      let romeo = await onlineUser(ts, r);
      let bob = await onlineUser(ts, b);
      const room = await createRoom(romeo, "romeo", { "muc#roomconfig_persistentroom": "1", "muc#roomconfig_membersonly": "1", "muc#roomconfig_roomname": "Verona" });
      await admin(romeo, room, xml("item", { jid: `${b}@localhost`, affiliation: "member" }));
      romeo.send(xml("message", { to: room, type: "groupchat" }, xml("subject", null, "Two households")));
      const { self: bobBefore } = await join(bob, room, "bob");
      bob.close();
      await romeo.receive(presenceFrom(`${room}/bob`, "unavailable"));
      const missedAt = new Date().toISOString();
      say(romeo, room, "while you were away");
      await romeo.receive(bodyIs("while you were away"));
      romeo.close();

      await ts.restart();
      romeo = await onlineUser(ts, r);
      bob = await onlineUser(ts, b);
      const stranger = await onlineUser(ts, s);
      const list = await stranger.iq(xml("iq", { type: "get", to: SERVICE }, xml("query", { xmlns: ITEMS })));
      assert.equal(list.getChild("query")!.getChildren("item").find((i) => i.attrs.jid === room)?.attrs.name, "Verona");
      assert.equal(await joinError(stranger, room, "stranger"), "registration-required");

      const missed = await joinWithHistory(bob, room, "bob", { since: missedAt });
      assert.deepEqual(missed.map((m) => m.getChildText("body")), ["while you were away"]);
      assert.equal(missed[0].getChild("delay", DELAY)!.attrs.from, room);
      const { self, subject } = await join(romeo, room, "romeo");
      assert.deepEqual([itemOf(self)!.attrs.affiliation, codes(self).includes("201")], ["owner", false]);
      assert.equal(subject.getChildText("subject"), "Two households");
      const bobNow = await romeo.receive(presenceFrom(`${room}/bob`));
      assert.equal(occupantIdOf(bobNow), occupantIdOf(bobBefore), "occupant ids survive the restart");
      const info = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      const features = info.getChild("query")!.getChildren("feature").map((f) => f.attrs.var);
      assert.ok(features.includes("muc_persistent") && features.includes("muc_membersonly"));
      closeAll(romeo, bob, stranger);
    });

    it("tells occupants when the service shuts down (332)", async () => {
      const other = await startTestServer();
      const alice = await onlineUser(other, "alice");
      await join(alice, "lounge@conference.localhost", "alice");
      await other.stop();
      const out = await alice.receive(presenceFrom("lounge@conference.localhost/alice", "unavailable"));
      assert.deepEqual(codes(out), ["110", "332"]);
      alice.close();
    });
  });
});
