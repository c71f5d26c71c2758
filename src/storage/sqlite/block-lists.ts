// XEP-0191 block lists as rows (schemas/sql/sqlite/0003_block_lists.sql).
import type { BlockListStore } from "../types.js";
import { checkStrings, jidList } from "../validate.js";
import { settle, type Db } from "./db.js";
import type Database from "better-sqlite3";

/** isBlocked with up to this many candidates uses a statement of its own per count (no JSON to parse). */
const LISTED_CANDIDATES = 8;

export function blockListStore(db: Db): BlockListStore {
  const select = db.prepare<[string], string>("SELECT blocked FROM block_list WHERE owner = ?").pluck();
  const insert = db.prepare<[string, string]>("INSERT INTO block_list (owner, blocked) VALUES (?, ?) ON CONFLICT DO NOTHING");
  const remove = db.prepare<[string, string]>("DELETE FROM block_list WHERE owner = ? AND blocked = ?");
  const clear = db.prepare<[string], string>("DELETE FROM block_list WHERE owner = ? RETURNING blocked").pluck();
  const anyOfJson = db.prepare<[string, string], number>(
    "SELECT 1 FROM block_list WHERE owner = ? AND blocked IN (SELECT value FROM json_each(?)) LIMIT 1").pluck();
  const anyOf: Array<Database.Statement<string[], number>> = [];
  for (let n = 1; n <= LISTED_CANDIDATES; n++) {
    anyOf[n] = db.prepare<string[], number>(
      `SELECT 1 FROM block_list WHERE owner = ? AND blocked IN (${Array(n).fill("?").join(", ")}) LIMIT 1`).pluck();
  }

  // Owners that may have rows. An SQLite file has one writing process (this one), so the set never misses
  // an owner: a delivery between two users who block nobody (nearly all of them) runs no statement.
  const owners = new Set(db.prepare<[], string>("SELECT DISTINCT owner FROM block_list").pluck().all());

  /** The JIDs for which `statement` changed a row, in one transaction. */
  const changed = db.transaction((statement: Database.Statement<[string, string]>, owner: string, jids: string[]) =>
    jids.filter((jid) => statement.run(owner, jid).changes === 1));

  return {
    list: (owner) => settle(() => select.all(owner).sort()),
    add: (owner, jids) => settle(() => {
      checkStrings("block list", owner);
      const added = changed.immediate(insert, owner, jidList("block list", jids));
      if (added.length > 0) owners.add(owner);
      return added;
    }),
    remove: (owner, jids) => settle(() => {
      checkStrings("block list", owner);
      return changed.immediate(remove, owner, jidList("block list", jids));
    }),
    clear: (owner) => settle(() => {
      const cleared = clear.all(owner).sort();
      owners.delete(owner);
      return cleared;
    }),
    isBlocked: (owner, jids) => {
      if (jids.length === 0 || !owners.has(owner)) return false;
      const statement = anyOf[jids.length];
      const hit = statement === undefined ? anyOfJson.get(owner, JSON.stringify(jids)) : statement.get(owner, ...jids);
      return hit !== undefined;
    },
  };
}
