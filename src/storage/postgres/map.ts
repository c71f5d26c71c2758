// Values by (owner, key) in a named store: the key-value contract and the map contract over one table.
import type pg from "pg";
import type { MapStore } from "../types.js";
import { checkMapValue, checkStrings } from "../validate.js";
import { statement, transaction } from "./pool.js";
import type { LocalLocks } from "../locks.js";

const select = statement("kv-get", "SELECT value FROM key_value WHERE owner = $1 AND store = $2 AND key = $3");
const upsert = statement("kv-set", "INSERT INTO key_value (owner, store, key, value) VALUES ($1, $2, $3, $4) " +
  "ON CONFLICT (owner, store, key) DO UPDATE SET value = excluded.value");
const remove = statement("kv-delete", "DELETE FROM key_value WHERE owner = $1 AND store = $2 AND key = $3");
const list = statement("kv-list", "SELECT key, value FROM key_value WHERE owner = $1 AND store = $2");
const lock = statement("kv-lock", "SELECT value FROM key_value WHERE owner = $1 AND store = $2 AND key = $3 FOR UPDATE");
// No ON CONFLICT: when a concurrent update inserted the key first, the unique violation makes the
// transaction start again, and the retry finds (and locks) that row.
const insert = statement("kv-insert", "INSERT INTO key_value (owner, store, key, value) VALUES ($1, $2, $3, $4)");
const replace = statement("kv-replace", "UPDATE key_value SET value = $4 WHERE owner = $1 AND store = $2 AND key = $3");

/**
 * `order` keeps the calls on one (owner, key) of this client in the order they were issued (the contract):
 * pooled connections would otherwise let a later set commit before an earlier one, or a get overtake a set.
 */
export function mapStore(pool: pg.Pool, storeName: string, order: LocalLocks): MapStore {
  const inOrder = <T>(owner: string, key: string, op: () => Promise<T>): Promise<T> => order.run(`${storeName}\0${owner}\0${key}`, op);
  const store: MapStore = {
    get: (owner, key) => inOrder(owner, key, async () => (await pool.query<{ value: string }>(select([owner, storeName, key]))).rows[0]?.value ?? null),
    async set(owner, key, value) {
      checkStrings("map", owner, key);
      const drop = checkMapValue(value) == null;
      return inOrder(owner, key, async () => {
        if (drop) await pool.query(remove([owner, storeName, key]));
        else await pool.query(upsert([owner, storeName, key, value]));
      });
    },
    delete: (owner, key) => inOrder(owner, key, async () => (await pool.query(remove([owner, storeName, key]))).rowCount === 1),
    async list(owner) {
      const { rows } = await pool.query<{ key: string; value: string }>(list([owner, storeName]));
      rows.sort((a, b) => (a.key < b.key ? -1 : 1));
      return new Map(rows.map((r) => [r.key, r.value]));
    },
    // The row lock (SELECT … FOR UPDATE) holds back every other update of the key, on any connection, until
    // this transaction ends; an absent key has no row to lock, and is covered by the insert's uniqueness.
    async update(owner, key, fn) {
      checkStrings("map", owner, key);
      return inOrder(owner, key, () => transaction(pool, async (client) => {
        const current = (await client.query<{ value: string }>(lock([owner, storeName, key]))).rows[0]?.value ?? null;
        const next = checkMapValue(fn(current));
        if (next === undefined || next === current) return current;
        if (next === null) await client.query(remove([owner, storeName, key]));
        else await client.query((current === null ? insert : replace)([owner, storeName, key, next]));
        return next;
      }));
    },
    // One transaction per key on the pool's connections in parallel: a row lock per key, as `update`.
    putIfMany: (entries) => Promise.all(entries.map((e) => store.update(e.owner, e.key, (cur) => (cur === e.expect ? e.value : undefined)))),
  };
  return store;
}
