-- lestash-sync upstream schema, part 11: the phone fetches media files
-- (GET /api/media/<local_path> on lestash-endpoint, docs/mobile.md section 8).
--
-- The endpoint reads stored files with the daemons' own reader
-- (src/media_store/media_reader.cpp): whether an item_media row names the
-- path, the file and its blob (migration 008), then one chunk per short
-- read transaction. Its group role (009) may read exactly that: the media
-- tables, which hold only files any paired device may fetch, and the
-- local_path column of item_media; no other column of the user's data.
GRANT SELECT ON lestash.media_files, lestash.media_blobs, lestash.media_chunks
    TO lestash_endpoint;
GRANT SELECT (local_path) ON lestash.item_media TO lestash_endpoint;

INSERT INTO lestash.schema_migrations (version) VALUES (11) ON CONFLICT DO NOTHING;
