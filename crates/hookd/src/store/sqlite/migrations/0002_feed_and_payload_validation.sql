-- The pull feed and per event type payload validation.
--
-- The feed reads an application's messages in commit order. Message ids are generated before
-- the commit, so they are not that order; `feed_seq` is. The single writer takes the next value
-- of `feed_counter` in the transaction that inserts the message, so values are handed out in
-- commit order, and a message whose job rolls back gives its value back. A counter row, rather
-- than the table's rowid, because SQLite reuses rowids once the newest rows are deleted (the
-- retention pruner can empty the table after a quiet spell) and VACUUM may renumber them: a
-- consumer's stored cursor would then skip the next messages.
CREATE TABLE feed_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO feed_counter (id, last) SELECT 1, COALESCE(MAX(rowid), 0) FROM messages;

ALTER TABLE messages ADD COLUMN feed_seq INTEGER;
-- Messages stored so far were committed by the same single writer, in rowid order.
UPDATE messages SET feed_seq = rowid;
CREATE INDEX messages_feed ON messages(app_id, feed_seq);

-- Opt-in: when set, ingest checks payloads against the newest of the event type's schemas.
ALTER TABLE event_types ADD COLUMN validate_payloads INTEGER NOT NULL DEFAULT 0;
