-- The operator dashboard (ARCHITECTURE.md, "The operator dashboard").

-- Each node of the deployment as it last reported itself; every node rewrites its row every
-- few seconds, so a row whose heartbeat is old is a node that stopped.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    in_flight INTEGER NOT NULL
);

-- Messages in and attempts out per minute (minutes since the epoch), one row per node and
-- minute: each node adds what it counted every few seconds to its own rows, so nodes never
-- contend and the overview reads at most 1,440 rows per node for a day.
CREATE TABLE traffic_minutes (
    minute INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    messages_in INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    PRIMARY KEY (minute, node_id)
);

-- The time the counted attempts took, so the overview can name the slowest endpoints.
ALTER TABLE endpoint_activity ADD COLUMN duration_ms INTEGER NOT NULL DEFAULT 0;

-- What operators did from the dashboard: who, what, to what, when. Kept as long as attempts.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    app_id TEXT,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- The dashboard's search finds messages of any application by event id or ordering key.
CREATE INDEX messages_by_event_id ON messages(event_id) WHERE event_id IS NOT NULL;
CREATE INDEX messages_by_ordering_key ON messages(ordering_key, id) WHERE ordering_key IS NOT NULL;
