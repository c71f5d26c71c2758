// The core of the MUC service (XEP-0045): entering and leaving, presence broadcast, groupchat fan-out
// through the room timeline, roles and affiliations. Everything a room *feature* decides (passwords,
// members-only, history, subject…) lives in features/*, hooking the room events of `bus`.
//
// Addresses are never taken from a stanza's payload: the router stamps `from` with the sender's real
// full JID, and the occupant is looked up by that JID (room.bySession), so nobody speaks as another nick.
import { randomUUID } from "node:crypto";
import type { ModuleApi } from "../../src/modules/module.js";
import { isThenable, type StanzaEvent } from "../../src/events/hooks.js";
import { shallowCopy, xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import type { Jid } from "../../src/jid/jid.js";
import type { Delivered } from "../../src/sessions/session.js";
import { errorReply, type StanzaErrorCondition, StanzaError } from "../../src/xml/stanza.js";
import { parseFramedElement } from "../../src/xml/parser.js";
import { RoomBus, RoomError } from "./events.js";
import { Fanout, toAttribute } from "./fanout.js";
import type { FieldType } from "./forms.js";
import { NS_OCCUPANT_ID } from "./ns.js";
import type { MucConfig, MucOptions } from "./options.js";
import type { RoomRegistry } from "./registry.js";
import { Occupant, affiliationRank, type Affiliation, type OccupantSession, type Role, type Room, type RoomConfig } from "./room.js";

/** One field of the muc#roomconfig form, contributed by the feature that owns the setting. */
export interface ConfigField {
  var: string;
  type: FieldType;
  label: string;
  options?: Array<{ value: string; label?: string }>;
  read(config: RoomConfig): string[];
  /** Applies submitted values to `config`; throws StanzaError("not-acceptable") for a bad value. */
  write(config: RoomConfig, values: string[]): void;
  /** Checks the whole submitted configuration (after every field was written). */
  validate?(config: RoomConfig): void;
}

export interface PresenceOptions {
  type?: "unavailable";
  /** Status codes for everyone. */
  codes?: string[];
  /** Extra status codes for the occupant's own sessions (only the `joining` one, if given); 110 goes to all of them. */
  selfCodes?: string[];
  joining?: OccupantSession;
  actor?: Occupant;
  reason?: string;
  /** An unavailable presence that keeps the item's role (nick change, status 303). */
  keepRole?: boolean;
  /** The item's nick (status 303). */
  nick?: string;
  affiliation?: Affiliation;
  /** Payload of the occupant's own stanza to carry (status text of an unavailable presence). */
  extra?: Element[];
  /** Child of <x/> after the item (<destroy/>). */
  destroy?: Element;
}

export type IqAnswer = Element | boolean | void | undefined;

/** Children of an occupant's presence the room does not pass on: its own protocol, and ids only the room gives. */
function isRoomControlled(c: Element): boolean {
  const ns = c.attrs.xmlns;
  return (c.name === "x" && (ns === NS.muc || ns === NS.mucUser)) || (c.name === "occupant-id" && ns === NS_OCCUPANT_ID);
}

/** Whether a message is kept in the room timeline (XEP-0334 hints as for 1:1 messages), or in an unlogged room's memory. */
export function storable(stanza: Element): boolean {
  if (stanza.getChild("no-store", NS.hints) || stanza.getChild("no-permanent-store", NS.hints)) return false;
  return stanza.getChild("body") !== undefined || stanza.getChild("store", NS.hints) !== undefined;
}

/** Errors bounced for a room stanza by the occupant's server when the occupant is gone (a "ghost"). */
const GHOST_CONDITIONS = new Set(["gone", "item-not-found", "recipient-unavailable", "redirect", "remote-server-not-found", "remote-server-timeout", "service-unavailable"]);

export class MucService {
  readonly bus: RoomBus;
  readonly configFields: ConfigField[] = [];
  /** Rooms each occupant session is in (for cleanup when the session ends). */
  private readonly sessionRooms = new Map<string, Set<Room>>();

  constructor(
    readonly api: ModuleApi<MucConfig>,
    /** The api of the service domains: their stanzas and iq requests. */
    readonly service: ModuleApi<MucConfig>,
    readonly options: MucOptions,
    readonly registry: RoomRegistry,
    /** Service domain → the hosts it serves. */
    readonly services: ReadonlyMap<string, string[]>,
  ) {
    this.bus = new RoomBus((event, err) => api.log.error({ err, event }, "a room observer failed"));
  }

  isServiceAdmin(bare: string): boolean {
    return this.options.admins.includes(bare);
  }

  addConfigField(field: ConfigField): void {
    this.configFields.push(field);
  }

  // ------------------------------------------------------------------------------------------ sending

  /** To a local session directly; otherwise through the router. */
  sendTo(to: Jid, el: Element): void {
    const s = this.api.sessions.get(to);
    if (s) s.send(el);
    else this.api.send(el);
  }

  /** Live traffic for an occupant session: held back while its join is in progress. */
  deliver(s: OccupantSession, el: Element): void {
    if (s.buffer) s.buffer.push(el);
    else if (s.session !== null && !s.session.closed) s.session.send(el);
    else this.sendTo(s.jid, el);
  }

  /** The stanza error for `stanza`, back to its sender. */
  refuse(stanza: Element, from: Jid, condition: StanzaErrorCondition, text?: string): void {
    if (stanza.attrs.type === "error") return;
    this.sendTo(from, errorReply(stanza, condition, text));
  }

  refuseWith(stanza: Element, from: Jid, err: RoomError): void {
    this.refuse(stanza, from, err.condition, err.text);
  }

  // ----------------------------------------------------------------------------------------- presence

  jidVisibleTo(room: Room, role: Role): boolean {
    return this.bus.runFold("room-jid-visible", false, { room, receiverRole: role });
  }

  defaultRole(room: Room, affiliation: Affiliation): Role {
    const base: Role = affiliation === "owner" || affiliation === "admin" ? "moderator" : affiliation === "outcast" ? "none" : "participant";
    return this.bus.runFold("room-default-role", base, { room, affiliation });
  }

  /** The presence of `occ` as the room shows it: from room@service/nick, with the muc#user item. */
  presenceOf(room: Room, occ: Occupant, o: PresenceOptions, withJid: boolean, selfCodes: string[] | null, session?: OccupantSession): Element {
    const shown = session ?? occ.primary;
    const el = xml("presence", { from: room.occupantJid(occ.nick), type: o.type });
    const payload = o.type === "unavailable" ? o.extra ?? [] : shown.presence.children;
    for (const c of payload) if (typeof c !== "string" && !isRoomControlled(c)) el.children.push(c);
    const x = xml("x", { xmlns: NS.mucUser });
    const item = xml("item", {
      affiliation: o.affiliation ?? room.affiliationOf(occ.bare),
      role: o.type === "unavailable" && !o.keepRole ? "none" : occ.role,
      jid: withJid ? shown.full : undefined,
      nick: o.nick,
    });
    if (o.actor) item.cnode(xml("actor", { nick: o.actor.nick }));
    if (o.reason) item.cnode(xml("reason", null, o.reason));
    x.cnode(item);
    if (o.destroy) x.cnode(o.destroy);
    const codes = new Set(o.codes ?? []);
    if (selfCodes) {
      for (const c of selfCodes) codes.add(c);
      codes.add("110");
    }
    for (const code of codes) x.cnode(xml("status", { code }));
    el.cnode(x);
    return this.bus.runFold("room-occupant-stanza", el, { room, occupant: occ });
  }

  /** Sends the presence of `occ` to every session in the room (self-presence, with 110, to its own). */
  broadcastPresence(room: Room, occ: Occupant, o: PresenceOptions = {}): void {
    let withJid: Fanout | null = null;
    let withoutJid: Fanout | null = null;
    let self: Fanout | null = null;
    const modSees = this.jidVisibleTo(room, "moderator");
    const othersSee = this.jidVisibleTo(room, "participant");
    for (const [other, s] of room.allSessions()) {
      if (other === occ) {
        if (s === o.joining) continue; // sent below, last, with the join's codes
        self ??= new Fanout(this.presenceOf(room, occ, o, true, o.joining ? [] : o.selfCodes ?? []));
        this.deliver(s, self.to(s.full, s.toAttr));
        continue;
      }
      if (other.role === "moderator" ? modSees : othersSee) {
        withJid ??= new Fanout(this.presenceOf(room, occ, o, true, null));
        this.deliver(s, withJid.to(s.full, s.toAttr));
      } else {
        withoutJid ??= new Fanout(this.presenceOf(room, occ, o, false, null));
        this.deliver(s, withoutJid.to(s.full, s.toAttr));
      }
    }
    if (o.joining) {
      const el = this.presenceOf(room, occ, o, true, o.selfCodes ?? [], o.joining);
      el.attrs.to = o.joining.full;
      this.sendTo(o.joining.jid, el);
    }
  }

  /** Every other occupant's presence, as `receiver` may see it (on entering, or on becoming moderator). */
  sendOccupantList(room: Room, receiver: Occupant, to: OccupantSession): void {
    const withJid = this.jidVisibleTo(room, receiver.role);
    for (const occ of room.occupants.values()) {
      if (occ === receiver) continue;
      const el = this.presenceOf(room, occ, {}, withJid, null);
      el.attrs.to = to.full;
      this.sendTo(to.jid, el);
    }
  }

  // ------------------------------------------------------------------------------------------- joining

  /** An available presence to room@service/nick from someone who is not in the room with that session. */
  async join(ev: StanzaEvent): Promise<void> {
    const { stanza, from } = ev;
    const bare = from.bareString();
    const mucX = stanza.getChild("x", NS.muc);
    for (let attempt = 0; attempt < 3; attempt++) {
      let room = await this.registry.find(ev.to);
      let created = false;
      if (!room) {
        const refusal = await this.creationRefusal(from);
        if (refusal) return this.refuseWith(stanza, from, refusal);
        // XEP-0045 §10.1.1: a room created with the MUC protocol stays locked until configured;
        // COMPAT: groupchat 1.0 clients (no <x/>) get an instant room.
        ({ room, created } = await this.registry.create(ev.to, bare, mucX !== undefined));
        if (created) void this.bus.notify("room-created", { room, creator: from });
      }
      if (!this.registry.isCurrent(room)) continue; // evicted or destroyed while we waited: look again
      if (room.bySession.has(from.toString())) return; // a duplicate presence raced us
      if (!this.isConnected(from)) {
        if (created) this.registry.release(room);
        return;
      }
      try {
        return await this.enter(room, ev, created);
      } finally {
        this.releaseIfIdle(room);
      }
    }
  }

  private isConnected(jid: Jid): boolean {
    return !this.api.hosts.includes(jid.domain) || this.api.sessions.get(jid) !== undefined;
  }

  private async creationRefusal(from: Jid): Promise<RoomError | null> {
    const bare = from.bareString();
    if (this.isServiceAdmin(bare)) return null;
    if (this.options.roomCreation === "admins") return new RoomError("not-allowed", "only service administrators may create rooms");
    if (!this.api.hosts.includes(from.domain)) return new RoomError("not-allowed", "rooms are created by users of this server");
    const max = this.options.maxRoomsPerUser;
    if (max > 0) {
      let n = 0;
      for (const domain of this.services.keys()) n += await this.registry.countCreatedBy(domain, bare);
      if (n >= max) return new RoomError("not-allowed", `you may create at most ${max} rooms`);
    }
    return null;
  }

  private async enter(room: Room, ev: StanzaEvent, created: boolean): Promise<void> {
    const { stanza, from } = ev;
    const bare = from.bareString();
    const full = from.toString();
    const nick = ev.to.resource;
    const conflict = () => {
      const holder = room.occupants.get(nick);
      return holder !== undefined && holder.bare !== bare;
    };
    // XEP-0045 §7.2.8: the nick belongs to someone else.
    if (conflict()) return this.refuse(stanza, from, "conflict", "that nickname is in use");
    if (!created) {
      // XEP-0045 §7.2.10, §10.1.1: nobody but the owner enters a locked room.
      if (room.locked && room.affiliationOf(bare) !== "owner") return this.refuse(stanza, from, "item-not-found", "the room is locked until its owner configures it");
      let r = this.bus.run("room-pre-join", { room, from, nick, stanza, affiliation: room.affiliationOf(bare), occupant: room.occupants.get(nick) });
      if (isThenable(r)) {
        r = await r;
        if (!this.registry.isCurrent(room) || room.bySession.has(full)) return;
        if (conflict()) return this.refuse(stanza, from, "conflict", "that nickname is in use");
      }
      if (r instanceof RoomError) return this.refuseWith(stanza, from, r);
    }
    const affiliation = room.affiliationOf(bare);
    let occupant = room.occupants.get(nick);
    if (!occupant) {
      const role = this.defaultRole(room, affiliation);
      if (role === "none") return this.refuse(stanza, from, "forbidden", "you are not allowed in this room");
      occupant = new Occupant(nick, bare, role);
      room.occupants.set(nick, occupant);
    }
    const origin = ev.origin !== null && ev.origin.jid?.equals(from) ? ev.origin : null;
    const session: OccupantSession = { jid: from, full, session: origin, toAttr: toAttribute(full), presence: stanza, buffer: [] };
    occupant.addSession(session);
    room.bySession.set(full, occupant);
    this.track(full, room);
    return this.welcome(room, occupant, session, stanza, created);
  }

  /**
   * XEP-0045 §7.1, §7.2.2: the other occupants' presence, the new one's to everyone and self-presence last,
   * then (room-joined) history and subject; live traffic for the session waits until they are out.
   */
  private async welcome(room: Room, occupant: Occupant, session: OccupantSession, stanza: Element, created: boolean): Promise<void> {
    session.buffer ??= [];
    const barrier = room.lastBroadcastSeq;
    this.sendOccupantList(room, occupant, session);
    const selfCodes = this.bus.runFold("room-self-codes", [], { room, occupant });
    if (created) selfCodes.push("201");
    if (nickRewritten(stanza.attrs.to, occupant.nick)) selfCodes.push("210");
    this.broadcastPresence(room, occupant, { joining: session, selfCodes });
    try {
      await this.bus.notify("room-joined", { room, occupant, session, stanza, created, barrier });
    } finally {
      const held = session.buffer ?? [];
      session.buffer = null;
      for (const el of held) this.deliver(session, el);
    }
  }

  /**
   * A session already in the room sends presence to its nick. With the MUC <x/> it is a join again
   * (XEP-0045 §17.3: a "full synchronization request"): it gets the full welcome once more.
   */
  presenceUpdate(room: Room, occupant: Occupant, session: OccupantSession, stanza: Element): Promise<void> | void {
    session.presence = stanza;
    occupant.setPrimary(session.full);
    if (stanza.getChild("x", NS.muc)) return this.welcome(room, occupant, session, stanza, false);
    this.broadcastPresence(room, occupant);
  }

  private track(full: string, room: Room): void {
    let set = this.sessionRooms.get(full);
    if (!set) this.sessionRooms.set(full, (set = new Set()));
    set.add(room);
  }

  private untrack(full: string, room: Room): void {
    const set = this.sessionRooms.get(full);
    if (!set) return;
    set.delete(room);
    if (set.size === 0) this.sessionRooms.delete(full);
  }

  roomsOfSession(full: string): Room[] {
    return [...(this.sessionRooms.get(full) ?? [])];
  }

  // ------------------------------------------------------------------------------------------- leaving

  /** One session leaves (unavailable presence, disconnect). */
  leave(room: Room, occupant: Occupant, session: OccupantSession, o: PresenceOptions = {}): void {
    if (occupant.sessions.size <= 1) return this.removeOccupant(room, occupant, o);
    // Multi-session: only this session goes; the others stay, and the occupant shows its next session.
    const el = this.presenceOf(room, occupant, { ...o, type: "unavailable" }, true, [], session);
    el.attrs.to = session.full;
    this.sendTo(session.jid, el);
    this.dropSession(room, occupant, session);
    this.broadcastPresence(room, occupant);
    void this.bus.notify("room-left", { room, occupant, session, gone: false });
  }

  /** The occupant leaves with all its sessions; everyone sees the unavailable presence with `o.codes`. */
  removeOccupant(room: Room, occupant: Occupant, o: PresenceOptions = {}): void {
    if (room.occupants.get(occupant.nick) !== occupant) return;
    this.broadcastPresence(room, occupant, { ...o, type: "unavailable" });
    room.occupants.delete(occupant.nick);
    const sessions = [...occupant.sessions.values()];
    for (const s of sessions) this.dropSession(room, occupant, s);
    for (const s of sessions) void this.bus.notify("room-left", { room, occupant, session: s, gone: true });
    if (room.occupants.size === 0) this.release(room);
  }

  private dropSession(room: Room, occupant: Occupant, s: OccupantSession): void {
    occupant.removeSession(s.full);
    if (room.bySession.get(s.full) === occupant) room.bySession.delete(s.full);
    this.untrack(s.full, room);
  }

  /** XEP-0045 §10.9: every occupant gets its own unavailable presence with <destroy/>; then the room is gone. */
  async destroyRoom(room: Room, o: { alternate?: string; reason?: string; password?: string } = {}): Promise<void> {
    const destroy = xml("destroy", { jid: o.alternate },
      o.reason ? xml("reason", null, o.reason) : null,
      o.password ? xml("password", null, o.password) : null);
    for (const occ of [...room.occupants.values()]) {
      const el = this.presenceOf(room, occ, { type: "unavailable", affiliation: "none", destroy }, true, null);
      for (const s of occ.sessions.values()) {
        const copy = shallowCopy(el);
        copy.attrs.to = s.full;
        this.deliver(s, copy);
        this.untrack(s.full, room);
      }
    }
    room.occupants.clear();
    room.bySession.clear();
    await this.registry.destroy(room);
    await this.bus.notify("room-destroyed", { room });
  }

  /** The room has emptied: a persistent room leaves memory, a temporary one ends. */
  release(room: Room): void {
    if (this.registry.release(room)) void this.bus.notify("room-destroyed", { room });
  }

  /** A persistent room loaded for a request (disco, admin iq, a stray message) leaves memory again when nobody is in it. */
  releaseIfIdle(room: Room | null | undefined): void {
    if (room && room.occupants.size === 0 && !room.locked) this.release(room);
  }

  /** A session ended without telling the rooms (disconnect) or bounced their traffic (ghost). */
  sessionGone(full: string, codes: string[] = []): void {
    for (const room of this.roomsOfSession(full)) {
      const occ = room.bySession.get(full);
      const s = occ?.sessions.get(full);
      if (occ && s) this.leave(room, occ, s, { codes });
    }
  }

  /**
   * XEP-0045 §18.1.2 ghost users: a delivery error for something the room sent means that session is gone
   * (also service-unavailable: RFC 6121 §8.5.3.2.1 answers it for groupchat to a resource that went away).
   */
  ghostCheck(room: Room, ev: StanzaEvent): void {
    const err = ev.stanza.getChild("error");
    const condition = err?.children.find((c): c is Element => typeof c !== "string" && c.name !== "text")?.name;
    if (condition && !GHOST_CONDITIONS.has(condition)) return;
    const occ = room.bySession.get(ev.from.toString());
    const s = occ?.sessions.get(ev.from.toString());
    // XEP-0045 §11.1, status 333: removed because of an error response.
    if (occ && s) this.leave(room, occ, s, { codes: ["333"] });
  }

  // ----------------------------------------------------------------------------- roles and affiliations

  setRole(room: Room, occupant: Occupant, role: Role, actor?: Occupant, reason?: string): void {
    if (role === "none") {
      // XEP-0045 §8.2: kicked (307).
      return this.removeOccupant(room, occupant, { codes: ["307"], actor, reason });
    }
    const wasModerator = occupant.role === "moderator";
    occupant.role = role;
    this.broadcastPresence(room, occupant, { actor, reason });
    // A new moderator of a semi-anonymous room now sees real JIDs: send the occupant list again.
    if (!wasModerator && role === "moderator" && this.jidVisibleTo(room, "moderator") !== this.jidVisibleTo(room, "participant")) {
      for (const s of occupant.sessions.values()) this.sendOccupantList(room, occupant, s);
    }
  }

  /**
   * Changes the affiliation of a bare JID (or a domain) and applies it to its occupants: banned ones are
   * removed (301), the others get their new role. Persisted for persistent rooms.
   */
  async setAffiliation(room: Room, jid: string, affiliation: Affiliation, actor?: Occupant, reason?: string): Promise<void> {
    const before = room.affiliations.get(jid)?.affiliation ?? "none";
    room.setAffiliation(jid, affiliation, reason);
    const affected = [...room.occupants.values()].filter((o) => o.bare === jid || (!jid.includes("@") && o.bare.endsWith("@" + jid)));
    for (const occ of affected) {
      if (room.affiliationOf(occ.bare) === "outcast") {
        // XEP-0045 §9.1: banned (301).
        this.removeOccupant(room, occ, { codes: ["301"], actor, reason, affiliation: "outcast" });
      }
    }
    await this.bus.notify("room-affiliation-changed", { room, jid, before, after: affiliation, actor, reason });
    for (const occ of affected) {
      if (room.occupants.get(occ.nick) !== occ) continue; // removed (banned, members-only)
      const aff = room.affiliationOf(occ.bare);
      const role = roleAfterAffiliationChange(occ.role, before, aff, this.defaultRole(room, aff));
      if (role === occ.role) this.broadcastPresence(room, occ, { actor, reason });
      else this.setRole(room, occ, role, actor, reason);
    }
    await this.registry.save(room);
  }

  // ----------------------------------------------------------------------------------------- groupchat

  /**
   * A groupchat message from an occupant. Answers its delivery result: the room timeline's row (the sender's
   * message as the room stored it; its stanza-id is the room's), or the error the sender gets.
   */
  async groupchat(room: Room, ev: StanzaEvent): Promise<Delivered | StanzaError | true> {
    const full = ev.from.toString();
    const occupant = room.bySession.get(full);
    // XEP-0045 §7.4: only occupants send groupchat messages.
    if (!occupant) return new StanzaError("not-acceptable", "only occupants may send messages to the room");
    let pre = this.bus.run("room-pre-message", { room, occupant, stanza: ev.stanza, from: ev.from });
    if (isThenable(pre)) pre = await pre;
    if (pre instanceof RoomError) return new StanzaError(pre.condition, pre.text);
    if (pre) return true;
    // A room with logging off writes nothing: no stanza-id, no archive (history.ts keeps recent messages in memory).
    const stanzaId = room.config.logging && storable(ev.stanza) ? randomUUID() : null;
    const msg = this.fromOccupant(room, occupant, ev.stanza, "groupchat");
    void this.bus.notify("room-message", { room, occupant, message: msg, stanzaId });
    const fanout = new Fanout(msg);
    if (stanzaId === null) {
      this.broadcast(room, fanout);
      return { sender: null, recipient: null, duplicate: false };
    }
    const originId = ev.stanza.getChild("origin-id", NS.sid)?.attrs.id ?? null;
    const [row] = await this.api.store.timeline.append([{
      owner: room.bare, peer: occupant.bare, outgoing: false, stanzaId, originId, ts: Date.now(),
      xml: fanout.serialize(), pending: false, searchText: ev.stanza.getChildText("body"),
    }]);
    if (row.duplicate) {
      // A resend (same origin-id) of a message stored before: the sender gets its reflection again, nobody else.
      const s = occupant.sessions.get(full);
      if (s) {
        const stored = parseFramedElement(row.xml);
        stored.attrs.to = full;
        this.deliver(s, stored);
      }
    } else {
      this.broadcast(room, fanout, row.seq);
      void this.bus.notify("room-message-archived", { room, occupant, message: msg, stanzaId: row.stanzaId, seq: row.seq });
    }
    return { sender: { seq: row.seq, stanzaId: row.stanzaId, ts: row.ts }, recipient: null, duplicate: row.duplicate };
  }

  /** A copy of an occupant's message as the room sends it: from room@service/nick, forgeable ids removed. */
  fromOccupant(room: Room, occupant: Occupant, stanza: Element, type: string): Element {
    const msg = xml("message", { from: room.occupantJid(occupant.nick), type, id: stanza.attrs.id, "xml:lang": stanza.attrs["xml:lang"] });
    for (const c of stanza.children) {
      if (typeof c === "string") continue;
      // XEP-0359 §3.3 / XEP-0421 §4: ids claiming to come from the room are the room's to give.
      if (c.name === "stanza-id" && c.attrs.xmlns === NS.sid && c.attrs.by === room.bare) continue;
      if (c.name === "occupant-id" && c.attrs.xmlns === NS_OCCUPANT_ID) continue;
      if (c.name === "x" && c.attrs.xmlns === NS.mucUser) continue;
      msg.children.push(c);
    }
    return this.bus.runFold("room-occupant-stanza", msg, { room, occupant });
  }

  /** Sends a message to every session in the room; `seq` is its room timeline seq when archived. */
  broadcast(room: Room, msg: Fanout | Element, seq?: number): void {
    const fanout = msg instanceof Fanout ? msg : new Fanout(msg);
    for (const occ of room.occupants.values()) for (const s of occ.sessions.values()) this.deliver(s, fanout.to(s.full, s.toAttr));
    if (seq !== undefined && seq > room.lastBroadcastSeq) room.lastBroadcastSeq = seq;
  }

  // -------------------------------------------------------------------------------------------- iqs

  /** Answers iq requests to a room's bare JID with payload <name xmlns=ns>; a missing room is item-not-found. */
  onRoomIq(type: "get" | "set", ns: string, name: string, handler: (room: Room, ev: StanzaEvent) => IqAnswer | Promise<IqAnswer>): void {
    this.service.onIq(type, "bare", ns, name, async (ev) => {
      const room = await this.registry.find(ev.to);
      if (!room) throw new StanzaError("item-not-found", "no such room");
      try {
        return (await handler(room, ev)) || undefined;
      } finally {
        this.releaseIfIdle(room);
      }
    });
  }

  /** Answers iq requests to the service domain itself. */
  onServiceIq(type: "get" | "set", ns: string, name: string, handler: (ev: StanzaEvent) => IqAnswer | Promise<IqAnswer>): void {
    this.service.onIq(type, "host", ns, name, async (ev) => (await handler(ev)) || undefined);
  }
}

/** XEP-0045 §7.2.2, §7.6 status 210: the nick the room uses differs from the one asked for (e.g. normalised). */
export function nickRewritten(rawTo: string | undefined, nick: string): boolean {
  if (!rawTo) return false;
  const slash = rawTo.indexOf("/");
  return slash >= 0 && rawTo.slice(slash + 1) !== nick;
}

function roleAfterAffiliationChange(role: Role, before: Affiliation, after: Affiliation, byDefault: Role): Role {
  // Owners and admins are always moderators (XEP-0045 §5.1.2); losing that rank drops the role to the default.
  if (affiliationRank(after) >= affiliationRank("admin")) return "moderator";
  if (affiliationRank(before) >= affiliationRank("admin")) return byDefault;
  // A visitor who became a member of a moderated room gets voice.
  if (role === "visitor" && byDefault === "participant") return "participant";
  return role;
}
