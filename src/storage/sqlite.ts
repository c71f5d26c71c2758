// Moved: the SQLite driver is src/storage/sqlite/ (one file per contract). This path stays for importers.
export { migrateSqlite, openSqliteStore, type SqliteStoreOptions } from "./sqlite/index.js";
