-- The overview's backlog: the deliveries still to be made, by message, so that the oldest
-- pending message is the first entry (ids sort by creation time) instead of a join over every
-- pending delivery. One entry per delivery while it has work: added at ingest, removed when it
-- ends.
CREATE INDEX deliveries_pending_by_msg ON deliveries(msg_id) WHERE next_attempt_at IS NOT NULL;
-- The overview's slowest endpoints read the last hours of the hourly counts; pruning deletes
-- the oldest hours. Both by hour, across endpoints.
CREATE INDEX endpoint_activity_by_hour ON endpoint_activity(hour);
