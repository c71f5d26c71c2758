// XEP-0045 §8 (moderator use cases) and §9, §10.3-§10.8 (admin and owner use cases) over muc#admin:
// kick and voice (roles, by nick), ban, membership, admins and owners (affiliations, by JID), and the
// lists. A request is checked whole before any of it is applied.
import { xml, type Element } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { tryParseJid } from "../../../src/jid/jid.js";
import { StanzaError } from "../../../src/xml/stanza.js";
import { AFFILIATIONS, ROLES, affiliationRank, type Affiliation, type Occupant, type Role, type Room } from "../room.js";
import type { MucService } from "../service.js";

type Change =
  | { kind: "role"; target: Occupant; role: Role; reason?: string }
  | { kind: "affiliation"; jid: string; affiliation: Affiliation; reason?: string };

const ADMIN = affiliationRank("admin");

export function admin(muc: MucService): void {
  muc.onRoomIq("get", NS.mucAdmin, "query", (room, ev) => {
    const item = ev.stanza.getChild("query", NS.mucAdmin)?.getChild("item");
    if (!item) throw new StanzaError("bad-request", "expected an <item/>");
    const bare = ev.from.bareString();
    const q = xml("query", { xmlns: NS.mucAdmin });
    const affiliation = item.attrs.affiliation as Affiliation | undefined;
    const role = item.attrs.role as Role | undefined;
    if (affiliation !== undefined) {
      if (!AFFILIATIONS.includes(affiliation) || affiliation === "none") throw new StanzaError("bad-request", "unknown affiliation");
      // §9.5, §10.5: the lists are for admins and owners.
      if (affiliationRank(room.affiliationOf(bare)) < ADMIN) throw new StanzaError("forbidden", "only admins and owners may see this list");
      for (const [jid, e] of room.withAffiliation(affiliation)) {
        // §9.5: with the nick the member registered (§7.10).
        q.cnode(xml("item", { affiliation, jid, nick: room.nicks.get(jid) }, e.reason ? xml("reason", null, e.reason) : null));
      }
      return q;
    }
    if (role !== undefined) {
      if (!ROLES.includes(role) || role === "none") throw new StanzaError("bad-request", "unknown role");
      // §8.5, §9.8: role lists are for moderators.
      const asker = room.bySession.get(ev.from.toString());
      if (asker?.role !== "moderator") throw new StanzaError("forbidden", "only moderators may see this list");
      const withJid = muc.jidVisibleTo(room, "moderator");
      for (const o of room.occupants.values()) {
        if (o.role === role) q.cnode(xml("item", { role, nick: o.nick, affiliation: room.affiliationOf(o.bare), jid: withJid ? o.primary.full : undefined }));
      }
      return q;
    }
    throw new StanzaError("bad-request", "expected an affiliation or a role");
  });

  muc.onRoomIq("set", NS.mucAdmin, "query", async (room, ev) => {
    const items = ev.stanza.getChild("query", NS.mucAdmin)?.getChildren("item") ?? [];
    if (items.length === 0) throw new StanzaError("bad-request", "expected at least one <item/>");
    const actor = room.bySession.get(ev.from.toString());
    const actorAffiliation = room.affiliationOf(ev.from.bareString());
    const changes = items.map((item) => plan(room, item, actor, ev.from.bareString(), actorAffiliation));
    // §10.6: a room keeps at least one owner.
    const owners = new Set(room.withAffiliation("owner").map(([jid]) => jid));
    for (const c of changes) if (c.kind === "affiliation") { if (c.affiliation === "owner") owners.add(c.jid); else owners.delete(c.jid); }
    if (owners.size === 0) throw new StanzaError("conflict", "the room needs an owner");
    for (const c of changes) {
      if (c.kind === "role") {
        if (room.occupants.get(c.target.nick) === c.target) muc.setRole(room, c.target, c.role, actor, c.reason);
      } else {
        await muc.setAffiliation(room, c.jid, c.affiliation, actor, c.reason);
      }
    }
    return true;
  });
}

function plan(room: Room, item: Element, actor: Occupant | undefined, actorBare: string, actorAffiliation: Affiliation): Change {
  const reason = item.getChildText("reason") ?? undefined;
  const role = item.attrs.role as Role | undefined;
  const affiliation = item.attrs.affiliation as Affiliation | undefined;
  const actorRank = affiliationRank(actorAffiliation);
  // §17.4: an item changes a role or an affiliation, not both.
  if (affiliation !== undefined && role !== undefined) throw new StanzaError("bad-request", "an item changes either a role or an affiliation");
  if (role !== undefined) {
    if (!ROLES.includes(role)) throw new StanzaError("bad-request", `unknown role ${role}`);
    const nick = item.attrs.nick;
    if (typeof nick !== "string") throw new StanzaError("bad-request", "a role change names the occupant by nick");
    // §8: moderator use cases are for moderators (forbidden otherwise).
    if (!actor || actor.role !== "moderator") throw new StanzaError("forbidden", "only moderators may change roles");
    const target = room.occupants.get(nick);
    if (!target) throw new StanzaError("item-not-found", "no occupant has that nickname");
    const targetRank = affiliationRank(room.affiliationOf(target.bare));
    if (role === "none") {
      // §8.2: nobody is kicked by a moderator of lower affiliation; kicking oneself is refused.
      if (target === actor) throw new StanzaError("conflict", "you cannot kick yourself");
      if (targetRank > actorRank) throw new StanzaError("not-allowed", "you cannot kick an occupant of higher affiliation");
    } else if (role !== "moderator" && target.role === "moderator" && targetRank >= ADMIN) {
      // §8.4, §9.7: owners and admins keep moderator status and voice.
      throw new StanzaError("not-allowed", "owners and admins keep moderator status");
    }
    // §8.4: voice is not revoked from anyone ranking higher than the moderator.
    if (role === "visitor" && targetRank > actorRank) throw new StanzaError("not-allowed", "you cannot revoke voice from an occupant of higher affiliation");
    // §9.6, §9.7: granting and revoking moderator status are admin use cases.
    if ((role === "moderator" || target.role === "moderator") && role !== target.role && actorRank < ADMIN) {
      throw new StanzaError("forbidden", "only admins and owners may grant or revoke moderator status");
    }
    return { kind: "role", target, role, reason };
  }
  if (affiliation !== undefined) {
    if (!AFFILIATIONS.includes(affiliation)) throw new StanzaError("bad-request", `unknown affiliation ${affiliation}`);
    let jid: string;
    if (item.attrs.jid !== undefined) {
      // §10.6: affiliations belong to bare JIDs; a full JID stands for its bare JID.
      const parsed = tryParseJid(item.attrs.jid);
      if (!parsed) throw new StanzaError("jid-malformed", "invalid jid");
      jid = parsed.bareString();
    } else if (typeof item.attrs.nick === "string") {
      const o = room.occupants.get(item.attrs.nick);
      if (!o) throw new StanzaError("item-not-found", "no occupant has that nickname");
      jid = o.bare;
    } else {
      throw new StanzaError("bad-request", "an affiliation change names a jid");
    }
    // §9: admin use cases are for admins and owners; §10.3-§10.7: owner and admin status for owners.
    if (actorRank < ADMIN) throw new StanzaError("forbidden", "only admins and owners may change affiliations");
    if (affiliationRank(affiliation) >= ADMIN && actorAffiliation !== "owner") throw new StanzaError("forbidden", "only owners may grant owner or admin status");
    const current = room.affiliations.get(jid)?.affiliation ?? "none";
    // §9.1: nobody changes the affiliation of someone ranking higher (an admin banning an owner), nor bans themselves.
    if (affiliationRank(current) >= ADMIN && actorAffiliation !== "owner") throw new StanzaError("not-allowed", "only owners may change owners and admins");
    if (affiliation === "outcast" && jid === actorBare) throw new StanzaError("conflict", "you cannot ban yourself");
    return { kind: "affiliation", jid, affiliation, reason };
  }
  throw new StanzaError("bad-request", "an item needs a role or an affiliation");
}
