#!/bin/sh
# Writes lestash-endpoint's config from the container's environment
# (docker-compose.yml, service `endpoint`), then runs it with the arguments
# given (`serve` by default; `pair --name NAME`, `devices list` work too:
#   docker-compose exec endpoint lestash-endpoint-entrypoint pair --name "Pixel 8").
# The Postgres password comes as PGPASSWORD and the HS256 key as
# LESTASH_ENDPOINT_HS256_KEY, both read by the program, never written here.
set -eu
config=${TMPDIR:-/tmp}/endpoint.toml
cat >"$config" <<TOML
[endpoint]
listen = "0.0.0.0"
port = 8090
public_url = "${LESTASH_ENDPOINT_PUBLIC_URL:?set LESTASH_ENDPOINT_PUBLIC_URL in docker/.env}"
powersync_url = "${LESTASH_POWERSYNC_PUBLIC_URL:?set LESTASH_POWERSYNC_PUBLIC_URL in docker/.env}"
[postgres]
conninfo = "host=${PGHOST:-postgres} port=5432 dbname=${PGDATABASE:-lestash} user=${PGUSER:-lestash_endpoint_login}"
TOML
exec lestash-endpoint --config "$config" "$@"
