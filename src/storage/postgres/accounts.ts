import type pg from "pg";
import type { Account, AccountStore, StoredCredentials } from "../types.js";
import { OWNED_TABLES } from "../validate.js";
import { statement } from "./pool.js";

interface AccountRow { host: string; username: string; credentials: StoredCredentials; created_at: number }

export function accountStore(pool: pg.Pool, timelineWritten: () => Promise<void>): AccountStore {
  const insert = statement("account-insert",
    "INSERT INTO accounts (host, username, credentials, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING");
  const select = statement("account-select",
    "SELECT host, username, credentials, created_at FROM accounts WHERE host = $1 AND username = $2");
  const update = statement("account-update", "UPDATE accounts SET credentials = $3 WHERE host = $1 AND username = $2");
  const list = statement("account-list", "SELECT username FROM accounts WHERE host = $1 ORDER BY username");
  // One statement, so one transaction. The timeline seq, roster version and conversation version counters
  // stay: a re-created account must never reuse them.
  const deleteAll = statement("account-delete", `WITH
      ${OWNED_TABLES.map((table, i) => `owned${i} AS (DELETE FROM ${table} WHERE owner = $3)`).join(",\n      ")}
    DELETE FROM accounts WHERE host = $1 AND username = $2`);

  return {
    create: async (host, username, credentials) =>
      (await pool.query(insert([host, username, JSON.stringify(credentials), Date.now()]))).rowCount === 1,
    async get(host, username) {
      const { rows } = await pool.query<AccountRow>(select([host, username]));
      if (rows.length === 0) return null;
      const row = rows[0];
      const account: Account = { host: row.host, username: row.username, credentials: row.credentials, createdAt: row.created_at };
      return account;
    },
    setCredentials: async (host, username, credentials) =>
      (await pool.query(update([host, username, JSON.stringify(credentials)]))).rowCount === 1,
    async delete(host, username) {
      await timelineWritten(); // appends queued for this account must not land after its rows are gone
      return (await pool.query(deleteAll([host, username, `${username}@${host}`]))).rowCount === 1;
    },
    list: async (host) => (await pool.query<{ username: string }>(list([host]))).rows.map((r) => r.username),
  };
}

