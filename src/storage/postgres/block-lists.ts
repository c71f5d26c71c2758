// XEP-0191 block lists as rows (schemas/sql/postgres/0003_block_lists.sql).
import type pg from "pg";
import type { BlockListStore } from "../types.js";
import { checkStrings, jidList } from "../validate.js";
import { statement } from "./pool.js";

const select = statement("block-list", "SELECT blocked FROM block_list WHERE owner = $1");
const insert = statement("block-add", `INSERT INTO block_list (owner, blocked) SELECT $1, unnest($2::text[])
  ON CONFLICT DO NOTHING RETURNING blocked`);
const remove = statement("block-remove", "DELETE FROM block_list WHERE owner = $1 AND blocked = ANY($2::text[]) RETURNING blocked");
const clear = statement("block-clear", "DELETE FROM block_list WHERE owner = $1 RETURNING blocked");
const anyOf = statement("block-any", "SELECT 1 FROM block_list WHERE owner = $1 AND blocked = ANY($2::text[]) LIMIT 1");

export function blockListStore(pool: pg.Pool): BlockListStore {
  const blocked = async (query: pg.QueryConfig): Promise<string[]> =>
    (await pool.query<{ blocked: string }>(query)).rows.map((r) => r.blocked).sort();
  return {
    list: (owner) => blocked(select([owner])),
    async add(owner, jids) {
      checkStrings("block list", owner);
      const list = jidList("block list", jids);
      return list.length === 0 ? [] : blocked(insert([owner, list]));
    },
    async remove(owner, jids) {
      checkStrings("block list", owner);
      const list = jidList("block list", jids);
      return list.length === 0 ? [] : blocked(remove([owner, list]));
    },
    clear: (owner) => blocked(clear([owner])),
    isBlocked: async (owner, jids) => jids.length !== 0 && (await pool.query(anyOf([owner, jids]))).rowCount !== 0,
  };
}
