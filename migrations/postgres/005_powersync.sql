-- lestash-sync upstream schema, part 5: what PowerSync's service needs to
-- serve the synced tables to a phone (docs/mobile.md).
--
-- The service reads Postgres by logical replication (wal_level = logical,
-- a server setting: see docs/mobile.md) from the publication named exactly
-- `powersync`. The publication lists the synced tables and nothing else:
-- the change log, the replicas and the conflicts are the daemons'
-- bookkeeping and must not stream to phones.
--
-- lestash_powersync is a group role (NOLOGIN) holding what the service
-- needs: USAGE on the schema, SELECT on the synced tables. Give it to the
-- login role the service connects as, which must also have REPLICATION
-- (an attribute, not inherited from a group) and a password:
--   CREATE ROLE lestash_powersync_service LOGIN REPLICATION PASSWORD '...'
--       IN ROLE lestash_powersync;
-- docker/initdb/30-powersync.sh does that for the compose file.
--
-- Safe to run again. Tables made synced later (lestash.make_synced) are
-- added to the publication and granted to the role there; this file only
-- adds what is missing, so running it again never takes a table out.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lestash_powersync') THEN
        CREATE ROLE lestash_powersync NOLOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA lestash TO lestash_powersync;
GRANT SELECT
    ON lestash.items, lestash.tags, lestash.sources, lestash.item_history, lestash.item_tags,
       lestash.sync_log
    TO lestash_powersync;

DO $$
DECLARE
    synced text[] := ARRAY['items', 'tags', 'sources', 'item_history', 'item_tags', 'sync_log'];
    t text;
BEGIN
    -- CREATE PUBLICATION has no IF NOT EXISTS.
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'powersync') THEN
        CREATE PUBLICATION powersync;
    ELSIF (SELECT puballtables FROM pg_publication WHERE pubname = 'powersync') THEN
        RAISE EXCEPTION 'publication powersync is FOR ALL TABLES, which would stream the change log to phones'
            USING HINT = 'DROP PUBLICATION powersync; then apply the migrations again: they create it with the synced tables only';
    END IF;
    FOREACH t IN ARRAY synced LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_publication_tables
                        WHERE pubname = 'powersync' AND schemaname = 'lestash' AND tablename = t) THEN
            EXECUTE format('ALTER PUBLICATION powersync ADD TABLE lestash.%I', t);
        END IF;
    END LOOP;
END $$;

INSERT INTO lestash.schema_migrations (version) VALUES (5) ON CONFLICT DO NOTHING;
