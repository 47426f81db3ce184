-- The pull feed and per event type payload validation.
--
-- The feed reads an application's messages in commit order. Ids are generated before the
-- commit and sequence values are taken before it too, so concurrent ingests can commit out of
-- either order. Each message therefore records the id of the transaction that inserted it
-- (`feed_xid`) beside a sequence value (`feed_seq`). A reader only takes rows whose `feed_xid`
-- is below the xmin of its snapshot: every transaction before that has finished, so no row can
-- later appear in front of what it read. It orders by (feed_xid, feed_seq), which is final.
-- The ingest inserts messages with an explicit column list, so both columns take their
-- defaults there.
CREATE SEQUENCE messages_feed_seq AS BIGINT;
ALTER TABLE messages ADD COLUMN feed_xid xid8, ADD COLUMN feed_seq BIGINT;
-- Messages stored so far join the feed as one group, in id order.
UPDATE messages m SET feed_xid = pg_current_xact_id(), feed_seq = o.n
FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM messages) o
WHERE o.id = m.id;
SELECT setval('messages_feed_seq', COALESCE((SELECT MAX(feed_seq) FROM messages), 0) + 1, false);
ALTER TABLE messages
    ALTER COLUMN feed_xid SET DEFAULT pg_current_xact_id(),
    ALTER COLUMN feed_xid SET NOT NULL,
    ALTER COLUMN feed_seq SET DEFAULT nextval('messages_feed_seq'),
    ALTER COLUMN feed_seq SET NOT NULL;
ALTER SEQUENCE messages_feed_seq OWNED BY messages.feed_seq;
CREATE INDEX messages_feed ON messages (app_id, feed_xid, feed_seq);

-- Opt-in: when set, ingest checks payloads against the newest of the event type's schemas.
ALTER TABLE event_types ADD COLUMN validate_payloads BOOLEAN NOT NULL DEFAULT FALSE;
