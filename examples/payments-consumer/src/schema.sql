-- The membership app's own tables. The webhook inbox (`webhook_inbox`) is created beside them by
-- hookd_receiver::inbox::sqlite::create_table.

-- One row per payment: its latest known state.
CREATE TABLE IF NOT EXISTS payments (
    id               TEXT PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL,     -- created, authorized, captured, refunded or failed
    amount           INTEGER NOT NULL,  -- in the currency's minor unit (cents)
    currency         TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    updated_at_event TEXT NOT NULL      -- the `timestamp` of the event that set this state
);

-- One row per order: whether the membership it paid for is active.
CREATE TABLE IF NOT EXISTS memberships (
    order_id TEXT PRIMARY KEY NOT NULL,
    active   INTEGER NOT NULL
);

-- Failed payments for a person to follow up; a job would send these as e-mails, outside the
-- webhook's request, so the answer stays fast.
CREATE TABLE IF NOT EXISTS alerts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
