// Who misses a group chat message and should hear of it (XEP-0357 push, the mobile webhook): told to the
// user's host as "groupchat-missed", which the push module turns into notifications.
// - An occupant whose every room session is hibernated (XEP-0198: the occupant stays while its client is
//   away), when the message names its nick, or on every message of a members-only room;
// - a member (owner, admin) of a members-only room who is not in it and has no online resource at all.
// Only messages with a body, never to their sender. An occupant session on another cluster node counts as
// reachable (its node knows better and delivers there).
import type { Session } from "../../../src/sessions/session.js";
import { affiliationRank, type Occupant } from "../room.js";
import type { MucService } from "../service.js";

const reachable = (s: Session | null): boolean => s === null || (!s.closed && !(s as { hibernating?: boolean }).hibernating);

function someReachable(occ: Occupant): boolean {
  for (const s of occ.sessions.values()) if (reachable(s.session)) return true;
  return false;
}

/** Whether `body` names `nick` as a word of its own (case-insensitive), as clients highlight mentions. */
export function mentions(body: string, nick: string): boolean {
  return mentionsLower(body.toLowerCase(), nick);
}

function mentionsLower(text: string, nick: string): boolean {
  const name = nick.toLowerCase();
  if (name === "") return false;
  for (let at = text.indexOf(name); at >= 0; at = text.indexOf(name, at + 1)) {
    const before = at === 0 ? "" : text[at - 1], after = text[at + name.length] ?? "";
    if (!/[\p{L}\p{N}_]/u.test(before) && !/[\p{L}\p{N}_]/u.test(after)) return true;
  }
  return false;
}

export function missed(muc: MucService): void {
  const hosts = new Set(muc.api.config.hosts);
  const hostOf = (bare: string): string | null => {
    const at = bare.indexOf("@");
    const host = at > 0 ? bare.slice(at + 1) : "";
    return hosts.has(host) ? host : null;
  };
  muc.bus.observe("room-message-archived", ({ room, occupant, message, stanzaId, seq }) => {
    const body = message.getChildText("body");
    if (!body) return;
    const from = message.attrs.from ?? room.bare;
    const tell = (user: string, mention: boolean) => {
      const host = hostOf(user);
      if (host) void muc.api.notify(host, "groupchat-missed", { user, room: room.bare, from, stanza: message, stanzaId, seq, mention });
    };
    // The common case, every other occupant reachable in an open room, costs one pass and no allocation.
    let away = false;
    for (const occ of room.occupants.values()) {
      if (occ.bare !== occupant.bare && !someReachable(occ)) { away = true; break; }
    }
    if (!away && !room.config.membersOnly) return;
    // Occupants by bare JID: reachable when any of their room sessions is.
    const present = new Map<string, { reachable: boolean; nicks: string[] }>();
    for (const occ of room.occupants.values()) {
      let cur = present.get(occ.bare);
      if (!cur) present.set(occ.bare, (cur = { reachable: false, nicks: [] }));
      cur.nicks.push(occ.nick);
      if (!cur.reachable && someReachable(occ)) cur.reachable = true;
    }
    let lower: string | null = null;
    for (const [bare, p] of present) {
      if (bare === occupant.bare || p.reachable) continue;
      lower ??= body.toLowerCase();
      const mention = p.nicks.some((nick) => mentionsLower(lower!, nick));
      if (mention || room.config.membersOnly) tell(bare, mention);
    }
    if (!room.config.membersOnly) return;
    for (const [bare, entry] of room.affiliations) {
      if (bare === occupant.bare || present.has(bare) || affiliationRank(entry.affiliation) < affiliationRank("member")) continue;
      if (muc.api.sessions.resources(bare).some((s) => reachable(s))) continue;
      tell(bare, false);
    }
  });
}
