-- XEP-0191 block lists as rows (BlockListStore in src/storage/types.ts): one row per blocked JID, so that a
-- change is one row written and delivery asks one indexed question, on every node. As in SQLite.
CREATE TABLE block_list (
  owner   text NOT NULL,
  blocked text NOT NULL,  -- a JID as the user gave it: full, bare or domain
  PRIMARY KEY (owner, blocked)
);

-- Moves the lists the mobile adapter kept as a JSON array of JIDs per user in the key-value store (module
-- `mobile`, store `blocking`, key `blocked`). A damaged document blocked nothing and moves nothing.
CREATE FUNCTION hearth_migration_jsonb(text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN $1::jsonb;
EXCEPTION WHEN others THEN
  RETURN NULL;
END $$;

INSERT INTO block_list (owner, blocked)
  SELECT kv.owner, item #>> '{}'
  FROM key_value kv
  CROSS JOIN LATERAL hearth_migration_jsonb(kv.value) AS doc
  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(doc) = 'array' THEN doc ELSE '[]'::jsonb END) AS item
  WHERE kv.store = 'mobile:blocking' AND kv.key = 'blocked' AND jsonb_typeof(item) = 'string'
  ON CONFLICT DO NOTHING;
DELETE FROM key_value WHERE store = 'mobile:blocking' AND key = 'blocked';

DROP FUNCTION hearth_migration_jsonb(text);
