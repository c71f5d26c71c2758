-- Initial schema: accounts, roster, the per-user timeline (DESIGN.md "the timeline") and key-value data.
-- The same tables as schemas/sql/sqlite/0001_init.sql. Owners are bare JIDs ("user@host"). Times are ms
-- since the epoch (bigint).

CREATE TABLE accounts (
  host        text   NOT NULL,
  username    text   NOT NULL,
  credentials jsonb  NOT NULL,  -- StoredCredentials: SCRAM keys per hash, never a clear password
  created_at  bigint NOT NULL,
  PRIMARY KEY (host, username)
);

CREATE TABLE roster_items (
  owner        text    NOT NULL,
  contact      text    NOT NULL,
  name         text,
  subscription text    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
  ask_out      boolean NOT NULL,
  pending_in   text,              -- the inbound subscribe stanza awaiting a decision
  approved     boolean NOT NULL,
  in_roster    boolean NOT NULL,
  groups       text[]  NOT NULL,
  PRIMARY KEY (owner, contact)
);

-- RFC 6121 §2.6 roster versioning. Kept when the account is deleted, so that a re-created account never
-- hands out a version a client may still cache for the old roster.
CREATE TABLE roster_versions (
  owner   text   NOT NULL PRIMARY KEY,
  version bigint NOT NULL
);

CREATE TABLE timeline (
  owner     text    NOT NULL,
  seq       bigint  NOT NULL,
  peer      text    NOT NULL,
  outgoing  boolean NOT NULL,
  stanza_id text    NOT NULL,
  origin_id text,
  ts        bigint  NOT NULL,
  xml       text    NOT NULL,
  pending   boolean NOT NULL,
  PRIMARY KEY (owner, seq)
);

-- Idempotent resends, as in SQLite: the sender's copy is keyed by (owner, origin_id), the recipient's by
-- (owner, peer, origin_id).
CREATE UNIQUE INDEX timeline_outgoing_origin ON timeline (owner, origin_id)
  WHERE outgoing AND origin_id IS NOT NULL;
CREATE UNIQUE INDEX timeline_incoming_origin ON timeline (owner, peer, origin_id)
  WHERE NOT outgoing AND origin_id IS NOT NULL;
CREATE UNIQUE INDEX timeline_stanza_id ON timeline (owner, stanza_id);
-- MAM `with` queries (XEP-0313) walk one conversation in seq order.
CREATE INDEX timeline_peer ON timeline (owner, peer, seq);
-- Offline delivery (XEP-0160): the rows no resource has received yet.
CREATE INDEX timeline_pending ON timeline (owner, seq) WHERE pending;

-- The last seq handed out per owner, allocated in the writing statement (INSERT … ON CONFLICT DO UPDATE), so
-- that several server processes sharing the database never hand out a seq twice. Never reused or moved
-- back, even when timeline rows or the whole account are deleted.
CREATE TABLE timeline_seq (
  owner    text   NOT NULL PRIMARY KEY,
  last_seq bigint NOT NULL
);

CREATE TABLE key_value (
  store text NOT NULL,
  owner text NOT NULL,
  key   text NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (owner, store, key)  -- owner first: deleting an account deletes one key range
);
