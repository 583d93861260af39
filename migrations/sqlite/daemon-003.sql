-- lestash-sync's own objects inside the app's database, version 3: what the
-- engine knows of link rows (item_tags, collection_items).

-- The server revision this replica last saw of each link row. Link rows
-- have no local id to keep in _lestash_sync_ids; with this, a collection
-- item's note is pushed as a PATCH against the revision it was edited on
-- (a concurrent edit is kept as a conflict), and verify --repair tells a
-- link Postgres deleted (acknowledged before) from one it never got.
CREATE TABLE _lestash_sync_link_revs (
    uuid       BLOB PRIMARY KEY,
    tbl        TEXT NOT NULL,
    server_rev INTEGER NOT NULL
) WITHOUT ROWID;

-- The columns the engine synced per table ("mapped:<table>"): a table or
-- column that starts syncing on a replica already following the change log
-- gets a catch-up (its rows fetched again), because changes to it were
-- skipped while it was not synced. What this daemon synced until now is the
-- starting point, so upgrading lestash-sync fetches nothing again.
INSERT OR IGNORE INTO _lestash_sync_meta (key, value)
    SELECT 'mapped:' || substr(key, 9), value FROM _lestash_sync_meta WHERE key LIKE 'columns:%';
