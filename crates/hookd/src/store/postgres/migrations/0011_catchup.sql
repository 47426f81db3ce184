-- Catch-up after an outage (ARCHITECTURE.md, "Catching up after an outage"). While an endpoint
-- catches up, `catchup_at` is when it recovered (unix ms): deliveries waiting since before then
-- are released in batches. `catchup_cursor` is the retry time of the last one released; the
-- next batch resumes from there, along `deliveries_endpoint_due`.
ALTER TABLE endpoints ADD COLUMN catchup_at BIGINT, ADD COLUMN catchup_cursor BIGINT;
