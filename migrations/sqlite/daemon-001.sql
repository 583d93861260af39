-- lestash-sync's own objects inside the app's database, version 1.
-- Everything here is named _lestash_sync_*; the app's tables, indexes,
-- triggers and PRAGMA user_version are never touched.

-- Key/value state of this replica: its id and name, the schema version the
-- capture triggers were generated for, the columns each table syncs.
CREATE TABLE _lestash_sync_meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;

-- Local changes waiting to be pushed, in commit order. AUTOINCREMENT so a
-- sequence number is never reused after the outbox empties: Postgres
-- remembers the last sequence applied per replica to skip retried batches.
CREATE TABLE _lestash_sync_outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl         TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
    local_id    INTEGER,  -- rowid-keyed tables
    row_key     TEXT,     -- link tables: JSON array of the local key values
    row_uuid    BLOB,     -- deletes: the identity the row had when deleted
    link_uuids  TEXT,     -- link-table deletes: JSON array of the parents' UUIDs
    changed     TEXT,     -- updates: comma-separated changed columns
    captured_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- (table, local id) <-> global UUID (16 bytes), with the server revision of
-- the row as last seen by this replica.
CREATE TABLE _lestash_sync_ids (
    tbl        TEXT NOT NULL,
    local_id   INTEGER NOT NULL,
    uuid       BLOB NOT NULL,
    server_rev INTEGER,
    PRIMARY KEY (tbl, local_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX _lestash_sync_ids_by_uuid ON _lestash_sync_ids (uuid);

-- Holds one row only inside the daemon's own apply transactions, never
-- committed: capture triggers skip changes while it is visible, and no other
-- connection can ever see it.
CREATE TABLE _lestash_sync_applying (
    flag INTEGER
);
