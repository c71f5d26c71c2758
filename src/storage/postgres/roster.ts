import type pg from "pg";
import type { RosterItem, RosterStore, Subscription } from "../types.js";
import { statement } from "./pool.js";
import type { LockRunner } from "../locks.js";

interface RosterRow {
  contact: string; name: string | null; subscription: Subscription; ask_out: boolean; pending_in: string | null;
  approved: boolean; in_roster: boolean; groups: string[];
}
const ROSTER_COLUMNS = "contact, name, subscription, ask_out, pending_in, approved, in_roster, groups";

function toRosterItem(row: RosterRow): RosterItem {
  return {
    jid: row.contact, name: row.name, subscription: row.subscription, askOut: row.ask_out, pendingIn: row.pending_in,
    approved: row.approved, inRoster: row.in_roster, groups: row.groups,
  };
}

export function rosterStore(pool: pg.Pool, lock: LockRunner): RosterStore {
  // Version and items from one statement: one snapshot, so the version always matches the items.
  const selectAll = statement("roster-get", `SELECT v.version, ${ROSTER_COLUMNS.split(", ").map((c) => `r.${c}`).join(", ")}
    FROM (SELECT coalesce((SELECT version FROM roster_versions WHERE owner = $1), 0) AS version) v
    LEFT JOIN roster_items r ON r.owner = $1 ORDER BY r.contact`);
  const selectItem = statement("roster-item", `SELECT ${ROSTER_COLUMNS} FROM roster_items WHERE owner = $1 AND contact = $2`);
  const selectVersion = statement("roster-version", "SELECT version FROM roster_versions WHERE owner = $1");
  const put = statement("roster-put", `WITH item AS (
      INSERT INTO roster_items (owner, ${ROSTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
        ask_out = excluded.ask_out, pending_in = excluded.pending_in, approved = excluded.approved,
        in_roster = excluded.in_roster, groups = excluded.groups)
    INSERT INTO roster_versions AS v (owner, version) VALUES ($1, 1)
    ON CONFLICT (owner) DO UPDATE SET version = v.version + 1 RETURNING version`);
  const remove = statement("roster-remove", `WITH removed AS (DELETE FROM roster_items WHERE owner = $1 AND contact = $2 RETURNING 1)
    INSERT INTO roster_versions AS v (owner, version) SELECT $1, 1 FROM removed
    ON CONFLICT (owner) DO UPDATE SET version = v.version + 1 RETURNING version`);

  const version = async (owner: string): Promise<number> =>
    (await pool.query<{ version: number }>(selectVersion([owner]))).rows[0]?.version ?? 0;

  return {
    async get(owner) {
      const { rows } = await pool.query<RosterRow & { version: number }>(selectAll([owner]));
      return { version: rows[0].version, items: rows.filter((r) => r.contact !== null).map(toRosterItem) };
    },
    async getItem(owner, contact) {
      const { rows } = await pool.query<RosterRow>(selectItem([owner, contact]));
      return rows.length === 0 ? null : toRosterItem(rows[0]);
    },
    put: async (owner, item) => (await pool.query<{ version: number }>(put([owner, item.jid, item.name, item.subscription,
      item.askOut, item.pendingIn, item.approved, item.inRoster, item.groups]))).rows[0].version,
    async remove(owner, contact) {
      const { rows } = await pool.query<{ version: number }>(remove([owner, contact]));
      return rows.length === 0 ? version(owner) : rows[0].version;
    },
    lock: (owner, fn) => lock(`roster:${owner}`, fn),
  };
}

