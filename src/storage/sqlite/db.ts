// What every SQLite contract file shares. better-sqlite3 is synchronous, so every method computes its
// value at once and returns it settled.
import type Database from "better-sqlite3";

export type Db = Database.Database;

/** Runs `compute` now and returns its value (or its exception) as a settled promise. */
export function settle<T>(compute: () => T): Promise<Awaited<T>> {
  try {
    return Promise.resolve(compute());
  } catch (err) {
    return Promise.reject(err);
  }
}
