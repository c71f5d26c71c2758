import type { Account, AccountStore, StoredCredentials } from "../types.js";
import { OWNED_TABLES } from "../validate.js";
import { settle, type Db } from "./db.js";

interface AccountRow { host: string; username: string; credentials: string; created_at: number }

export function accountStore(db: Db, drainTimeline: () => Promise<void>): AccountStore {
  const insert = db.prepare<[string, string, string, number]>(
    "INSERT INTO accounts (host, username, credentials, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING");
  const select = db.prepare<[string, string], AccountRow>(
    "SELECT host, username, credentials, created_at FROM accounts WHERE host = ? AND username = ?");
  const update = db.prepare<[string, string, string]>(
    "UPDATE accounts SET credentials = ? WHERE host = ? AND username = ?");
  const list = db.prepare<[string], string>(
    "SELECT username FROM accounts WHERE host = ? ORDER BY username").pluck();
  const deleteAccount = db.prepare<[string, string]>("DELETE FROM accounts WHERE host = ? AND username = ?");
  const deleteOwned = OWNED_TABLES.map((table) => db.prepare<[string]>(`DELETE FROM ${table} WHERE owner = ?`));
  // The timeline seq, roster version and conversation version counters stay: a re-created account must never
  // reuse them, or a device that synced the old account's seq N (or cached version N) would skip new data.
  const deleteAll = db.transaction((host: string, username: string): boolean => {
    const owner = `${username}@${host}`;
    for (const statement of deleteOwned) statement.run(owner);
    return deleteAccount.run(host, username).changes === 1;
  });

  return {
    create: (host, username, credentials) =>
      settle(() => insert.run(host, username, JSON.stringify(credentials), Date.now()).changes === 1),
    get: (host, username) => settle(() => {
      const row = select.get(host, username);
      if (row === undefined) return null;
      const account: Account = {
        host: row.host,
        username: row.username,
        credentials: JSON.parse(row.credentials) as StoredCredentials,
        createdAt: row.created_at,
      };
      return account;
    }),
    setCredentials: (host, username, credentials) =>
      settle(() => update.run(JSON.stringify(credentials), host, username).changes === 1),
    // Appends issued for this account must not land after its rows are gone.
    delete: (host, username) => drainTimeline().then(() => settle(() => deleteAll.immediate(host, username))),
    list: (host) => settle(() => list.all(host)),
  };
}

