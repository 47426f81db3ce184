-- The operational outbox (docs/OPERATIONS.md, "Endpoint health and operational webhooks"): an
-- operational event is written here in the transaction of what caused it (an endpoint change,
-- recorded attempt results), and the publisher turns it into a message of the operational
-- application and deletes it in one later transaction. `event` is the event as JSON.
CREATE TABLE operational_outbox (
    id BIGSERIAL PRIMARY KEY,
    event TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
