-- lestash-sync upstream schema, part 1: the synced tables.
--
-- Plain relational tables with UUID primary keys and UUID foreign keys, one
-- per synced Le Stash table, so other services (a web app, PowerSync) can
-- use them directly. Safe to run again: every statement is idempotent.
--
-- Type mapping (SQLite value -> column; see docs/architecture.md):
--   TEXT columns -> text, INTEGER -> bigint, BOOLEAN -> boolean (0/1),
--   DATETIME -> text exactly as the app wrote it, metadata JSON -> text
--   (byte-exact), local foreign keys -> uuid. A value whose SQLite storage
--   class the column cannot carry (an integer in a text column, a BLOB,
--   text with a NUL or invalid UTF-8, a boolean other than 0/1) is kept
--   exactly in _sqlite -> {"column": ["class", "encoded value"]} with the
--   typed column NULL.
--
-- Bookkeeping columns (defaults and the triggers in 002; writers ignore them):
--   _rev       revision of the row's latest change (lestash.revision)
--   _created   creation order (lestash.creation): a fresh replica copies rows
--              in this order, so its local ids keep the order rows were made
--   _origin    the replica that inserted the row (NULL: another writer)
--   _col_revs  {"column": [revision, "origin replica or null"]} per column
--              changed since the row was inserted
--   _push_base set by the daemon's pushes: the revision the pushing replica
--              last saw, to detect concurrent edits (cleared on update)

CREATE SCHEMA IF NOT EXISTS lestash;
CREATE SEQUENCE IF NOT EXISTS lestash.revision;
CREATE SEQUENCE IF NOT EXISTS lestash.creation;

CREATE TABLE IF NOT EXISTS lestash.items (
    id             uuid PRIMARY KEY,
    source_type    text,
    source_id      text,
    url            text,
    title          text,
    content        text,
    author         text,
    created_at     text,
    fetched_at     text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    is_own_content boolean DEFAULT false,
    metadata       text,
    parent_id      uuid,  -- soft reference, as in SQLite (no constraint)
    _rev           bigint NOT NULL DEFAULT nextval('lestash.revision'),
    _created       bigint NOT NULL DEFAULT nextval('lestash.creation'),
    _origin        uuid DEFAULT nullif(current_setting('lestash.origin', true), '')::uuid,
    _col_revs      jsonb NOT NULL DEFAULT '{}',
    _push_base     bigint,
    _sqlite        jsonb,
    CONSTRAINT items_natural_key UNIQUE (source_type, source_id),
    CONSTRAINT items_source_type_present CHECK (source_type IS NOT NULL OR _sqlite ? 'source_type'),
    CONSTRAINT items_content_present CHECK (content IS NOT NULL OR _sqlite ? 'content')
);
CREATE INDEX IF NOT EXISTS items_parent ON lestash.items (parent_id);

CREATE TABLE IF NOT EXISTS lestash.tags (
    id        uuid PRIMARY KEY,
    name      text,
    kind      text DEFAULT 'ad-hoc',
    _rev      bigint NOT NULL DEFAULT nextval('lestash.revision'),
    _created  bigint NOT NULL DEFAULT nextval('lestash.creation'),
    _origin   uuid DEFAULT nullif(current_setting('lestash.origin', true), '')::uuid,
    _col_revs jsonb NOT NULL DEFAULT '{}',
    _push_base bigint,
    _sqlite   jsonb,
    CONSTRAINT tags_name_key UNIQUE (name),
    CONSTRAINT tags_name_present CHECK (name IS NOT NULL OR _sqlite ? 'name')
);

CREATE TABLE IF NOT EXISTS lestash.sources (
    id          uuid PRIMARY KEY,
    source_type text,
    config      text,
    last_sync   text,
    enabled     boolean DEFAULT true,
    _rev        bigint NOT NULL DEFAULT nextval('lestash.revision'),
    _created    bigint NOT NULL DEFAULT nextval('lestash.creation'),
    _origin     uuid DEFAULT nullif(current_setting('lestash.origin', true), '')::uuid,
    _col_revs   jsonb NOT NULL DEFAULT '{}',
    _push_base  bigint,
    _sqlite     jsonb,
    CONSTRAINT sources_source_type_key UNIQUE (source_type),
    CONSTRAINT sources_source_type_present CHECK (source_type IS NOT NULL OR _sqlite ? 'source_type')
);

CREATE TABLE IF NOT EXISTS lestash.item_history (
    id                 uuid PRIMARY KEY,
    item_id            uuid NOT NULL REFERENCES lestash.items (id) ON DELETE CASCADE,
    content_old        text,
    title_old          text,
    author_old         text,
    url_old            text,
    metadata_old       text,
    is_own_content_old boolean,
    changed_at         text DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    change_reason      text,
    change_type        text DEFAULT 'update',
    parent_id_old      uuid,  -- soft reference
    _rev               bigint NOT NULL DEFAULT nextval('lestash.revision'),
    _created           bigint NOT NULL DEFAULT nextval('lestash.creation'),
    _origin            uuid DEFAULT nullif(current_setting('lestash.origin', true), '')::uuid,
    _col_revs          jsonb NOT NULL DEFAULT '{}',
    _push_base         bigint,
    _sqlite            jsonb
);
CREATE INDEX IF NOT EXISTS item_history_item ON lestash.item_history (item_id);

CREATE TABLE IF NOT EXISTS lestash.item_tags (
    id         uuid PRIMARY KEY,  -- name-based from (item_id, tag_id)
    item_id    uuid NOT NULL REFERENCES lestash.items (id) ON DELETE CASCADE,
    tag_id     uuid NOT NULL REFERENCES lestash.tags (id) ON DELETE CASCADE,
    _rev       bigint NOT NULL DEFAULT nextval('lestash.revision'),
    _created   bigint NOT NULL DEFAULT nextval('lestash.creation'),
    _origin    uuid DEFAULT nullif(current_setting('lestash.origin', true), '')::uuid,
    _col_revs  jsonb NOT NULL DEFAULT '{}',
    _push_base bigint,
    _sqlite    jsonb,
    CONSTRAINT item_tags_pair UNIQUE (item_id, tag_id)
);
CREATE INDEX IF NOT EXISTS item_tags_tag ON lestash.item_tags (tag_id);

CREATE TABLE IF NOT EXISTS lestash.sync_log (
    id            uuid PRIMARY KEY,
    source_type   text,
    started_at    text,
    completed_at  text,
    status        text,
    items_added   bigint DEFAULT 0,
    items_updated bigint DEFAULT 0,
    error_message text,
    _rev          bigint NOT NULL DEFAULT nextval('lestash.revision'),
    _created      bigint NOT NULL DEFAULT nextval('lestash.creation'),
    _origin       uuid DEFAULT nullif(current_setting('lestash.origin', true), '')::uuid,
    _col_revs     jsonb NOT NULL DEFAULT '{}',
    _push_base    bigint,
    _sqlite       jsonb
);

-- One row per replica that ever pushed: its name and the last outbox
-- sequence applied, updated in the same transaction as the batch, so a
-- batch retried after a lost acknowledgement is recognised and skipped.
CREATE TABLE IF NOT EXISTS lestash.replicas (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    last_seq     bigint NOT NULL DEFAULT 0,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_push_at timestamptz
);

-- Values overwritten by a concurrent edit of the same column (the later
-- arrival wins), or edits that reached a row already deleted elsewhere.
CREATE TABLE IF NOT EXISTS lestash.conflicts (
    id            bigserial PRIMARY KEY,
    tbl           text NOT NULL,
    row_id        uuid NOT NULL,
    column_name   text NOT NULL,
    winner_value  jsonb,
    winner_origin uuid,
    loser_value   jsonb,
    loser_origin  uuid,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    resolution    text
);
CREATE INDEX IF NOT EXISTS conflicts_open ON lestash.conflicts (id) WHERE resolved_at IS NULL;

CREATE TABLE IF NOT EXISTS lestash.schema_migrations (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO lestash.schema_migrations (version) VALUES (1) ON CONFLICT DO NOTHING;
