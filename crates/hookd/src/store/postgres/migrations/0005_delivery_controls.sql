-- Delivery controls: endpoint rate limits (GCRA schedule) and per-key ordering.

-- The earliest time (unix ms) the endpoint's next delivery may start, when it is throttled.
ALTER TABLE endpoints ADD COLUMN throttle_tat BIGINT NOT NULL DEFAULT 0;

ALTER TABLE messages ADD COLUMN ordering_key TEXT COLLATE "C";

-- Copied from the message so that holding and releasing work on this table alone. `seq` orders
-- the deliveries of one key: keyed ingests take a transaction-level advisory lock on
-- (application, key), so sequence order is commit order. Status 5 is "held": waiting for an
-- earlier delivery of the same key.
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT COLLATE "C";
ALTER TABLE deliveries ADD COLUMN seq BIGSERIAL;
CREATE INDEX deliveries_by_key ON deliveries (endpoint_id, ordering_key, seq)
    WHERE ordering_key IS NOT NULL;
