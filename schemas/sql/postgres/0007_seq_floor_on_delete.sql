-- SQLite's migration of this number stops writing the counter row with every commit (see
-- schemas/sql/sqlite/0007_seq_floor_on_delete.sql). PostgreSQL keeps it: there the counter row is how the
-- nodes that write at once allocate seqs (one upsert per owner and batch, RETURNING the new last seq), so
-- only its meaning is recorded here.
COMMENT ON TABLE timeline_seq IS
  'The last seq handed out per owner: allocated by incrementing this row, never reused, kept when timeline rows or the account are deleted.';
