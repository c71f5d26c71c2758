-- The single SQLite writer stops writing an owner's counter row with every commit. The next seq of an owner is
-- the larger of its counter row and its newest timeline row (one seek each), and the counter row is written
-- only when timeline rows are deleted (retention, a deleted account, by hand): it then keeps the highest seq
-- deleted, so that seqs are still never reused. A commit of one message wrote one or two pages fewer into the
-- WAL (of about nine), and a commit under load one counter row fewer per owner in it.
-- Counter rows written before this migration are already up to date: every commit wrote them.
CREATE TRIGGER timeline_seq_floor AFTER DELETE ON timeline
WHEN old.seq > coalesce((SELECT last_seq FROM timeline_seq WHERE owner = old.owner), 0)
BEGIN
  INSERT INTO timeline_seq (owner, last_seq) VALUES (old.owner, old.seq)
    ON CONFLICT (owner) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq);
END;
