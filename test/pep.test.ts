// XEP-0163 PEP on the XEP-0060 subset, and XEP-0115 clients' caps feeding +notify, as dialogues over real
// sockets: OMEMO-style devicelists with publish-options, preconditions, last-item delivery on initial
// presence, access models, and the caps hash cache. HEARTH_TEST_STORE=postgres runs it on PostgreSQL.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { errorCondition } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import {
  PUBSUB, OWNER, EVENT, INFO, CAPS, ROSTER, DEVICELIST, OMEMO2, fresh, publishOptions, publish, getItems, configure, itemIds, devicelist, appError, eventFor, anyEvent, type Caps, capsOf, login, online, friends, until,
} from "./helpers/pep.js";

describe("XEP-0163 PEP and XEP-0115 client caps", () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(async () => { await ts?.stop(); });

  it("announces the account as a PEP service with publish-options (what Conversations checks before OMEMO)", async () => {
    const c = await login(ts, fresh("disco"));
    const info = (await c.iq(xml("iq", { type: "get", to: c.jid.split("/")[0] }, xml("query", { xmlns: INFO })))).getChild("query", INFO)!;
    assert.ok(info.getChildren("identity").some((i) => i.attrs.category === "pubsub" && i.attrs.type === "pep"));
    const features = info.getChildren("feature").map((f) => f.attrs.var);
    for (const f of ["", "#publish", "#publish-options", "#access-open", "#access-whitelist", "#auto-create", "#auto-subscribe", "#last-published", "#filtered-notifications", "#modify-affiliations", "#member-affiliation"]) {
      assert.ok(features.includes(PUBSUB + f), `missing ${PUBSUB}${f}`);
    }
    c.close();
  });

  it("OMEMO devicelist with publish-options reaches the contact's resources with +notify, and only them", async () => {
    const a = fresh("alice"), b = fresh("bob"), s = fresh("stranger");
    const alice = await login(ts, a), bob = await login(ts, b), plain = await login(ts, b, "plain");
    const stranger = await login(ts, s);
    await friends(alice, bob);
    const omemoCaps = capsOf([INFO, CAPS, `${DEVICELIST}+notify`, `${OMEMO2}:devices+notify`]);
    await online(alice, omemoCaps);
    await online(bob, omemoCaps);
    await online(plain, capsOf([INFO, CAPS]));
    await online(stranger, omemoCaps);
    const A = `${a}@localhost`;
    // Bob's and Alice's clients answer one disco#info question at most: the features are cached by hash.
    await until(() => omemoCaps.queries >= 1, "the server to ask about the caps hash");

    const res = await publish(alice, DEVICELIST, "current", devicelist(1234, 5678), publishOptions({ "pubsub#access_model": "open" }));
    assert.equal(res.attrs.type, "result", res.toString());
    assert.equal(res.getChild("pubsub", PUBSUB)!.getChild("publish")!.getChild("item")!.attrs.id, "current");

    const ev = await bob.receive(eventFor(A, DEVICELIST), 10_000);
    assert.equal(ev.attrs.type, "headline");
    const item = ev.getChild("event", EVENT)!.getChild("items")!.getChild("item")!;
    assert.equal(item.attrs.id, "current");
    assert.deepEqual(item.getChild("list", "eu.siacs.conversations.axolotl")!.getChildren("device").map((d) => d.attrs.id), ["1234", "5678"]);
    // The owner's own resource is subscribed to itself.
    await alice.receive(eventFor(A, DEVICELIST), 10_000);
    // No +notify, no notification; no presence subscription, no notification.
    await plain.nothing(anyEvent, 500);
    await stranger.nothing(anyEvent, 500);
    assert.equal(omemoCaps.queries, 1, "one disco#info question for a hash shared by four sessions");

    // access_model=open: anyone may read the bundle list, a stranger included.
    const read = await getItems(stranger, A, DEVICELIST);
    assert.equal(read.attrs.type, "result", read.toString());
    assert.deepEqual(itemIds(read), ["current"]);

    // OMEMO 2 bundles: one node per device, item id "current" replaced in place.
    const bundle = `${OMEMO2}:bundles`;
    for (const key of ["k1", "k2"]) {
      const r = await publish(alice, bundle, "1234", xml("bundle", { xmlns: OMEMO2 }, xml("spk", { id: "1" }, key)),
        publishOptions({ "pubsub#access_model": "open", "pubsub#max_items": "max" }));
      assert.equal(r.attrs.type, "result", r.toString());
    }
    const bundles = await getItems(bob, A, bundle);
    assert.deepEqual(itemIds(bundles), ["1234"]);
    assert.equal(bundles.getChild("pubsub")!.getChild("items")!.getChild("item")!.getChild("bundle")!.getChildText("spk"), "k2");
    for (const c of [alice, bob, plain, stranger]) c.close();
  });

  it("refuses a publish whose options do not match the node (precondition-not-met) until the owner reconfigures it", async () => {
    const a = fresh("alice");
    const alice = await login(ts, a);
    await online(alice, null);
    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(1))).attrs.type, "result");
    // The node was auto-created with the default access model (presence); asking for open is a precondition.
    const refused = await publish(alice, DEVICELIST, "current", devicelist(1, 2), publishOptions({ "pubsub#access_model": "open" }));
    assert.equal(refused.attrs.type, "error");
    assert.equal(errorCondition(refused), "conflict");
    assert.equal(appError(refused), "precondition-not-met");
    assert.deepEqual(itemIds(await getItems(alice, `${a}@localhost`, DEVICELIST)), ["current"]);
    const unchanged = await getItems(alice, `${a}@localhost`, DEVICELIST);
    assert.equal(unchanged.getChild("pubsub")!.getChild("items")!.getChild("item")!.getChild("list")!.getChildren("device").length, 1);

    // What Conversations does next: configure the node, then publish again.
    const conf = await alice.iq(xml("iq", { type: "get" }, xml("pubsub", { xmlns: OWNER }, xml("configure", { node: DEVICELIST }))));
    const accessField = conf.getChild("pubsub", OWNER)!.getChild("configure")!.getChild("x")!.getChildren("field").find((f) => f.attrs.var === "pubsub#access_model")!;
    assert.equal(accessField.getChildText("value"), "presence");
    assert.equal((await configure(alice, DEVICELIST, { "pubsub#access_model": "open" })).attrs.type, "result");
    const again = await publish(alice, DEVICELIST, "current", devicelist(1, 2), publishOptions({ "pubsub#access_model": "open" }));
    assert.equal(again.attrs.type, "result", again.toString());
    // Options the node has as fixed values match on every publish (a client sending them each time).
    const fixed = publishOptions({ "pubsub#access_model": "open", "pubsub#deliver_payloads": "1", "pubsub#persist_items": "1" });
    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(1, 2), fixed)).attrs.type, "result");
    assert.equal((await publish(alice, DEVICELIST, "current", devicelist(1, 2), fixed)).attrs.type, "result");
    // An option the server does not know is refused rather than ignored.
    const unknown = await publish(alice, DEVICELIST, "current", devicelist(1), publishOptions({ "pubsub#frobnicate": "1" }));
    assert.equal(appError(unknown), "precondition-not-met");
    alice.close();
  });

  it("delivers the last published item when a contact comes online (initial presence with caps)", async () => {
    const a = fresh("alice"), b = fresh("bob");
    const alice = await login(ts, a), bob = await login(ts, b);
    await friends(alice, bob);
    await online(alice, null);
    const node = "urn:xmpp:avatar:metadata";
    assert.equal((await publish(alice, node, "abc", xml("metadata", { xmlns: node }, xml("info", { id: "abc", bytes: "10", type: "image/png" })))).attrs.type, "result");
    bob.close();

    // Bob comes back with a client (and caps hash) the server has never seen.
    const phone = await login(ts, b, "phone");
    const caps = capsOf([INFO, CAPS, `${node}+notify`, "urn:example:fresh:" + fresh("f")]);
    await online(phone, caps);
    const ev = await phone.receive(eventFor(`${a}@localhost`, node), 10_000);
    assert.equal(ev.getChild("event")!.getChild("items")!.getChild("item")!.attrs.id, "abc");
    assert.equal(caps.queries, 1);

    // A second resource with the hash now cached gets the last item without being asked anything.
    const tablet = await login(ts, b, "tablet");
    const again: Caps = { ...caps, queries: 0 };
    await online(tablet, again);
    await tablet.receive(eventFor(`${a}@localhost`, node), 10_000);
    assert.equal(again.queries, 0, "a known hash is not asked again");
    for (const c of [alice, phone, tablet]) c.close();
  });

  it("does not cache a caps hash that does not match the client's disco#info (XEP-0115 §5.4)", async () => {
    const u = fresh("liar");
    const caps = capsOf([INFO, CAPS, "urn:example:" + fresh("x")]);
    const first = await login(ts, u, "one");
    await online(first, caps, { lie: true });
    await until(() => caps.queries === 1, "the first question");
    const second = await login(ts, u, "two");
    await online(second, caps, { lie: true });
    await until(() => caps.queries === 2, "a second question: the unverified hash was not cached");
    first.close(); second.close();
  });

  it("enforces the access models: presence, roster groups and whitelist refuse strangers with the XEP-0060 errors", async () => {
    const a = fresh("alice"), b = fresh("bob"), s = fresh("stranger");
    const alice = await login(ts, a), bob = await login(ts, b), stranger = await login(ts, s);
    await friends(alice, bob);
    const A = `${a}@localhost`;
    await publish(alice, "presence-node", "1", xml("x", { xmlns: "urn:example" }));
    await publish(alice, "roster-node", "1", xml("x", { xmlns: "urn:example" }), publishOptions({ "pubsub#access_model": "roster", "pubsub#roster_groups_allowed": "Family" }));
    await publish(alice, "private-node", "1", xml("x", { xmlns: "urn:example" }), publishOptions({ "pubsub#access_model": "whitelist", "pubsub#persist_items": "true" }));

    let r = await getItems(stranger, A, "presence-node");
    assert.equal(errorCondition(r), "not-authorized");
    assert.equal(appError(r), "presence-subscription-required");
    assert.deepEqual(itemIds(await getItems(bob, A, "presence-node")), ["1"]);

    r = await getItems(bob, A, "roster-node");
    assert.equal(errorCondition(r), "not-authorized");
    assert.equal(appError(r), "not-in-roster-group");
    await alice.iq(xml("iq", { type: "set" }, xml("query", { xmlns: ROSTER }, xml("item", { jid: `${b}@localhost` }, xml("group", null, "Family")))));
    assert.deepEqual(itemIds(await getItems(bob, A, "roster-node")), ["1"]);
    assert.equal(errorCondition(await getItems(stranger, A, "roster-node")), "not-authorized");

    // XEP-0223: whitelist nodes are the owner's alone.
    r = await getItems(bob, A, "private-node");
    assert.equal(errorCondition(r), "not-allowed");
    assert.equal(appError(r), "closed-node");
    assert.deepEqual(itemIds(await getItems(alice, A, "private-node")), ["1"]);
    // Only the owner publishes or manages.
    r = await bob.iq(xml("iq", { type: "set", to: A }, xml("pubsub", { xmlns: PUBSUB }, xml("publish", { node: "presence-node" }, xml("item", null, xml("x", { xmlns: "urn:example" }))))));
    assert.equal(errorCondition(r), "forbidden");
    r = await bob.iq(xml("iq", { type: "set", to: A }, xml("pubsub", { xmlns: OWNER }, xml("delete", { node: "presence-node" }))));
    assert.equal(errorCondition(r), "forbidden");
    for (const c of [alice, bob, stranger]) c.close();
  });

  it("keeps max_items, answers items by id and max_items, retracts with notification, purges and deletes", async () => {
    const a = fresh("alice");
    const alice = await login(ts, a);
    const node = "urn:xmpp:bookmarks:1";
    const caps = capsOf([INFO, CAPS, `${node}+notify`]);
    await online(alice, caps);
    await until(() => caps.queries === 1, "the caps question");
    const A = `${a}@localhost`;
    const opts = publishOptions({ "pubsub#access_model": "whitelist", "pubsub#max_items": "3", "pubsub#send_last_published_item": "never" });
    for (const room of ["r1", "r2", "r3", "r4"]) {
      assert.equal((await publish(alice, node, `${room}@conference.localhost`, xml("conference", { xmlns: node, autojoin: "true" }), opts)).attrs.type, "result");
      await alice.receive(eventFor(A, node), 10_000);
    }
    // max_items 3: the oldest went; newest first.
    assert.deepEqual(itemIds(await getItems(alice, A, node)), ["r4@conference.localhost", "r3@conference.localhost", "r2@conference.localhost"]);
    assert.deepEqual(itemIds(await getItems(alice, A, node, { max_items: "1" })), ["r4@conference.localhost"]);
    assert.deepEqual(itemIds(await getItems(alice, A, node, {}, ["r2@conference.localhost", "nope"])), ["r2@conference.localhost"]);
    // Republishing an id replaces it and makes it the newest.
    await publish(alice, node, "r2@conference.localhost", xml("conference", { xmlns: node, autojoin: "false" }), opts);
    await alice.receive(eventFor(A, node), 10_000);
    assert.deepEqual(itemIds(await getItems(alice, A, node)), ["r2@conference.localhost", "r4@conference.localhost", "r3@conference.localhost"]);

    const retract = await alice.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: PUBSUB }, xml("retract", { node, notify: "true" }, xml("item", { id: "r3@conference.localhost" })))));
    assert.equal(retract.attrs.type, "result");
    const ev = await alice.receive(eventFor(A, node), 10_000);
    assert.equal(ev.getChild("event")!.getChild("items")!.getChild("retract")!.attrs.id, "r3@conference.localhost");
    assert.equal(errorCondition(await alice.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: PUBSUB }, xml("retract", { node }, xml("item", { id: "r3@conference.localhost" })))))), "item-not-found");

    assert.equal((await alice.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: OWNER }, xml("purge", { node }))))).attrs.type, "result");
    assert.deepEqual(itemIds(await getItems(alice, A, node)), []);
    assert.equal((await alice.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: OWNER }, xml("delete", { node }))))).attrs.type, "result");
    assert.equal(errorCondition(await getItems(alice, A, node)), "item-not-found");
    // Bad input gets the standard errors, and the session goes on.
    assert.equal(appError(await alice.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: PUBSUB }, xml("publish", { node }, xml("item")))))), "payload-required");
    assert.equal(appError(await alice.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: PUBSUB }, xml("publish", null, xml("item", null, xml("x", { xmlns: "urn:e" }))))))), "nodeid-required");
    assert.equal(errorCondition(await configure(alice, "n", { "pubsub#max_items": "99999" })), "item-not-found");
    assert.equal((await publish(alice, "n", null, xml("x", { xmlns: "urn:e" }))).attrs.type, "result");
    assert.equal(errorCondition(await configure(alice, "n", { "pubsub#max_items": "99999" })), "not-acceptable");
    alice.close();
  });

  it("follows notify_retract and send_last_published_item of the node configuration (XEP-0060 §16.4)", async () => {
    const a = fresh("alice"), b = fresh("bob");
    const alice = await login(ts, a), bob = await login(ts, b);
    await friends(alice, bob);
    const A = `${a}@localhost`;
    const [retracting, quiet, loud] = ["urn:example:retracting", "urn:example:quiet", "urn:example:loud"];
    const caps = capsOf([INFO, CAPS, ...[retracting, quiet, loud].map((n) => `${n}+notify`)]);
    await online(alice, null);
    await online(bob, caps);
    await until(() => caps.queries === 1, "the caps question");
    for (const id of ["1", "2"]) {
      assert.equal((await publish(alice, retracting, id, xml("x", { xmlns: "urn:example" }, id), publishOptions({ "pubsub#max_items": "5" }))).attrs.type, "result");
      await bob.receive(eventFor(A, retracting), 10_000);
    }
    const retract = (id: string) => alice.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: PUBSUB }, xml("retract", { node: retracting }, xml("item", { id })))));
    const isRetract = (el: Element) => eventFor(A, retracting)(el) && el.getChild("event", EVENT)!.getChild("items")!.getChild("retract") !== undefined;
    // notify_retract off: the item goes silently.
    assert.equal((await configure(alice, retracting, { "pubsub#notify_retract": "0" })).attrs.type, "result");
    assert.equal((await retract("1")).attrs.type, "result");
    await bob.nothing(isRetract, 500);
    // notify_retract on (the default): subscribers hear of it without notify='true' on the request.
    assert.equal((await configure(alice, retracting, { "pubsub#notify_retract": "1" })).attrs.type, "result");
    assert.equal((await retract("2")).attrs.type, "result");
    assert.equal((await bob.receive(isRetract, 10_000)).getChild("event", EVENT)!.getChild("items")!.getChild("retract")!.attrs.id, "2");

    // send_last_published_item never: a resource coming online gets the last item of the other node only.
    await publish(alice, quiet, "q", xml("x", { xmlns: "urn:example" }), publishOptions({ "pubsub#send_last_published_item": "never" }));
    await publish(alice, loud, "l", xml("x", { xmlns: "urn:example" }));
    const phone = await login(ts, b, "phone");
    await online(phone, { ...caps, queries: 0 });
    await phone.receive(eventFor(A, loud), 10_000);
    await phone.nothing(eventFor(A, quiet), 500);
    for (const c of [alice, bob, phone]) c.close();
  });

  it("lets the owner name members of a whitelist node and outcasts (XEP-0060 §8.9 affiliations)", async () => {
    const a = fresh("alice"), b = fresh("bob"), s = fresh("stranger");
    const alice = await login(ts, a), bob = await login(ts, b), stranger = await login(ts, s);
    await friends(alice, bob);
    const A = `${a}@localhost`, B = `${b}@localhost`, S = `${s}@localhost`;
    const [closed, open] = ["urn:example:closed", "urn:example:open"];
    await publish(alice, closed, "1", xml("x", { xmlns: "urn:example" }), publishOptions({ "pubsub#access_model": "whitelist" }));
    await publish(alice, open, "1", xml("x", { xmlns: "urn:example" }), publishOptions({ "pubsub#access_model": "open" }));
    assert.equal(appError(await getItems(bob, A, closed)), "closed-node");
    assert.deepEqual(itemIds(await getItems(stranger, A, open)), ["1"]);

    const setAffiliations = (node: string, entries: Record<string, string>) => alice.iq(xml("iq", { type: "set" },
      xml("pubsub", { xmlns: OWNER }, xml("affiliations", { node }, ...Object.entries(entries).map(([jid, affiliation]) => xml("affiliation", { jid, affiliation }))))));
    assert.equal((await setAffiliations(closed, { [B]: "member" })).attrs.type, "result");
    assert.equal((await setAffiliations(open, { [S]: "outcast" })).attrs.type, "result");
    const listed = await alice.iq(xml("iq", { type: "get" }, xml("pubsub", { xmlns: OWNER }, xml("affiliations", { node: closed }))));
    assert.deepEqual(listed.getChild("pubsub", OWNER)!.getChild("affiliations")!.getChildren("affiliation").map((x) => [x.attrs.jid, x.attrs.affiliation]),
      [[A, "owner"], [B, "member"]]);
    // A member reads the whitelist node and, being a contact with +notify, gets its last item and its events.
    assert.deepEqual(itemIds(await getItems(bob, A, closed)), ["1"]);
    const caps = capsOf([INFO, CAPS, `${closed}+notify`]);
    await online(bob, caps);
    await bob.receive(eventFor(A, closed), 10_000);
    await publish(alice, closed, "2", xml("x", { xmlns: "urn:example" }));
    assert.equal((await bob.receive(eventFor(A, closed), 10_000)).getChild("event", EVENT)!.getChild("items")!.getChild("item")!.attrs.id, "2");
    // An entity asks for its own affiliations with the account's nodes (§5.7).
    const mine = await bob.iq(xml("iq", { type: "get", to: A }, xml("pubsub", { xmlns: PUBSUB }, xml("affiliations"))));
    assert.deepEqual(mine.getChild("pubsub", PUBSUB)!.getChild("affiliations")!.getChildren("affiliation").map((x) => [x.attrs.node, x.attrs.affiliation]), [[closed, "member"]]);
    // An outcast reads nothing, even of an open node.
    assert.equal(errorCondition(await getItems(stranger, A, open)), "forbidden");

    // Refused: publisher affiliations (only the owner publishes), the owner's own, a node that does not exist.
    assert.equal(errorCondition(await setAffiliations(closed, { [S]: "publisher" })), "not-acceptable");
    assert.equal(errorCondition(await setAffiliations(closed, { [A]: "none" })), "not-acceptable");
    assert.equal(errorCondition(await setAffiliations("urn:example:none", { [B]: "member" })), "item-not-found");
    assert.equal(errorCondition(await setAffiliations(closed, { "@bad": "member" })), "jid-malformed");
    // Only the owner manages them.
    const foreign = await bob.iq(xml("iq", { type: "set", to: A }, xml("pubsub", { xmlns: OWNER }, xml("affiliations", { node: closed }, xml("affiliation", { jid: B, affiliation: "member" })))));
    assert.equal(errorCondition(foreign), "forbidden");
    // "none" takes the membership back.
    assert.equal((await setAffiliations(closed, { [B]: "none" })).attrs.type, "result");
    assert.equal(appError(await getItems(bob, A, closed)), "closed-node");
    for (const c of [alice, bob, stranger]) c.close();
  });

  it("keeps nodes and items across a restart", async () => {
    const a = fresh("alice");
    let alice = await login(ts, a);
    await publish(alice, DEVICELIST, "current", devicelist(42), publishOptions({ "pubsub#access_model": "open" }));
    alice.close();
    await ts.restart();
    alice = await login(ts, a);
    const res = await getItems(alice, `${a}@localhost`, DEVICELIST);
    assert.deepEqual(itemIds(res), ["current"]);
    alice.close();
  });
});
