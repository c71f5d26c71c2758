// XEP-0045 voice requests (§7.13, §8.6), nick registration (§7.10, §7.12) and rooms without logging
// (muc#roomconfig_enablelogging, §10.2.1) over real sockets.
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
const REGISTER = "jabber:iq:register";
const REQUEST = "http://jabber.org/protocol/muc#request";
const MAM = "urn:xmpp:mam:2";
const SID = "urn:xmpp:sid:0";
const DELAY = "urn:xmpp:delay";
const SERVICE = "conference.localhost";

let n = 0;
const fresh = (p: string) => `${p}${++n}`;
const roomOf = (name: string) => `${name}@${SERVICE}`;
const bareOf = (c: RawClient) => c.jid.split("/")[0];
const codes = (el: Element) => (el.getChild("x", USER)?.getChildren("status") ?? []).map((s) => s.attrs.code as string).sort();
const itemOf = (el: Element) => el.getChild("x", USER)?.getChild("item");
const presenceFrom = (from: string, type?: string) => (el: Element) => el.name === "presence" && el.attrs.from === from && el.attrs.type === type;
const bodyIs = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;
const errorFrom = (from: string) => (el: Element) => el.attrs.type === "error" && el.attrs.from === from;
const say = (c: RawClient, room: string, body: string) => c.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, body)));
const closeAll = (...cs: RawClient[]) => { for (const c of cs) c.close(); };

/** The values of a data form by field var. */
function fieldsOf(x: Element): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of x.getChildren("field")) out[f.attrs.var as string] = f.getChildren("value").map((v) => v.getText());
  return out;
}

function form(type: string, formType: string, fields: Record<string, string>): Element {
  return xml("x", { xmlns: DATA, type },
    xml("field", { var: "FORM_TYPE" }, xml("value", null, formType)),
    ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, xml("value", null, v))));
}

async function join(c: RawClient, room: string, nick: string, history: Element[] = []): Promise<Element> {
  c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
  const self = await c.receive((el) => el.name === "presence" && el.attrs.from?.startsWith(`${room}/`) && (el.attrs.type === "error" || codes(el).includes("110")));
  if (self.attrs.type === "error") throw Object.assign(new Error(`join failed: ${self.toString()}`), { stanza: self });
  // History (collected into `history`), then the subject.
  for (;;) {
    const m = await c.receive((el) => el.name === "message" && el.attrs.from?.startsWith(room) === true);
    if (m.getChild("subject") && !m.getChild("body")) return self;
    history.push(m);
  }
}

async function joinError(c: RawClient, room: string, nick: string): Promise<string | undefined> {
  c.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
  return errorCondition(await c.receive((e) => e.name === "presence" && e.attrs.from === `${room}/${nick}` && e.attrs.type === "error"));
}

async function configure(owner: RawClient, room: string, fields: Record<string, string>): Promise<void> {
  const res = await owner.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: OWNER }, form("submit", "http://jabber.org/protocol/muc#roomconfig", fields))));
  assert.equal(res.attrs.type, "result", res.toString());
}

async function createRoom(owner: RawClient, nick: string, fields: Record<string, string> = {}): Promise<string> {
  const room = roomOf(fresh("room"));
  await join(owner, room, nick);
  await configure(owner, room, fields);
  return room;
}

const register = (c: RawClient, room: string, nick: string) =>
  c.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: REGISTER }, form("submit", "http://jabber.org/protocol/muc#register", { "muc#register_roomnick": nick }))));

const reservedNick = async (c: RawClient, room: string) => {
  const r = await c.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO, node: "x-roomuser-item" })));
  assert.equal(r.attrs.type, "result", r.toString());
  assert.equal(r.getChild("query", INFO)!.attrs.node, "x-roomuser-item");
  const identity = r.getChild("query", INFO)!.getChild("identity");
  if (identity) assert.deepEqual([identity.attrs.category, identity.attrs.type], ["conference", "text"]);
  return identity?.attrs.name;
};

const isVoiceRequest = (room: string) => (el: Element) => el.name === "message" && el.attrs.from === room && el.getChild("x", DATA) !== undefined;

describe("XEP-0045 voice requests, nick registration and logging", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  describe("XEP-0045 §7.13, §8.6 voice requests", () => {
    it("forwards a visitor's request to the moderators, and a moderator's approval grants voice", async () => {
      const [romeo, juliet, nurse] = await Promise.all(["romeo", "juliet", "nurse"].map((u) => onlineUser(ts, fresh(u))));
      const room = await createRoom(romeo, "romeo", { "muc#roomconfig_moderatedroom": "1" });
      const info = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === REQUEST));
      assert.equal(itemOf(await join(juliet, room, "juliet"))!.attrs.role, "visitor");
      await join(nurse, room, "nurse");
      await romeo.receive(presenceFrom(`${room}/nurse`));

      // Juliet asks for voice.
      juliet.send(xml("message", { to: room }, form("submit", REQUEST, { "muc#role": "participant" })));
      const forwarded = await romeo.receive(isVoiceRequest(room));
      const x = forwarded.getChild("x", DATA)!;
      assert.equal(x.attrs.type, "form");
      const f = fieldsOf(x);
      assert.deepEqual(f.FORM_TYPE, [REQUEST]);
      assert.deepEqual(f["muc#role"], ["participant"]);
      assert.deepEqual(f["muc#roomnick"], ["juliet"]);
      assert.deepEqual(f["muc#jid"], [juliet.jid], "a semi-anonymous room shows moderators the real JID");
      assert.deepEqual(f["muc#request_allow"], ["false"]);
      // Only moderators get it; a repeat while pending is not forwarded again.
      await nurse.nothing(isVoiceRequest(room));
      juliet.send(xml("message", { to: room }, form("submit", REQUEST, { "muc#role": "participant" })));
      await romeo.nothing(isVoiceRequest(room));

      // A visitor cannot approve requests.
      nurse.send(xml("message", { to: room }, form("submit", REQUEST, { "muc#role": "participant", "muc#roomnick": "nurse", "muc#request_allow": "true" })));
      assert.equal(errorCondition(await nurse.receive(errorFrom(room))), "forbidden");

      // Romeo approves: Juliet becomes a participant, everybody sees it, and she may speak.
      romeo.send(xml("message", { to: room }, form("submit", REQUEST, {
        "muc#role": "participant", "muc#jid": juliet.jid, "muc#roomnick": "juliet", "muc#request_allow": "true",
      })));
      const voiced = await juliet.receive((el) => presenceFrom(`${room}/juliet`)(el) && itemOf(el)?.attrs.role === "participant");
      assert.equal(itemOf(voiced)!.getChild("actor")?.attrs.nick, "romeo");
      await nurse.receive((el) => presenceFrom(`${room}/juliet`)(el) && itemOf(el)?.attrs.role === "participant");
      juliet.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "thank you")));
      await romeo.receive(bodyIs("thank you"));

      // A denial leaves the visitor as she is.
      nurse.send(xml("message", { to: room }, form("submit", REQUEST, { "muc#role": "participant" })));
      await romeo.receive((el) => isVoiceRequest(room)(el) && fieldsOf(el.getChild("x", DATA)!)["muc#roomnick"]?.[0] === "nurse");
      romeo.send(xml("message", { to: room }, form("submit", REQUEST, { "muc#roomnick": "nurse", "muc#request_allow": "false" })));
      await nurse.nothing((el) => presenceFrom(`${room}/nurse`)(el) && itemOf(el)?.attrs.role === "participant");
      nurse.send(xml("message", { to: room, type: "groupchat" }, xml("body", null, "still silent")));
      assert.equal(errorCondition(await nurse.receive(errorFrom(room))), "forbidden");
      closeAll(romeo, juliet, nurse);
    });

    it("refuses requests in rooms that are not moderated, and from non-occupants", async () => {
      const [romeo, juliet, stranger] = await Promise.all(["romeo", "juliet", "stranger"].map((u) => onlineUser(ts, fresh(u))));
      const room = await createRoom(romeo, "romeo");
      await join(juliet, room, "juliet");
      juliet.send(xml("message", { to: room }, form("submit", REQUEST, { "muc#role": "participant" })));
      assert.equal(errorCondition(await juliet.receive(errorFrom(room))), "not-allowed");
      await romeo.nothing(isVoiceRequest(room));
      stranger.send(xml("message", { to: room }, form("submit", REQUEST, { "muc#role": "participant" })));
      assert.equal(errorCondition(await stranger.receive(errorFrom(room))), "not-acceptable");
      closeAll(romeo, juliet, stranger);
    });
  });

  describe("XEP-0045 §7.10, §7.12 registering a nick", () => {
    it("gives the form, registers the nick, answers x-roomuser-item, and keeps others off the nick", async () => {
      const [romeo, juliet, tybalt] = await Promise.all(["romeo", "juliet", "tybalt"].map((u) => onlineUser(ts, fresh(u))));
      const room = await createRoom(romeo, "romeo");
      const info = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === REGISTER));

      const get = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: REGISTER })));
      const x = get.getChild("query", REGISTER)!.getChild("x", DATA)!;
      assert.equal(x.attrs.type, "form");
      assert.deepEqual(fieldsOf(x).FORM_TYPE, ["http://jabber.org/protocol/muc#register"]);
      assert.ok("muc#register_roomnick" in fieldsOf(x));
      assert.equal(await reservedNick(juliet, room), undefined, "no registration yet: an empty query");

      assert.equal((await register(juliet, room, "Juliet")).attrs.type, "result");
      assert.equal(await reservedNick(juliet, room), "Juliet");
      const again = await juliet.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: REGISTER })));
      assert.ok(again.getChild("query", REGISTER)!.getChild("registered"));
      assert.equal(again.getChild("query", REGISTER)!.getChildText("username"), "Juliet");

      // Someone else may neither register nor enter with it, nor change to it.
      assert.equal(errorCondition(await register(tybalt, room, "Juliet")), "conflict");
      assert.equal(await joinError(tybalt, room, "Juliet"), "conflict");
      await join(tybalt, room, "tybalt");
      tybalt.send(xml("presence", { to: `${room}/Juliet` }));
      assert.equal(errorCondition(await tybalt.receive(errorFrom(`${room}/Juliet`))), "conflict");
      // A nick worn by someone in the room now is taken as well.
      assert.equal(errorCondition(await register(juliet, room, "tybalt")), "conflict");
      assert.equal(errorCondition(await register(juliet, room, "")), "not-acceptable");
      // Its owner enters with it.
      assert.equal(itemOf(await join(juliet, room, "Juliet"))!.attrs.role, "participant");

      // Cancelling the registration frees the nick.
      const removed = await juliet.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: REGISTER }, xml("remove"))));
      assert.equal(removed.attrs.type, "result");
      assert.equal(await reservedNick(juliet, room), undefined);
      closeAll(romeo, juliet, tybalt);
    });

    it("registers only members in a members-only room, not outcasts; a ban drops the nick; persistent rooms keep it across a restart", async () => {
      const r = fresh("romeo"), j = fresh("juliet"), t = fresh("tybalt");
      let romeo = await onlineUser(ts, r);
      let juliet = await onlineUser(ts, j);
      const tybalt = await onlineUser(ts, t);
      const room = await createRoom(romeo, "romeo", { "muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1" });
      assert.equal(errorCondition(await register(juliet, room, "jules")), "registration-required");
      await romeo.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { jid: bareOf(juliet), affiliation: "member" }))));
      await romeo.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { jid: bareOf(tybalt), affiliation: "member" }))));
      assert.equal((await register(juliet, room, "jules")).attrs.type, "result");
      assert.equal((await register(tybalt, room, "cat")).attrs.type, "result");
      // The member list shows the registered nick (§9.5).
      const members = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { affiliation: "member" }))));
      const items = members.getChild("query")!.getChildren("item");
      assert.equal(items.find((i) => i.attrs.jid === bareOf(juliet))?.attrs.nick, "jules");

      // A ban ends Tybalt's reservation, and an outcast may not register.
      await romeo.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: ADMIN }, xml("item", { jid: bareOf(tybalt), affiliation: "outcast" }))));
      assert.equal(errorCondition(await register(tybalt, room, "cat")), "forbidden");
      romeo.close();
      juliet.close();

      await ts.restart();
      romeo = await onlineUser(ts, r);
      juliet = await onlineUser(ts, j);
      assert.equal(await reservedNick(juliet, room), "jules");
      assert.equal(await reservedNick(romeo, room), undefined);
      // The owner (a member of any room) cannot take the member's nick, but may take the banned one's.
      assert.equal(await joinError(romeo, room, "jules"), "conflict");
      await join(romeo, room, "cat");
      closeAll(romeo, juliet, tybalt);
    });
  });

  describe("XEP-0045 §10.2.1 muc#roomconfig_enablelogging", () => {
    it("keeps nothing of an unlogged room: no 170, no stanza-id, no archive; history from memory; 171/170 on the change", async () => {
      const [romeo, juliet, nurse] = await Promise.all(["romeo", "juliet", "nurse"].map((u) => onlineUser(ts, fresh(u))));
      const room = await createRoom(romeo, "romeo");
      const formReply = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: OWNER })));
      assert.deepEqual(fieldsOf(formReply.getChild("query", OWNER)!.getChild("x", DATA)!)["muc#roomconfig_enablelogging"], ["1"], "logged by default");
      say(romeo, room, "on the record");
      await romeo.receive(bodyIs("on the record"));

      await configure(romeo, room, { "muc#roomconfig_enablelogging": "0" });
      const change = await romeo.receive((el) => el.name === "message" && el.attrs.from === room && codes(el).length > 0);
      assert.deepEqual(codes(change), ["104", "171"]);
      const info = await romeo.iq(xml("iq", { type: "get", to: room }, xml("query", { xmlns: INFO })));
      assert.ok(!info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === MAM));

      const self = await join(juliet, room, "juliet");
      assert.ok(!codes(self).includes("170"), self.toString());
      say(romeo, room, "off the record");
      const live = await juliet.receive(bodyIs("off the record"));
      assert.equal(live.getChildren("stanza-id", SID).find((s) => s.attrs.by === room), undefined);

      // A newcomer gets history from the room's memory (not the earlier, logged message: that is on disk).
      const history: Element[] = [];
      await join(nurse, room, "nurse", history);
      assert.deepEqual(history.map((m) => m.getChildText("body")), ["off the record"]);
      assert.equal(history[0].getChild("delay", DELAY)?.attrs.from, room);
      const mam = await juliet.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: MAM, queryid: "q1" })));
      assert.equal(errorCondition(mam), "service-unavailable");

      // Logging on again (170): the archive holds the logged message and nothing of the unlogged one.
      await configure(romeo, room, { "muc#roomconfig_enablelogging": "1" });
      const back = await juliet.receive((el) => el.name === "message" && el.attrs.from === room && codes(el).includes("170"));
      assert.deepEqual(codes(back), ["104", "170"]);
      juliet.send(xml("iq", { type: "set", to: room, id: "mam2" }, xml("query", { xmlns: MAM, queryid: "q2" })));
      const bodies: string[] = [];
      for (;;) {
        const el = await juliet.receive((e) => (e.name === "message" && e.getChild("result", MAM)?.attrs.queryid === "q2") || (e.name === "iq" && e.attrs.id === "mam2"));
        if (el.name === "iq") { assert.equal(el.attrs.type, "result", el.toString()); break; }
        const fwd = el.getChild("result", MAM)!.getChild("forwarded", "urn:xmpp:forward:0")!;
        bodies.push(fwd.getChild("message")!.getChildText("body")!);
      }
      assert.deepEqual(bodies, ["on the record"]);
      closeAll(romeo, juliet, nurse);
    });
  });
});
