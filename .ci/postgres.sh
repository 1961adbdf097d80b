#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1, for the tests of `tlrl sweep --storage postgresql://...` (used by
# .ci/run and by the tests' fixture) and for trying a shared study on one machine.
#
#   .ci/postgres.sh start      starts one on a free port and prints two shell assignments:
#                                TLRL_PG_DIR=/tmp/tlrl-pg.XXXXXX
#                                TLRL_TEST_POSTGRES_URL=postgresql://tlrl@127.0.0.1:PORT/tlrl
#   .ci/postgres.sh stop DIR   stops the server whose folder is DIR and deletes DIR
#
# The server binaries are the Debian package's (/usr/lib/postgresql/<version>/bin; PG_BIN names another folder);
# without them it exits with code 3. PostgreSQL refuses to run as root: as root, the server runs as the
# `postgres` user (created if missing). Its data are throwaway: fsync is off and every local login is trusted.
set -euo pipefail

find_bin() {
    if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/pg_ctl" ]; then
        echo "$PG_BIN"
        return
    fi
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
        echo "$bin"
        return
    fi
    bin="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
    [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && echo "$bin"
}

as_server_user() {  # run a command as the user the server runs as (postgres when we are root)
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local bin dir port started=""
    if ! bin="$(find_bin)" || [ -z "$bin" ]; then
        echo "postgres.sh: PostgreSQL server binaries not found; install them (Debian/Ubuntu: apt-get install" \
             "postgresql) or set PG_BIN to the folder holding initdb and pg_ctl" >&2
        exit 3
    fi
    dir="$(mktemp -d /tmp/tlrl-pg.XXXXXX)"
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
        chown postgres "$dir"
    fi
    cd "$dir"
    if ! as_server_user "$bin/initdb" -D "$dir/data" -U tlrl --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf "$dir"
        exit 1
    fi
    for _ in 1 2 3 4 5; do  # a port found free can be taken before the server binds it: try another
        port="$(free_port)"
        if as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
            "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null 2>&1; then
            started=1
            break
        fi
    done
    if [ -z "$started" ]; then
        echo "postgres.sh: the server did not start; its log:" >&2
        cat "$dir/server.log" >&2 || true
        rm -rf "$dir"
        exit 1
    fi
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U tlrl tlrl
    echo "TLRL_PG_DIR=$dir"
    echo "TLRL_TEST_POSTGRES_URL=postgresql://tlrl@127.0.0.1:$port/tlrl"
}

stop() {
    local dir="$1" bin
    if [ -f "$dir/data/postmaster.pid" ] && bin="$(find_bin)"; then
        (cd "$dir" && as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1) || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
    *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
