#!/usr/bin/env bash
# What lestash-endpoint (the `endpoint` service of docker-compose.yml, the
# phone's uploads: docs/mobile.md) needs in this Postgres: its login role
# LESTASH_ENDPOINT_USER (default lestash_endpoint_login) with the password
# LESTASH_ENDPOINT_PASSWORD, a member of the group role lestash_endpoint
# (009_phone_uploads.sql) and nothing more. Without the password it does
# nothing. Idempotent; on a volume initialised earlier run it by hand:
#   docker-compose exec postgres bash /docker-entrypoint-initdb.d/40-endpoint.sh

lestash_endpoint_init() (
    set -euo pipefail
    unset PGHOST PGHOSTADDR
    local user=${LESTASH_ENDPOINT_USER:-lestash_endpoint_login}
    local password=${LESTASH_ENDPOINT_PASSWORD:-}
    local superuser=${POSTGRES_USER:-postgres}
    local db=${POSTGRES_DB:-$superuser}
    if [ -z "$password" ]; then
        echo "lestash-sync: LESTASH_ENDPOINT_PASSWORD is not set: no endpoint role (no phone uploads)"
        return 0
    fi
    case "$password" in
    change-me*)
        echo "lestash-sync: LESTASH_ENDPOINT_PASSWORD is still a placeholder; refusing" \
            "(generate one: openssl rand -base64 24)" >&2
        return 1
        ;;
    esac
    if ! [[ "$user" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || [ "$user" = lestash_endpoint ]; then
        echo "lestash-sync: LESTASH_ENDPOINT_USER='$user' is not usable" >&2
        return 1
    fi
    echo "lestash-sync: creating login role $user (member of lestash_endpoint)"
    psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet --username "$superuser" --dbname "$db" \
        -v user="$user" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    INHERIT PASSWORD :'password';
GRANT lestash_endpoint TO :"user";
SQL
)

lestash_endpoint_init
