// Groups: a mobile group is a persistent members-only MUC room (XEP-0045) of the server's MUC service,
// so XMPP users take part in it as a room. This adapter speaks to the rooms through stanzas and reads their
// timelines through the MUC module's `rooms` service; without it every group request answers UNSUPPORTED.
//
// - create: the owner's device enters a new room, submits the room configuration (persistent,
//   members-only, real JIDs visible to members), and invites the members (mediated invitations make
//   them members, XEP-0045 §7.8.2); invite/kick/dismiss are the MUC admin and owner operations.
// - Devices enter every group of their user at login (without discussion history) and sync each
//   group's timeline from their per-group ack; live group messages reach them as occupants.
// - The group directory (each user's groups; each group's name and members as set through this
//   protocol) is kept in the module's key-value store: the MUC's own member lists are for admins only.
import { randomBytes } from "node:crypto";
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { tryParseJid, type Jid } from "../jid/jid.js";
import type { DeliveryMeta } from "../sessions/session.js";
import type { MapStore, TimelineEntry } from "../storage/types.js";
import { parseFramedElement } from "../xml/parser.js";
import {
  ConversationType, ErrorCode, GroupEventKind, GroupRole,
  type Conversation, type CreateGroup, type DismissGroup, type GetGroupMembers, type GetGroups, type Group, type GroupList,
  type GroupMembers, type GroupRole as GroupRoleType, type InviteMembers, type JoinGroup, type KickMember, type LeaveGroup, type Message,
  type Ok, type Pull, type PullResult, type RecallResult, type SendAck, type SendMessage,
} from "./schema.js";
import { MobileError, forbidden, invalid, notFound, fromStanzaError } from "./errors.js";
import { MNS, chatStanza, isRetractionXml, messageFromStanza, retractionStanza, tombstone } from "./bridge.js";
import type { MobileSession } from "./session.js";
import type { ModuleApi, ServiceMap } from "../modules/module.js";
import type { MobileOptions } from "./options.js";
import type { MobileContext } from "./context.js";
import { conversationPayload, mirror } from "./conversation.js";

type RoomsService = ServiceMap["rooms"];

declare module "../modules/module.js" {
  /** The mobile group directory, for the server API (src/api). */
  interface ServiceMap { mobileGroups: Groups }
}

const unsupported = () => new MobileError(ErrorCode.UNSUPPORTED, "this server runs no group (MUC) service");
const ROLES: Record<string, GroupRoleType> = { owner: GroupRole.OWNER, admin: GroupRole.ADMIN, member: GroupRole.MEMBER };
const MAX_MEMBERS = 1000;

interface GroupRecord { name: string; members: Record<string, "owner" | "admin" | "member">; created: number }

/** One device's view of one group. */
interface DeviceGroup { sent: number; acked: number; syncing: boolean; again: boolean; joined: boolean }

interface Waiter { resolve(el: Element): void; timer: NodeJS.Timeout }

export class Groups {
  /** The group directory: per user "groups", per room "group" and "recalls" (atomic updates, no lock). */
  private readonly kv: MapStore;
  private readonly devices = new WeakMap<MobileSession, Map<string, DeviceGroup>>();
  private readonly joins = new WeakMap<MobileSession, Map<string, Waiter>>();

  constructor(private readonly api: ModuleApi<MobileOptions>, private readonly ctx: () => MobileContext) {
    this.kv = api.store.map("mobile:groups");
  }

  /** The MUC module's `rooms` service, when the MUC module is loaded. */
  private rooms(): RoomsService | null {
    return this.api.useOptional("rooms");
  }

  /** The MUC service's domain groups live on, if one is served here. */
  domain(): string | null {
    const rooms = this.rooms();
    if (!rooms) return null;
    const configured = this.api.options.groupService;
    if (configured !== "") return rooms.isService(configured) ? configured : null;
    for (const host of this.api.hosts) {
      const d = rooms.serviceFor(host);
      if (d !== null) return d;
    }
    return null;
  }

  enabled(): boolean {
    return this.domain() !== null;
  }

  isGroupJid(j: Jid): boolean {
    const d = this.domain();
    return d !== null && j.domain === d;
  }

  /** Whether a bare JID (as text) is a group. */
  isGroupJidText(bare: string): boolean {
    const d = this.domain();
    return d !== null && bare.slice(bare.indexOf("@") + 1) === d;
  }

  isGroupStanza(el: Element): boolean {
    const d = this.domain();
    if (d === null) return false;
    return tryParseJid(el.attrs.from)?.domain === d;
  }

  private need(): string {
    const d = this.domain();
    if (d === null) throw unsupported();
    return d;
  }

  /** The room timelines, through the rooms service. */
  private get timeline(): RoomsService {
    const rooms = this.rooms();
    if (!rooms) throw unsupported();
    return rooms;
  }

  // ---- directory ----

  private async record(room: string): Promise<GroupRecord | null> {
    const raw = await this.kv.get(room, "group");
    return raw ? (JSON.parse(raw) as GroupRecord) : null;
  }

  private async saveRecord(room: string, r: GroupRecord | null): Promise<void> {
    await this.kv.set(room, "group", r ? JSON.stringify(r) : null);
  }

  async groupsOf(owner: string): Promise<string[]> {
    const raw = await this.kv.get(owner, "groups");
    return raw ? (JSON.parse(raw) as string[]) : [];
  }

  /** Adds or removes a group of the user's list; false when it was so already. */
  private async setMine(owner: string, room: string, member: boolean): Promise<boolean> {
    let changed = false;
    await this.kv.update(owner, "groups", (raw) => {
      const list = new Set(raw ? (JSON.parse(raw) as string[]) : []);
      changed = list.has(room) !== member;
      if (!changed) return undefined;
      if (member) list.add(room); else list.delete(room);
      return list.size ? JSON.stringify([...list].sort()) : null;
    });
    if (changed) await this.bookmark(owner, room, member);
    return changed;
  }

  /** The user's XMPP clients see the same groups: bookmarked rooms (XEP-0402, module bookmarks), joined automatically. */
  private async bookmark(owner: string, room: string, member: boolean): Promise<void> {
    const bookmarks = this.api.useOptional("bookmarks");
    if (!bookmarks) return;
    try {
      if (member) await bookmarks.add(owner, room, (await this.record(room))?.name ?? "");
      else await bookmarks.remove(owner, room);
    } catch (err) {
      this.api.log.warn({ err, room }, "keeping a group's bookmark failed");
    }
  }

  private async requireMember(owner: string, room: string): Promise<GroupRecord> {
    const r = await this.record(room);
    if (!r) throw notFound(`no group ${room}`);
    if (!r.members[owner]) throw forbidden(`you are not a member of ${room}`);
    return r;
  }

  private mobileOf(owner: string): MobileSession[] {
    return this.ctx().devicesOf(owner);
  }

  private event(to: Iterable<string>, group: string, kind: GroupEventKind, jid: string, by: string, name: string): void {
    for (const owner of to) for (const s of this.mobileOf(owner)) s.push("groupEvent", { group, kind, jid, by, name });
  }

  // ---- entering rooms ----

  private state(s: MobileSession): Map<string, DeviceGroup> {
    let m = this.devices.get(s);
    if (!m) this.devices.set(s, (m = new Map()));
    return m;
  }

  /** Enters the room as an occupant (nick: the username), without discussion history. */
  private async enter(s: MobileSession, room: string, create = false): Promise<Element> {
    const waiters = this.joins.get(s) ?? new Map<string, Waiter>();
    this.joins.set(s, waiters);
    const answer = new Promise<Element>((resolve) => {
      const timer = setTimeout(() => { waiters.delete(room); resolve(xml("presence", { type: "error" }, xml("error", null, xml("remote-server-timeout")))); }, 10_000);
      waiters.set(room, { resolve, timer });
    });
    await s.route(xml("presence", { to: `${room}/${s.username}` },
      xml("x", { xmlns: MNS.muc }, xml("history", { maxstanzas: "0" }))));
    const el = await answer;
    if (el.attrs.type === "error") throw fromStanzaError(el, create ? "the group could not be created" : "you cannot enter the group");
    return el;
  }

  // ---- what the MUC sends to a device ----

  onStanza(s: MobileSession, el: Element, _meta: DeliveryMeta | undefined): void {
    const from = tryParseJid(el.attrs.from);
    if (!from) return;
    const room = from.bareString();
    if (el.name === "presence") {
      const w = this.joins.get(s)?.get(room);
      const self = el.getChild("x", MNS.mucUser)?.getChildren("status").some((c) => c.attrs.code === "110");
      if (w && (el.attrs.type === "error" || (self && el.attrs.type === undefined))) {
        clearTimeout(w.timer);
        this.joins.get(s)!.delete(room);
        w.resolve(el);
        return;
      }
      // Removed from the room (kicked, banned, membership revoked, destroyed): the group is gone for this user.
      if (self && el.attrs.type === "unavailable") {
        this.state(s).delete(room);
        const destroyed = el.getChild("x", MNS.mucUser)?.getChild("destroy") !== undefined;
        if (destroyed) s.push("groupEvent", { group: room, kind: GroupEventKind.DISMISSED, jid: "", by: "", name: "" });
      }
      return;
    }
    if (el.name !== "message") return;
    const invite = el.getChild("x", MNS.mucUser)?.getChild("invite");
    if (invite && from.resource === "") {
      const by = tryParseJid(invite.attrs.from)?.bareString() ?? "";
      void this.invited(s.owner, room, by);
      return;
    }
    const type = el.attrs.type;
    if (type === "groupchat") {
      const st = this.state(s).get(room);
      if (st && el.getChild("stanza-id", NS.sid)) void this.syncRoom(s, room, st);
    }
  }

  private async invited(owner: string, room: string, by: string): Promise<void> {
    if (!(await this.setMine(owner, room, true))) return;
    const r = await this.record(room);
    this.event([owner], room, GroupEventKind.INVITED, owner, by, r?.name ?? "");
  }

  /** A row of the user's own timeline from the group service (an invitation stored while offline). */
  fromTimeline(s: MobileSession, row: TimelineEntry): void {
    if (!row.xml.includes(MNS.mucUser)) return;
    try {
      const el = parseFramedElement(row.xml);
      const invite = el.getChild("x", MNS.mucUser)?.getChild("invite");
      if (invite) void this.invited(s.owner, row.peer, tryParseJid(invite.attrs.from)?.bareString() ?? "");
    } catch { /* damaged */ }
  }

  // ---- sync of group timelines ----

  /** After the login sync of the user's timeline: enter every group, then sync each from the device's ack. */
  async syncSession(s: MobileSession): Promise<void> {
    if (!this.enabled() || s.closed || !s.authenticated) return;
    const owner = s.owner;
    for (const room of await this.groupsOf(owner)) {
      if (s.closed) return;
      const st = this.state(s);
      if (st.has(room)) continue;
      try {
        await this.enter(s, room);
      } catch (err) {
        if (err instanceof MobileError && (err.code === ErrorCode.FORBIDDEN || err.code === ErrorCode.NOT_FOUND)) {
          await this.setMine(owner, room, false);
          s.push("groupEvent", { group: room, kind: GroupEventKind.REMOVED, jid: owner, by: "", name: "" });
        }
        continue;
      }
      const acked = Number((await s.ctx.devices.get(owner, `gack:${s.deviceId}:${room}`)) ?? "0") || 0;
      const dg: DeviceGroup = { sent: acked, acked, syncing: false, again: false, joined: true };
      st.set(room, dg);
      await this.syncRoom(s, room, dg, true);
    }
  }

  private async syncRoom(s: MobileSession, room: string, dg: DeviceGroup, initial = false): Promise<void> {
    if (dg.syncing) { dg.again = true; return; }
    dg.syncing = true;
    const timeline = this.timeline;
    try {
      for (;;) {
        do {
          dg.again = false;
          for (;;) {
            const rows = await timeline.messages(room, { afterSeq: dg.sent, limit: this.api.options.syncBatch });
            if (s.closed || rows.length === 0) break;
            const messages = await this.toMessages(s.owner, room, rows);
            dg.sent = rows[rows.length - 1]!.seq;
            if (messages.length > 0) s.push("messagePush", { messages });
            const last = rows[rows.length - 1]!;
            void this.ctx().conversations.groupActivity(s.owner, room, last.seq, last.ts, last.peer === s.owner);
            if (rows.length < this.api.options.syncBatch) break;
          }
        } while (dg.again && !s.closed);
        if (!initial || s.closed) break;
        const maxSeq = await timeline.lastSeq(room);
        // A message that came while maxSeq was read was left to this sync: push it before the SyncState.
        if (dg.again && !s.closed) continue;
        if (!s.closed) s.push("syncState", { syncedSeq: dg.sent, maxSeq: Math.max(maxSeq, dg.sent), complete: true, conversation: room });
        break;
      }
    } catch (err) {
      this.api.log.error({ err, room }, "group sync failed");
    } finally {
      dg.syncing = false;
    }
  }

  onAck(s: MobileSession, room: string, seq: number): void {
    const dg = this.devices.get(s)?.get(room);
    if (!dg || !Number.isSafeInteger(seq)) return;
    const upTo = Math.min(seq, dg.sent);
    if (upTo <= dg.acked) return;
    dg.acked = upTo;
    void s.ctx.devices.set(s.owner, `gack:${s.deviceId}:${room}`, String(upTo)).catch(() => {});
  }

  sessionClosed(s: MobileSession): void {
    const w = this.joins.get(s);
    if (w) for (const x of w.values()) clearTimeout(x.timer);
  }

  private async recalls(room: string): Promise<Map<number, number>> {
    const raw = await this.kv.get(room, "recalls");
    return new Map(Object.entries(raw ? (JSON.parse(raw) as Record<string, number>) : {}).map(([k, v]) => [Number(k), v]));
  }

  private async toMessages(owner: string, room: string, rows: TimelineEntry[]): Promise<Message[]> {
    const recalled = await this.recalls(room);
    const byEvent = new Map([...recalled].map(([t, e]) => [e, t]));
    const out: Message[] = [];
    for (const row of rows) {
      let el: Element;
      try { el = parseFramedElement(row.xml); } catch { continue; }
      const m = messageFromStanza(el, { seq: row.seq, stanzaId: row.stanzaId, ts: row.ts, conversation: room, type: ConversationType.GROUP, outgoing: row.peer === owner, from: row.peer });
      if (recalled.has(row.seq)) tombstone(m);
      if (m.recallTargetClientMsgId !== "") {
        let target = byEvent.get(row.seq);
        if (target === undefined) {
          // Not recorded yet (the event is being pushed while the recall is stored): the sender's message by its id.
          const recent = await this.timeline.messages(room, { beforeSeq: row.seq, reverse: true, limit: 500 });
          target = recent.find((r) => r.peer === row.peer && r.originId === m.recallTargetClientMsgId)?.seq;
        }
        m.recallTargetSeq = target ?? 0;
      }
      out.push(m);
    }
    return out;
  }

  // ---- messages ----

  async send(s: MobileSession, req: SendMessage, to: Jid): Promise<SendAck> {
    this.need();
    const room = to.toString();
    await this.requireMember(s.owner, room);
    await this.ensureJoined(s, room);
    return this.sendToRoom(s, room, chatStanza(req, room, "groupchat"), req.clientMsgId);
  }

  private async sendToRoom(s: MobileSession, room: string, stanza: Element, id: string): Promise<SendAck> {
    const started = Date.now();
    const { groupStanzaId } = await s.sendMessage(stanza, id, room);
    const row = groupStanzaId ? await this.timeline.byStanzaId(room, groupStanzaId) : null;
    if (!row) throw new MobileError(ErrorCode.INTERNAL, "the group did not store the message");
    const dg = this.state(s).get(room);
    if (dg && row.seq === dg.sent + 1 && !dg.syncing) dg.sent = row.seq;
    // A resend is answered by the room with the stored copy: older than this send.
    return { clientMsgId: id, serverMsgId: row.stanzaId, seq: row.seq, serverTime: row.ts, duplicate: row.ts < started };
  }

  private async ensureJoined(s: MobileSession, room: string): Promise<void> {
    const st = this.state(s);
    if (st.has(room)) return;
    await this.enter(s, room);
    const lastSeq = await this.timeline.lastSeq(room);
    st.set(room, { sent: lastSeq, acked: lastSeq, syncing: false, again: false, joined: true });
  }

  async pull(s: MobileSession, j: Jid, req: Pull, limit: number): Promise<PullResult> {
    this.need();
    const room = j.toString();
    await this.requireMember(s.owner, room);
    const timeline = this.timeline;
    let rows: TimelineEntry[];
    let isEnd: boolean;
    if (req.afterSeq > 0) {
      rows = await timeline.messages(room, { afterSeq: req.afterSeq, limit: limit + 1 });
      isEnd = rows.length <= limit;
      rows = rows.slice(0, limit);
    } else {
      rows = await timeline.messages(room, { beforeSeq: req.beforeSeq > 0 ? req.beforeSeq : undefined, reverse: true, limit: limit + 1 });
      isEnd = rows.length <= limit;
      rows = rows.slice(0, limit).reverse();
    }
    return { messages: await this.toMessages(s.owner, room, rows), isEnd };
  }

  async readMarker(s: MobileSession, conv: Jid, seq: number): Promise<Conversation> {
    this.need();
    const room = conv.toString();
    await this.requireMember(s.owner, room);
    await this.refreshOne(s.owner, room);
    if (seq > (await this.timeline.lastSeq(room))) throw invalid("seq: beyond the group's newest message");
    const { conversation, changed } = await this.ctx().conversations.markRead(s.owner, room, seq, true);
    const payload = await conversationPayload(s.ctx, s.owner, conversation);
    if (changed) mirror(s, payload);
    return payload;
  }

  async recall(s: MobileSession, conv: Jid, seq: number): Promise<RecallResult> {
    this.need();
    const room = conv.toString();
    await this.requireMember(s.owner, room);
    const rows = await this.timeline.messages(room, { afterSeq: seq - 1, limit: 1 });
    const row = rows[0]?.seq === seq ? rows[0] : null;
    if (!row) throw notFound(`no message at seq ${seq} in this group`);
    if (row.peer !== s.owner) throw forbidden("only the sender may recall a message");
    const recalls = await this.recalls(room);
    const first = recalls.get(seq);
    if (first !== undefined) return { recalledSeq: seq, seq: first, serverTime: row.ts };
    if (isRetractionXml(row.xml)) throw invalid("a recall cannot be recalled");
    if (s.ctx.retraction.expired(row.ts)) {
      throw new MobileError(ErrorCode.RECALL_EXPIRED, `messages can be recalled for ${s.ctx.retraction.windowSeconds} s`);
    }
    const targetId = row.originId ?? "";
    if (targetId === "") throw new MobileError(ErrorCode.UNSUPPORTED, "the message has no id to recall it by");
    await this.ensureJoined(s, room);
    const id = `recall-${targetId}`.slice(0, 64);
    // Tombstone first, so the recall event's pushes already show the message recalled.
    const ack = await this.sendToRoom(s, room, retractionStanza(room, "groupchat", targetId, id), id);
    await this.kv.update(room, "recalls", (raw) => {
      const all = raw ? (JSON.parse(raw) as Record<string, number>) : {};
      if (all[seq] !== undefined) return undefined;
      all[seq] = ack.seq;
      return JSON.stringify(all);
    });
    return { recalledSeq: seq, seq: ack.seq, serverTime: ack.serverTime };
  }

  async lastMessage(owner: string, room: string, seq: number): Promise<Message | null> {
    if (seq <= 0) return null;
    const rows = await this.timeline.messages(room, { afterSeq: seq - 1, limit: 1 });
    if (rows[0]?.seq !== seq) return null;
    return (await this.toMessages(owner, room, rows))[0] ?? null;
  }

  private async refreshOne(owner: string, room: string): Promise<void> {
    const rows = await this.timeline.messages(room, { reverse: true, limit: 1 });
    const last = rows[0];
    if (last) await this.ctx().conversations.groupActivity(owner, room, last.seq, last.ts, last.peer === owner);
  }

  /** Brings the user's group conversations up to their rooms' newest messages. */
  async refreshConversations(s: MobileSession): Promise<void> {
    if (!this.enabled()) return;
    for (const room of await this.groupsOf(s.owner)) await this.refreshOne(s.owner, room);
  }

  // ---- group operations ----

  private async ownerIq(s: MobileSession, room: string, ns: string, ...children: Element[]): Promise<Element> {
    const answer = await s.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: ns }, ...children)));
    if (answer.attrs.type === "error") throw fromStanzaError(answer, "the group refused");
    return answer;
  }

  private memberJids(s: MobileSession, jids: string[], field: string): string[] {
    if (jids.length > MAX_MEMBERS) throw invalid(`${field}: at most ${MAX_MEMBERS}`);
    return [...new Set(jids.map((j, i) => {
      const p = tryParseJid(j.includes("@") ? j : `${j}@${s.host}`);
      if (!p || p.local === "" || p.resource !== "") throw invalid(`${field}[${i}]: a bare JID is required`);
      return p.toString();
    }))].filter((j) => j !== s.owner);
  }

  private async invite(s: MobileSession, room: string, rec: GroupRecord, jids: string[]): Promise<void> {
    for (const j of jids) {
      if (!(await this.api.accounts.exists(tryParseJid(j)!.domain, tryParseJid(j)!.local))) throw notFound(`no user ${j}`);
    }
    const fresh = jids.filter((j) => !rec.members[j]);
    if (fresh.length === 0) return;
    const existing = Object.keys(rec.members);
    for (const j of fresh) rec.members[j] = "member";
    await this.saveRecord(room, rec);
    // In the directory before the invitation arrives, so that the invitation is no news to the devices.
    for (const j of fresh) await this.setMine(j, room, true);
    // Mediated invitations (XEP-0045 §7.8.2): in a members-only room they make the invitees members.
    await s.route(xml("message", { to: room }, xml("x", { xmlns: MNS.mucUser }, ...fresh.map((to) => xml("invite", { to })))));
    for (const j of fresh) this.event([j], room, GroupEventKind.INVITED, j, s.owner, rec.name);
    for (const j of fresh) this.event(existing, room, GroupEventKind.MEMBER_JOINED, j, s.owner, rec.name);
  }

  async createGroup(s: MobileSession, req: CreateGroup): Promise<Group> {
    const domain = this.need();
    const name = req.name.trim();
    if (name === "" || name.length > 256) throw invalid("name: 1-256 characters");
    const members = this.memberJids(s, req.members, "members");
    const room = `g-${randomBytes(8).toString("hex")}@${domain}`;
    await this.enter(s, room, true);
    const field = (v: string, value: string) => xml("field", { var: v }, xml("value", null, value));
    await this.ownerIq(s, room, MNS.mucOwner, xml("x", { xmlns: MNS.dataForms, type: "submit" },
      field("FORM_TYPE", NS.mucRoomConfig),
      field("muc#roomconfig_roomname", name),
      field("muc#roomconfig_persistentroom", "1"),
      field("muc#roomconfig_membersonly", "1"),
      field("muc#roomconfig_publicroom", "0"),
      field("muc#roomconfig_whois", "anyone")));
    const rec: GroupRecord = { name, members: { [s.owner]: "owner" }, created: Date.now() };
    await this.saveRecord(room, rec);
    await this.setMine(s.owner, room, true);
    this.state(s).set(room, { sent: 0, acked: 0, syncing: false, again: false, joined: true });
    await this.invite(s, room, rec, members);
    return this.groupInfo(s.owner, room, rec);
  }

  private async groupInfo(owner: string, room: string, rec: GroupRecord): Promise<Group> {
    return {
      jid: room, name: rec.name, role: ROLES[rec.members[owner] ?? ""] ?? GroupRole.NONE,
      memberCount: Object.keys(rec.members).length, maxSeq: await this.timeline.lastSeq(room),
    };
  }

  private async roomOf(s: MobileSession, group: string): Promise<{ room: string; rec: GroupRecord }> {
    this.need();
    const j = tryParseJid(group);
    if (!j || !this.isGroupJid(j) || j.resource !== "") throw invalid("group: a group JID is required");
    const room = j.toString();
    return { room, rec: await this.requireMember(s.owner, room) };
  }

  private requireAdmin(s: MobileSession, rec: GroupRecord): void {
    const role = rec.members[s.owner];
    if (role !== "owner" && role !== "admin") throw forbidden("only the group's owner and admins may do that");
  }

  async inviteMembers(s: MobileSession, req: InviteMembers): Promise<Ok> {
    const { room, rec } = await this.roomOf(s, req.group);
    this.requireAdmin(s, rec);
    await this.ensureJoined(s, room);
    await this.invite(s, room, rec, this.memberJids(s, req.jids, "jids"));
    return {};
  }

  async joinGroup(s: MobileSession, req: JoinGroup): Promise<Group> {
    const { room, rec } = await this.roomOf(s, req.group);
    await this.ensureJoined(s, room);
    await this.setMine(s.owner, room, true);
    return this.groupInfo(s.owner, room, rec);
  }

  async leaveGroup(s: MobileSession, req: LeaveGroup): Promise<Ok> {
    const { room, rec } = await this.roomOf(s, req.group);
    if (rec.members[s.owner] === "owner") throw new MobileError(ErrorCode.CONFLICT, "the owner dismisses the group instead of leaving it");
    delete rec.members[s.owner];
    await this.saveRecord(room, rec);
    await this.setMine(s.owner, room, false);
    for (const d of this.mobileOf(s.owner)) {
      if (this.state(d).delete(room)) await d.route(xml("presence", { to: `${room}/${d.username}`, type: "unavailable" }));
    }
    await this.ctx().conversations.remove(s.owner, room);
    this.event(Object.keys(rec.members), room, GroupEventKind.MEMBER_LEFT, s.owner, s.owner, rec.name);
    return {};
  }

  async kickMember(s: MobileSession, req: KickMember): Promise<Ok> {
    const { room, rec } = await this.roomOf(s, req.group);
    this.requireAdmin(s, rec);
    const target = this.memberJids(s, [req.jid], "jid")[0];
    if (!target || !rec.members[target]) throw notFound(`${req.jid} is not a member`);
    if (rec.members[target] === "owner") throw forbidden("the owner cannot be removed");
    await this.ensureJoined(s, room);
    // XEP-0045 §9.4: affiliation none removes the membership (and the occupant, status 321).
    await this.ownerIq(s, room, MNS.mucAdmin, xml("item", { jid: target, affiliation: "none" }));
    delete rec.members[target];
    await this.saveRecord(room, rec);
    await this.setMine(target, room, false);
    await this.ctx().conversations.remove(target, room);
    this.event([target], room, GroupEventKind.REMOVED, target, s.owner, rec.name);
    this.event(Object.keys(rec.members), room, GroupEventKind.MEMBER_LEFT, target, s.owner, rec.name);
    return {};
  }

  async dismissGroup(s: MobileSession, req: DismissGroup): Promise<Ok> {
    const { room, rec } = await this.roomOf(s, req.group);
    if (rec.members[s.owner] !== "owner") throw forbidden("only the owner may dismiss the group");
    await this.ensureJoined(s, room);
    await this.ownerIq(s, room, MNS.mucOwner, xml("destroy", null, xml("reason", null, "dismissed")));
    const members = Object.keys(rec.members);
    await this.saveRecord(room, null);
    for (const m of members) {
      await this.setMine(m, room, false);
      await this.ctx().conversations.remove(m, room);
    }
    this.event(members, room, GroupEventKind.DISMISSED, "", s.owner, rec.name);
    return {};
  }

  async getGroupMembers(s: MobileSession, req: GetGroupMembers): Promise<GroupMembers> {
    const { room, rec } = await this.roomOf(s, req.group);
    return {
      group: room,
      members: Object.entries(rec.members).sort().map(([jid, role]) => ({ jid, role: ROLES[role] ?? GroupRole.MEMBER, nick: tryParseJid(jid)?.local ?? "" })),
    };
  }

  // ---- the server API (src/api): groups made and changed by an app backend, not by a device ----

  /** The directory entry of a group (name and members by bare JID), null when it is none. */
  async directoryEntry(room: string): Promise<{ name: string; members: Record<string, "owner" | "admin" | "member"> } | null> {
    const r = await this.record(room);
    return r ? { name: r.name, members: { ...r.members } } : null;
  }

  /** A room the API created for `owner`: recorded as a group of that user. */
  async adoptGroup(room: string, name: string, owner: string): Promise<void> {
    await this.saveRecord(room, { name, members: { [owner]: "owner" }, created: Date.now() });
    await this.setMine(owner, room, true);
  }

  /** The room made `jid` a member: the directory says so, and devices of the group hear of it. False: it was a member. */
  async memberAdded(room: string, jid: string, by: string): Promise<boolean> {
    const rec = await this.record(room);
    if (!rec || rec.members[jid]) return false;
    const existing = Object.keys(rec.members);
    rec.members[jid] = "member";
    await this.saveRecord(room, rec);
    await this.setMine(jid, room, true);
    this.event([jid], room, GroupEventKind.INVITED, jid, by, rec.name);
    this.event(existing, room, GroupEventKind.MEMBER_JOINED, jid, by, rec.name);
    return true;
  }

  /** The room took `jid`'s membership away. False: it was no member. */
  async memberRemoved(room: string, jid: string, by: string): Promise<boolean> {
    const rec = await this.record(room);
    if (!rec || !rec.members[jid]) return false;
    delete rec.members[jid];
    await this.saveRecord(room, rec);
    await this.setMine(jid, room, false);
    await this.ctx().conversations.remove(jid, room);
    this.event([jid], room, GroupEventKind.REMOVED, jid, by, rec.name);
    this.event(Object.keys(rec.members), room, GroupEventKind.MEMBER_LEFT, jid, by, rec.name);
    return true;
  }

  async getGroups(s: MobileSession, _req: GetGroups): Promise<GroupList> {
    this.need();
    const groups: Group[] = [];
    for (const room of await this.groupsOf(s.owner)) {
      const rec = await this.record(room);
      if (rec) groups.push(await this.groupInfo(s.owner, room, rec));
    }
    return { groups };
  }
}

