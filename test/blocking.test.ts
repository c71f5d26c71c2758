// XEP-0191 Blocking Command over XMPP, as dialogues over real sockets, with the mobile adapter disabled: the
// feature belongs to the blocking module, not to the adapter.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const BLOCKING = "urn:xmpp:blocking";
const ROSTER = "jabber:iq:roster";
const INFO = "http://jabber.org/protocol/disco#info";

const items = (el: Element | undefined) => (el?.getChildren("item") ?? []).map((i) => i.attrs.jid);
const blocklist = async (c: RawClient) => items((await c.iq(xml("iq", { type: "get" }, xml("blocklist", { xmlns: BLOCKING })))).getChild("blocklist", BLOCKING));
const block = (c: RawClient, ...jids: string[]) => c.iq(xml("iq", { type: "set" }, xml("block", { xmlns: BLOCKING }, ...jids.map((jid) => xml("item", { jid })))));
const unblock = (c: RawClient, ...jids: string[]) => c.iq(xml("iq", { type: "set" }, xml("unblock", { xmlns: BLOCKING }, ...jids.map((jid) => xml("item", { jid })))));
const isPush = (name: "block" | "unblock") => (el: Element) => el.name === "iq" && el.attrs.type === "set" && el.getChild(name, BLOCKING) !== undefined;
const chat = (to: string, text: string, id = text) => xml("message", { to, type: "chat", id }, xml("body", null, text));
const body = (text: string) => (el: Element) => el.name === "message" && el.getChildText("body") === text;
const errorOf = (id: string) => (el: Element) => el.attrs.type === "error" && el.attrs.id === id;

let n = 0;
const fresh = (p: string) => `${p}${++n}${Date.now().toString(36)}`;

/** Two users subscribed to each other's presence, both online. */
async function friends(ts: TestServer, a: string, b: string): Promise<[RawClient, RawClient]> {
  const ca = await onlineUser(ts, a);
  const cb = await onlineUser(ts, b);
  for (const c of [ca, cb]) await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER })));
  const A = `${a}@localhost`, B = `${b}@localhost`;
  ca.send(xml("presence", { to: B, type: "subscribe" }));
  await cb.receive((el) => el.name === "presence" && el.attrs.type === "subscribe");
  cb.send(xml("presence", { to: A, type: "subscribed" }));
  cb.send(xml("presence", { to: A, type: "subscribe" }));
  await ca.receive((el) => el.name === "presence" && el.attrs.type === "subscribe");
  ca.send(xml("presence", { to: B, type: "subscribed" }));
  await ca.receive((el) => el.name === "presence" && el.attrs.from === cb.jid && el.attrs.type === undefined);
  await cb.receive((el) => el.name === "presence" && el.attrs.from === ca.jid && el.attrs.type === undefined);
  return [ca, cb];
}

describe("XEP-0191 blocking (mobile adapter disabled)", () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ hosts: ["localhost", "montague.example"], modules: { disabled: ["mobile"] } }); });
  after(async () => { await ts?.stop(); });

  it("announces urn:xmpp:blocking on the account and on the server (XEP-0191 §3.1)", async () => {
    const c = await onlineUser(ts, fresh("disco"));
    const info = await c.iq(xml("iq", { type: "get", to: c.jid.split("/")[0] }, xml("query", { xmlns: INFO })));
    assert.ok(info.getChild("query", INFO)!.getChildren("feature").some((f) => f.attrs.var === BLOCKING));
    const server = await c.iq(xml("iq", { type: "get", to: ts.host }, xml("query", { xmlns: INFO })));
    assert.ok(server.getChild("query", INFO)!.getChildren("feature").some((f) => f.attrs.var === BLOCKING));
    c.close();
  });

  it("blocks and unblocks: pushes to the resources that asked for the list, unavailable presence to the blocked contact (§3.3), presence again after (§3.4)", async () => {
    const j = fresh("juliet"), r = fresh("romeo");
    const [juliet, romeo] = await friends(ts, j, r);
    const R = `${r}@localhost`;
    const balcony = await onlineUser(ts, j, { resource: "balcony" });
    const quiet = await onlineUser(ts, j, { resource: "quiet" });
    assert.deepEqual(await blocklist(juliet), []);
    assert.deepEqual(await blocklist(balcony), []);

    const result = await block(juliet, R);
    assert.equal(result.attrs.type, "result");
    // §3.3: a push to every resource that requested the block list, the requesting one included.
    assert.deepEqual(items((await juliet.receive(isPush("block"))).getChild("block")), [R]);
    assert.deepEqual(items((await balcony.receive(isPush("block"))).getChild("block")), [R]);
    await quiet.nothing(isPush("block"));
    // §3.3: the blocked contact sees the user go offline, from each available resource.
    await romeo.receive((el) => el.name === "presence" && el.attrs.type === "unavailable" && el.attrs.from === juliet.jid);
    assert.deepEqual(await blocklist(balcony), [R]);
    // Blocking again changes nothing and pushes nothing.
    assert.equal((await block(juliet, R)).attrs.type, "result");
    await balcony.nothing(isPush("block"));

    assert.equal((await unblock(juliet, R)).attrs.type, "result");
    assert.deepEqual(items((await balcony.receive(isPush("unblock"))).getChild("unblock")), [R]);
    // §3.4: a contact subscribed to the user's presence gets it again.
    await romeo.receive((el) => el.name === "presence" && el.attrs.type === undefined && el.attrs.from === juliet.jid);
    assert.deepEqual(await blocklist(juliet), []);
    for (const c of [juliet, romeo, balcony, quiet]) c.close();
  });

  it("answers a blocked sender service-unavailable (§3.5) and the blocking user not-acceptable with <blocked/> (§3.6)", async () => {
    const j = fresh("juliet"), r = fresh("romeo");
    const [juliet, romeo] = await friends(ts, j, r);
    const J = `${j}@localhost`, R = `${r}@localhost`;
    await block(juliet, R);
    await romeo.receive((el) => el.name === "presence" && el.attrs.type === "unavailable");

    romeo.send(chat(J, "let me in", "in-1"));
    assert.equal(errorCondition(await romeo.receive(errorOf("in-1"))), "service-unavailable");
    const ping = await romeo.iq(xml("iq", { type: "get", to: juliet.jid }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(errorCondition(ping), "service-unavailable");
    // Presence from the blocked entity is dropped without an error.
    romeo.send(xml("presence", { to: J, type: "probe" }));
    romeo.send(xml("presence", { to: juliet.jid }, xml("status", null, "directed")));
    await romeo.nothing((el) => el.name === "presence" && el.attrs.type === "error");
    await juliet.nothing((el) => el.attrs.from?.startsWith(R) === true && (el.name === "message" || el.getChildText("status") === "directed"));

    juliet.send(chat(R, "not you", "out-1"));
    const refused = await juliet.receive(errorOf("out-1"));
    assert.equal(errorCondition(refused), "not-acceptable");
    assert.ok(refused.getChild("error")!.getChild("blocked", "urn:xmpp:blocking:errors"), "§3.6: the <blocked/> application error");
    const out = await juliet.iq(xml("iq", { type: "get", to: romeo.jid }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(errorCondition(out), "not-acceptable");
    await romeo.nothing(body("not you"));

    await unblock(juliet, R);
    romeo.send(chat(J, "again"));
    await juliet.receive(body("again"));
    juliet.close(); romeo.close();
  });

  it("blocks a whole domain (§5) and unblocks everything at once with an empty unblock (§3.4)", async () => {
    const j = fresh("juliet"), m = fresh("mercutio"), local = fresh("nurse");
    if (!(await ts.accounts.exists("montague.example", m))) await ts.accounts.create("montague.example", m, "password");
    const juliet = await onlineUser(ts, j);
    const nurse = await onlineUser(ts, local);
    const mercutio = await RawClient.connect(ts);
    await mercutio.open("montague.example");
    await mercutio.authenticate(m, "password");
    await mercutio.open("montague.example");
    await mercutio.bind("street");
    await blocklist(juliet);
    await block(juliet, "montague.example", `${local}@localhost/elsewhere`);
    await juliet.receive(isPush("block"));

    mercutio.send(chat(`${j}@localhost`, "a plague", "dom-1"));
    assert.equal(errorCondition(await mercutio.receive(errorOf("dom-1"))), "service-unavailable");
    // A full-JID item blocks only that resource; the nurse's other resources still get through.
    nurse.send(chat(`${j}@localhost`, "from the nurse"));
    await juliet.receive(body("from the nurse"));

    const all = await juliet.iq(xml("iq", { type: "set" }, xml("unblock", { xmlns: BLOCKING })));
    assert.equal(all.attrs.type, "result");
    const push = await juliet.receive(isPush("unblock"));
    assert.deepEqual(items(push.getChild("unblock")), [], "§3.4: the push of an unblock-all carries no items");
    assert.deepEqual(await blocklist(juliet), []);
    mercutio.send(chat(`${j}@localhost`, "peace"));
    await juliet.receive(body("peace"));
    juliet.close(); nurse.close(); mercutio.close();
  });

  it("sends the unavailable presence of §3.3 only to a blocked entity that saw the user's presence", async () => {
    const j = fresh("juliet"), st = fresh("stranger");
    const juliet = await onlineUser(ts, j);
    const stranger = await onlineUser(ts, st);
    await blocklist(juliet);
    await block(juliet, `${st}@localhost`);
    await juliet.receive(isPush("block"));
    await stranger.nothing((el) => el.name === "presence" && el.attrs.from?.startsWith(`${j}@localhost`) === true);
    juliet.close(); stranger.close();
  });

  it("refuses a block without items (bad-request) and an item that is no JID (jid-malformed)", async () => {
    const c = await onlineUser(ts, fresh("picky"));
    assert.equal(errorCondition(await c.iq(xml("iq", { type: "set" }, xml("block", { xmlns: BLOCKING })))), "bad-request");
    assert.equal(errorCondition(await block(c, "@@bad")), "jid-malformed");
    assert.deepEqual(await blocklist(c), []);
    c.close();
  });
});
