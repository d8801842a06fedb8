#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests: `pg-cluster.sh start DIR` makes one in
# DIR (data folder and socket inside it), listening on 127.0.0.1 on a free port, and
# prints its URL; `pg-cluster.sh restart DIR` restarts it (the tests' database outage);
# `pg-cluster.sh stop DIR` stops it and removes DIR. initdb and pg_ctl
# refuse to run as root, so as root the cluster runs as the `postgres` system user
# (which the Debian packages create), or else as `nobody`.
set -euo pipefail
action="${1:?usage: pg-cluster.sh start|restart|stop DIR}"
dir="${2:?usage: pg-cluster.sh start|restart|stop DIR}"
bindir="${PG_BINDIR:-}"
if [ -z "$bindir" ]; then
    if command -v pg_ctl >/dev/null 2>&1; then
        bindir="$(dirname "$(command -v pg_ctl)")"
    else
        bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    fi
fi
[ -x "$bindir/initdb" ] || { echo "PostgreSQL (initdb) is not installed" >&2; exit 1; }
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        local user=postgres
        id -u postgres >/dev/null 2>&1 || user=nobody
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}
case "$action" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$(id -u postgres 2>/dev/null || id -u nobody)" "$dir"
        # The cluster's user must reach DIR through a folder mktemp made private.
        chmod a+x "$(dirname "$dir")"
    fi
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    as_owner "$bindir/initdb" -D "$dir/data" -U digest --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    # Durability off: the cluster lives as long as the tests.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgresql://digest@127.0.0.1:$port/postgres"
    ;;
restart)
    # Every connection is cut, as when the database server restarts under the senders.
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 restart >/dev/null
    ;;
stop)
    [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg-cluster.sh start|restart|stop DIR" >&2
    exit 2
    ;;
esac
