-- lestash-sync upstream schema, part 3: the least-privilege role.
--
-- lestash_sync is a group role (NOLOGIN) holding exactly what a daemon
-- needs. Give it to the login role each device uses, e.g.
--   CREATE ROLE lestash_daemon LOGIN PASSWORD '...' IN ROLE lestash_sync;
-- The change-capture functions run as their owner (SECURITY DEFINER), so
-- daemons never write the change log directly.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lestash_sync') THEN
        CREATE ROLE lestash_sync NOLOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA lestash TO lestash_sync;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON lestash.items, lestash.tags, lestash.sources, lestash.item_history, lestash.item_tags,
       lestash.sync_log
    TO lestash_sync;
GRANT USAGE ON SEQUENCE lestash.revision, lestash.creation TO lestash_sync;
GRANT SELECT ON lestash.change_log, lestash.change_log_horizon, lestash.schema_migrations
    TO lestash_sync;
GRANT SELECT, INSERT, UPDATE ON lestash.replicas TO lestash_sync;
-- INSERT: edits that reached a row deleted elsewhere; UPDATE: resolving.
GRANT SELECT, INSERT, UPDATE ON lestash.conflicts TO lestash_sync;
GRANT USAGE ON SEQUENCE lestash.conflicts_id_seq TO lestash_sync;

INSERT INTO lestash.schema_migrations (version) VALUES (3) ON CONFLICT DO NOTHING;
