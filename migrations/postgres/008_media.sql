-- lestash-sync upstream schema, part 8: media files (issue 15, part B).
--
-- The files item_media.local_path names (relative to the `media` folder
-- beside each device's lestash.db) are stored here once, by content:
--   media_blobs   one row per distinct content (sha256, lowercase hex),
--                 complete once every chunk is in;
--   media_chunks  its bytes, in chunks of the blob's chunk_size (1 MiB from
--                 the daemons), chunk n holding bytes [n * chunk_size, ...);
--   media_files   a relative path -> the content it has. A path is written
--                 once and never changes (the app never rewrites a file).
-- Not synced tables: they do not go through the change log or to the
-- phone's PowerSync publication. A daemon uploads what its app wrote
-- (src/media/), the others fetch it by path; the phone fetches files over
-- HTTP from the endpoint (docs/mobile.md, "Media files").
--
-- lestash.finish_media_upload() completes a blob and names its path, and
-- NOTIFY lestash_changes (payload: the uploader) tells the other daemons;
-- lestash.gc_media() removes files no item_media row names any more, after
-- a grace period, and the contents no file names. Safe to run again.

-- lestash.item_media itself is a synced table of 007.
-- gc_media looks files up by the path rows name.
CREATE INDEX IF NOT EXISTS item_media_local_path ON lestash.item_media (local_path);

CREATE TABLE IF NOT EXISTS lestash.media_blobs (
    sha256       text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size         bigint NOT NULL CHECK (size >= 0),
    chunk_size   integer NOT NULL CHECK (chunk_size > 0),
    complete     boolean NOT NULL DEFAULT false,
    uploaded_by  uuid,  -- the replica that started the upload
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

CREATE TABLE IF NOT EXISTS lestash.media_chunks (
    sha256 text NOT NULL REFERENCES lestash.media_blobs (sha256) ON DELETE CASCADE,
    n      integer NOT NULL CHECK (n >= 0),
    data   bytea NOT NULL,
    PRIMARY KEY (sha256, n)
);
-- Photos and PDFs are compressed already: stored out of line without
-- another try at compressing them.
ALTER TABLE lestash.media_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE IF NOT EXISTS lestash.media_files (
    path               text PRIMARY KEY,
    sha256             text NOT NULL REFERENCES lestash.media_blobs (sha256),
    size               bigint NOT NULL,
    uploaded_by        uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    unreferenced_since timestamptz  -- set by gc_media while no item_media row names it
);
CREATE INDEX IF NOT EXISTS media_files_blob ON lestash.media_files (sha256);

-- The last step of an upload, in the transaction of its last chunk: when
-- every chunk of the blob is there (count and bytes), it is marked complete,
-- `path` is recorded as having that content and the other daemons are told.
-- Returns 'complete'; 'incomplete' when chunks are missing (the uploader
-- sends them again); 'other-content' when `path` already has another
-- content (left as it is: a path is written once).
CREATE OR REPLACE FUNCTION lestash.finish_media_upload(p_sha256 text, p_path text, p_uploader uuid)
RETURNS text LANGUAGE plpgsql SET search_path = lestash, pg_catalog AS $$
DECLARE
    blob media_blobs;
    expected bigint;
    have_chunks bigint;
    have_bytes bigint;
    existing text;
BEGIN
    SELECT * INTO blob FROM media_blobs WHERE sha256 = p_sha256 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'incomplete';
    END IF;
    IF NOT blob.complete THEN
        expected := (blob.size + blob.chunk_size - 1) / blob.chunk_size;
        SELECT count(*), coalesce(sum(length(data)), 0) INTO have_chunks, have_bytes
          FROM media_chunks WHERE sha256 = p_sha256 AND n < expected;
        IF have_chunks <> expected OR have_bytes <> blob.size THEN
            RETURN 'incomplete';
        END IF;
        DELETE FROM media_chunks WHERE sha256 = p_sha256 AND n >= expected;
        UPDATE media_blobs SET complete = true, completed_at = now() WHERE sha256 = p_sha256;
    END IF;
    INSERT INTO media_files (path, sha256, size, uploaded_by)
         VALUES (p_path, p_sha256, blob.size, p_uploader)
    ON CONFLICT (path) DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('lestash_changes', coalesce(p_uploader::text, ''));
        RETURN 'complete';
    END IF;
    SELECT sha256 INTO existing FROM media_files WHERE path = p_path;
    RETURN CASE WHEN existing = p_sha256 THEN 'complete' ELSE 'other-content' END;
END $$;

-- Garbage: a file no item_media row has named for `grace` is removed, then
-- every content no file names that is older than `grace` (abandoned uploads
-- included). The daemons run it about once a day with 7 days; an owner may
-- run it by hand: SELECT * FROM lestash.gc_media('7 days');
CREATE OR REPLACE FUNCTION lestash.gc_media(grace interval DEFAULT '7 days')
RETURNS TABLE (files_removed bigint, blobs_removed bigint, bytes_freed bigint)
LANGUAGE plpgsql SET search_path = lestash, pg_catalog AS $$
BEGIN
    UPDATE media_files f SET unreferenced_since = now()
     WHERE unreferenced_since IS NULL
       AND NOT EXISTS (SELECT 1 FROM item_media m WHERE m.local_path = f.path);
    UPDATE media_files f SET unreferenced_since = NULL
     WHERE unreferenced_since IS NOT NULL
       AND EXISTS (SELECT 1 FROM item_media m WHERE m.local_path = f.path);
    WITH gone AS (DELETE FROM media_files WHERE unreferenced_since < now() - grace RETURNING 1)
    SELECT count(*) INTO files_removed FROM gone;
    WITH gone AS (
        DELETE FROM media_blobs b
         WHERE created_at < now() - grace
           AND NOT EXISTS (SELECT 1 FROM media_files f WHERE f.sha256 = b.sha256)
        RETURNING size)
    SELECT count(*), coalesce(sum(size), 0) INTO blobs_removed, bytes_freed FROM gone;
    RETURN NEXT;
END $$;

-- What the daemons may do (003's group role): read and write the three
-- tables (DELETE for gc_media), call the two functions. No more.
GRANT SELECT, INSERT, UPDATE, DELETE ON lestash.media_blobs, lestash.media_chunks,
    lestash.media_files TO lestash_sync;
REVOKE ALL ON FUNCTION lestash.finish_media_upload(text, text, uuid), lestash.gc_media(interval)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lestash.finish_media_upload(text, text, uuid), lestash.gc_media(interval)
    TO lestash_sync;

INSERT INTO lestash.schema_migrations (version) VALUES (8) ON CONFLICT DO NOTHING;
