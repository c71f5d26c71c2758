// Values by (owner, key) in a named store: the key-value contract and the map contract over one table.
import type { MapStore, MapUpdate } from "../types.js";
import type { KvPut } from "./timeline-write.js";
import { checkMapValue, checkStrings } from "../validate.js";
import { settle, type Db } from "./db.js";

export function prepareMap(db: Db) {
  return {
    select: db.prepare<[string, string, string], string>(
      "SELECT value FROM key_value WHERE owner = ? AND store = ? AND key = ?").pluck(),
    upsert: db.prepare<[string, string, string, string]>(
      "INSERT INTO key_value (owner, store, key, value) VALUES (?, ?, ?, ?) " +
      "ON CONFLICT (owner, store, key) DO UPDATE SET value = excluded.value"),
    delete: db.prepare<[string, string, string]>("DELETE FROM key_value WHERE owner = ? AND store = ? AND key = ?"),
    list: db.prepare<[string, string], { key: string; value: string }>(
      "SELECT key, value FROM key_value WHERE owner = ? AND store = ?"),
  };
}

/** `putIf`: the compare-and-sets of the timeline's writer (TimelineStoreHandle.putIf). */
export function mapStore(db: Db, storeName: string, statements: ReturnType<typeof prepareMap>, putIf: (puts: KvPut[]) => Promise<Array<string | null>>): MapStore {
  const write = (owner: string, key: string, value: string | null): boolean =>
    (value === null ? statements.delete.run(owner, storeName, key) : statements.upsert.run(owner, storeName, key, value)).changes === 1;
  // IMMEDIATE: the write lock is taken before the read, so another connection to the file cannot write the
  // key between the two.
  const updateOne = (owner: string, key: string, fn: MapUpdate): string | null => {
    const current = statements.select.get(owner, storeName, key) ?? null;
    const next = checkMapValue(fn(current));
    if (next === undefined || next === current) return current;
    write(owner, key, next);
    return next;
  };
  const update = db.transaction(updateOne);
  return {
    get: (owner, key) => settle(() => statements.select.get(owner, storeName, key) ?? null),
    set: (owner, key, value) => settle(() => {
      checkStrings("map", owner, key);
      write(owner, key, checkMapValue(value) ?? null);
    }),
    delete: (owner, key) => settle(() => write(owner, key, null)),
    list: (owner) => settle(() => {
      const rows = statements.list.all(owner, storeName);
      rows.sort((a, b) => (a.key < b.key ? -1 : 1));
      return new Map(rows.map((r) => [r.key, r.value]));
    }),
    update: (owner, key, fn) => settle(() => {
      checkStrings("map", owner, key);
      return update.immediate(owner, key, fn);
    }),
    putIfMany(entries) {
      try {
        for (const e of entries) {
          checkStrings("map", e.owner, e.key);
          checkMapValue(e.value);
        }
      } catch (err) {
        return Promise.reject(err);
      }
      return putIf(entries.map((e) => ({ store: storeName, owner: e.owner, key: e.key, value: e.value, expect: e.expect })));
    },
  };
}
