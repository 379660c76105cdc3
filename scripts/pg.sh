#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for development and tests.
#
#   scripts/pg.sh start   start the cluster under .pg/ (creating it first), print its URL
#   scripts/pg.sh stop    stop it (the data stays under .pg/ for next time)
#   scripts/pg.sh status  exit 0 when it is running
#   scripts/pg.sh url     print the DATABASE_URL to use
#   scripts/pg.sh psql    run psql against it (extra arguments are passed on)
#   scripts/pg.sh destroy stop it and delete .pg/
#   scripts/pg.sh crash   stop it the way a crash would (`-m immediate`: no checkpoint,
#                         backends killed, recovery from WAL at the next start)
#
# PG_DIR names another directory for the cluster (default .pg in the checkout), so
# that a script can run a cluster of its own beside the one the tests use.
#
# PG_NEXT_XID=N makes a cluster being created hand out transaction ids from N on
# (`pg_resetwal -x` before its first start), so that code that would break once ids
# get long (say, positions compared as text: 1000000 sorts before 999999) breaks in
# tests rather than after weeks in production. Ignored for a cluster that exists.
#
# With DATABASE_URL set, start does nothing and url/psql use that database; stop and
# destroy always act on the local cluster (scripts that started it stop it).
#
# The cluster listens on a unix socket in .pg/run and on 127.0.0.1:$PG_PORT (default
# 54329), trusts local connections (it is a throwaway, never reachable from outside),
# and runs as a non-root user: initdb refuses root, so when this script runs as root
# the cluster belongs to the `postgres` user (created if missing). When that user cannot
# reach the checkout (say it lives under /root), .pg is a symlink to a directory in /tmp
# that it owns.
#
# When the PostgreSQL server binaries are missing, they are installed with
# `apt-get install -y postgresql` if we may (root, or passwordless sudo).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pg_root="${PG_DIR:-$here/.pg}"
pg_link="$pg_root"
port="${PG_PORT:-54329}"
pg_user_name="${PG_OS_USER:-postgres}"

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

local_url() { printf 'postgres://postgres@127.0.0.1:%s/postgres\n' "$port"; }

find_bindir() {
    local d
    if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/initdb" ]; then echo "$PG_BINDIR"; return 0; fi
    # Prefer 15 (what production runs), then any other installed version, newest first.
    for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir)
        if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    fi
    return 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1; fi
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL server binaries are missing and apt-get is not available; install PostgreSQL 15 or set DATABASE_URL"
    log "PostgreSQL server binaries are missing: installing them with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
        || die "cannot run apt-get (need root or passwordless sudo); install PostgreSQL 15 or set DATABASE_URL"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 \
        || die "apt-get install postgresql failed"
    # Debian starts a system cluster on 5432 on install; we do not need it.
    as_root service postgresql stop >/dev/null 2>&1 || true
}

bindir() {
    local d
    if ! d=$(find_bindir); then
        install_postgres
        d=$(find_bindir) || die "PostgreSQL binaries still missing after install"
    fi
    echo "$d"
}

# Run a command as the cluster's owner: ourselves, or `postgres` when we are root.
run_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u "$pg_user_name" -- "$@")
    else
        "$@"
    fi
}

ensure_os_user() {
    [ "$(id -u)" = 0 ] || return 0
    if ! id "$pg_user_name" >/dev/null 2>&1; then
        log "creating system user $pg_user_name to own the cluster"
        useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$pg_user_name"
    fi
}

# Make .pg a directory the cluster owner can use.
prepare_root() {
    if [ -e "$pg_root" ]; then return 0; fi
    if [ "$(id -u)" = 0 ]; then
        mkdir -p "$pg_root"
        chown "$pg_user_name" "$pg_root"
        if ! runuser -u "$pg_user_name" -- test -w "$pg_root"; then
            # The owner cannot traverse the checkout's path: keep the cluster in /tmp.
            rmdir "$pg_root"
            local tmp
            tmp=$(mktemp -d /tmp/booking-pg.XXXXXX)
            chown "$pg_user_name" "$tmp"
            chmod 700 "$tmp"
            ln -s "$tmp" "$pg_root"
            log ".pg -> $tmp ($pg_user_name cannot reach $here)"
        fi
    else
        mkdir -p "$pg_root"
    fi
}

is_running() {
    [ -e "$pg_root" ] || return 1
    pg_root=$(readlink -f "$pg_root")
    [ -f "$pg_root/data/postmaster.pid" ] || return 1
    local b
    b=$(find_bindir) || return 1
    run_pg "$b/pg_ctl" -D "$pg_root/data" status >/dev/null 2>&1
}

# set_next_xid BINDIR N: on the new, stopped cluster, the next transaction id is N.
set_next_xid() {
    local b=$1 n=$2
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 3 ] && [ "$n" -lt 4294967296 ] \
        || die "PG_NEXT_XID must be a transaction id (3 .. 4294967295), not '$n'"
    run_pg "$b/pg_resetwal" -x "$n" -D "$pg_root/data" >/dev/null
    # The commit log must cover the new id or the server refuses to start ("could not
    # access status of transaction"): one pg_xact segment holds the status of 1,048,576
    # transactions (32 pages of 8 kB, four per byte); make the segment that holds N
    # full-sized (zeros: no status yet), keeping what initdb wrote in segment 0000.
    local seg
    seg=$(printf '%04X' $((n / 1048576)))
    run_pg truncate -s 262144 "$pg_root/data/pg_xact/$seg"
    log "transaction ids start at $n"
}

cmd_start() {
    if [ -n "${DATABASE_URL:-}" ]; then echo "$DATABASE_URL"; return 0; fi
    if is_running; then local_url; return 0; fi
    local b
    b=$(bindir)
    ensure_os_user
    prepare_root
    # The owner may not traverse the checkout's path: hand it the resolved one.
    pg_root=$(readlink -f "$pg_root")
    if [ ! -f "$pg_root/data/PG_VERSION" ]; then
        log "initialising a throwaway cluster in $pg_root/data ($("$b/postgres" --version))"
        run_pg "$b/initdb" -D "$pg_root/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1 \
            || run_pg "$b/initdb" -D "$pg_root/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
        cat >>"$pg_root/data/postgresql.conf" <<EOF

# --- throwaway cluster settings (scripts/pg.sh) ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pg_root/run'
max_connections = 400
shared_buffers = 256MB
log_min_messages = warning
log_min_error_statement = panic
log_checkpoints = off
EOF
        if [ -n "${PG_NEXT_XID:-}" ]; then set_next_xid "$b" "$PG_NEXT_XID"; fi
    fi
    run_pg mkdir -p "$pg_root/run"
    # The port on the command line: PG_PORT wins over the one written at initdb time.
    if ! run_pg "$b/pg_ctl" -D "$pg_root/data" -o "-p $port" -l "$pg_root/log" -w -t 60 start >/dev/null; then
        tail -n 30 "$pg_root/log" >&2 || true
        die "PostgreSQL did not start (log: $pg_root/log)"
    fi
    log "PostgreSQL is up on 127.0.0.1:$port (socket in $pg_root/run)"
    local_url
}

cmd_stop() {
    if is_running; then
        local b
        b=$(find_bindir)
        run_pg "$b/pg_ctl" -D "$pg_root/data" -m fast -w stop >/dev/null
        log "PostgreSQL stopped"
    fi
}

cmd_crash() {
    if is_running; then
        local b
        b=$(find_bindir)
        run_pg "$b/pg_ctl" -D "$pg_root/data" -m immediate -w stop >/dev/null
        log "PostgreSQL stopped as if it had crashed"
    fi
}

cmd_url() {
    if [ -n "${DATABASE_URL:-}" ]; then echo "$DATABASE_URL"; else local_url; fi
}

cmd_psql() {
    local psql_bin
    if command -v psql >/dev/null 2>&1; then psql_bin=psql; else psql_bin="$(bindir)/psql"; fi
    "$psql_bin" "$(cmd_url)" "$@"
}

cmd_destroy() {
    cmd_stop
    local link="$pg_link"
    if [ -L "$link" ]; then rm -rf "$(readlink -f "$link")"; rm -f "$link"; else rm -rf "$link"; fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) if [ -n "${DATABASE_URL:-}" ] || is_running; then exit 0; else exit 1; fi ;;
    url) cmd_url ;;
    psql) shift; cmd_psql "$@" ;;
    destroy) cmd_destroy ;;
    crash) cmd_crash ;;
    *) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
