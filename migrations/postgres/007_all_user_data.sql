-- lestash-sync upstream schema, part 7: the rest of the user's data, one
-- function that names natural-key rows, and one rule for soft references.
--
-- 1. The tables of Le Stash v11 that hold the user's data and were not
--    synced yet: person_profiles, collections, collection_items, item_media,
--    syndications. Made like the tables of 001 (uuid keys, uuid references
--    with ON DELETE CASCADE as the app's foreign keys have, typed columns,
--    a CHECK per NOT NULL app column that allows the _sqlite override), and
--    synced with lestash.make_synced (006): bookkeeping, change capture,
--    grants, the phone's publication.
--    What stays local and why: docs/architecture.md, "What stays on the
--    device" (log_entries, post_cache, the vector index).
--
-- 2. lestash.natural_row_id(tbl, row): THE function that gives a row of a
--    natural-key or link table its name-based id, exactly as the daemons
--    do (src/replica/identity.cpp; vectors in config/powersync/id-vectors.json).
--    The canonical_row_id trigger calls it for other writers' inserts; the
--    phone's upload endpoint calls it for a phone's new rows. The name is
--    built as bytes, so a key value Postgres can only keep in _sqlite as
--    text-hex (a NUL byte, invalid UTF-8) is named from its raw bytes, as
--    the daemon names it.
--
-- 3. Soft references (items.parent_id, item_history.parent_id_old have no
--    foreign key, in the app as here): a soft reference points at an
--    existing item or is NULL. Deleting items clears every reference to
--    them, and a reference written to an item that does not exist (a push
--    racing a delete, a psql writer) is cleared, both as changes made by no
--    replica (lestash.origin empty), so every replica pulls the NULL, the
--    one that wrote or deleted included.
--
-- Safe to run again: every statement is idempotent.

-- ---- 1. The tables ---------------------------------------------------------

-- Adds CHECK (<col> IS NOT NULL OR _sqlite ? '<col>') named <table>_<col>_present
-- unless the table has it: a NOT NULL column of the app whose value may
-- travel in the override instead (an integer in a text column...).
CREATE OR REPLACE FUNCTION lestash.require_present(tbl regclass, col text)
RETURNS void LANGUAGE plpgsql SET search_path = lestash, pg_catalog AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tbl) || '_' || col || '_present';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = tbl AND conname = name) THEN
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I IS NOT NULL OR _sqlite ? %L)',
                       tbl, name, col, col);
    END IF;
END $$;
REVOKE ALL ON FUNCTION lestash.require_present(regclass, text) FROM PUBLIC;

-- LinkedIn URN -> profile; upserted on urn by the app.
CREATE TABLE IF NOT EXISTS lestash.person_profiles (
    id           uuid PRIMARY KEY,  -- name-based from urn
    urn          text,
    profile_url  text,
    display_name text,
    source       text DEFAULT 'manual',
    created_at   text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    updated_at   text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    CONSTRAINT person_profiles_urn_key UNIQUE (urn)
);

-- Reading lists; names are not unique, so the id is random.
CREATE TABLE IF NOT EXISTS lestash.collections (
    id          uuid PRIMARY KEY,
    name        text,
    description text,
    created_at  text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    updated_at  text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    metadata    text
);

-- An item in a collection, with the user's note: a link row like item_tags,
-- identified by its parents, with data columns of its own.
CREATE TABLE IF NOT EXISTS lestash.collection_items (
    id            uuid PRIMARY KEY,  -- name-based from (collection_id, item_id)
    collection_id uuid NOT NULL REFERENCES lestash.collections (id) ON DELETE CASCADE,
    item_id       uuid NOT NULL REFERENCES lestash.items (id) ON DELETE CASCADE,
    added_at      text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    note          text,
    CONSTRAINT collection_items_pair UNIQUE (collection_id, item_id)
);
CREATE INDEX IF NOT EXISTS collection_items_item ON lestash.collection_items (item_id);

-- An item's image, PDF, thumbnail or link. local_path is relative to the
-- media folder next to each device's database; the files themselves travel
-- through the media tables (008), not here.
CREATE TABLE IF NOT EXISTS lestash.item_media (
    id            uuid PRIMARY KEY,
    item_id       uuid NOT NULL REFERENCES lestash.items (id) ON DELETE CASCADE,
    media_type    text,
    url           text,
    local_path    text,
    mime_type     text,
    alt_text      text,
    position      bigint DEFAULT 0,
    source_origin text DEFAULT 'sync',
    created_at    text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
);
CREATE INDEX IF NOT EXISTS item_media_item ON lestash.item_media (item_id);

-- What was posted where; one row per (item, target, target_url).
CREATE TABLE IF NOT EXISTS lestash.syndications (
    id            uuid PRIMARY KEY,  -- name-based from (item's uuid, target, target_url)
    item_id       uuid NOT NULL REFERENCES lestash.items (id) ON DELETE CASCADE,
    target        text,
    target_url    text,
    published_at  text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    request_body  text,
    response_body text,
    CONSTRAINT syndications_natural_key UNIQUE (item_id, target, target_url)
);
CREATE INDEX IF NOT EXISTS syndications_item ON lestash.syndications (item_id);

-- The soft-reference rule below finds history rows by parent_id_old.
CREATE INDEX IF NOT EXISTS item_history_parent_old ON lestash.item_history (parent_id_old);

-- ---- 2. Names of natural-key rows ----------------------------------------

-- Name-based UUID (RFC 4122 version 3) of a name given as bytes, in the
-- row namespace of lestash.name_based_uuid (002), which is this over UTF-8.
CREATE OR REPLACE FUNCTION lestash.name_based_uuid_bytes(name bytea) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (substr(h, 1, 12) || '3' || substr(h, 14, 3)
            || to_hex((('x' || substr(h, 17, 2))::bit(8)::int & 63) | 128)
            || substr(h, 19))::uuid
      FROM (SELECT md5(decode('6f1c6a5e2b0d5a579a1e1e57a5c0de01', 'hex') || name) AS h) AS digest
$$;

-- One natural-key value as the daemon names it, as bytes: its storage
-- class letter, ':', the value (tagged_value with raw text in
-- src/common/value_text.cpp). `typed` is the text column's value,
-- `override` its _sqlite entry. text-hex is text Postgres cannot hold (a
-- NUL, invalid UTF-8): named from its raw bytes, as SQLite holds them.
-- NULL for a NULL value.
CREATE OR REPLACE FUNCTION lestash.key_part_bytes(typed text, override jsonb) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN typed IS NOT NULL THEN convert_to('t:' || typed, 'UTF8')
        WHEN override ->> 0 = 'integer' THEN convert_to('i:' || (override ->> 1), 'UTF8')
        WHEN override ->> 0 = 'real' THEN convert_to('r:' || (override ->> 1), 'UTF8')
        WHEN override ->> 0 = 'text' THEN convert_to('t:' || (override ->> 1), 'UTF8')
        WHEN override ->> 0 = 'text-hex' THEN convert_to('t:', 'UTF8') || decode(override ->> 1, 'hex')
        WHEN override ->> 0 = 'blob' THEN convert_to('b:' || (override ->> 1), 'UTF8')
    END
$$;

-- natural_row_id(tbl, r): the id a row of table `tbl` (its name without
-- the schema) must have, from its values `r` as jsonb (to_jsonb of the row,
-- or a phone's upload: {"column": value, ..., "_sqlite": {...}} with
-- references as UUIDs). NULL when the table's rows have random ids
-- (collections, item_media, item_history, sync_log) or a key value is NULL
-- (an item without source_id): the row keeps the id it came with.
--
-- The name is the table name, then per key column U+001F and the value:
-- "<class letter>:<value>" (key_part_bytes), or for a reference the UUID
-- of the row it points to, in lower case. docs/mobile.md, "Ids".
CREATE OR REPLACE FUNCTION lestash.natural_row_id(tbl text, r jsonb) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    key_columns text[];
    references_ text[] := '{}';
    name  bytea := convert_to(tbl, 'UTF8');
    part  bytea;
    c     text;
BEGIN
    CASE tbl
        WHEN 'items' THEN key_columns := '{source_type,source_id}';
        WHEN 'tags' THEN key_columns := '{name}';
        WHEN 'sources' THEN key_columns := '{source_type}';
        WHEN 'person_profiles' THEN key_columns := '{urn}';
        WHEN 'syndications' THEN
            key_columns := '{item_id,target,target_url}';
            references_ := '{item_id}';
        WHEN 'item_tags' THEN
            key_columns := '{item_id,tag_id}';
            references_ := key_columns;
        WHEN 'collection_items' THEN
            key_columns := '{collection_id,item_id}';
            references_ := key_columns;
        ELSE
            RETURN NULL;
    END CASE;
    FOREACH c IN ARRAY key_columns LOOP
        IF c = ANY (references_) THEN
            part := convert_to((r ->> c)::uuid::text, 'UTF8');
        ELSE
            part := lestash.key_part_bytes(r ->> c, r -> '_sqlite' -> c);
        END IF;
        IF part IS NULL THEN
            RETURN NULL;
        END IF;
        name := name || '\x1f'::bytea || part;
    END LOOP;
    RETURN lestash.name_based_uuid_bytes(name);
END $$;

-- Rows inserted by other writers (psql, a web app) get the identity a
-- daemon would give them, so the same post, tag, link, profile or
-- syndication converges on one row whoever writes it first. Pushes keep
-- the id their replica chose (the trigger's WHEN skips them). Replaces
-- the version of 002, which could not name text-hex keys.
CREATE OR REPLACE FUNCTION lestash.canonical_row_id() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    named uuid := lestash.natural_row_id(TG_TABLE_NAME, to_jsonb(NEW));
BEGIN
    IF named IS NOT NULL THEN
        NEW.id := named;
    END IF;
    RETURN NEW;
END $$;

-- ---- 3. Soft references -----------------------------------------------------

-- AFTER DELETE ON items (per statement): the references to the deleted
-- items become NULL. Only when there are any, so a delete without
-- children makes no extra statement (no empty change, no extra NOTIFY).
CREATE OR REPLACE FUNCTION lestash.clear_soft_references() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
DECLARE
    saved text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM items i WHERE i.parent_id IN (SELECT o.id FROM old_rows o))
       AND NOT EXISTS (SELECT 1 FROM item_history h
                        WHERE h.parent_id_old IN (SELECT o.id FROM old_rows o)) THEN
        RETURN NULL;
    END IF;
    saved := current_setting('lestash.origin', true);
    PERFORM set_config('lestash.origin', '', true);  -- a change made by no replica
    UPDATE items SET parent_id = NULL WHERE parent_id IN (SELECT o.id FROM old_rows o);
    UPDATE item_history SET parent_id_old = NULL
     WHERE parent_id_old IN (SELECT o.id FROM old_rows o);
    PERFORM set_config('lestash.origin', coalesce(saved, ''), true);
    RETURN NULL;
END $$;

-- AFTER INSERT / UPDATE ON items and item_history (per statement): a soft
-- reference to an item that does not exist becomes NULL. The items
-- referenced are locked (FOR KEY SHARE, as a foreign key would), so a
-- concurrent delete of one of them waits for this transaction, and its
-- clearing then sees these rows; a delete that committed first is seen
-- here. Per statement, over the transition table: the rows of a push that
-- point at each other are all there, whatever their order in it.
CREATE OR REPLACE FUNCTION lestash.drop_dangling_soft_references() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = lestash, pg_catalog AS $$
DECLARE
    dangling uuid[];
    saved    text;
BEGIN
    IF TG_TABLE_NAME = 'items' THEN
        PERFORM 1 FROM items p WHERE p.id IN (SELECT n.parent_id FROM new_rows n)
            FOR KEY SHARE OF p;
        SELECT array_agg(n.id) INTO dangling FROM new_rows n
         WHERE n.parent_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM items p WHERE p.id = n.parent_id);
    ELSE
        PERFORM 1 FROM items p WHERE p.id IN (SELECT n.parent_id_old FROM new_rows n)
            FOR KEY SHARE OF p;
        SELECT array_agg(n.id) INTO dangling FROM new_rows n
         WHERE n.parent_id_old IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM items p WHERE p.id = n.parent_id_old);
    END IF;
    IF dangling IS NULL THEN
        RETURN NULL;
    END IF;
    saved := current_setting('lestash.origin', true);
    PERFORM set_config('lestash.origin', '', true);  -- a change made by no replica
    IF TG_TABLE_NAME = 'items' THEN
        UPDATE items SET parent_id = NULL WHERE id = ANY (dangling);
    ELSE
        UPDATE item_history SET parent_id_old = NULL WHERE id = ANY (dangling);
    END IF;
    PERFORM set_config('lestash.origin', coalesce(saved, ''), true);
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER clear_soft_references AFTER DELETE ON lestash.items
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION lestash.clear_soft_references();
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['items', 'item_history'] LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER soft_references_inserted AFTER INSERT ON lestash.%I '
                       'REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION lestash.drop_dangling_soft_references()', t);
        EXECUTE format('CREATE OR REPLACE TRIGGER soft_references_updated AFTER UPDATE ON lestash.%I '
                       'REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION lestash.drop_dangling_soft_references()', t);
    END LOOP;
END $$;

-- ---- The new tables become synced tables ------------------------------------

SELECT lestash.make_synced('lestash.person_profiles', canonical => true);
SELECT lestash.make_synced('lestash.collections', canonical => false);
SELECT lestash.make_synced('lestash.collection_items', canonical => true);
SELECT lestash.make_synced('lestash.item_media', canonical => false);
SELECT lestash.make_synced('lestash.syndications', canonical => true);

SELECT lestash.require_present('lestash.person_profiles', 'urn');
SELECT lestash.require_present('lestash.collections', 'name');
SELECT lestash.require_present('lestash.item_media', 'media_type');
SELECT lestash.require_present('lestash.syndications', 'target');
SELECT lestash.require_present('lestash.syndications', 'target_url');
SELECT lestash.require_present('lestash.syndications', 'published_at');

INSERT INTO lestash.schema_migrations (version) VALUES (7) ON CONFLICT DO NOTHING;
