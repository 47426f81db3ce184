-- hookd's PostgreSQL schema. Times are unix milliseconds (BIGINT), as in the SQLite schema, so
-- both backends hand the same records to the rest of hookd. Key columns use the "C" collation:
-- ids are ASCII and sort by creation time byte for byte, whatever the cluster's locale.
--
-- The hot tables (messages, message_payloads, deliveries, attempts) carry no foreign keys: every
-- insert would otherwise take a KEY SHARE lock on the same application or endpoint row, and many
-- concurrent ingests locking one row turn into multixacts. Deleting an application, endpoint or
-- message removes its dependent rows explicitly, in the same transaction.

CREATE TABLE applications (
    id TEXT COLLATE "C" PRIMARY KEY,
    uid TEXT COLLATE "C" UNIQUE,
    name TEXT NOT NULL,
    throttle_rate BIGINT,
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    uid TEXT COLLATE "C",
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    event_types TEXT[],
    channels TEXT[],
    throttle_rate BIGINT,
    metadata JSONB NOT NULL DEFAULT '{}',
    headers JSONB NOT NULL DEFAULT '{}',
    -- Sealed (XChaCha20-Poly1305, bound to app_id and id); never the secret in clear.
    secret TEXT NOT NULL,
    retiring_secrets JSONB NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoints_by_app ON endpoints (app_id, id);

CREATE TABLE event_types (
    name TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT FALSE,
    deprecated BOOLEAN NOT NULL DEFAULT FALSE,
    schemas JSONB,
    feature_flag TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Messages without their payloads, so that scans of messages stay small.
CREATE TABLE messages (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C",
    channels TEXT[],
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_by_app ON messages (app_id, id);
CREATE INDEX messages_by_event_id ON messages (app_id, event_id) WHERE event_id IS NOT NULL;

-- The bytes as ingested, read only to make an attempt or to show the message.
CREATE TABLE message_payloads (
    msg_id TEXT COLLATE "C" PRIMARY KEY,
    payload TEXT NOT NULL
);

-- One narrow row per (message, endpoint). `next_attempt_at` is set while the delivery still has
-- work: when it is due, or, while leased (status 3), when the lease expires. The claim query
-- therefore needs only the partial index below, and an expired lease is simply due again.
CREATE TABLE deliveries (
    id TEXT COLLATE "C" PRIMARY KEY,
    msg_id TEXT COLLATE "C" NOT NULL,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    app_id TEXT COLLATE "C" NOT NULL,
    status SMALLINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_owner TEXT,
    lease_token TEXT,
    trigger_type SMALLINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    UNIQUE (msg_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, msg_id);

CREATE TABLE attempts (
    id TEXT COLLATE "C" PRIMARY KEY,
    delivery_id TEXT COLLATE "C" NOT NULL,
    app_id TEXT COLLATE "C" NOT NULL,
    msg_id TEXT COLLATE "C" NOT NULL,
    endpoint_id TEXT COLLATE "C" NOT NULL,
    url TEXT NOT NULL,
    success BOOLEAN NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms BIGINT NOT NULL,
    trigger_type SMALLINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attempts_by_msg ON attempts (msg_id, id);
CREATE INDEX attempts_by_endpoint ON attempts (endpoint_id, id);

CREATE TABLE api_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    hash TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT NOT NULL,
    app_id TEXT COLLATE "C" REFERENCES applications(id) ON DELETE CASCADE,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
