-- A resend is the same message to the same peer: the sender's copy is keyed by (owner, peer, origin_id),
-- like the recipient's. An origin-id reused for a message to someone else is a new message, delivered and
-- acknowledged as one, rather than a "resend" whose acknowledgement names another conversation.
DROP INDEX timeline_outgoing_origin;
CREATE UNIQUE INDEX timeline_outgoing_origin ON timeline (owner, peer, origin_id)
  WHERE outgoing AND origin_id IS NOT NULL;
