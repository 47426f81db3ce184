-- Claiming passes over the due deliveries of endpoints the worker is busy with. With the
-- endpoint in the index, SQLite checks that from the index alone, instead of reading every
-- passed-over row of a busy endpoint's backlog from the table.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at, endpoint_id)
    WHERE next_attempt_at IS NOT NULL;
