-- Issue 5, ingest controls: eventId unique per application, idempotency keys, payload
-- retention, background tasks.

-- An eventId names one message of its application. Should duplicates exist from before this
-- rule, the oldest message keeps the eventId and the later ones lose it (they stay readable by
-- their id), so the unique index can be built. It replaces the plain index on the same columns.
UPDATE messages SET event_id = NULL
WHERE event_id IS NOT NULL AND id NOT IN (
    SELECT MIN(id) FROM messages WHERE event_id IS NOT NULL GROUP BY app_id, event_id);
DROP INDEX messages_by_event_id;
CREATE UNIQUE INDEX messages_app_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;

-- Answers kept for `idempotency-key` replays, per token scope (`org` or `app:<id>`) and key.
-- `status` is NULL while the first request runs; it holds the key until `locked_until`, after
-- which it counts as dead. The record is forgotten at `expires_at`, 24 h after the request.
CREATE TABLE idempotency_keys (
    scope TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT NOT NULL,
    status SMALLINT,
    content_type TEXT,
    body BYTEA,
    locked_until BIGINT,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Payload retention: a payload is removed at `payload_expires_at` (`payloadRetentionPeriod`
-- after ingest, 90 days unless the message asked otherwise); `payload_expired` marks a removed
-- one, whose row in message_payloads then holds '{}'. Messages stored earlier keep the default
-- of 90 days.
ALTER TABLE messages ADD COLUMN payload_expires_at BIGINT;
ALTER TABLE messages ADD COLUMN payload_expired BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE messages SET payload_expires_at = created_at + 7776000000;
CREATE INDEX messages_payload_expiry ON messages (payload_expires_at) WHERE NOT payload_expired;

-- Background tasks (`recover`), run by the workers in batches. A task covers the messages
-- created in [window_start, window_end); `cursor` is the last message id a batch reached (the
-- next batch starts after it) and `batch_after` the cursor before that batch: the next batch
-- waits while that range still has deliveries due or in flight.
CREATE TABLE background_tasks (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    cursor TEXT COLLATE "C",
    batch_after TEXT COLLATE "C",
    done BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX background_tasks_running ON background_tasks (updated_at) WHERE status = 'running';
