-- lestash-sync upstream schema, part 9: the phone's uploads (docs/mobile.md).
--
-- PowerSync's SDK hands the app's connector one CRUD transaction at a time;
-- the connector POSTs it to lestash-endpoint, which checks it against the
-- synced tables and calls lestash.apply_phone_transaction once per
-- transaction. That function does everything in the caller's Postgres
-- transaction:
--   - deduplicates by (device, transaction id, digest of the ops), recorded
--     in the same transaction: a retry after a lost answer gets the stored
--     answer and applies nothing (no conflict, no history), like a desktop
--     push's (replica, last_seq);
--   - writes as the device (lestash.origin), so desktops pull the change as
--     any other replica's, and conflicts name the device;
--   - PUT = upsert of the columns sent; PATCH = update of the columns sent,
--     with the _rev the phone saw as the conflict base (_push_base), so a
--     concurrent edit of one column lands in lestash.conflicts as between two
--     desktops; an edit of a row deleted upstream is kept there as a conflict
--     on column '*' (the delete wins), as desktops' pushes do; DELETE deletes;
--   - gives a natural-key row its name-based id whatever id the phone made up,
--     and rewrites every reference to the phone's id (any uuid data column:
--     every one is a reference, soft ones like items.parent_id included) in
--     this and later transactions of the device, through
--     lestash.phone_id_map; the answer lists the replaced ids;
--   - writes the item_history row of a phone edit of an item (the app's
--     capture_item_history trigger does it on a desktop; a phone has no such
--     trigger), exactly one, which the desktops receive through sync;
--   - refuses a transaction Postgres will never accept (a constraint, a
--     value) as a whole: nothing of it is applied, it is kept in
--     lestash.phone_dead_letters with the error, and it is ACKNOWLEDGED, so
--     the phone's upload queue moves on. A transient failure (serialization,
--     deadlock, a lock timeout, out of resources) is raised: the endpoint
--     answers 503 and the SDK retries.
-- Ops are applied in the order given; the endpoint puts parents before their
-- children and numbers the runs of ops that one statement can apply
-- together ("run"). A caller that gives no run numbers gets one op per run.
--
-- The phone's devices: lestash.devices, one row per paired phone, with its
-- one-time pairing code and its credential stored as SHA-256 hashes (the
-- endpoint hashes; the secrets never reach Postgres). Each device is also a
-- row of lestash.replicas ("phone: NAME"), so conflicts and the change log
-- name it like a desktop.
--
-- lestash_endpoint is a group role (NOLOGIN) for the endpoint's login role:
-- it may call the functions below and nothing else; they run as their owner.
--   CREATE ROLE lestash_endpoint_login LOGIN PASSWORD '...' IN ROLE lestash_endpoint;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lestash_endpoint') THEN
        CREATE ROLE lestash_endpoint NOLOGIN;
    END IF;
END $$;
GRANT USAGE ON SCHEMA lestash TO lestash_endpoint;
GRANT SELECT ON lestash.schema_migrations TO lestash_endpoint;  -- the version check

CREATE TABLE IF NOT EXISTS lestash.devices (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL CHECK (name <> ''),
    pairing_code_hash  bytea UNIQUE,       -- sha256 of the one-time code, until redeemed
    pairing_expires_at timestamptz,
    credential_hash    bytea UNIQUE,       -- sha256 of the device credential, once paired
    created_at         timestamptz NOT NULL DEFAULT now(),
    paired_at          timestamptz,
    last_seen_at       timestamptz,
    revoked_at         timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_active_name ON lestash.devices (name)
    WHERE revoked_at IS NULL;

-- One row per transaction applied (or dead-lettered) for a device. The
-- digest tells a retry (the same ops) from a new transaction that reuses a
-- number, as after the app's local database was cleared.
CREATE TABLE IF NOT EXISTS lestash.phone_transactions (
    device     uuid NOT NULL REFERENCES lestash.devices (id),
    client_tx  bigint NOT NULL,
    digest     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    answer     jsonb NOT NULL,
    PRIMARY KEY (device, client_tx, digest)
);

-- The id a phone made up for a natural-key row → the row's name-based id.
CREATE TABLE IF NOT EXISTS lestash.phone_id_map (
    device       uuid NOT NULL REFERENCES lestash.devices (id),
    phone_id     uuid NOT NULL,
    tbl          text NOT NULL,
    canonical_id uuid NOT NULL,
    mapped_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device, phone_id)
);

-- Transactions Postgres refused for good, whole, with the phone's ops.
CREATE TABLE IF NOT EXISTS lestash.phone_dead_letters (
    id          bigserial PRIMARY KEY,
    device      uuid NOT NULL REFERENCES lestash.devices (id),
    client_tx   bigint NOT NULL,
    ops         jsonb NOT NULL,      -- as the endpoint passed them (see above)
    failed_op   integer,             -- index in the phone's crud list of the op refused
    error       text NOT NULL,
    sqlstate    text NOT NULL,
    detail      text,
    at          timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX IF NOT EXISTS phone_dead_letters_open ON lestash.phone_dead_letters (id)
    WHERE resolved_at IS NULL;

-- The app's NOT NULL columns, enforced. 001's CHECKs (`c IS NOT NULL OR
-- _sqlite ? 'c'`) let a NULL through when _sqlite is NULL (the CHECK is then
-- NULL, which passes), so any writer could store a row no desktop can
-- apply. NOT VALID: enforced for every new or changed row from now on,
-- without refusing the migration over rows written before.
DO $$
DECLARE
    c text[];
BEGIN
    FOREACH c SLICE 1 IN ARRAY ARRAY[['items', 'source_type'], ['items', 'content'],
                                     ['tags', 'name'], ['sources', 'source_type']]
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                        WHERE conrelid = format('lestash.%I', c[1])::regclass
                          AND conname = format('%s_%s_not_null', c[1], c[2])) THEN
            EXECUTE format('ALTER TABLE lestash.%I ADD CONSTRAINT %I CHECK '
                           '(%I IS NOT NULL OR coalesce(_sqlite ? %L, false)) NOT VALID',
                           c[1], format('%s_%s_not_null', c[1], c[2]), c[2], c[2]);
        END IF;
    END LOOP;
END $$;

-- Failures worth a retry, as the daemons classify them (upstream.cpp).
CREATE OR REPLACE FUNCTION lestash.is_transient_sqlstate(state text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT state IN ('40001', '40P01', '55P03', '57014', '57P01', '57P02', '57P03')
        OR left(state, 2) IN ('08', '53', '58')
$$;

-- The synced tables (lestash.make_synced gave them stamp_revision) and
-- their data columns with their types: what a phone may write. Read by the
-- endpoint, which has no privileges on the tables themselves.
CREATE OR REPLACE FUNCTION lestash.phone_columns()
RETURNS TABLE (tbl text, col text, data_type text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
    SELECT c.relname::text, a.attname::text, format_type(a.atttypid, NULL)
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'lestash'
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE EXISTS (SELECT 1 FROM pg_trigger t
                    WHERE t.tgrelid = c.oid AND t.tgname = 'stamp_revision')
       AND a.attname <> 'id' AND left(a.attname, 1) <> '_'
     ORDER BY c.relname, a.attnum
$$;

-- The name-based id of a natural-key row (NULL when the table has none or a
-- key part is NULL), from its column values as JSON and its _sqlite
-- overrides under "_sqlite": lestash.natural_row_id (007), the rule every
-- writer shares, under the name the phone's apply calls.
CREATE OR REPLACE FUNCTION lestash.phone_natural_id(tbl text, r jsonb) RETURNS uuid
LANGUAGE sql STABLE AS $$
    -- The one naming rule every writer shares (007): the desktops' ids.
    SELECT lestash.natural_row_id(tbl, r)
$$;

-- ---- Devices ---------------------------------------------------------------

-- A new device waiting to be paired: its id. The name must be unused among
-- devices not revoked.
CREATE OR REPLACE FUNCTION lestash.create_device(device_name text, code_hash bytea,
                                                 valid_for interval)
RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
DECLARE
    new_id uuid := gen_random_uuid();
BEGIN
    IF EXISTS (SELECT 1 FROM devices WHERE name = device_name AND revoked_at IS NULL) THEN
        RAISE EXCEPTION 'a device named "%" exists already', device_name
            USING ERRCODE = 'unique_violation',
                  HINT = 'pick another name, or revoke it first: lestash-endpoint devices revoke NAME';
    END IF;
    INSERT INTO devices (id, name, pairing_code_hash, pairing_expires_at)
    VALUES (new_id, device_name, code_hash, now() + valid_for);
    INSERT INTO replicas (id, name) VALUES (new_id, 'phone: ' || device_name);
    RETURN new_id;
END $$;

-- Redeems a pairing code once: stores the credential's hash and returns the
-- device, or nothing when the code is unknown, used or expired.
CREATE OR REPLACE FUNCTION lestash.redeem_pairing_code(code_hash bytea, new_credential_hash bytea)
RETURNS TABLE (device uuid, device_name text)
LANGUAGE sql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
    UPDATE devices
       SET credential_hash = new_credential_hash, pairing_code_hash = NULL,
           pairing_expires_at = NULL, paired_at = now(), last_seen_at = now()
     WHERE pairing_code_hash = code_hash AND pairing_expires_at > now() AND revoked_at IS NULL
    RETURNING id, name
$$;

-- The paired, unrevoked device holding this credential, or nothing.
CREATE OR REPLACE FUNCTION lestash.device_for_credential(hash bytea)
RETURNS TABLE (device uuid, device_name text)
LANGUAGE sql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
    UPDATE devices SET last_seen_at = now()
     WHERE credential_hash = hash AND revoked_at IS NULL
    RETURNING id, name
$$;

CREATE OR REPLACE FUNCTION lestash.device_is_active(device uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
    SELECT EXISTS (SELECT 1 FROM devices
                    WHERE id = device AND revoked_at IS NULL AND credential_hash IS NOT NULL)
$$;

-- Revokes the device with this id or (unrevoked) name: its credential and
-- its tokens stop working at the endpoint at once. The revoked device.
CREATE OR REPLACE FUNCTION lestash.revoke_device(which text)
RETURNS TABLE (device uuid, device_name text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
BEGIN
    RETURN QUERY
    UPDATE devices d SET revoked_at = now(), credential_hash = NULL, pairing_code_hash = NULL
     WHERE d.revoked_at IS NULL
       AND (d.name = which OR d.id::text = lower(which))
    RETURNING d.id, d.name;
END $$;

CREATE OR REPLACE FUNCTION lestash.list_devices()
RETURNS TABLE (device uuid, device_name text, state text, created_at timestamptz,
               paired_at timestamptz, last_seen_at timestamptz, revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
    SELECT id, name,
           CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
                WHEN credential_hash IS NOT NULL THEN 'paired'
                WHEN pairing_expires_at > now() THEN 'waiting for pairing'
                ELSE 'pairing code expired' END,
           created_at, paired_at, last_seen_at, revoked_at
      FROM devices ORDER BY created_at, name
$$;

-- ---- Applying one transaction ----------------------------------------------

-- An op with its id and uuid columns rewritten through the device's id map;
-- "phone_id" keeps the id the phone sent.
CREATE OR REPLACE FUNCTION lestash.phone_rewrite_ids(device uuid, op jsonb, uuid_columns text[])
RETURNS jsonb LANGUAGE sql STABLE SET search_path = lestash, pg_catalog AS $$
    SELECT op || jsonb_build_object(
        'phone_id', op -> 'id',
        'id', coalesce((SELECT m.canonical_id::text FROM phone_id_map m
                         WHERE m.device = $1 AND m.phone_id = (op ->> 'id')::uuid), op ->> 'id'),
        'data', coalesce(op -> 'data', '{}') || coalesce(
            (SELECT jsonb_object_agg(c, m.canonical_id::text)
               FROM unnest(uuid_columns) AS c
               JOIN phone_id_map m ON m.device = $1 AND m.phone_id = (op -> 'data' ->> c)::uuid),
            '{}'))
$$;

-- The history row the app's capture_item_history trigger (Le Stash v11)
-- would write for each item these PUT/PATCH ops change: the old values,
-- when content, title, author, metadata or parent_id changes.
CREATE OR REPLACE FUNCTION lestash.phone_item_history(ops jsonb) RETURNS void
LANGUAGE sql SET search_path = lestash, pg_catalog AS $$
    INSERT INTO item_history (id, item_id, content_old, title_old, author_old, url_old,
                              metadata_old, is_own_content_old, parent_id_old, change_reason,
                              change_type, _sqlite)
    SELECT gen_random_uuid(), i.id, i.content, i.title, i.author, i.url, i.metadata,
           i.is_own_content, i.parent_id, 'phone-edit', 'update',
           nullif(jsonb_strip_nulls(jsonb_build_object(
               'content_old', i._sqlite -> 'content', 'title_old', i._sqlite -> 'title',
               'author_old', i._sqlite -> 'author', 'url_old', i._sqlite -> 'url',
               'metadata_old', i._sqlite -> 'metadata',
               'is_own_content_old', i._sqlite -> 'is_own_content')), '{}')
      FROM items i
      JOIN jsonb_array_elements(ops) AS o ON i.id = (o ->> 'id')::uuid
     -- By the primary key: never a scan of the whole table.
     WHERE i.id = ANY (ARRAY(SELECT (e ->> 'id')::uuid FROM jsonb_array_elements(ops) AS e))
       AND EXISTS (
           SELECT 1 FROM unnest(ARRAY['content', 'title', 'author', 'metadata', 'parent_id']) AS c
            WHERE o -> 'data' ? c
              AND (o -> 'data' -> c IS DISTINCT FROM to_jsonb(i) -> c
                   OR o -> 'sqlite' -> c IS DISTINCT FROM i._sqlite -> c))
$$;

-- SET c = src.c, ... for the columns written; their _sqlite overrides
-- replaced, the others kept; _push_base from src.
CREATE OR REPLACE FUNCTION lestash.phone_set_list(cols text[], src text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce((SELECT string_agg(format('%I = %I.%I', c, src, c), ', ') || ', '
                       FROM unnest(cols) c), '')
           || format('_sqlite = nullif((coalesce(t._sqlite, ''{}'') - %L::text[]) '
                     '|| coalesce(%I._sqlite, ''{}''), ''{}''), _push_base = %I._push_base',
                     cols, src, src)
$$;

-- One run: ops of one kind on one table, none depending on another of the
-- run. Returns the ids replaced by name-based ones.
CREATE OR REPLACE FUNCTION lestash.phone_apply_run(device uuid, kind text, tbl text, ops jsonb)
RETURNS jsonb LANGUAGE plpgsql SET search_path = lestash, pg_catalog AS $$
DECLARE
    rel       regclass := to_regclass(format('lestash.%I', tbl));
    uuid_cols text[];
    cols      text[];
    unknown   text;
    replaced  jsonb := '[]';
    sets      text;
    put_sets  text;
    written   uuid[];
BEGIN
    IF rel IS NULL OR NOT EXISTS (SELECT 1 FROM pg_trigger
                                   WHERE tgrelid = rel AND tgname = 'stamp_revision') THEN
        RAISE EXCEPTION 'lestash.% is not a synced table', tbl USING ERRCODE = 'undefined_table';
    END IF;
    IF kind NOT IN ('PUT', 'PATCH', 'DELETE') THEN
        RAISE EXCEPTION 'unknown op "%": PUT, PATCH or DELETE', kind
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(array_agg(attname::text), '{}') INTO uuid_cols FROM pg_attribute
     WHERE attrelid = rel AND atttypid = 'uuid'::regtype AND attnum > 0 AND NOT attisdropped
       AND attname <> 'id' AND left(attname, 1) <> '_';
    SELECT jsonb_agg(phone_rewrite_ids(device, o, uuid_cols) ORDER BY n) INTO ops
      FROM jsonb_array_elements(ops) WITH ORDINALITY AS x(o, n);

    IF kind = 'DELETE' THEN
        EXECUTE format('DELETE FROM %s WHERE id = ANY($1)', rel)
            USING ARRAY(SELECT (o ->> 'id')::uuid FROM jsonb_array_elements(ops) o);
        RETURN replaced;
    END IF;

    SELECT coalesce(array_agg(DISTINCT k), '{}') INTO cols
      FROM jsonb_array_elements(ops) o, jsonb_object_keys(o -> 'data') k;
    SELECT c INTO unknown FROM unnest(cols) c
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attname = c
                          AND attnum > 0 AND NOT attisdropped)
        OR c = 'id' OR left(c, 1) = '_' LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'lestash.% has no data column "%"', tbl, unknown
            USING ERRCODE = 'undefined_column';
    END IF;

    IF kind = 'PUT' THEN
        -- Natural-key rows get their name-based id, remembered for this device.
        WITH named AS (
            SELECT o, n, phone_natural_id(tbl, (o -> 'data') || jsonb_build_object('_sqlite', o -> 'sqlite')) AS nat
              FROM jsonb_array_elements(ops) WITH ORDINALITY AS x(o, n)),
        mapped AS (
            INSERT INTO phone_id_map (device, phone_id, tbl, canonical_id)
            SELECT device, (o ->> 'phone_id')::uuid, tbl, nat FROM named
             WHERE nat IS NOT NULL AND nat <> (o ->> 'phone_id')::uuid
            ON CONFLICT ON CONSTRAINT phone_id_map_pkey
            DO UPDATE SET canonical_id = excluded.canonical_id, mapped_at = now())
        SELECT jsonb_agg(CASE WHEN nat IS NULL THEN o ELSE o || jsonb_build_object('id', nat) END
                         ORDER BY n),
               coalesce(jsonb_agg(jsonb_build_object('table', tbl, 'phone_id', o -> 'phone_id',
                                                     'id', nat) ORDER BY n)
                        FILTER (WHERE nat IS NOT NULL AND nat <> (o ->> 'phone_id')::uuid), '[]')
          INTO ops, replaced FROM named;
        -- Two ops of the run naming one row: the later one is the row (PUT replaces).
        SELECT jsonb_agg(o ORDER BY n) INTO ops FROM (
            SELECT DISTINCT ON (o ->> 'id') o, n
              FROM jsonb_array_elements(ops) WITH ORDINALITY AS x(o, n)
             ORDER BY o ->> 'id', n DESC) AS last;
    END IF;

    IF tbl = 'items' THEN
        PERFORM phone_item_history(ops);
    END IF;

    -- Overrides of the columns written are replaced; the others stay.
    sets := phone_set_list(cols, 'x');
    put_sets := phone_set_list(cols, 'excluded');
    IF kind = 'PUT' THEN
        EXECUTE format('INSERT INTO %s AS t (id, %s _sqlite, _push_base) '
                       'SELECT x.id, %s x._sqlite, x._push_base '
                       'FROM jsonb_populate_recordset(NULL::%s, $1) AS x '
                       'ON CONFLICT (id) DO UPDATE SET %s',
                       rel,
                       (SELECT coalesce(string_agg(format('%I, ', c), ''), '') FROM unnest(cols) c),
                       (SELECT coalesce(string_agg(format('x.%I, ', c), ''), '') FROM unnest(cols) c),
                       rel, put_sets)
            USING (SELECT jsonb_agg((o -> 'data') || jsonb_build_object(
                              'id', o -> 'id', '_sqlite', o -> 'sqlite', '_push_base', -1))
                     FROM jsonb_array_elements(ops) o);
        RETURN replaced;
    END IF;

    -- PATCH: the conflict base is the _rev the phone saw.
    EXECUTE format('WITH w AS (UPDATE %s AS t SET %s '
                   'FROM jsonb_populate_recordset(NULL::%s, $1) AS x '
                   'WHERE t.id = x.id AND t.id = ANY ($2) RETURNING t.id) '
                   'SELECT array_agg(id) FROM w', rel, sets, rel)
        INTO written
        USING (SELECT jsonb_agg((o -> 'data') || jsonb_build_object(
                          'id', o -> 'id', '_sqlite', o -> 'sqlite', '_push_base', o -> 'base'))
                 FROM jsonb_array_elements(ops) o),
              ARRAY(SELECT (o ->> 'id')::uuid FROM jsonb_array_elements(ops) o);
    -- Edits of rows deleted upstream: the delete wins, the edit is kept.
    INSERT INTO conflicts (tbl, row_id, column_name, winner_value, winner_origin, loser_value,
                           loser_origin)
    SELECT tbl, (o ->> 'id')::uuid, '*', '"(deleted)"'::jsonb, NULL,
           (o -> 'data') || CASE WHEN jsonb_typeof(o -> 'sqlite') = 'object'
                                 THEN jsonb_build_object('_sqlite', o -> 'sqlite') ELSE '{}' END,
           device
      FROM jsonb_array_elements(ops) o
     WHERE (o ->> 'id')::uuid <> ALL (coalesce(written, '{}'));
    RETURN replaced;
END $$;

CREATE OR REPLACE FUNCTION lestash.apply_phone_transaction(device uuid, client_tx bigint, ops jsonb)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
DECLARE
    ops_digest text := md5(ops::text);
    answer     jsonb;
    run        record;
    replaced   jsonb := '[]';
    at_op      integer;
    dead_id    bigint;
    conflicts_before bigint;
    state      text;
    message    text;
    detail     text;
BEGIN
    IF jsonb_typeof(ops) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'ops must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One transaction of a device at a time: a retry that overtakes the
    -- original waits for it here, then finds it below.
    PERFORM 1 FROM devices d
      WHERE d.id = device AND d.revoked_at IS NULL AND d.credential_hash IS NOT NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'device % is not paired or has been revoked', device
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT t.answer INTO answer FROM phone_transactions t
     WHERE t.device = $1 AND t.client_tx = $2 AND t.digest = ops_digest;
    IF FOUND THEN
        RETURN answer || '{"already_applied": true}';
    END IF;

    PERFORM set_config('lestash.origin', device::text, true);
    SELECT coalesce(max(id), 0) INTO conflicts_before FROM conflicts;
    BEGIN
        FOR run IN
            SELECT o ->> 'op' AS kind, o ->> 'type' AS tbl, min(n) AS first,
                   min((o ->> 'i')::integer) AS first_op, jsonb_agg(o ORDER BY n) AS rows
              FROM jsonb_array_elements(ops) WITH ORDINALITY AS x(o, n)
             GROUP BY coalesce((o ->> 'run')::bigint, -n), o ->> 'op', o ->> 'type'
             ORDER BY min(n)
        LOOP
            at_op := run.first_op;
            replaced := replaced || phone_apply_run(device, run.kind, run.tbl, run.rows);
        END LOOP;
        answer := jsonb_build_object(
            'applied', jsonb_array_length(ops),
            'replaced_ids', replaced,
            -- Rows this transaction added: later ids naming this device as
            -- the winner, or as the loser of an edit that reached a deleted row.
            'conflicts', (SELECT count(*) FROM conflicts c
                           WHERE c.id > conflicts_before
                             AND (c.winner_origin = device
                                  OR (c.column_name = '*' AND c.loser_origin = device))));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                detail = PG_EXCEPTION_DETAIL;
        IF is_transient_sqlstate(state) THEN
            RAISE;
        END IF;
        INSERT INTO phone_dead_letters (device, client_tx, ops, failed_op, error, sqlstate, detail)
        VALUES (device, client_tx, ops, at_op, message, state, nullif(detail, ''))
        RETURNING id INTO dead_id;
        answer := jsonb_build_object('dead_lettered', jsonb_build_object(
            'id', dead_id, 'op', at_op, 'error', message, 'sqlstate', state));
    END;
    INSERT INTO phone_transactions (device, client_tx, digest, answer)
    VALUES (device, client_tx, ops_digest, answer);
    RETURN answer;
END $$;

-- Only the endpoint calls these.
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'lestash.phone_columns()', 'lestash.create_device(text, bytea, interval)',
        'lestash.redeem_pairing_code(bytea, bytea)', 'lestash.device_for_credential(bytea)',
        'lestash.device_is_active(uuid)', 'lestash.revoke_device(text)', 'lestash.list_devices()',
        'lestash.apply_phone_transaction(uuid, bigint, jsonb)']
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO lestash_endpoint', f);
    END LOOP;
    FOREACH f IN ARRAY ARRAY['lestash.phone_apply_run(uuid, text, text, jsonb)',
                             'lestash.phone_rewrite_ids(uuid, jsonb, text[])',
                             'lestash.phone_item_history(jsonb)',
                             'lestash.phone_set_list(text[], text)']
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END $$;

-- The daemons show the phones' dead letters beside their own (lestash-sync
-- dead-letters) and may mark them resolved.
GRANT SELECT ON lestash.phone_dead_letters TO lestash_sync;
GRANT UPDATE (resolved_at) ON lestash.phone_dead_letters TO lestash_sync;

INSERT INTO lestash.schema_migrations (version) VALUES (9) ON CONFLICT DO NOTHING;
