-- "Check my endpoint" reports (ARCHITECTURE.md, "Checking an endpoint"): the newest few per
-- endpoint, kept for its owner. The checks' requests never touch message history.
CREATE TABLE endpoint_checks (
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    checked_at INTEGER NOT NULL,
    app_id TEXT NOT NULL,
    passed INTEGER NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, checked_at)
);
