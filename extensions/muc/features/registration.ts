// XEP-0045 §7.10 registering with a room (jabber:iq:register, the muc#register form) and §7.12 discovering
// one's reserved nick (disco#info node x-roomuser-item). A registration reserves a nick for a bare JID:
// nobody else enters or changes to it (conflict). It grants no affiliation: the XEP lets a room restrict
// membership to its admins (§7.10), and here it does, so that registering is no way past members-only or
// moderation. In a members-only room only members (admins, owners) register; a ban drops the reservation.
// The nicks live in the room record (room.nicks), saved with a persistent room.
import { xml } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { tryParseJid } from "../../../src/jid/jid.js";
import { StanzaError } from "../../../src/xml/stanza.js";
import { RoomError } from "../events.js";
import { formElement, formValues } from "../forms.js";
import { affiliationRank, type Room } from "../room.js";
import type { MucService } from "../service.js";
import { NS_REGISTER } from "../../register/index.js";

export const NS_MUC_REGISTER = "http://jabber.org/protocol/muc#register";
/** XEP-0045 §7.12: the disco#info node that answers the asker's registered nick. */
export const NODE_ROOMUSER_ITEM = "x-roomuser-item";

/** Registered nicks one room keeps at most (the room record is read and written whole). */
export const MAX_REGISTERED_NICKS = 5000;

/** The nick as the room would use it (resourceprep), or null when it cannot be a nick. */
function normalisedNick(room: Room, nick: string): string | null {
  if (nick === "" || nick.length > 1023) return null;
  const j = tryParseJid(`${room.bare}/${nick}`);
  return j && j.resource !== "" ? j.resource : null;
}

export function registration(muc: MucService): void {
  const mayRegister = (room: Room, bare: string) => {
    const affiliation = room.affiliationOf(bare);
    if (room.locked && affiliation !== "owner") throw new StanzaError("item-not-found", "no such room");
    if (affiliation === "outcast") throw new StanzaError("forbidden", "you are banned from this room");
    if (room.config.membersOnly && affiliationRank(affiliation) < affiliationRank("member")) {
      throw new StanzaError("registration-required", "membership of this room is granted by its admins");
    }
  };

  muc.onRoomIq("get", NS_REGISTER, "query", (room, ev) => {
    const bare = ev.from.bareString();
    mayRegister(room, bare);
    const nick = room.nicks.get(bare);
    // XEP-0077 §3.1: an entity already registered gets <registered/> with its data.
    if (nick !== undefined) return xml("query", { xmlns: NS_REGISTER }, xml("registered"), xml("username", null, nick));
    return xml("query", { xmlns: NS_REGISTER },
      xml("instructions", null, "Reserve a nickname in this room: nobody else may use it."),
      formElement("form", NS_MUC_REGISTER, [{ var: "muc#register_roomnick", type: "text-single", label: "Desired Nickname", values: [] }],
        "Nickname registration", "Choose the nickname to reserve in this room."));
  });

  muc.onRoomIq("set", NS_REGISTER, "query", async (room, ev) => {
    const bare = ev.from.bareString();
    const query = ev.stanza.getChild("query", NS_REGISTER)!;
    if (query.getChild("remove")) {
      // XEP-0077 §3.2: cancelling the registration frees the nick.
      if (!room.nicks.delete(bare)) throw new StanzaError("item-not-found", "you have no registered nickname here");
      await muc.registry.save(room);
      return true;
    }
    mayRegister(room, bare);
    const x = query.getChild("x", NS.dataForms);
    if (x?.attrs.type === "cancel") return true;
    if (!x || x.attrs.type !== "submit") throw new StanzaError("bad-request", "expected the submitted muc#register form");
    const values = formValues(x);
    const formType = values.get("FORM_TYPE")?.[0];
    if (formType !== undefined && formType !== NS_MUC_REGISTER) throw new StanzaError("bad-request", `unexpected FORM_TYPE ${formType}`);
    const raw = values.get("muc#register_roomnick")?.[0];
    if (raw === undefined || raw === "") throw new StanzaError("not-acceptable", "muc#register_roomnick is required");
    const nick = normalisedNick(room, raw);
    if (nick === null) throw new StanzaError("jid-malformed", "that is not a valid nickname");
    // §7.10: a nick reserved by someone else (or worn by someone else in the room now) is a conflict.
    const owner = room.nickOwner(nick);
    const holder = room.occupants.get(nick);
    if ((owner !== undefined && owner !== bare) || (holder !== undefined && holder.bare !== bare)) {
      throw new StanzaError("conflict", "that nickname is reserved by someone else");
    }
    if (!room.nicks.has(bare) && room.nicks.size >= MAX_REGISTERED_NICKS) throw new StanzaError("resource-constraint", "this room has too many registered nicknames");
    room.nicks.set(bare, nick);
    await muc.registry.save(room);
    return true;
  });

  // §7.10, §7.2.9: a reserved nick is for its owner only, on entering and on changing nick.
  const reservedFor = (room: Room, nick: string, bare: string) => {
    const owner = room.nickOwner(nick);
    if (owner !== undefined && owner !== bare) return new RoomError("conflict", "that nickname is reserved by another user");
  };
  muc.bus.on("room-pre-join", ({ room, from, nick }) => reservedFor(room, nick, from.bareString()), 10);
  muc.bus.on("room-nick-change", ({ room, occupant, nick }) => reservedFor(room, nick, occupant.bare), 10);

  // A ban ends the reservation (a domain ban ends those of its users).
  muc.bus.observe("room-affiliation-changed", ({ room, jid, after }) => {
    if (after !== "outcast") return;
    for (const bare of [...room.nicks.keys()]) if (bare === jid || bare.endsWith("@" + jid)) room.nicks.delete(bare);
  });

  muc.bus.fold("room-disco-features", (features) => {
    features.push(NS_REGISTER);
    return features;
  });
}

/** §7.12: the asker's registered nick as the identity of node x-roomuser-item; an empty query when none. */
export function roomUserItem(room: Room, bare: string) {
  const q = xml("query", { xmlns: NS.discoInfo, node: NODE_ROOMUSER_ITEM });
  const nick = room.nicks.get(bare);
  if (nick !== undefined) q.cnode(xml("identity", { category: "conference", type: "text", name: nick }));
  return q;
}
