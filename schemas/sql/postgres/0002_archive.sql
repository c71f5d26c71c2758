-- Message archive (XEP-0313 MAM) over the timeline: which rows MAM shows, what full-text search matches,
-- and retention. Old rows stay archived, as they were before preferences existed.

-- false when the owner's archiving preferences (XEP-0441) say never: the row still serves offline delivery,
-- resend detection and device sync, but MAM does not show it.
ALTER TABLE timeline ADD COLUMN archived boolean NOT NULL DEFAULT true;
-- The text full-text search matches (the message body); NULL is never matched.
ALTER TABLE timeline ADD COLUMN search_text text;

-- The words full-text search matches, as src/storage/fulltext.ts defines them: runs of letters and digits,
-- lower-cased ('simple' configuration: no stemming, no stop words). Punctuation becomes a space first so that
-- addresses and URLs split into words as in the SQLite driver, rather than into PostgreSQL's email/url tokens.
CREATE FUNCTION hearth_search_vector(text) RETURNS tsvector
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  AS $$ SELECT to_tsvector('simple'::regconfig, regexp_replace(left($1, 100000), '[^[:alnum:]]+', ' ', 'g')) $$;

CREATE INDEX timeline_search ON timeline USING gin (hearth_search_vector(search_text)) WHERE search_text IS NOT NULL;
-- Retention purges walk rows by age across all owners; the unarchived ones (few) have an index of their own,
-- so that purging them never walks the archived rows.
CREATE INDEX timeline_ts ON timeline (ts);
CREATE INDEX timeline_unarchived ON timeline (ts) WHERE NOT archived;
