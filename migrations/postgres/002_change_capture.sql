-- lestash-sync upstream schema, part 2: server-side change capture.
--
-- Every write to a synced table, whoever makes it (a daemon's push, psql, a
-- web back end), is recorded in lestash.change_log with the writing
-- transaction's id, and listeners on channel lestash_changes are notified
-- at commit. Readers read only below the oldest running transaction
-- (pg_snapshot_xmin), ordered by (xid, id): sequence numbers are taken
-- before commit, so a change that commits late is never skipped.

CREATE TABLE IF NOT EXISTS lestash.change_log (
    id     bigserial PRIMARY KEY,
    xid    xid8 NOT NULL DEFAULT pg_current_xact_id(),
    tbl    text NOT NULL,
    row_id uuid NOT NULL,
    op     "char" NOT NULL,   -- I, U or D
    origin uuid,              -- the pushing replica; NULL for other writers
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS change_log_order ON lestash.change_log (xid, id);

-- Compaction removes entries older than a retention period; a replica whose
-- cursor is below the horizon recorded here missed changes and resyncs.
CREATE TABLE IF NOT EXISTS lestash.change_log_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    xid      xid8 NOT NULL,
    id       bigint NOT NULL
);

-- Revision bookkeeping and column-level conflict detection, per updated
-- row (inserts need none: column defaults stamp them).
CREATE OR REPLACE FUNCTION lestash.stamp_revision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
DECLARE
    rev     bigint := nextval('lestash.revision');
    origin  text := nullif(current_setting('lestash.origin', true), '');
    base    bigint := NEW._push_base;
    skip    text[] := '{id,_rev,_created,_origin,_col_revs,_push_base,_sqlite}';
    old_j   jsonb;
    new_j   jsonb;
    k       text;
    changed boolean;
BEGIN
    NEW._rev := rev;
    NEW._push_base := NULL;
    IF NEW._sqlite IS NOT NULL THEN
        -- An exact-value override only stands while its typed column is NULL.
        new_j := to_jsonb(NEW);
        SELECT jsonb_object_agg(e.key, e.value) INTO NEW._sqlite
          FROM jsonb_each(NEW._sqlite) e WHERE new_j -> e.key = 'null'::jsonb;
    END IF;
    old_j := to_jsonb(OLD) - skip;
    new_j := to_jsonb(NEW) - skip;
    NEW._col_revs := OLD._col_revs;
    FOR k IN SELECT jsonb_object_keys(new_j) LOOP
        changed := new_j -> k IS DISTINCT FROM old_j -> k
                OR OLD._sqlite -> k IS DISTINCT FROM NEW._sqlite -> k;
        CONTINUE WHEN NOT changed;
        -- A push says which revision of the row its replica had seen; a
        -- column changed after that by someone else is a concurrent edit:
        -- the later arrival (this one) wins and the loser is kept.
        IF origin IS NOT NULL AND base IS NOT NULL
           AND coalesce((OLD._col_revs -> k ->> 0)::bigint, 0) > base THEN
            INSERT INTO conflicts (tbl, row_id, column_name, winner_value, winner_origin,
                                   loser_value, loser_origin)
            VALUES (TG_TABLE_NAME, NEW.id, k,
                    coalesce(NEW._sqlite -> k, new_j -> k), origin::uuid,
                    coalesce(OLD._sqlite -> k, old_j -> k),
                    coalesce((OLD._col_revs -> k ->> 1)::uuid, OLD._origin));
        END IF;
        NEW._col_revs := NEW._col_revs || jsonb_build_object(k, jsonb_build_array(rev, origin));
    END LOOP;
    RETURN NEW;
END $$;

-- Name-based UUID (RFC 4122 version 3) in lestash-sync's row namespace,
-- exactly as the daemon computes it (src/common/uuid.cpp).
CREATE OR REPLACE FUNCTION lestash.name_based_uuid(name text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (substr(h, 1, 12) || '3' || substr(h, 14, 3)
            || to_hex((('x' || substr(h, 17, 2))::bit(8)::int & 63) | 128)
            || substr(h, 19))::uuid
      FROM (SELECT md5(decode('6f1c6a5e2b0d5a579a1e1e57a5c0de01', 'hex')
                       || convert_to(name, 'UTF8')) AS h) AS digest
$$;

-- One natural-key part as the daemon names it: storage class, then value.
CREATE OR REPLACE FUNCTION lestash.key_part(typed text, override jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN typed IS NOT NULL THEN 't:' || typed
        WHEN override ->> 0 = 'integer' THEN 'i:' || (override ->> 1)
        WHEN override ->> 0 = 'real' THEN 'r:' || (override ->> 1)
        WHEN override ->> 0 = 'text' THEN 't:' || (override ->> 1)
        WHEN override ->> 0 = 'blob' THEN 'b:' || (override ->> 1)
    END
$$;

-- Rows inserted by other writers (psql, a web app) get the identity a
-- daemon would give them, so the same post, tag or tag link converges on
-- one row whoever writes it first. Pushes keep the id their replica chose
-- (the trigger's WHEN skips them).
CREATE OR REPLACE FUNCTION lestash.canonical_row_id() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sep  text := chr(31);
    name text;
BEGIN
    CASE TG_TABLE_NAME
        WHEN 'items' THEN
            name := 'items' || sep || lestash.key_part(NEW.source_type, NEW._sqlite -> 'source_type')
                    || sep || lestash.key_part(NEW.source_id, NEW._sqlite -> 'source_id');
        WHEN 'tags' THEN
            name := 'tags' || sep || lestash.key_part(NEW.name, NEW._sqlite -> 'name');
        WHEN 'sources' THEN
            name := 'sources' || sep || lestash.key_part(NEW.source_type, NEW._sqlite -> 'source_type');
        WHEN 'item_tags' THEN
            name := 'item_tags' || sep || NEW.item_id::text || sep || NEW.tag_id::text;
        ELSE
            name := NULL;
    END CASE;
    IF name IS NOT NULL THEN
        NEW.id := lestash.name_based_uuid(name);
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION lestash.log_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
DECLARE
    origin uuid := nullif(current_setting('lestash.origin', true), '')::uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO change_log (tbl, row_id, op, origin)
        SELECT TG_TABLE_NAME, n.id, 'I', origin FROM new_rows n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO change_log (tbl, row_id, op, origin)
        SELECT TG_TABLE_NAME, n.id, 'U', origin FROM new_rows n
        UNION ALL
        SELECT TG_TABLE_NAME, o.id, 'D', origin FROM old_rows o
         WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id);
    ELSE
        INSERT INTO change_log (tbl, row_id, op, origin)
        SELECT TG_TABLE_NAME, o.id, 'D', origin FROM old_rows o;
    END IF;
    -- The payload names the writing replica ('' for other writers), so a
    -- daemon can ignore the echo of its own pushes. Equal payloads in one
    -- transaction are delivered once.
    PERFORM pg_notify('lestash_changes', coalesce(origin::text, ''));
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['items', 'tags', 'sources', 'item_tags']
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER canonical_row_id BEFORE INSERT ON lestash.%I '
                       'FOR EACH ROW WHEN (coalesce(current_setting(''lestash.origin'', true), '''') = '''') '
                       'EXECUTE FUNCTION lestash.canonical_row_id()', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['items', 'tags', 'sources', 'item_history', 'item_tags', 'sync_log']
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER stamp_revision BEFORE UPDATE ON lestash.%I '
                       'FOR EACH ROW EXECUTE FUNCTION lestash.stamp_revision()', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER log_inserts AFTER INSERT ON lestash.%I '
                       'REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION lestash.log_changes()', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER log_updates AFTER UPDATE ON lestash.%I '
                       'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION lestash.log_changes()', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER log_deletes AFTER DELETE ON lestash.%I '
                       'REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION lestash.log_changes()', t);
    END LOOP;
END $$;

-- Removes change-log entries older than `keep` that every transaction has
-- finished with, and records the horizon. Returns the number removed.
CREATE OR REPLACE FUNCTION lestash.compact_change_log(keep interval DEFAULT '30 days')
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
DECLARE
    last_xid xid8;
    last_id  bigint;
    removed  bigint;
BEGIN
    SELECT xid, id INTO last_xid, last_id FROM change_log
     WHERE at < now() - keep AND xid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY xid DESC, id DESC LIMIT 1;
    IF last_xid IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM change_log WHERE (xid, id) <= (last_xid, last_id);
    GET DIAGNOSTICS removed = ROW_COUNT;
    INSERT INTO change_log_horizon (xid, id) VALUES (last_xid, last_id)
    ON CONFLICT (only_row) DO UPDATE SET xid = excluded.xid, id = excluded.id;
    RETURN removed;
END $$;

INSERT INTO lestash.schema_migrations (version) VALUES (2) ON CONFLICT DO NOTHING;
