-- The merchant portal: a magic link's one-time key and the session it is exchanged for are
-- tokens too, kept as hashes like API tokens, so one table answers "who is this?" and one
-- revocation ends any of them. `kind` keeps them apart: a portal key or session is never
-- accepted as an API token.
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
-- Unix ms after which the token is refused; NULL never expires.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
-- What a portal key or session may do, as a JSON array of capability names; NULL for API tokens.
ALTER TABLE api_tokens ADD COLUMN capabilities TEXT;

-- The portal's delivery log finds a payment's messages by their ordering key.
CREATE INDEX messages_by_key ON messages(app_id, ordering_key, id) WHERE ordering_key IS NOT NULL;

-- Each endpoint's attempts counted per hour (hours since the epoch), written with the attempts
-- they count, so the portal's 24-hour charts read at most 24 rows per endpoint. No foreign key:
-- the counts of a deleted endpoint are never read and leave with retention.
CREATE TABLE endpoint_activity (
    endpoint_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, hour)
);
INSERT INTO endpoint_activity (endpoint_id, app_id, hour, succeeded, failed)
SELECT a.endpoint_id, MIN(a.app_id), a.created_at / 3600000, SUM(a.success), COUNT(*) - SUM(a.success)
FROM attempts a
GROUP BY a.endpoint_id, a.created_at / 3600000;
