// Mobile groups on the MUC service: a mobile group is a persistent members-only room that XMPP users
// take part in as a room; group messages carry the room's seq.
import assert from "node:assert/strict";
import { onlineUser, type RawClient } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { ConversationType, GroupEventKind, GroupRole, MessageKind } from "../src/mobile/schema.js";
import { ErrorCode, MobileRequestError, mobileUser, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;
const MUC = "http://jabber.org/protocol/muc";

async function rejects(p: Promise<unknown>, code: number): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MobileRequestError, `expected a MobileRequestError, got ${err}`);
    assert.equal(err.code, code, err.message);
    return;
  }
  assert.fail(`expected error ${code}`);
}

async function enterRoom(x: RawClient, room: string, nick: string): Promise<void> {
  x.send(xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: MUC })));
  await x.receive((el: Element) => el.name === "presence" && el.attrs.from === `${room}/${nick}` && el.getChild("x", `${MUC}#user`) !== undefined);
}

describe("mobile groups (MUC)", function () {
  this.timeout(30_000);
  let ts: MobileTestServer;
  before(async function () {
    ts = await startMobileServer();
    const probe = await mobileUser(ts, fresh("probe"));
    const enabled = probe.session!.groupsEnabled;
    probe.close();
    assert.equal(enabled, true, "the test server loads the MUC module, so mobile groups are on");
  });
  after(() => ts?.stop());

  it("creates a group with mobile and XMPP members; messages go both ways with the room's seq", async () => {
    const owner = fresh("gown"), member = fresh("gmem"), xu = fresh("gx");
    const a = await mobileUser(ts, owner);
    const b = await mobileUser(ts, member);
    const x = await onlineUser(ts, xu, { resource: "pc" });
    const group = await a.request("createGroup", { name: "Weekend trip", members: [`${member}@localhost`, `${xu}@localhost`] });
    assert.equal(group.role, GroupRole.OWNER);
    assert.equal(group.memberCount, 3);
    assert.match(group.jid, new RegExp(`@${a.session!.groupDomain.replace(/\./g, "\\.")}$`));
    const invited = await b.nextPush("groupEvent", (e) => e.kind === GroupEventKind.INVITED);
    assert.equal(invited.group, group.jid);
    assert.equal(invited.by, `${owner}@localhost`);
    // The XMPP member gets an XEP-0045 invitation and enters the room.
    const inv = await x.receive((el) => el.name === "message" && el.getChild("x", `${MUC}#user`)?.getChild("invite") !== undefined);
    assert.equal(inv.attrs.from, group.jid);
    await enterRoom(x, group.jid, "xavier");
    await b.request("joinGroup", { group: group.jid });

    const ack = await a.send(group.jid, "who brings the tent?");
    assert.ok(ack.seq >= 1);
    const atB = await b.nextMessage((m) => m.body === "who brings the tent?");
    assert.equal(atB.conversationType, ConversationType.GROUP);
    assert.equal(atB.conversation, group.jid);
    assert.equal(atB.seq, ack.seq);
    assert.equal(atB.from, `${owner}@localhost`);
    const atX = await x.receive((el) => el.name === "message" && el.attrs.type === "groupchat" && el.getChildText("body") === "who brings the tent?");
    assert.equal(atX.attrs.from, `${group.jid}/${owner}`);

    x.send(xml("message", { to: group.jid, type: "groupchat" }, xml("body", null, "I do")));
    const fromX = await a.nextMessage((m) => m.body === "I do");
    assert.equal(fromX.seq, ack.seq + 1);
    assert.equal(fromX.from, `${xu}@localhost`);
    assert.equal(fromX.outgoing, false);

    const members = await b.request("getGroupMembers", { group: group.jid });
    assert.deepEqual(members.members.map((m) => [m.jid, m.role]).sort(), [
      [`${owner}@localhost`, GroupRole.OWNER], [`${member}@localhost`, GroupRole.MEMBER], [`${xu}@localhost`, GroupRole.MEMBER],
    ].sort());
    const list = await b.request("getGroups", {});
    assert.deepEqual(list.groups.map((g) => g.name), ["Weekend trip"]);
    const history = await b.request("pull", { conversation: group.jid, limit: 10 });
    assert.deepEqual(history.messages.map((m) => m.body), ["who brings the tent?", "I do"]);

    // Read state and recall in the group.
    const read = await b.request("readMarker", { conversation: group.jid, seq: fromX.seq });
    assert.equal(read.unread, 0);
    const recall = await a.request("recall", { conversation: group.jid, seq: ack.seq });
    assert.equal(recall.recalledSeq, ack.seq);
    const event = await b.nextMessage((m) => m.kind === MessageKind.RECALL);
    assert.equal(event.recallTargetSeq, ack.seq);
    const after = await b.request("pull", { conversation: group.jid, limit: 10 });
    assert.equal(after.messages.find((m) => m.seq === ack.seq)!.recalled, true);
    await rejects(b.request("recall", { conversation: group.jid, seq: fromX.seq }), ErrorCode.FORBIDDEN);
    a.close(); b.close(); x.close();
  });

  it("syncs group messages to a member who was offline, from the device's group ack", async () => {
    const owner = fresh("sown"), member = fresh("smem");
    const a = await mobileUser(ts, owner);
    await ts.accounts.create(ts.host, member, "password");
    const group = await a.request("createGroup", { name: "Offline", members: [`${member}@localhost`] });
    for (let i = 0; i < 30; i++) await a.send(group.jid, `g${i}`);
    const b = await mobileUser(ts, member, { deviceId: "bdev" });
    const state = await b.nextPush("syncState", (st) => st.conversation === group.jid);
    assert.equal(state.complete, true);
    const got = [...b.groupMessages.get(group.jid)!.values()].map((m) => m.body);
    assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => `g${i}`));
    await new Promise((r) => setTimeout(r, 100));
    b.close();
    await b.closed();
    await a.send(group.jid, "one more");
    const again = await mobileUser(ts, member, { deviceId: "bdev" });
    await again.nextPush("syncState", (st) => st.conversation === group.jid);
    assert.deepEqual([...again.groupMessages.get(group.jid)!.values()].map((m) => m.body), ["one more"]);
    const convs = await again.request("getConversations", {});
    const entry = convs.conversations.find((c) => c.id === group.jid)!;
    assert.equal(entry.type, ConversationType.GROUP);
    assert.equal(entry.lastMessage!.body, "one more");
    a.close(); again.close();
  });

  it("keeps non-members out, kicks members and dismisses groups", async () => {
    const owner = fresh("kown"), member = fresh("kmem"), outsider = fresh("kout");
    const a = await mobileUser(ts, owner);
    const b = await mobileUser(ts, member);
    const c = await mobileUser(ts, outsider);
    const group = await a.request("createGroup", { name: "Club", members: [`${member}@localhost`] });
    await rejects(c.request("pull", { conversation: group.jid }), ErrorCode.FORBIDDEN);
    await rejects(c.request("getGroupMembers", { group: group.jid }), ErrorCode.FORBIDDEN);
    await rejects(c.send(group.jid, "let me in"), ErrorCode.FORBIDDEN);
    await rejects(c.request("joinGroup", { group: group.jid }), ErrorCode.FORBIDDEN);
    await rejects(b.request("kickMember", { group: group.jid, jid: `${owner}@localhost` }), ErrorCode.FORBIDDEN);
    await a.request("kickMember", { group: group.jid, jid: `${member}@localhost` });
    const removed = await b.nextPush("groupEvent", (e) => e.kind === GroupEventKind.REMOVED);
    assert.equal(removed.group, group.jid);
    await rejects(b.request("pull", { conversation: group.jid }), ErrorCode.FORBIDDEN);
    await a.request("inviteMembers", { group: group.jid, jids: [`${outsider}@localhost`] });
    await c.nextPush("groupEvent", (e) => e.kind === GroupEventKind.INVITED);
    await a.request("dismissGroup", { group: group.jid });
    const dismissed = await c.nextPush("groupEvent", (e) => e.kind === GroupEventKind.DISMISSED);
    assert.equal(dismissed.group, group.jid);
    assert.deepEqual((await c.request("getGroups", {})).groups, []);
    a.close(); b.close(); c.close();
  });
});
