-- lestash-sync upstream schema, part 6: one function that makes a table a
-- synced table.
--
-- FOR A NEW SYNCED TABLE (a new Le Stash table, the phone's uploads, media):
-- create it in a new migration with its id and data columns only, then call
--
--     SELECT lestash.make_synced('lestash.my_table', canonical => false);
--
-- in the same file. Do not copy the bookkeeping columns or the triggers by
-- hand: this function is their one definition. It is idempotent (run it
-- again after changing it, it only adds what is missing and re-creates the
-- triggers) and it gives the table:
--   - the bookkeeping columns of 001 that it lacks: _rev, _created, _origin,
--     _col_revs, _push_base, _sqlite (same types and defaults);
--   - the change capture of 002: stamp_revision (BEFORE UPDATE, per row) and
--     log_inserts / log_updates / log_deletes (per statement), so every write
--     reaches lestash.change_log and NOTIFY lestash_changes;
--   - with canonical => true, the canonical_row_id trigger, which gives rows
--     inserted by other writers the name-based id a daemon would give them.
--     lestash.canonical_row_id() must know the table's natural key (its CASE
--     on TG_TABLE_NAME, 002): extend it in the same migration;
--   - SELECT, INSERT, UPDATE, DELETE for the daemons' group role lestash_sync;
--   - when the publication powersync exists (migration 005, the phone), the
--     table is added to it, and role lestash_powersync, when it exists, may
--     SELECT it.
-- The daemon side needs a TableSpec for the table too (src/replica/
-- table_spec.cpp); see docs/architecture.md, "Where a change goes".

CREATE OR REPLACE FUNCTION lestash.make_synced(tbl regclass, canonical boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql SET search_path = lestash, pg_catalog AS $$
DECLARE
    bookkeeping CONSTANT text[][] := ARRAY[
        ['_rev',       'bigint NOT NULL DEFAULT nextval(''lestash.revision'')'],
        ['_created',   'bigint NOT NULL DEFAULT nextval(''lestash.creation'')'],
        ['_origin',    'uuid DEFAULT nullif(current_setting(''lestash.origin'', true), '''')::uuid'],
        ['_col_revs',  'jsonb NOT NULL DEFAULT ''{}'''],
        ['_push_base', 'bigint'],
        ['_sqlite',    'jsonb']];
    i integer;
BEGIN
    -- Columns first, only those missing (no notices on a table that has them).
    FOR i IN 1 .. array_length(bookkeeping, 1) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = tbl AND attname = bookkeeping[i][1] AND NOT attisdropped)
        THEN
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', tbl, bookkeeping[i][1],
                           bookkeeping[i][2]);
        END IF;
    END LOOP;

    -- The triggers exactly as 002 creates them for the first six tables.
    IF canonical THEN
        EXECUTE format('CREATE OR REPLACE TRIGGER canonical_row_id BEFORE INSERT ON %s '
                       'FOR EACH ROW WHEN (coalesce(current_setting(''lestash.origin'', true), '''') = '''') '
                       'EXECUTE FUNCTION lestash.canonical_row_id()', tbl);
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER stamp_revision BEFORE UPDATE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION lestash.stamp_revision()', tbl);
    EXECUTE format('CREATE OR REPLACE TRIGGER log_inserts AFTER INSERT ON %s '
                   'REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION lestash.log_changes()', tbl);
    EXECUTE format('CREATE OR REPLACE TRIGGER log_updates AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION lestash.log_changes()', tbl);
    EXECUTE format('CREATE OR REPLACE TRIGGER log_deletes AFTER DELETE ON %s '
                   'REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION lestash.log_changes()', tbl);

    -- What the daemons may do with it (003).
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO lestash_sync', tbl);

    -- The phone's replication (005), once it is set up.
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'powersync' AND NOT puballtables)
       AND NOT EXISTS (SELECT 1 FROM pg_publication_rel r
                         JOIN pg_publication p ON p.oid = r.prpubid
                        WHERE p.pubname = 'powersync' AND r.prrelid = tbl)
    THEN
        EXECUTE format('ALTER PUBLICATION powersync ADD TABLE %s', tbl);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lestash_powersync') THEN
        EXECUTE format('GRANT SELECT ON %s TO lestash_powersync', tbl);
    END IF;
END $$;

-- Schema changes are for the owner who runs the migrations, not the daemons.
REVOKE ALL ON FUNCTION lestash.make_synced(regclass, boolean) FROM PUBLIC;

-- The six tables of 001 already have all of it; running the kit over them
-- changes nothing, and from now on joins them to the phone's publication
-- whenever this file runs after 005.
SELECT lestash.make_synced('lestash.items', canonical => true);
SELECT lestash.make_synced('lestash.tags', canonical => true);
SELECT lestash.make_synced('lestash.sources', canonical => true);
SELECT lestash.make_synced('lestash.item_history', canonical => false);
SELECT lestash.make_synced('lestash.item_tags', canonical => true);
SELECT lestash.make_synced('lestash.sync_log', canonical => false);

INSERT INTO lestash.schema_migrations (version) VALUES (6) ON CONFLICT DO NOTHING;
