// XEP-0045 Multi-User Chat: a service on conference.<host> (modules.muc.domain) whose rooms live in
// memory while occupied and, when persistent, in the module's key-value store, with their messages in
// the room timeline. This file routes stanzas for the service's domains into the room core
// (service.ts); every room feature is its own file in features/, hooking the room events (events.ts).
import { defineModule } from "../../src/modules/module.js";
import { jid } from "../../src/jid/jid.js";
import type { Element } from "../../src/xml/element.js";
import { RoomError } from "./events.js";
import { mucOptions, resolveMucOptions } from "./options.js";
import { RoomRegistry } from "./registry.js";
import { MucService } from "./service.js";
import { roomsService } from "./rooms.js";
import { ownerConfig } from "./features/owner-config.js";
import { anonymity } from "./features/anonymity.js";
import { password } from "./features/password.js";
import { membersOnly } from "./features/members-only.js";
import { moderated } from "./features/moderated.js";
import { maxUsers } from "./features/max-users.js";
import { history } from "./features/history.js";
import { mam } from "./features/mam.js";
import { subject } from "./features/subject.js";
import { invitations } from "./features/invitations.js";
import { privateMessages } from "./features/private-messages.js";
import { nickChange } from "./features/nick-change.js";
import { admin } from "./features/admin.js";
import { destroy } from "./features/destroy.js";
import { occupantIq } from "./features/occupant-iq.js";
import { selfPing } from "./features/self-ping.js";
import { occupantId } from "./features/occupant-id.js";
import { stanzaId } from "./features/stanza-id.js";
import { disco } from "./features/disco.js";
import { missed } from "./features/missed.js";
import { voiceRequests } from "./features/voice-requests.js";
import { registration } from "./features/registration.js";

/** In this order: it is the order of the configuration form's fields. */
const FEATURES = [
  ownerConfig, anonymity, membersOnly, password, moderated, maxUsers, history, mam, subject, invitations, privateMessages,
  nickChange, admin, destroy, occupantIq, selfPing, occupantId, stanzaId, disco, missed, voiceRequests, registration,
];

/** The <status/> children of a leaving occupant's presence, passed on (XEP-0045 §7.14). */
const statusOf = (stanza: Element): Element[] => stanza.getChildren("status");

export const muc = defineModule({
  name: "muc",
  xep: [
    { spec: "XEP-0045", title: "Multi-User Chat", version: "1.34", status: "complete", note: "voice requests, nick registration (reserves the nick, grants no membership); logging on by default (muc#roomconfig_enablelogging)" },
    { spec: "XEP-0249", title: "Direct MUC Invitations", version: "1.2", status: "complete", note: "client to client; the room needs no support" },
    { spec: "XEP-0410", title: "MUC Self-Ping (Schrödinger's Chat)", version: "1.1.0", status: "complete", note: "answered by the room" },
    { spec: "XEP-0421", title: "Anonymous unique occupant identifiers for MUCs", version: "0.2.0", status: "complete" },
  ],
  options: mucOptions,
  setup(api) {
    const options = resolveMucOptions(api.options);
    const services = new Map<string, string[]>();
    for (const host of api.hosts) {
      const domain = jid("", options.domain.replaceAll("{host}", host)).domain;
      services.set(domain, [...(services.get(domain) ?? []), host]);
    }
    const service = api.component([...services.keys()]);
    // In a cluster each room lives on one node: stanzas for it are handled there, wherever they arrive.
    service.partition((to) => (to.local ? `muc:${to.bareString()}` : null));
    const registry = new RoomRegistry(api.openStore(), api.store.timeline, options.defaultHistory, api.log);
    const muc = new MucService(api, service, options, registry, services);
    api.provide("rooms", roomsService(services, api.store.timeline, registry));
    for (const feature of FEATURES) feature(muc);

    // ---- presence: entering, leaving, changing presence or nick ----
    service.on("presence/full", async (ev) => {
      const type = ev.stanza.attrs.type;
      const room = registry.get(ev.to.bareString());
      if (type === "error") {
        if (room) muc.ghostCheck(room, ev);
        return true;
      }
      if (type !== undefined && type !== "unavailable") return true; // probes, subscriptions: rooms keep no roster
      const full = ev.from.toString();
      const occupant = room?.bySession.get(full);
      const session = occupant?.sessions.get(full);
      if (type === "unavailable") {
        if (room && occupant && session) muc.leave(room, occupant, session, { extra: statusOf(ev.stanza) });
        return true;
      }
      if (room && occupant && session) {
        if (occupant.nick === ev.to.resource) await muc.presenceUpdate(room, occupant, session, ev.stanza);
        else {
          const r = await muc.bus.run("room-nick-change", { room, occupant, session, nick: ev.to.resource, stanza: ev.stanza });
          if (r instanceof RoomError) muc.refuseWith(ev.stanza, ev.from, r);
        }
        return true;
      }
      await muc.join(ev);
      return true;
    });

    service.on("presence/bare", (ev) => {
      const type = ev.stanza.attrs.type;
      if (type === "error") {
        const room = registry.get(ev.to.bareString());
        if (room) muc.ghostCheck(room, ev);
      } else if (type === undefined) {
        // XEP-0045 §7.2.1: entering needs a nickname.
        muc.refuse(ev.stanza, ev.from, "jid-malformed", "a nickname is required to enter a room");
      }
      return true;
    });

    service.on("presence/host", () => true);

    // ---- messages ----
    service.on("message/bare", async (ev) => {
      const type = ev.stanza.attrs.type;
      const room = await registry.find(ev.to);
      if (type === "error") {
        if (room) muc.ghostCheck(room, ev);
        muc.releaseIfIdle(room);
        return true;
      }
      if (!room || (room.locked && room.affiliationOf(ev.from.bareString()) !== "owner")) {
        muc.refuse(ev.stanza, ev.from, "item-not-found", "no such room");
        return true;
      }
      try {
        if (type === "groupchat") return await muc.groupchat(room, ev);
        const r = await muc.bus.run("room-bare-message", { room, stanza: ev.stanza, from: ev.from, occupant: room.bySession.get(ev.from.toString()) });
        if (r instanceof RoomError) muc.refuseWith(ev.stanza, ev.from, r);
        else if (!r) muc.refuse(ev.stanza, ev.from, "bad-request", "messages to the room are groupchat, invitations or declines");
        return true;
      } finally {
        muc.releaseIfIdle(room);
      }
    });

    service.on("message/full", async (ev) => {
      const room = await registry.find(ev.to);
      if (ev.stanza.attrs.type === "error") {
        if (room) muc.ghostCheck(room, ev);
        muc.releaseIfIdle(room);
        return true;
      }
      if (!room) {
        muc.refuse(ev.stanza, ev.from, "item-not-found", "no such room");
        return true;
      }
      const r = await muc.bus.run("room-occupant-message", { room, stanza: ev.stanza, from: ev.from, sender: room.bySession.get(ev.from.toString()), nick: ev.to.resource });
      if (r instanceof RoomError) muc.refuseWith(ev.stanza, ev.from, r);
      else if (!r) muc.refuse(ev.stanza, ev.from, "feature-not-implemented");
      muc.releaseIfIdle(room);
      return true;
    });

    // ---- iqs to occupant JIDs (those to rooms and the service: muc.onRoomIq / onServiceIq in features) ----
    service.on("iq/full", async (ev) => {
      const type = ev.stanza.attrs.type;
      const request = type === "get" || type === "set";
      const room = await registry.find(ev.to);
      if (!room) {
        if (request) muc.refuse(ev.stanza, ev.from, "item-not-found", "no such room");
        return true;
      }
      const r = await muc.bus.run("room-occupant-iq", { room, stanza: ev.stanza, from: ev.from, sender: room.bySession.get(ev.from.toString()), nick: ev.to.resource });
      if (r instanceof RoomError) { if (request) muc.refuseWith(ev.stanza, ev.from, r); }
      else if (!r && request) muc.refuse(ev.stanza, ev.from, "service-unavailable");
      muc.releaseIfIdle(room);
      return true;
    });

    // ---- sessions that end without leaving; the service shutting down ----
    api.observe("resource-unbind", ({ session }) => {
      if (session.jid) muc.sessionGone(session.jid.toString());
    });
    api.observe("server-stopping", () => {
      // XEP-0045 §11.2, status 332: removed because the service is shutting down.
      for (const room of registry.liveRooms()) {
        for (const [occ, s] of room.allSessions()) {
          const el = muc.presenceOf(room, occ, { type: "unavailable", codes: ["332"] }, true, [], s);
          el.attrs.to = s.full;
          muc.sendTo(s.jid, el);
        }
      }
    });
  },
});
