#!/usr/bin/env bash
# First-start initialisation for lestash-sync's Postgres (docker-compose.yml).
# The postgres image runs this once, when the data volume is empty, against a
# server that listens on its unix socket only. It
#   1. applies the upstream schema, /lestash/migrations/*.sql in order, each
#      with psql -v ON_ERROR_STOP=1 -f (they are idempotent);
#   2. creates the daemons' login role LESTASH_SYNC_USER (default
#      lestash_daemon) with password LESTASH_SYNC_PASSWORD (required), a member
#      of the least-privilege group role lestash_sync (003_roles.sql) and
#      nothing more: not a superuser, cannot create databases or roles.
# The image either sources or executes *.sh init scripts (executable bit);
# this one works both ways and changes nothing in the caller's shell.

lestash_sync_init() (
    set -euo pipefail
    trap 'status=$?; [ "$status" -eq 0 ] || echo "lestash-sync: first-start initialisation FAILED;" \
        "fix docker/.env, remove the half-initialised volume (docker-compose down -v)" \
        "and start again" >&2' EXIT
    unset PGHOST PGHOSTADDR # the init server listens on the unix socket only
    local user=${LESTASH_SYNC_USER:-lestash_daemon}
    local password=${LESTASH_SYNC_PASSWORD:-}
    local migrations=${LESTASH_MIGRATIONS_DIR:-/lestash/migrations}
    local superuser=${POSTGRES_USER:-postgres}
    local db=${POSTGRES_DB:-$superuser}

    if [ -z "$password" ]; then
        echo "lestash-sync: LESTASH_SYNC_PASSWORD is not set; refusing to initialise (set it in docker/.env)" >&2
        return 1
    fi
    case "$password" in
    change-me*)
        echo "lestash-sync: LESTASH_SYNC_PASSWORD is still the placeholder from .env.example;" \
            "refusing to initialise (generate one: openssl rand -base64 24)" >&2
        return 1
        ;;
    esac
    case "${POSTGRES_PASSWORD:-}" in
    change-me*)
        echo "lestash-sync: POSTGRES_PASSWORD is still the placeholder from .env.example;" \
            "refusing to initialise (generate one: openssl rand -base64 24)" >&2
        return 1
        ;;
    esac
    if ! [[ "$user" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || [ "$user" = lestash_sync ] ||
        [ "$user" = "$superuser" ] || [[ "$user" == pg_* ]]; then
        echo "lestash-sync: LESTASH_SYNC_USER='$user' is not usable: use lower-case letters," \
            "digits and _, not lestash_sync, pg_* or the superuser's name" >&2
        return 1
    fi

    local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet
        --username "$superuser" --dbname "$db")
    local LC_ALL=C # byte order: 001_, 002_, ...
    local files=("$migrations"/*.sql)
    if [ ! -e "${files[0]}" ]; then
        echo "lestash-sync: no migrations in $migrations (is ../migrations/postgres mounted?)" >&2
        return 1
    fi
    local f
    for f in "${files[@]}"; do
        echo "lestash-sync: applying $(basename "$f")"
        "${psql[@]}" -f "$f"
    done

    echo "lestash-sync: creating login role $user (member of lestash_sync)"
    # psql variables quote the name and password; the password never reaches
    # the command line or the server log (log_statement is off by default).
    "${psql[@]}" -v user="$user" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    INHERIT PASSWORD :'password';
GRANT lestash_sync TO :"user";
SQL
    local super
    super=$("${psql[@]}" -tA -v user="$user" <<'SQL'
SELECT rolsuper FROM pg_roles WHERE rolname = :'user';
SQL
)
    if [ "$super" != f ]; then
        echo "lestash-sync: role $user came out as a superuser ($super); refusing" >&2
        return 1
    fi
    echo "lestash-sync: schema and roles ready"
)

# Sourced by the image's entrypoint (under set -e) or executed: either way a
# failure stops the initialisation with this function's status.
lestash_sync_init
