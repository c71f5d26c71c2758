// Slot records and their tokens. A slot is one promise: `owner` may PUT exactly `size` bytes of `type`
// to the slot's URL before `expires`, once; afterwards the file is served until `stored + fileExpiry`.
// Records live in the module's map store (owner "slot", key = slot id), so every node of a cluster
// serves the slots every other node handed out.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { MapStore } from "../../src/storage/types.js";

export interface Slot {
  id: string;
  /** Bare JID of the requester. */
  owner: string;
  filename: string;
  size: number;
  type: string;
  created: number;
  /** The PUT must start before this time (ms since the epoch). */
  expires: number;
  state: "pending" | "uploading" | "stored";
  stored?: number;
}

const SLOT_OWNER = "slot";

/** What one user may reserve within a sliding window: bytes, and slots (the window's record stays small). */
export interface Quota { bytes: number; slots: number; windowMs: number }

export function newSlotId(): string {
  return randomBytes(18).toString("base64url");
}

/**
 * XEP-0363 §4: the names of a file: no directories, no control characters, at most 200 bytes of UTF-8
 * (the URL carries it percent-encoded). Undefined when nothing usable is left.
 */
export function sanitizeFilename(name: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  let base = name.split(/[/\\]/).pop()!.replace(/[\u0000-\u001f\u007f-\u009f]/g, "").trim();
  base = base.replace(/^\.+/, "");
  let bytes = 0;
  let cut = 0;
  for (const ch of base) {
    bytes += Buffer.byteLength(ch, "utf8");
    if (bytes > 200) break;
    cut += ch.length;
  }
  base = base.slice(0, cut).trim();
  return base === "" ? undefined : base;
}

/** A media type as in RFC 6838 §4.2 (type/subtype, no parameters), lower-cased; undefined if malformed. */
export function mediaType(value: string): string | undefined {
  const t = value.trim().toLowerCase();
  return /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/.test(t) ? t : undefined;
}

/** Whether `type` is allowed by patterns such as "image/*" or "application/pdf" (empty list: any). */
export function typeAllowed(type: string, patterns: readonly string[]): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((p) => (p.endsWith("/*") ? type.startsWith(p.slice(0, -1)) : type === p));
}

export class SlotBook {
  constructor(private readonly map: MapStore, private readonly secret: Buffer) {}

  /** The PUT credential of a slot: an HMAC over everything the slot promises, so no field can be changed. */
  token(slot: Slot): string {
    return createHmac("sha256", this.secret)
      .update(JSON.stringify([slot.id, slot.owner, slot.filename, slot.size, slot.type, slot.expires]))
      .digest("base64url");
  }

  verify(slot: Slot, presented: string): boolean {
    const want = Buffer.from(this.token(slot));
    const got = Buffer.from(presented);
    return got.length === want.length && timingSafeEqual(got, want);
  }

  async create(slot: Slot): Promise<void> {
    await this.map.set(SLOT_OWNER, slot.id, JSON.stringify(slot));
  }

  async get(id: string): Promise<Slot | null> {
    const text = await this.map.get(SLOT_OWNER, id);
    return text === null ? null : (JSON.parse(text) as Slot);
  }

  /** Moves a pending, unexpired slot to uploading; false when it is not pending (used, or in use). */
  async claim(id: string, now: number): Promise<boolean> {
    let claimed = false;
    await this.map.update(SLOT_OWNER, id, (cur) => {
      claimed = false;
      if (cur === null) return undefined;
      const slot = JSON.parse(cur) as Slot;
      if (slot.state !== "pending" || slot.expires < now) return undefined;
      claimed = true;
      return JSON.stringify({ ...slot, state: "uploading" });
    });
    return claimed;
  }

  /** The upload ended: stored, or (after a failure) pending again so the client can retry in time. */
  async finish(id: string, stored: number | null): Promise<void> {
    await this.map.update(SLOT_OWNER, id, (cur) => {
      if (cur === null) return undefined;
      const slot = JSON.parse(cur) as Slot;
      return JSON.stringify(stored === null ? { ...slot, state: "pending" } : { ...slot, state: "stored", stored });
    });
  }

  async delete(id: string): Promise<void> {
    await this.map.delete(SLOT_OWNER, id);
  }

  async all(): Promise<Slot[]> {
    return [...(await this.map.list(SLOT_OWNER)).values()].map((t) => JSON.parse(t) as Slot);
  }

  /**
   * Reserves `size` bytes of the owner's quota for the window ending now. Resolves to null when granted,
   * else to when enough of the window has passed for the request to fit (ms since the epoch).
   */
  async reserve(owner: string, id: string, size: number, quota: Quota, now: number): Promise<number | null> {
    let retryAt: number | null = null;
    const windowMs = quota.windowMs;
    await this.map.update(`quota:${owner}`, "window", (cur) => {
      const recent = ((cur === null ? [] : JSON.parse(cur)) as Array<[number, number, string]>).filter(([t]) => t > now - windowMs);
      let used = recent.reduce((n, [, s]) => n + s, 0);
      retryAt = null;
      if (recent.length >= quota.slots) {
        retryAt = recent[recent.length - quota.slots]![0] + windowMs;
        return undefined;
      }
      if (used + size > quota.bytes) {
        // The earliest time enough old reservations leave the window.
        for (const [t, s] of recent) {
          used -= s;
          if (used + size <= quota.bytes) { retryAt = t + windowMs; break; }
        }
        retryAt ??= now + windowMs;
        return undefined;
      }
      return JSON.stringify([...recent, [now, size, id]]);
    });
    return retryAt;
  }
}

/** The HMAC secret: configured, or generated once and kept in the store (shared by a cluster's nodes). */
export async function slotSecret(map: MapStore, configured: string | null): Promise<Buffer> {
  if (configured !== null) return Buffer.from(configured, "utf8");
  const value = await map.update("secret", "hmac", (cur) => cur ?? randomBytes(32).toString("base64"));
  return Buffer.from(value!, "base64");
}
