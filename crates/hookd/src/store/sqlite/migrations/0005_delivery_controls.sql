-- Delivery controls: endpoint rate limits (GCRA schedule) and per-key ordering.

-- The earliest time (unix ms) the endpoint's next delivery may start, when it is throttled.
ALTER TABLE endpoints ADD COLUMN throttle_tat INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN ordering_key TEXT;

-- Copied from the message so that holding and releasing work on this table alone. Deliveries
-- of one key to one endpoint are ordered by rowid, which a single writer assigns in commit
-- order. Status 5 is "held": waiting for an earlier delivery of the same key.
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
CREATE INDEX deliveries_by_key ON deliveries(endpoint_id, ordering_key)
    WHERE ordering_key IS NOT NULL;
