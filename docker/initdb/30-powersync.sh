#!/usr/bin/env bash
# What the PowerSync service (the `powersync` service of docker-compose.yml,
# for the phone: docs/mobile.md) needs in this Postgres:
#   1. its login role LESTASH_POWERSYNC_USER (default lestash_powersync_service)
#      with LOGIN REPLICATION and the password LESTASH_POWERSYNC_PASSWORD, a
#      member of the group role lestash_powersync (005_powersync.sql: SELECT on
#      the synced tables) and nothing more;
#   2. its bucket storage database LESTASH_POWERSYNC_STORAGE_DB (default
#      powersync_storage), owned by that role.
# Without LESTASH_POWERSYNC_PASSWORD it does nothing: no phone, no role.
#
# The image runs it once, at first start, after 20-lestash-sync.sh. It is
# idempotent, so on a volume initialised earlier (the phone added later) run
# it by hand once the password is in .env:
#   docker-compose up -d postgres
#   docker-compose exec postgres bash /docker-entrypoint-initdb.d/30-powersync.sh

lestash_powersync_init() (
    set -euo pipefail
    trap 'status=$?; [ "$status" -eq 0 ] || echo "lestash-sync: PowerSync initialisation FAILED;" \
        "fix docker/.env and run this script again (see its header)" >&2' EXIT
    unset PGHOST PGHOSTADDR # the init server listens on the unix socket only
    local user=${LESTASH_POWERSYNC_USER:-lestash_powersync_service}
    local password=${LESTASH_POWERSYNC_PASSWORD:-}
    local storage=${LESTASH_POWERSYNC_STORAGE_DB:-powersync_storage}
    local superuser=${POSTGRES_USER:-postgres}
    local db=${POSTGRES_DB:-$superuser}

    if [ -z "$password" ]; then
        echo "lestash-sync: LESTASH_POWERSYNC_PASSWORD is not set: no PowerSync role (the phone is off;" \
            "docs/mobile.md says how to turn it on)"
        return 0
    fi
    case "$password" in
    change-me*)
        echo "lestash-sync: LESTASH_POWERSYNC_PASSWORD is still a placeholder; refusing" \
            "(generate one: openssl rand -base64 24)" >&2
        return 1
        ;;
    esac
    local name
    for name in "$user" "$storage"; do
        if ! [[ "$name" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || [ "$name" = "$superuser" ] ||
            [ "$name" = "$db" ] || [[ "$name" == pg_* ]] || [[ "$name" == lestash_sync ]] ||
            [[ "$name" == lestash_powersync ]]; then
            echo "lestash-sync: '$name' (LESTASH_POWERSYNC_USER / LESTASH_POWERSYNC_STORAGE_DB)" \
                "is not usable: use lower-case letters, digits and _, not pg_*, the group roles" \
                "or the superuser's or main database's name" >&2
            return 1
        fi
    done

    local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet
        --username "$superuser" --dbname "$db")
    echo "lestash-sync: creating PowerSync's login role $user (LOGIN REPLICATION, member of lestash_powersync)"
    "${psql[@]}" -v user="$user" -v password="$password" -v storage="$storage" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    INHERIT PASSWORD :'password';
GRANT lestash_powersync TO :"user";
SELECT format('CREATE DATABASE %I OWNER %I', :'storage', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'storage') \gexec
SQL
    echo "lestash-sync: PowerSync's role and storage database $storage ready"
)

# Sourced by the image's entrypoint (under set -e) or executed.
lestash_powersync_init
