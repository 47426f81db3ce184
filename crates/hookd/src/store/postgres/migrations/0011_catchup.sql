-- Catch-up after an outage (ARCHITECTURE.md, "Catching up after an outage"). `catchup_at` is
-- when the endpoint's last catch-up started (unix ms): deliveries waiting since before then are
-- released in batches. `catchup_cursor` is set while it runs: the retry time of the last one
-- released, where the next batch resumes along `deliveries_endpoint_due`.
ALTER TABLE endpoints ADD COLUMN catchup_at BIGINT, ADD COLUMN catchup_cursor BIGINT;
