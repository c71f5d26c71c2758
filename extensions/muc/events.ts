// The room event bus: the core of the MUC module fires these, and each room feature (password,
// members-only, history…) is a small file hooking them, like Prosody's muc-* events. The three kinds of
// the server's buses (src/events/hooks.ts): run events stop at the first handler answering truthy (a
// RoomError refuses the action, `true` says "handled"); folds thread a value through every handler;
// notices reach every observer, each in its own error boundary.
import type { Element } from "../../src/xml/element.js";
import { EventBus } from "../../src/events/hooks.js";
import type { Jid } from "../../src/jid/jid.js";
import type { StanzaErrorCondition } from "../../src/xml/stanza.js";
import type { Affiliation, Occupant, OccupantSession, Role, Room, RoomConfig } from "./room.js";
import type { FormField } from "./forms.js";

/** A refusal: the stanza error the requester gets. */
export class RoomError {
  constructor(readonly condition: StanzaErrorCondition, readonly text?: string) {}
}

export interface RoomEvents {
  /** Someone asks to enter; return a RoomError to refuse. `occupant` is set when the nick is theirs already (another session). */
  "room-pre-join": { room: Room; from: Jid; nick: string; stanza: Element; affiliation: Affiliation; occupant: Occupant | undefined };
  /** An occupant session asks for another nick. The nick-change feature answers. */
  "room-nick-change": { room: Room; occupant: Occupant; session: OccupantSession; nick: string; stanza: Element };
  /** A groupchat message from an occupant; refuse (RoomError) or handle it yourself (true, e.g. a subject change). */
  "room-pre-message": { room: Room; occupant: Occupant; stanza: Element; from: Jid };
  /** A message to the room's bare JID that is not groupchat (invitations, declines). */
  "room-bare-message": { room: Room; stanza: Element; from: Jid; occupant: Occupant | undefined };
  /** A message to an occupant JID (private message). */
  "room-occupant-message": { room: Room; stanza: Element; from: Jid; sender: Occupant | undefined; nick: string };
  /** An iq to an occupant JID (room@service/nick). */
  "room-occupant-iq": { room: Room; stanza: Element; from: Jid; sender: Occupant | undefined; nick: string };
}

/** Room notifications: every observer runs, each in its own error boundary. */
export interface RoomNotices {
  /** A room was created (still locked when created with the MUC protocol). */
  "room-created": { room: Room; creator: Jid };
  /** After the presence exchange of a join; handlers run in priority order and may be async (history, then subject). */
  "room-joined": { room: Room; occupant: Occupant; session: OccupantSession; stanza: Element; created: boolean; barrier: number };
  /** A session left (or was removed); `gone` when it was the occupant's last session. */
  "room-left": { room: Room; occupant: Occupant; session: OccupantSession; gone: boolean };
  /** The message as it will be archived and broadcast: decorate it. `stanzaId` is null when it is not archived. */
  "room-message": { room: Room; occupant: Occupant; message: Element; stanzaId: string | null };
  /** A groupchat message was archived (as row `seq` of the room timeline) and broadcast. */
  "room-message-archived": { room: Room; occupant: Occupant; message: Element; stanzaId: string; seq: number };
  "room-config-changed": { room: Room; before: RoomConfig; after: RoomConfig };
  "room-affiliation-changed": { room: Room; jid: string; before: Affiliation; after: Affiliation; actor: Occupant | undefined; reason: string | undefined };
  "room-destroyed": { room: Room };
}

export interface RoomFolds {
  /** Status codes of the self-presence sent on join (110, 201 and 210 come from the core). */
  "room-self-codes": { acc: string[]; ctx: { room: Room; occupant: Occupant } };
  /** Every stanza the room sends on behalf of an occupant (presence, groupchat, private message). */
  "room-occupant-stanza": { acc: Element; ctx: { room: Room; occupant: Occupant } };
  /** The role an occupant gets on entering. */
  "room-default-role": { acc: Role; ctx: { room: Room; affiliation: Affiliation } };
  /** Whether occupants of this role see real JIDs (XEP-0045 §4.2 room types, §14.5). */
  "room-jid-visible": { acc: boolean; ctx: { room: Room; receiverRole: Role } };
  /** Features in the room's disco#info. */
  "room-disco-features": { acc: string[]; ctx: { room: Room } };
  /** Fields of the muc#roominfo form (XEP-0045 §6.4). */
  "room-info-fields": { acc: FormField[]; ctx: { room: Room } };
  /** Status codes of the configuration change message (104, 172…). */
  "room-config-codes": { acc: string[]; ctx: { room: Room; before: RoomConfig; after: RoomConfig } };
}

type RunResult = RoomError | boolean | void | undefined;

/** The room bus: the server's three kinds of events on the room's own maps. */
export class RoomBus extends EventBus<RoomEvents, RoomFolds, RoomNotices, RunResult> {}
