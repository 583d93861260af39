#!/usr/bin/env bash
# Entrypoint of the stand-in postgres image (see Dockerfile): the parts of the
# official image's contract that docker-compose.yml relies on.
#   POSTGRES_PASSWORD (required), POSTGRES_USER (default postgres),
#   POSTGRES_DB (default POSTGRES_USER), PGDATA, POSTGRES_INITDB_ARGS,
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256).
# On first start (no PGDATA/PG_VERSION): initdb, `host all all all
# scram-sha-256` in pg_hba.conf, a server on the unix socket only, the
# database, then /docker-entrypoint-initdb.d/* in sorted order (*.sh
# executed when executable, sourced otherwise; *.sql through psql -v
# ON_ERROR_STOP=1), then that server is stopped. Finally postgres is exec'd
# as the postgres user, listening on all addresses, so signals reach it.
set -Eeo pipefail

if [ "${1:0:1}" = - ]; then
    set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    # As root: own the data and socket directories, then run this script
    # again as postgres (setpriv execs; no process is left in between).
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export POSTGRES_USER POSTGRES_DB

docker_process_sql() {
    local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ -n "$POSTGRES_DB" ]; then
        query_runner+=(--dbname "$POSTGRES_DB")
    fi
    PGHOST= PGHOSTADDR= "${query_runner[@]}" "$@"
}

docker_process_init_files() {
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
        *.sh)
            if [ -x "$f" ]; then
                echo "$0: running $f"
                "$f"
            else
                echo "$0: sourcing $f"
                . "$f"
            fi
            ;;
        *.sql)
            echo "$0: running $f"
            docker_process_sql -f "$f"
            ;;
        *.sql.gz)
            echo "$0: running $f"
            gunzip -c "$f" | docker_process_sql
            ;;
        */\*) ;; # empty directory
        *) echo "$0: ignoring $f" ;;
        esac
    done
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo "error: database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    if [ -n "$(ls -A "$PGDATA" 2>/dev/null)" ]; then
        echo "error: $PGDATA is not empty but holds no database (PG_VERSION missing)" >&2
        exit 1
    fi
    # Local and loopback connections inside the container stay "trust", as
    # initdb leaves them in the official image; everything else needs a password.
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") --encoding=UTF8 --locale=C.UTF-8 '"${POSTGRES_INITDB_ARGS:-}"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p ${PGPORT:-5432}" start
    if [ "$POSTGRES_DB" != postgres ]; then
        POSTGRES_DB=postgres docker_process_sql -v dbname="$POSTGRES_DB" <<<'CREATE DATABASE :"dbname";'
    fi
    docker_process_init_files
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    echo
    echo "PostgreSQL init process complete; ready for start up."
    echo
else
    echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
fi

exec "$@"
