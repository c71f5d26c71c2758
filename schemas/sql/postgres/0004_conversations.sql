-- Conversation state as rows keyed by (owner, peer) (ConversationStore in src/storage/types.ts), so that a
-- change of one conversation is one atomic row update instead of a rewrite of the user's whole list. The
-- same tables as schemas/sql/sqlite/0004_conversations.sql.

CREATE TABLE conversations (
  owner          text    NOT NULL,
  peer           text    NOT NULL,  -- bare JID of the contact, or of the room for groups
  last_seq       bigint  NOT NULL,
  last_ts        bigint  NOT NULL,
  read_seq       bigint  NOT NULL,
  unread         integer NOT NULL,
  pinned         boolean NOT NULL,
  muted          boolean NOT NULL,
  peer_read      bigint  NOT NULL,
  peer_delivered bigint  NOT NULL,
  is_group       boolean NOT NULL,
  version        bigint  NOT NULL,  -- the list version at which the row last changed
  PRIMARY KEY (owner, peer)
);
-- Incremental sync: the rows changed after the version a client has seen.
CREATE INDEX conversations_version ON conversations (owner, version);

-- The list version counter and how far the owner's timeline is folded into the rows. Every write of an
-- owner's conversations locks this row first, so writers of one owner (on any node) take turns. Kept when
-- the account is deleted (as roster_versions), so that a re-created account never hands out a version again.
CREATE TABLE conversation_heads (
  owner        text   NOT NULL PRIMARY KEY,
  version      bigint NOT NULL,
  folded_up_to bigint NOT NULL
);

-- Recalled messages (XEP-0424) of the owner's timeline: target seq → seq of the recall event.
CREATE TABLE conversation_recalls (
  owner      text   NOT NULL,
  target_seq bigint NOT NULL,
  event_seq  bigint NOT NULL,
  PRIMARY KEY (owner, target_seq)
);

-- Moves the documents the mobile adapter kept per user in the key-value store (module `mobile`, store
-- `conversations`, key `conversations`): {"ver", "upTo", "c": {peer: {last, lastTs, read, unread, pinned,
-- muted, v, peerRead, peerDelivered, group}}, "r": {target: event}}. A damaged document moves nothing: the
-- rows are rebuilt from the timeline, as the adapter did.
CREATE FUNCTION hearth_migration_jsonb(text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN $1::jsonb;
EXCEPTION WHEN others THEN
  RETURN NULL;
END $$;
-- A whole number from a JSON field, 0 when it is missing or not a number.
CREATE FUNCTION hearth_migration_int(jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN jsonb_typeof($1) = 'number' THEN trunc(($1 #>> '{}')::numeric)::bigint ELSE 0 END
$$;

CREATE TEMP TABLE conversation_docs ON COMMIT DROP AS
  SELECT owner, doc FROM (
    SELECT owner, hearth_migration_jsonb(value) AS doc
    FROM key_value WHERE store = 'mobile:conversations' AND key = 'conversations'
  ) parsed
  WHERE jsonb_typeof(doc) = 'object';

INSERT INTO conversation_heads (owner, version, folded_up_to)
  SELECT owner, hearth_migration_int(doc -> 'ver'), hearth_migration_int(doc -> 'upTo') FROM conversation_docs;

INSERT INTO conversations (owner, peer, last_seq, last_ts, read_seq, unread, pinned, muted, peer_read, peer_delivered,
                           is_group, version)
  SELECT d.owner, c.key,
         hearth_migration_int(c.value -> 'last'), hearth_migration_int(c.value -> 'lastTs'),
         hearth_migration_int(c.value -> 'read'), hearth_migration_int(c.value -> 'unread'),
         coalesce(c.value -> 'pinned' = 'true'::jsonb, false), coalesce(c.value -> 'muted' = 'true'::jsonb, false),
         hearth_migration_int(c.value -> 'peerRead'), hearth_migration_int(c.value -> 'peerDelivered'),
         coalesce(c.value -> 'group' = 'true'::jsonb, false), hearth_migration_int(c.value -> 'v')
  FROM conversation_docs d
  CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(d.doc -> 'c') = 'object' THEN d.doc -> 'c' ELSE '{}'::jsonb END) c
  WHERE jsonb_typeof(c.value) = 'object';

INSERT INTO conversation_recalls (owner, target_seq, event_seq)
  SELECT d.owner, r.key::bigint, hearth_migration_int(r.value)
  FROM conversation_docs d
  CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(d.doc -> 'r') = 'object' THEN d.doc -> 'r' ELSE '{}'::jsonb END) r
  WHERE r.key ~ '^[0-9]{1,15}$' AND jsonb_typeof(r.value) = 'number'
  ON CONFLICT DO NOTHING;

DELETE FROM key_value WHERE store = 'mobile:conversations' AND key = 'conversations';
DROP TABLE conversation_docs;
DROP FUNCTION hearth_migration_int(jsonb);
DROP FUNCTION hearth_migration_jsonb(text);
