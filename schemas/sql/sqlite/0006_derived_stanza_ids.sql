-- Stanza-ids derived from the seq (src/storage/stanza-ids.ts): a row written without an id of its own stores
-- an empty stanza_id and gets no entry in the stanza-id index, which keeps only the rows with a stored id (older
-- rows, MUC rows). The key that encrypts (owner, seq) into an id is made here, once per database, so every
-- process on it derives the same ids.
DROP INDEX timeline_stanza_id;
CREATE UNIQUE INDEX timeline_stanza_id ON timeline (owner, stanza_id) WHERE stanza_id <> '';
CREATE TABLE server_secrets (
  name  TEXT NOT NULL PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;
INSERT INTO server_secrets (name, value) VALUES ('stanza-id', randomblob(16));
