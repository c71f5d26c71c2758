// Where the block lists live: rows (owner, blocked JID). `BlockListRows` is the part of the store's
// block-list contract this module uses, so that the module works against whichever store provides it.
import type { KeyValueStore } from "../../src/storage/types.js";

export interface BlockListRows {
  /** The owner's blocked JIDs, ascending. */
  list(owner: string): Promise<string[]>;
  /** Adds the JIDs; resolves to the ones that were not on the list yet, ascending. */
  add(owner: string, jids: readonly string[]): Promise<string[]>;
  /** Removes the JIDs; resolves to the ones that were on the list, ascending. */
  remove(owner: string, jids: readonly string[]): Promise<string[]>;
  /** Empties the list; resolves to what it held, ascending. */
  clear(owner: string): Promise<string[]>;
  /** Whether any of `jids` is on the owner's list. */
  isBlocked(owner: string, jids: readonly string[]): Promise<boolean>;
}

/**
 * The lists as the mobile adapter kept them before they became rows: one JSON array per user (store
 * `mobile:blocking`, key `blocked`). Changes of one user's list are chained so that two blocks at once both
 * stay; no cache, so every delivery reads what any node last wrote.
 */
export function keyValueBlockLists(kv: KeyValueStore): BlockListRows {
  const KEY = "blocked";
  const tails = new Map<string, Promise<unknown>>();
  const read = async (owner: string): Promise<Set<string>> => {
    const raw = await kv.get(owner, KEY);
    if (raw === null) return new Set();
    try {
      const list = JSON.parse(raw) as unknown;
      return new Set(Array.isArray(list) ? list.filter((x): x is string => typeof x === "string") : []);
    } catch {
      return new Set(); // a damaged list blocks nothing
    }
  };
  const change = (owner: string, fn: (set: Set<string>) => string[]): Promise<string[]> => {
    const run = async () => {
      const set = await read(owner);
      const changed = fn(set).sort();
      if (changed.length > 0) await kv.set(owner, KEY, set.size === 0 ? null : JSON.stringify([...set].sort()));
      return changed;
    };
    const next = (tails.get(owner) ?? Promise.resolve()).then(run, run);
    const tail = next.then(() => undefined, () => undefined);
    tails.set(owner, tail);
    void tail.then(() => { if (tails.get(owner) === tail) tails.delete(owner); });
    return next;
  };
  return {
    list: async (owner) => [...(await read(owner))].sort(),
    add: (owner, jids) => change(owner, (set) => [...new Set(jids)].filter((j) => !set.has(j) && set.add(j))),
    remove: (owner, jids) => change(owner, (set) => [...new Set(jids)].filter((j) => set.delete(j))),
    clear: (owner) => change(owner, (set) => { const all = [...set]; set.clear(); return all; }),
    isBlocked: async (owner, jids) => {
      const set = await read(owner);
      return jids.some((j) => set.has(j));
    },
  };
}
