-- lestash-sync's own objects inside the app's database, version 2: what the
-- sync engine keeps between cycles.

-- Local changes Postgres refused for good (constraint violation, bad data,
-- permission): kept here with the error instead of wedging the outbox.
CREATE TABLE _lestash_sync_dead_letters (
    id        INTEGER PRIMARY KEY,
    tbl       TEXT NOT NULL,
    row_uuid  TEXT,
    op        TEXT NOT NULL,
    payload   TEXT,      -- the values that were sent, as JSON
    error     TEXT NOT NULL,
    sqlstate  TEXT,
    failed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- Remote changes not applied yet because the row has local edits still in
-- the outbox: fetched again once those are pushed.
CREATE TABLE _lestash_sync_deferred (
    tbl  TEXT NOT NULL,
    uuid BLOB NOT NULL,
    PRIMARY KEY (tbl, uuid)
) WITHOUT ROWID;

-- Foreign keys that arrived before the row they point to: the column is
-- NULL until that row arrives, then filled in.
CREATE TABLE _lestash_sync_unresolved (
    tbl         TEXT NOT NULL,
    local_id    INTEGER NOT NULL,
    col         TEXT NOT NULL,
    parent_uuid BLOB NOT NULL,
    PRIMARY KEY (tbl, local_id, col)
) WITHOUT ROWID;
CREATE INDEX _lestash_sync_unresolved_by_parent ON _lestash_sync_unresolved (parent_uuid);
