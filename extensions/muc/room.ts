// The room model: configuration, affiliations (durable membership) and occupants (who is in the room
// now). An occupant is one nick of one bare JID; several full JIDs of that bare JID may share it
// (multi-session nicks), each an OccupantSession with its own last presence.
import { randomBytes } from "node:crypto";
import type { Element } from "../../src/xml/element.js";
import type { Jid } from "../../src/jid/jid.js";
import type { Session } from "../../src/sessions/session.js";

export type Role = "moderator" | "participant" | "visitor" | "none";
export type Affiliation = "owner" | "admin" | "member" | "outcast" | "none";
/** XEP-0045 §16.5.3 muc#roomconfig_whois; "none" (fully anonymous, status 174) is kept for completeness. */
export type Whois = "moderators" | "anyone" | "none";
export type PmPolicy = "anyone" | "participants" | "moderators" | "none";

export const ROLES: readonly Role[] = ["moderator", "participant", "visitor", "none"];
export const AFFILIATIONS: readonly Affiliation[] = ["owner", "admin", "member", "outcast", "none"];

const AFFILIATION_RANK: Record<Affiliation, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };
const ROLE_RANK: Record<Role, number> = { none: 0, visitor: 1, participant: 2, moderator: 3 };

export const affiliationRank = (a: Affiliation): number => AFFILIATION_RANK[a];
export const roleRank = (r: Role): number => ROLE_RANK[r];

export interface RoomConfig {
  name: string;
  description: string;
  language: string;
  persistent: boolean;
  public: boolean;
  membersOnly: boolean;
  passwordProtected: boolean;
  password: string;
  moderated: boolean;
  /** 0: no limit. */
  maxUsers: number;
  whois: Whois;
  /** Most messages sent as history on join. */
  historyLength: number;
  /** Members (not only admins) may invite, and in members-only rooms their invitees become members. */
  allowInvites: boolean;
  allowPm: PmPolicy;
  /** Participants (not only moderators) may change the subject. */
  changeSubject: boolean;
  /** The room answers MAM (XEP-0313) queries from its timeline. */
  mam: boolean;
  /**
   * muc#roomconfig_enablelogging: messages are kept in the room timeline (history, MAM, missed-message
   * notices; status 170). Off: nothing is written, history comes from memory while the room is loaded.
   */
  logging: boolean;
}

export function defaultConfig(historyLength: number): RoomConfig {
  return {
    name: "", description: "", language: "", persistent: false, public: true, membersOnly: false,
    passwordProtected: false, password: "", moderated: false, maxUsers: 0, whois: "moderators",
    historyLength, allowInvites: false, allowPm: "anyone", changeSubject: false, mam: true, logging: true,
  };
}

export interface AffiliationEntry {
  affiliation: Exclude<Affiliation, "none">;
  reason?: string;
}

export interface Subject {
  text: string;
  /** Nick of the occupant who set it, "" for the room. */
  nick: string;
  ts: number;
}

/** What a persistent room keeps in the key-value store. */
export interface RoomRecord {
  v: 1;
  config: RoomConfig;
  affiliations: Array<[string, AffiliationEntry]>;
  subject: Subject | null;
  secret: string;
  /** The room timeline's last seq when this room was created: older rows belong to an earlier room. */
  floor: number;
  creator: string;
  createdAt: number;
  /** XEP-0045 §7.10 registered nicks: [bare JID, nick] (absent in records written before registration existed). */
  nicks?: Array<[string, string]>;
}

export interface OccupantSession {
  readonly jid: Jid;
  readonly full: string;
  /** The local client session, when the occupant is one (saves a registry lookup per delivery). */
  readonly session: Session | null;
  /** ` to="<full>"`, escaped once for every copy fanned out to this session. */
  readonly toAttr: string;
  /** The last presence this session sent to the room. */
  presence: Element;
  /** While the join is in progress (history, subject), live traffic waits here to keep the order. */
  buffer: Element[] | null;
}

export class Occupant {
  readonly sessions = new Map<string, OccupantSession>();
  private primaryFull = "";

  constructor(public nick: string, readonly bare: string, public role: Role) {}

  /** The session whose presence represents the occupant: the one that joined or spoke last. */
  get primary(): OccupantSession {
    return this.sessions.get(this.primaryFull) ?? this.sessions.values().next().value!;
  }

  addSession(s: OccupantSession): void {
    this.sessions.set(s.full, s);
    this.primaryFull = s.full;
  }

  removeSession(full: string): void {
    this.sessions.delete(full);
    if (this.primaryFull === full) {
      let last = "";
      for (const k of this.sessions.keys()) last = k;
      this.primaryFull = last;
    }
  }

  setPrimary(full: string): void {
    if (this.sessions.has(full)) this.primaryFull = full;
  }
}

export class Room {
  readonly bare: string;
  readonly occupants = new Map<string, Occupant>();
  readonly bySession = new Map<string, Occupant>();
  affiliations = new Map<string, AffiliationEntry>();
  /** XEP-0045 §10.1.1: a room created with the MUC protocol is locked until its owner configures it. */
  locked = false;
  destroyed = false;
  subject: Subject | null = null;
  /** The seq of the last groupchat message sent out; history on join stops there (later ones arrive live). */
  lastBroadcastSeq: number;
  /** XEP-0045 §7.10 registered (reserved) nicks: bare JID → nick. */
  nicks = new Map<string, string>();
  /** Per-feature state, keyed by the feature. */
  readonly data = new Map<string, unknown>();

  constructor(
    readonly jid: Jid,
    public config: RoomConfig,
    readonly secret: string,
    readonly floor: number,
    readonly creator: string,
    readonly createdAt: number,
  ) {
    this.bare = jid.bareString();
    this.lastBroadcastSeq = floor;
  }

  static create(jid: Jid, config: RoomConfig, creator: string, floor: number): Room {
    const room = new Room(jid, config, randomBytes(32).toString("base64"), floor, creator, Date.now());
    room.affiliations.set(creator, { affiliation: "owner" });
    return room;
  }

  static fromRecord(jid: Jid, rec: RoomRecord, defaults: RoomConfig, lastSeq: number): Room {
    const room = new Room(jid, { ...defaults, ...rec.config }, rec.secret, rec.floor, rec.creator, rec.createdAt);
    room.affiliations = new Map(rec.affiliations);
    room.subject = rec.subject;
    room.nicks = new Map(rec.nicks ?? []);
    room.lastBroadcastSeq = Math.max(lastSeq, rec.floor);
    return room;
  }

  toRecord(): RoomRecord {
    return {
      v: 1, config: this.config, affiliations: [...this.affiliations], subject: this.subject,
      secret: this.secret, floor: this.floor, creator: this.creator, createdAt: this.createdAt, nicks: [...this.nicks],
    };
  }

  /** The affiliation of a bare JID; an entry for its domain applies to every user there (bans of a server). */
  affiliationOf(bare: string): Affiliation {
    const e = this.affiliations.get(bare);
    if (e) return e.affiliation;
    const at = bare.indexOf("@");
    if (at >= 0) {
      const d = this.affiliations.get(bare.slice(at + 1));
      if (d) return d.affiliation;
    }
    return "none";
  }

  setAffiliation(bare: string, affiliation: Affiliation, reason?: string): void {
    if (affiliation === "none") this.affiliations.delete(bare);
    else this.affiliations.set(bare, reason ? { affiliation, reason } : { affiliation });
  }

  withAffiliation(affiliation: Affiliation): Array<[string, AffiliationEntry]> {
    return [...this.affiliations].filter(([, e]) => e.affiliation === affiliation);
  }

  occupantsOf(bare: string): Occupant[] {
    const out: Occupant[] = [];
    for (const o of this.occupants.values()) if (o.bare === bare) out.push(o);
    return out;
  }

  *allSessions(): IterableIterator<[Occupant, OccupantSession]> {
    for (const o of this.occupants.values()) for (const s of o.sessions.values()) yield [o, s];
  }

  /** The bare JID that registered `nick`, if any. */
  nickOwner(nick: string): string | undefined {
    for (const [bare, n] of this.nicks) if (n === nick) return bare;
    return undefined;
  }

  /** The occupant JID of a nick: room@service/nick. */
  occupantJid(nick: string): string {
    return `${this.bare}/${nick}`;
  }

  get title(): string {
    return this.config.name || this.jid.local;
  }
}
