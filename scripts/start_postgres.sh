#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on localhost for the tuning tests and print its URL.
#
#   eval "$(scripts/start_postgres.sh)"   # exports ALPHAFORGE_TEST_PG_URL
#   scripts/start_postgres.sh stop        # stops it
#
# Installs the Debian packages when initdb is missing (needs root / sudo). Runs the server as the
# current user (or as 'postgres' when run as root) with its data under $PGROOT.
set -euo pipefail
cd /  # the server runs as another user, which may not be allowed into the caller's folder

PGROOT=${PGROOT:-/tmp/alphaforge-pg}
PGPORT=${PGPORT:-54329}
DB=${PGDATABASE_NAME:-alphaforge_test}

find_bin() {
    local name=$1
    command -v "$name" 2>/dev/null && return
    ls /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1
}

as_pg() {  # initdb and postgres refuse to run as root
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$(printf '%q ' "$@")"; else "$@"; fi
}

if [ -z "$(find_bin initdb)" ]; then
    echo "installing postgresql (Debian packages)" >&2
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
INITDB=$(readlink -f "$(find_bin initdb)")
PG_CTL=$(readlink -f "$(find_bin pg_ctl)")
BIN=$(dirname "$PG_CTL")

if [ "${1:-start}" = stop ]; then
    as_pg "$PG_CTL" -D "$PGROOT/data" -m fast stop >&2 || true
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    mkdir -p "$PGROOT" && chown postgres "$PGROOT"
else
    mkdir -p "$PGROOT"
fi
if [ ! -f "$PGROOT/data/PG_VERSION" ]; then
    as_pg "$INITDB" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 >&2
fi
if ! as_pg "$PG_CTL" -D "$PGROOT/data" status >/dev/null 2>&1; then
    as_pg "$PG_CTL" -D "$PGROOT/data" -l "$PGROOT/server.log" -w \
        -o "-p $PGPORT -k $PGROOT -c listen_addresses=localhost -c max_connections=200" start >&2
fi
if ! "$BIN/psql" -h localhost -p "$PGPORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
    "$BIN/createdb" -h localhost -p "$PGPORT" -U postgres "$DB" >&2
fi
echo "export ALPHAFORGE_TEST_PG_URL=postgresql://postgres@localhost:$PGPORT/$DB"
