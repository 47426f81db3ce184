-- `hookd listen` across nodes (ARCHITECTURE.md, "Listen sessions on several nodes"). A listen
-- session lives in the memory of one node; `listen_node` is that node's id (`nodes.id`), set
-- on the session's endpoint when the session opens or re-opens, NULL for every other endpoint.
-- While that node is alive, no other node claims or leases the endpoint's deliveries. The
-- partial index holds only pinned endpoints, so the claim reads the pins in one tiny scan.
ALTER TABLE endpoints ADD COLUMN listen_node TEXT COLLATE "C";
CREATE INDEX endpoints_listen_node ON endpoints (listen_node) WHERE listen_node IS NOT NULL;
