import type { RosterItem, RosterStore, Subscription } from "../types.js";
import type { LockRunner } from "../locks.js";
import { settle, type Db } from "./db.js";

interface RosterRow {
  contact: string; name: string | null; subscription: Subscription; ask_out: number; pending_in: string | null;
  approved: number; in_roster: number; groups_json: string;
}
const ROSTER_COLUMNS = "contact, name, subscription, ask_out, pending_in, approved, in_roster, groups_json";

function toRosterItem(row: RosterRow): RosterItem {
  return {
    jid: row.contact,
    name: row.name,
    subscription: row.subscription,
    askOut: row.ask_out === 1,
    pendingIn: row.pending_in,
    approved: row.approved === 1,
    inRoster: row.in_roster === 1,
    groups: JSON.parse(row.groups_json) as string[],
  };
}

export function rosterStore(db: Db, lock: LockRunner): RosterStore {
  const selectItem = db.prepare<[string, string], RosterRow>(
    `SELECT ${ROSTER_COLUMNS} FROM roster_items WHERE owner = ? AND contact = ?`);
  const selectVersion = db.prepare<[string], number>(
    "SELECT version FROM roster_versions WHERE owner = ?").pluck();
  const upsertItem = db.prepare<[string, string, string | null, string, number, string | null, number, number, string]>(
    `INSERT INTO roster_items (owner, ${ROSTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
       ask_out = excluded.ask_out, pending_in = excluded.pending_in, approved = excluded.approved,
       in_roster = excluded.in_roster, groups_json = excluded.groups_json`);
  const deleteItem = db.prepare<[string, string]>("DELETE FROM roster_items WHERE owner = ? AND contact = ?");
  const bumpVersion = db.prepare<[string], number>(
    `INSERT INTO roster_versions (owner, version) VALUES (?, 1)
     ON CONFLICT (owner) DO UPDATE SET version = version + 1 RETURNING version`).pluck();

  const version = (owner: string): number => selectVersion.get(owner) ?? 0;
  const put = db.transaction((owner: string, item: RosterItem): number => {
    upsertItem.run(owner, item.jid, item.name, item.subscription, item.askOut ? 1 : 0, item.pendingIn,
      item.approved ? 1 : 0, item.inRoster ? 1 : 0, JSON.stringify(item.groups));
    return bumpVersion.get(owner)!;
  });
  const remove = db.transaction((owner: string, contact: string): number =>
    deleteItem.run(owner, contact).changes === 0 ? version(owner) : bumpVersion.get(owner)!);
  // The version and the items in one statement (one read transaction, so they always match): a login reads
  // the roster for its presence, and each statement costs more than its rows. The version's row has no
  // contact and so comes first.
  const selectRoster = db.prepare<[string, string], RosterRow & { version: number | null }>(
    `SELECT version, ${ROSTER_COLUMNS.split(", ").map((c) => `NULL AS ${c}`).join(", ")} FROM roster_versions WHERE owner = ?
     UNION ALL SELECT NULL, ${ROSTER_COLUMNS} FROM roster_items WHERE owner = ?
     ORDER BY contact`);
  const get = (owner: string): { version: number; items: RosterItem[] } => {
    const rows = selectRoster.all(owner, owner);
    const items: RosterItem[] = [];
    let version = 0;
    for (const row of rows) {
      if (row.contact === null) version = row.version!;
      else items.push(toRosterItem(row));
    }
    return { version, items };
  };

  return {
    get: (owner) => settle(() => get(owner)),
    getItem: (owner, contact) => settle(() => {
      const row = selectItem.get(owner, contact);
      return row === undefined ? null : toRosterItem(row);
    }),
    put: (owner, item) => settle(() => put(owner, item)),
    remove: (owner, contact) => settle(() => remove(owner, contact)),
    lock: (owner, fn) => lock(`roster:${owner}`, fn),
  };
}

