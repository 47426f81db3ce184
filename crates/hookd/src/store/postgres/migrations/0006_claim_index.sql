-- While some endpoints are passed over, claims take each other endpoint's earliest due
-- deliveries from this index, so a busy endpoint's backlog, however large, is never walked.
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
