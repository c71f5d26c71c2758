-- Conversation state as rows keyed by (owner, peer) (ConversationStore in src/storage/types.ts), so that a
-- change of one conversation is one atomic row update instead of a rewrite of the user's whole list.

CREATE TABLE conversations (
  owner          TEXT    NOT NULL,
  peer           TEXT    NOT NULL,  -- bare JID of the contact, or of the room for groups
  last_seq       INTEGER NOT NULL,
  last_ts        INTEGER NOT NULL,
  read_seq       INTEGER NOT NULL,
  unread         INTEGER NOT NULL,
  pinned         INTEGER NOT NULL,
  muted          INTEGER NOT NULL,
  peer_read      INTEGER NOT NULL,
  peer_delivered INTEGER NOT NULL,
  is_group       INTEGER NOT NULL,
  version        INTEGER NOT NULL,  -- the list version at which the row last changed
  PRIMARY KEY (owner, peer)
) WITHOUT ROWID;
-- Incremental sync: the rows changed after the version a client has seen.
CREATE INDEX conversations_version ON conversations (owner, version);

-- The list version counter and how far the owner's timeline is folded into the rows. Kept when the account
-- is deleted (as roster_versions), so that a re-created account never hands out a version again.
CREATE TABLE conversation_heads (
  owner        TEXT    NOT NULL PRIMARY KEY,
  version      INTEGER NOT NULL,
  folded_up_to INTEGER NOT NULL
) WITHOUT ROWID;

-- Recalled messages (XEP-0424) of the owner's timeline: target seq → seq of the recall event.
CREATE TABLE conversation_recalls (
  owner      TEXT    NOT NULL,
  target_seq INTEGER NOT NULL,
  event_seq  INTEGER NOT NULL,
  PRIMARY KEY (owner, target_seq)
) WITHOUT ROWID;

-- Moves the documents the mobile adapter kept per user in the key-value store (module `mobile`, store
-- `conversations`, key `conversations`): {"ver", "upTo", "c": {peer: {last, lastTs, read, unread, pinned,
-- muted, v, peerRead, peerDelivered, group}}, "r": {target: event}}. A damaged document moves nothing: the
-- rows are rebuilt from the timeline, as the adapter did.
CREATE TEMP TABLE conversation_docs AS
  SELECT owner, CASE WHEN NOT json_valid(value) THEN NULL WHEN json_type(value) <> 'object' THEN NULL ELSE value END AS doc
  FROM key_value WHERE store = 'mobile:conversations' AND key = 'conversations';

INSERT INTO conversation_heads (owner, version, folded_up_to)
  SELECT owner,
         CASE WHEN json_type(doc, '$.ver') IN ('integer', 'real') THEN CAST(json_extract(doc, '$.ver') AS INTEGER) ELSE 0 END,
         CASE WHEN json_type(doc, '$.upTo') IN ('integer', 'real') THEN CAST(json_extract(doc, '$.upTo') AS INTEGER) ELSE 0 END
  FROM conversation_docs WHERE doc IS NOT NULL;

INSERT INTO conversations (owner, peer, last_seq, last_ts, read_seq, unread, pinned, muted, peer_read, peer_delivered,
                           is_group, version)
  SELECT d.owner, c.key,
         CASE WHEN json_type(c.value, '$.last') IN ('integer', 'real') THEN CAST(json_extract(c.value, '$.last') AS INTEGER) ELSE 0 END,
         CASE WHEN json_type(c.value, '$.lastTs') IN ('integer', 'real') THEN CAST(json_extract(c.value, '$.lastTs') AS INTEGER) ELSE 0 END,
         CASE WHEN json_type(c.value, '$.read') IN ('integer', 'real') THEN CAST(json_extract(c.value, '$.read') AS INTEGER) ELSE 0 END,
         CASE WHEN json_type(c.value, '$.unread') IN ('integer', 'real') THEN CAST(json_extract(c.value, '$.unread') AS INTEGER) ELSE 0 END,
         CASE WHEN json_type(c.value, '$.pinned') = 'true' THEN 1 ELSE 0 END,
         CASE WHEN json_type(c.value, '$.muted') = 'true' THEN 1 ELSE 0 END,
         CASE WHEN json_type(c.value, '$.peerRead') IN ('integer', 'real') THEN CAST(json_extract(c.value, '$.peerRead') AS INTEGER) ELSE 0 END,
         CASE WHEN json_type(c.value, '$.peerDelivered') IN ('integer', 'real') THEN CAST(json_extract(c.value, '$.peerDelivered') AS INTEGER) ELSE 0 END,
         CASE WHEN json_type(c.value, '$.group') = 'true' THEN 1 ELSE 0 END,
         CASE WHEN json_type(c.value, '$.v') IN ('integer', 'real') THEN CAST(json_extract(c.value, '$.v') AS INTEGER) ELSE 0 END
  FROM conversation_docs d,
       json_each(CASE WHEN json_type(d.doc, '$.c') = 'object' THEN json_extract(d.doc, '$.c') END) c
  WHERE d.doc IS NOT NULL AND c.type = 'object';

INSERT INTO conversation_recalls (owner, target_seq, event_seq)
  SELECT d.owner, CAST(r.key AS INTEGER), CAST(r.value AS INTEGER)
  FROM conversation_docs d,
       json_each(CASE WHEN json_type(d.doc, '$.r') = 'object' THEN json_extract(d.doc, '$.r') END) r
  WHERE d.doc IS NOT NULL AND r.type IN ('integer', 'real') AND CAST(r.key AS INTEGER) > 0
  ON CONFLICT DO NOTHING;

DROP TABLE conversation_docs;
DELETE FROM key_value WHERE store = 'mobile:conversations' AND key = 'conversations';
