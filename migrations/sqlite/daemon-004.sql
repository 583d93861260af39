-- lestash-sync's own objects inside the app's database, version 4 (issue
-- 15 part B): the media files this replica moves. Owned by
-- src/media/media_queue.cpp, which also keeps the triggers on item_media
-- that fill it (they are made when item_media exists, so a v1 database
-- gets them once the app creates the table). IF NOT EXISTS: this file may
-- be renumbered when branches merge.

-- One row per path some item_media.local_path names (relative to the media
-- folder beside lestash.db), with what is to be done with its file:
--   new          just referenced, not looked at yet
--   to-upload    written here, to be sent to Postgres
--   uploaded     Postgres has it
--   missing      referenced by a row made here, but no file on disk: retried
--   too-large    over [media] max_file_mb: not sent
--   to-download  referenced by a row from elsewhere: to be fetched
--   waiting      its origin has not uploaded it yet: retried, and at once
--                when Postgres says a file arrived
--   downloaded   written here by the daemon (removed with its last row)
--   present      already here with the right content, written by the app
--   different    a file with other content is at the path: left alone
--   failed       the last attempt failed (last_error): retried
--   invalid      the path could point outside the media folder: never touched
CREATE TABLE IF NOT EXISTS _lestash_sync_media (
    path            TEXT PRIMARY KEY,
    state           TEXT NOT NULL DEFAULT 'new',
    -- here: the app wrote the row on this device; elsewhere: it came with a
    -- pull; unknown: it was there before the triggers were.
    origin          TEXT NOT NULL DEFAULT 'unknown',
    sha256          TEXT,
    size            INTEGER,
    owned           INTEGER NOT NULL DEFAULT 0,  -- 1: the daemon wrote the file
    recheck         INTEGER NOT NULL DEFAULT 0,  -- 1: a row naming it went away
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at REAL NOT NULL DEFAULT 0      -- unix seconds
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _lestash_sync_media_work ON _lestash_sync_media (next_attempt_at)
    WHERE state NOT IN ('uploaded', 'downloaded', 'present', 'different', 'invalid', 'too-large');
CREATE INDEX IF NOT EXISTS _lestash_sync_media_rechecks ON _lestash_sync_media (path)
    WHERE recheck = 1;
