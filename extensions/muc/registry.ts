// The room registry: rooms in memory while they have occupants (or are being set up), persistent rooms
// loaded lazily from the key-value store. Layout of the module's store:
//   owner = room JID,       key "room":  the RoomRecord (config, affiliations, subject, secret…)
//   owner = service domain, key "rooms": the index of persistent rooms { local: { name, public, creator } }
// The room timeline (store.timeline, owner = room JID) holds the messages.
import type { Jid } from "../../src/jid/jid.js";
import type { KeyValueStore, TimelineStore } from "../../src/storage/types.js";
import type { Logger } from "../../src/log.js";
import { Room, defaultConfig, type RoomConfig, type RoomRecord } from "./room.js";

export interface IndexEntry { name: string; public: boolean; creator: string }

export class RoomRegistry {
  private readonly live = new Map<string, Room>();
  private readonly loading = new Map<string, Promise<Room | null>>();
  private readonly indexes = new Map<string, Promise<Map<string, IndexEntry>>>();

  constructor(
    private readonly kv: KeyValueStore,
    private readonly timeline: TimelineStore,
    private readonly defaultHistory: number,
    private readonly log: Logger,
  ) {}

  defaults(): RoomConfig {
    return defaultConfig(this.defaultHistory);
  }

  /** A room in memory, if it is. */
  get(bare: string): Room | undefined {
    return this.live.get(bare);
  }

  liveRooms(): IterableIterator<Room> {
    return this.live.values();
  }

  /** The room, from memory or the store; null when it does not exist. */
  find(jid: Jid): Promise<Room | null> {
    const bare = jid.bareString();
    const room = this.live.get(bare);
    if (room) return Promise.resolve(room);
    let p = this.loading.get(bare);
    if (!p) {
      p = this.load(jid.bare());
      this.loading.set(bare, p);
      const done = () => { this.loading.delete(bare); };
      p.then(done, done);
    }
    return p;
  }

  private async load(jid: Jid): Promise<Room | null> {
    const bare = jid.bareString();
    const raw = await this.kv.get(bare, "room");
    if (raw === null) return null;
    const lastSeq = await this.timeline.lastSeq(bare);
    const existing = this.live.get(bare);
    if (existing) return existing;
    let rec: RoomRecord;
    try {
      rec = JSON.parse(raw) as RoomRecord;
    } catch (err) {
      this.log.error({ err, room: bare }, "unreadable room record");
      return null;
    }
    const room = Room.fromRecord(jid, rec, this.defaults(), lastSeq);
    this.live.set(bare, room);
    return room;
  }

  /**
   * Creates the room in memory (it is stored once configured as persistent). If someone else created it
   * meanwhile, that room is returned with `created: false`.
   */
  async create(jid: Jid, creator: string, locked: boolean): Promise<{ room: Room; created: boolean }> {
    const bare = jid.bareString();
    const floor = await this.timeline.lastSeq(bare);
    const existing = this.live.get(bare);
    if (existing) return { room: existing, created: false };
    const room = Room.create(jid.bare(), this.defaults(), creator, floor);
    room.locked = locked;
    this.live.set(bare, room);
    return { room, created: true };
  }

  /** True while `room` is the registry's room for its JID (not evicted, not destroyed). */
  isCurrent(room: Room): boolean {
    return !room.destroyed && this.live.get(room.bare) === room;
  }

  /** Saves a persistent room (no-op for temporary or still locked rooms). */
  async save(room: Room): Promise<void> {
    if (!room.config.persistent || room.locked || room.destroyed) return;
    await this.kv.set(room.bare, "room", JSON.stringify(room.toRecord()));
    await this.updateIndex(room.jid.domain, room.jid.local, { name: room.config.name, public: room.config.public, creator: room.creator });
  }

  /** Removes a room's stored record (it became temporary, or was destroyed). */
  async forget(room: Room): Promise<void> {
    await this.kv.set(room.bare, "room", null);
    await this.updateIndex(room.jid.domain, room.jid.local, null);
  }

  /** The room has no occupants left: a persistent room leaves memory, a temporary one ends. */
  release(room: Room): boolean {
    if (room.occupants.size > 0 || !this.isCurrent(room)) return false;
    this.live.delete(room.bare);
    if (room.config.persistent && !room.locked) return false;
    room.destroyed = true;
    return true;
  }

  /** Ends a room for good. */
  async destroy(room: Room): Promise<void> {
    room.destroyed = true;
    if (this.live.get(room.bare) === room) this.live.delete(room.bare);
    await this.forget(room);
  }

  index(domain: string): Promise<Map<string, IndexEntry>> {
    let p = this.indexes.get(domain);
    if (!p) {
      p = this.kv.get(domain, "rooms").then((raw) => new Map(Object.entries(raw ? JSON.parse(raw) as Record<string, IndexEntry> : {})));
      this.indexes.set(domain, p);
      p.catch(() => this.indexes.delete(domain));
    }
    return p;
  }

  private async updateIndex(domain: string, local: string, entry: IndexEntry | null): Promise<void> {
    const index = await this.index(domain);
    const old = index.get(local);
    if (entry === null ? old === undefined : old && old.name === entry.name && old.public === entry.public && old.creator === entry.creator) return;
    if (entry === null) index.delete(local);
    else index.set(local, entry);
    await this.kv.set(domain, "rooms", JSON.stringify(Object.fromEntries(index)));
  }

  /** Rooms of `domain` created by `creator` that still exist (persistent ones, and temporary ones in memory). */
  async countCreatedBy(domain: string, creator: string): Promise<number> {
    const index = await this.index(domain);
    let n = 0;
    for (const e of index.values()) if (e.creator === creator) n++;
    for (const r of this.live.values()) {
      if (r.jid.domain === domain && r.creator === creator && !index.has(r.jid.local)) n++;
    }
    return n;
  }
}
