-- XEP-0191 block lists as rows (BlockListStore in src/storage/types.ts): one row per blocked JID, so that a
-- change is one row written and delivery asks one indexed question, on every node.
CREATE TABLE block_list (
  owner   TEXT NOT NULL,
  blocked TEXT NOT NULL,  -- a JID as the user gave it: full, bare or domain
  PRIMARY KEY (owner, blocked)
) WITHOUT ROWID;

-- Moves the lists the mobile adapter kept as a JSON array of JIDs per user in the key-value store (module
-- `mobile`, store `blocking`, key `blocked`). A damaged document blocked nothing and moves nothing.
INSERT INTO block_list (owner, blocked)
  SELECT kv.owner, item.value
  FROM key_value kv,
       json_each(CASE WHEN NOT json_valid(kv.value) THEN '[]' WHEN json_type(kv.value) <> 'array' THEN '[]' ELSE kv.value END) item
  WHERE kv.store = 'mobile:blocking' AND kv.key = 'blocked' AND item.type = 'text'
  ON CONFLICT DO NOTHING;
DELETE FROM key_value WHERE store = 'mobile:blocking' AND key = 'blocked';
