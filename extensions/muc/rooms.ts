// The `rooms` service: what other modules (the mobile adapter's groups) may know about this MUC service
// without speaking XMPP to it: which domains are rooms, and a room's messages (the room timeline).
import type { TimelineEntry, TimelineQuery, TimelineStore } from "../../src/storage/types.js";
import type { RoomRegistry } from "./registry.js";

export interface RoomsService {
  /** The MUC service domain of a served host (modules.muc.domain), or null. */
  serviceFor(host: string): string | null;
  /** Whether `domain` is a MUC service domain of this server. */
  isService(domain: string): boolean;
  /** Whether a bare JID (or domain) is on a MUC service of this server. */
  isRoom(jid: string): boolean;
  /** The room's messages (its timeline, owner = the room's bare JID). */
  messages(room: string, q: TimelineQuery): Promise<TimelineEntry[]>;
  lastSeq(room: string): Promise<number>;
  byStanzaId(room: string, stanzaId: string): Promise<TimelineEntry | null>;
  /** Rooms in memory on this node and their occupants (for metrics and the admin console). */
  live(): Array<{ room: string; occupants: number }>;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { rooms: RoomsService }
}

/** The service over the service domains (domain → the hosts it serves) and the timeline. */
export function roomsService(services: ReadonlyMap<string, string[]>, timeline: TimelineStore, registry: RoomRegistry): RoomsService {
  const byHost = new Map<string, string>();
  for (const [domain, hosts] of services) for (const h of hosts) byHost.set(h, domain);
  return {
    serviceFor: (host) => byHost.get(host) ?? null,
    isService: (domain) => services.has(domain),
    isRoom: (jid) => services.has(jid.slice(jid.indexOf("@") + 1)),
    messages: (room, q) => timeline.query(room, q),
    lastSeq: (room) => timeline.lastSeq(room),
    byStanzaId: (room, id) => timeline.byStanzaId(room, id),
    live: () => [...registry.liveRooms()].map((r) => ({ room: r.jid.toString(), occupants: r.occupants.size })),
  };
}
