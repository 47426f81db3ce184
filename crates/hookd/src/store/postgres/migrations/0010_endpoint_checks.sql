-- "Check my endpoint" reports (ARCHITECTURE.md, "Checking an endpoint"): the newest few per
-- endpoint, kept for its owner. The checks' requests never touch message history. Not a hot
-- table, so unlike deliveries and attempts it keeps its foreign key.
CREATE TABLE endpoint_checks (
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    checked_at BIGINT NOT NULL,
    app_id TEXT COLLATE "C" NOT NULL,
    passed BOOLEAN NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, checked_at)
);
