#!/usr/bin/env bash
# Starts a throw-away local PostgreSQL server for the multi-worker search test and
# prints its URL (postgresql://postgres@127.0.0.1:PORT/hwnas_test) on stdout.
# Best effort: installs Debian's postgresql when it is missing (CI runs as root);
# prints nothing and exits 0 when no server can be had, so the test skips.
#   usage: eval "$(bash .ci/postgres.sh start)";  bash .ci/postgres.sh stop
set -uo pipefail
DIR=${HWNAS_PG_DIR:-/tmp/hwnas-ci-postgres}
PORT=${HWNAS_PG_PORT:-54329}

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start() {
    local bin
    bin=$(find_bin)
    if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing postgresql (apt-get)" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || true
        bin=$(find_bin)
    fi
    if [ -z "$bin" ]; then echo "postgresql not available; the PostgreSQL test will skip" >&2; return 0; fi
    local run=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { echo "no postgres user; skipping" >&2; return 0; }
        run=(runuser -u postgres --)
    fi
    stop >/dev/null 2>&1
    rm -rf "$DIR" && mkdir -p "$DIR" && chown "$( [ "$(id -u)" = 0 ] && echo postgres || id -un)" "$DIR"
    "${run[@]}" "$bin/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
        || { echo "initdb failed (see $DIR/initdb.log); skipping" >&2; return 0; }
    "${run[@]}" "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=100" start >&2 \
        || { echo "postgres did not start (see $DIR/server.log); skipping" >&2; return 0; }
    "${run[@]}" "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres hwnas_test >&2 \
        || { echo "createdb failed; skipping" >&2; return 0; }
    echo "export HWNAS_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$PORT/hwnas_test"
}

stop() {
    local bin
    bin=$(find_bin)
    [ -n "$bin" ] && [ -d "$DIR/data" ] || return 0
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$DIR/data" -m fast stop >&2
    else
        "$bin/pg_ctl" -D "$DIR/data" -m fast stop >&2
    fi
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
