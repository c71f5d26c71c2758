-- Message archive (XEP-0313 MAM) over the timeline: which rows MAM shows, what full-text search matches,
-- and retention. Old rows stay archived, as they were before preferences existed.

-- false when the owner's archiving preferences (XEP-0441) say never: the row still serves offline delivery,
-- resend detection and device sync, but MAM does not show it.
ALTER TABLE timeline ADD COLUMN archived INTEGER NOT NULL DEFAULT 1;
-- The text full-text search matches (the message body); NULL is never matched. SQLite has no text index here:
-- a search walks the owner's rows (or one conversation's, with `with`) and matches words in application code.
ALTER TABLE timeline ADD COLUMN search_text TEXT;
-- Retention purges walk rows by age across all owners; the unarchived ones (few) have an index of their own,
-- so that purging them never walks the archived rows.
CREATE INDEX timeline_ts ON timeline (ts);
CREATE INDEX timeline_unarchived ON timeline (ts) WHERE archived = 0;
