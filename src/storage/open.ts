import type { Config } from "../config/config.js";
import type { MigrationReport, Store } from "./types.js";
import { migrateSqlite, openSqliteStore } from "./sqlite/index.js";
import { migratePostgres, openPostgresStore } from "./postgres/index.js";

/** Opens the configured store driver (applying pending migrations; a newer schema is refused). */
export async function openStore(config: Config): Promise<Store> {
  switch (config.storage.driver) {
    case "sqlite":
      return openSqliteStore({ path: config.storage.sqlite.path });
    case "postgres":
      return openPostgresStore({ url: postgresUrl(config), poolSize: config.storage.postgres.poolSize });
  }
}

/** Applies the configured database's pending migrations (`hearth migrate`). */
export async function migrateStore(config: Config): Promise<MigrationReport & { driver: string }> {
  switch (config.storage.driver) {
    case "sqlite":
      return { driver: "sqlite", ...migrateSqlite(config.storage.sqlite.path) };
    case "postgres":
      return { driver: "postgres", ...await migratePostgres({ url: postgresUrl(config) }) };
  }
}

function postgresUrl(config: Config): string {
  // The config loader refuses driver postgres without a URL; this only satisfies the type.
  if (config.storage.postgres.url === null) throw new Error("storage.postgres.url is not set");
  return config.storage.postgres.url;
}
