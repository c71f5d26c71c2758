// Moved: the PostgreSQL driver is src/storage/postgres/ (one file per contract). This path stays for importers.
export { migratePostgres, openPostgresStore, type PostgresStoreOptions } from "./postgres/index.js";
