// Schema migrations: `schemas/sql/<engine>/NNNN_name.sql`, one numbering for both engines. Each driver
// applies the ones above the version recorded in its database, in order, each in its own transaction.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type Engine = "sqlite" | "postgres";

export interface Migration { version: number; name: string; sql: string }

export class SchemaTooNewError extends Error {
  readonly code = "HEARTH_SCHEMA_TOO_NEW";
  constructor(readonly databaseVersion: number, readonly knownVersion: number) {
    super(`database schema version ${databaseVersion} is newer than this server knows (${knownVersion}); ` +
      "upgrade the server");
    this.name = "SchemaTooNewError";
  }
}

/** The database has not been migrated to the version this server needs, and migrating was not allowed. */
export class SchemaOutdatedError extends Error {
  readonly code = "HEARTH_SCHEMA_OUTDATED";
  constructor(readonly databaseVersion: number, readonly knownVersion: number) {
    super(`database schema version ${databaseVersion} is older than this server needs (${knownVersion}); ` +
      "open it with migrations enabled");
    this.name = "SchemaOutdatedError";
  }
}

const MIGRATION_FILE = /^(\d{4})_([a-z0-9_-]+)\.sql$/i;

let schemasDir: string | undefined;

/** The `schemas/` directory: sources run from src/storage, compiled code from dist/src/storage. */
function findSchemasDir(): string {
  if (schemasDir !== undefined) return schemasDir;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "schemas", "sql"))) return (schemasDir = join(dir, "schemas"));
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no schemas/sql directory above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export function listMigrations(engine: Engine): Migration[] {
  const dir = join(findSchemasDir(), "sql", engine);
  if (!existsSync(dir)) throw new Error(`no migrations for engine "${engine}" (expected ${dir})`);
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir)) {
    const match = MIGRATION_FILE.exec(file);
    if (match === null) continue;
    migrations.push({ version: Number(match[1]), name: match[2], sql: readFileSync(join(dir, file), "utf8") });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 0; i < migrations.length; i++) {
    if (migrations[i].version !== i + 1) {
      throw new Error(`migrations in ${dir} must be numbered 0001, 0002, … without gaps or repeats ` +
        `(found ${String(migrations[i].version).padStart(4, "0")}_${migrations[i].name}.sql at position ${i + 1})`);
    }
  }
  return migrations;
}

/**
 * The migrations a database at `currentVersion` still needs, oldest first. Throws SchemaTooNewError when
 * the database was written by a newer server: running old code on it could corrupt data.
 */
export function migrationsToApply(currentVersion: number, migrations: readonly Migration[]): Migration[] {
  const newest = migrations.length === 0 ? 0 : migrations[migrations.length - 1].version;
  if (currentVersion > newest) throw new SchemaTooNewError(currentVersion, newest);
  return migrations.filter((m) => m.version > currentVersion);
}
