// Block lists (the semantics of XEP-0191 §3.5/§3.6): nothing from a blocked JID reaches the user, on
// any protocol, and the user's stanzas do not reach it. Lists live in the key-value store; the ones of
// users who are online (or were recently addressed) are kept in memory, so that the delivery hooks
// answer without waiting in the common case.
import type { KeyValueStore } from "../storage/types.js";
import { KeyedLock } from "./conversations.js";

const KEY = "blocked";
const EMPTY: ReadonlySet<string> = new Set();

export class BlockLists {
  private readonly cache = new Map<string, ReadonlySet<string>>();
  private readonly lock = new KeyedLock();

  constructor(private readonly kv: KeyValueStore, private readonly maxCached = 100_000) {}

  /** The owner's list if it is in memory. */
  cached(owner: string): ReadonlySet<string> | undefined {
    return this.cache.get(owner);
  }

  async get(owner: string): Promise<ReadonlySet<string>> {
    const hit = this.cache.get(owner);
    if (hit) return hit;
    const raw = await this.kv.get(owner, KEY);
    // A change made while this read was on its way is newer than what it read.
    const changed = this.cache.get(owner);
    if (changed) return changed;
    let set: ReadonlySet<string> = EMPTY;
    if (raw !== null) {
      try {
        const list = JSON.parse(raw) as unknown;
        if (Array.isArray(list) && list.length > 0) set = new Set(list.filter((x): x is string => typeof x === "string"));
      } catch { /* a damaged list blocks nothing */ }
    }
    this.remember(owner, set);
    return set;
  }

  private remember(owner: string, set: ReadonlySet<string>): void {
    this.cache.delete(owner);
    this.cache.set(owner, set);
    if (this.cache.size > this.maxCached) this.cache.delete(this.cache.keys().next().value!);
  }

  /**
   * Returns false when nothing changed. One change of a user's list at a time (two devices blocking at
   * once): each starts from the list the previous one wrote, so neither change is lost.
   */
  set(owner: string, jid: string, blocked: boolean): Promise<boolean> {
    return this.lock.run(owner, async () => {
      const current = await this.get(owner);
      if (current.has(jid) === blocked) return false;
      const next = new Set(current);
      if (blocked) next.add(jid); else next.delete(jid);
      await this.kv.set(owner, KEY, next.size === 0 ? null : JSON.stringify([...next].sort()));
      this.remember(owner, next.size === 0 ? EMPTY : next);
      return true;
    });
  }

  forget(owner: string): void {
    this.cache.delete(owner);
  }
}

/** Whether `list` blocks the entity `bare` (a bare JID) or its whole domain. */
export function blocks(list: ReadonlySet<string>, bare: string, domain: string): boolean {
  return list.size > 0 && (list.has(bare) || list.has(domain));
}
