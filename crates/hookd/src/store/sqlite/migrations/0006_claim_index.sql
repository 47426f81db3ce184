-- Claiming passes over the due deliveries of endpoints the worker is busy with. With the
-- endpoint in the index, SQLite checks that from the index alone, instead of reading every
-- passed-over row of a busy endpoint's backlog from the table.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at, endpoint_id)
    WHERE next_attempt_at IS NOT NULL;

-- While some endpoints are passed over, claims take each other endpoint's earliest due
-- deliveries from this index, so a busy endpoint's backlog, however large, is never walked.
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
