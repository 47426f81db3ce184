-- Endpoint health: when the endpoint's current run of failures began (unix ms), NULL while it
-- works. Set by the first failure recorded after a success, cleared by a success or when the
-- endpoint is re-enabled; an endpoint whose clock has run for HOOKD_DISABLE_AFTER is disabled.
ALTER TABLE endpoints ADD COLUMN first_failure_at INTEGER;
