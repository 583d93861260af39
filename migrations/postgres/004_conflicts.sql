-- lestash-sync upstream schema, part 4: resolving conflicts.
--
-- lestash.resolve_conflict(id, keep_loser) closes a conflict recorded by
-- stamp_revision (002). Keeping the winner only marks it resolved. Keeping
-- the loser writes the overwritten value back as a new change made by no
-- replica (lestash.origin empty), so every replica pulls it, the one that
-- asked included, and it cannot raise a new conflict. Returns what it did.
-- Callable from psql too: SELECT lestash.resolve_conflict(12, true);

CREATE OR REPLACE FUNCTION lestash.resolve_conflict(conflict_id bigint, keep_loser boolean)
RETURNS jsonb LANGUAGE plpgsql SET search_path = lestash, pg_catalog AS $$
DECLARE
    c       lestash.conflicts%ROWTYPE;
    changed integer;
BEGIN
    SELECT * INTO c FROM lestash.conflicts WHERE id = conflict_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no conflict %', conflict_id USING ERRCODE = 'no_data_found',
            HINT = 'lestash-sync conflicts --all lists them';
    END IF;
    IF c.resolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'conflict % is already resolved (%)', conflict_id, c.resolution
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF keep_loser THEN
        IF c.column_name = '*' THEN
            RAISE EXCEPTION 'conflict %: the row was deleted while it was being edited; a deleted '
                            'row cannot be restored from here — write it again in the app', conflict_id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        PERFORM set_config('lestash.origin', '', true);
        IF jsonb_typeof(c.loser_value) = 'array' THEN
            -- An exact SQLite value (see 001): the typed column stays NULL.
            EXECUTE format('UPDATE lestash.%I SET %I = NULL, _sqlite = coalesce(_sqlite, ''{}'') '
                           '|| jsonb_build_object(%L, $1) WHERE id = $2',
                           c.tbl, c.column_name, c.column_name)
                USING c.loser_value, c.row_id;
        ELSE
            EXECUTE format('UPDATE lestash.%I t SET %I = (jsonb_populate_record(NULL::lestash.%I, '
                           'jsonb_build_object(%L, $1))).%I, _sqlite = t._sqlite - %L WHERE id = $2',
                           c.tbl, c.column_name, c.tbl, c.column_name, c.column_name, c.column_name)
                USING coalesce(c.loser_value, 'null'::jsonb), c.row_id;
        END IF;
        GET DIAGNOSTICS changed = ROW_COUNT;
        IF changed = 0 THEN
            RAISE EXCEPTION 'conflict %: row % of % no longer exists, nothing to restore',
                conflict_id, c.row_id, c.tbl USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
    END IF;
    UPDATE lestash.conflicts
       SET resolved_at = now(),
           resolution = CASE WHEN keep_loser THEN 'restored loser' ELSE 'kept winner' END
     WHERE id = conflict_id;
    RETURN jsonb_build_object('id', conflict_id, 'table', c.tbl, 'row_id', c.row_id,
                              'column', c.column_name,
                              'resolution', CASE WHEN keep_loser THEN 'restored loser'
                                                 ELSE 'kept winner' END);
END $$;

GRANT EXECUTE ON FUNCTION lestash.resolve_conflict(bigint, boolean) TO lestash_sync;

INSERT INTO lestash.schema_migrations (version) VALUES (4) ON CONFLICT DO NOTHING;
