-- `hookd listen` across nodes (ARCHITECTURE.md, "Listen sessions on several nodes"). A listen
-- session lives in the memory of one node; `listen_node` is that node's id, set on the
-- session's endpoint when the session opens or re-opens, NULL for every other endpoint. With
-- SQLite one process holds the database, so the claim has no other node to keep out and does
-- not read it; it is kept for the schema to match PostgreSQL's.
ALTER TABLE endpoints ADD COLUMN listen_node TEXT;
