#!/usr/bin/env bash
# A throwaway Citus formation for development and tests: one coordinator and
# CITUS_WORKERS (2) workers, each its own PostgreSQL 15 instance on 127.0.0.1.
#
#   scripts/citus.sh start    build Citus if it is not installed, create the formation
#                             under .citus/ (first time), start it, print the
#                             coordinator's DATABASE_URL
#   scripts/citus.sh stop     stop every node (the data stays for next time)
#   scripts/citus.sh install  only build and install Citus if it is not installed (its
#                             build packages may upgrade PostgreSQL's own in place, and
#                             a server already running would then fail to load
#                             plpgsql: scripts/test.sh installs first, then starts)
#   scripts/citus.sh crash PORT
#                             kill the node on PORT the way a crash would (SIGKILL to its
#                             postmaster and every child: recovery from WAL when
#                             `start-node` starts it again); the fault suite's `citus`
#                             scenario does it to a worker
#   scripts/citus.sh start-node PORT
#                             start that one node again, as `start` would, without the
#                             rest of `start` (which also prepares the database on every
#                             node, and waits on the coordinator's metadata locks)
#   scripts/citus.sh status   exit 0 when every node runs
#   scripts/citus.sh url      print the coordinator's DATABASE_URL
#   scripts/citus.sh psql     psql on the coordinator (extra arguments are passed on)
#   scripts/citus.sh destroy  stop it and delete .citus/
#   scripts/citus.sh createdb NAME
#                             a new database NAME on every node, with the extension and
#                             the workers registered (what a migration then distributes);
#                             prints its URL
#
# Citus: an installed one is used (`citus.so` in PostgreSQL's library directory; a user
# installs it from Citus's own packages, see the README). Otherwise it is built from the
# source tarball CITUS_SOURCE (default ../shared/vendor/citus-13.0.3.tar.gz beside the
# checkout, when it exists) with Debian's build packages, and installed into
# PostgreSQL's directories, which needs root or passwordless sudo. Installing
# postgresql-server-dev-15 may upgrade the PostgreSQL 15 server package to its
# matching minor version: clusters that run keep their binaries until restarted.
#
# Environment:
#   CITUS_PORT     the coordinator's port (default 57300); workers take the next ports
#   CITUS_WORKERS  how many workers (default 2)
#   CITUS_DB       the database made ready on every node (default booking)
#   CITUS_DIR      where the nodes live (default .citus in the checkout)
#   CITUS_SOURCE   the source tarball to build from when Citus is not installed
#
# Every node trusts local connections (a throwaway, never reachable from outside) and
# runs as a non-root user: as root, the nodes belong to `postgres` (initdb refuses root),
# and when that user cannot reach the checkout, .citus is a symlink into /tmp.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root="${CITUS_DIR:-$here/.citus}"
link="$root"
port0="${CITUS_PORT:-57300}"
workers="${CITUS_WORKERS:-2}"
db="${CITUS_DB:-booking}"
source_tarball="${CITUS_SOURCE:-$here/../shared/vendor/citus-13.0.3.tar.gz}"
os_user=postgres
bin=/usr/lib/postgresql/15/bin
host=127.0.0.1

log() { printf 'citus.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[[ "$workers" =~ ^[1-9][0-9]?$ ]] || die "CITUS_WORKERS must be 1 to 99, not '$workers'"
ports=()
for i in $(seq 0 "$workers"); do ports+=($((port0 + i))); done

url() { printf 'postgres://postgres@%s:%s/%s\n' "$host" "$port0" "$db"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1; fi
}

run_pg() {
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u "$os_user" -- "$@"); else "$@"; fi
}

sql() { # PORT DATABASE psql-arguments...
    local port=$1 database=$2; shift 2
    PGOPTIONS='-c client_min_messages=warning' "$bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
        -h "$host" -p "$port" -U postgres -d "$database" "$@"
}

citus_installed() {
    [ -x "$bin/pg_config" ] || return 1
    [ -f "$("$bin/pg_config" --pkglibdir)/citus.so" ] \
        && [ -f "$("$bin/pg_config" --sharedir)/extension/citus.control" ]
}

# The build: Debian's packages for the headers and libraries, then configure, make and
# make install from the tarball (about a minute on 2 cores).
build_citus() {
    [ -f "$source_tarball" ] || die "Citus is not installed and there is no source tarball at $source_tarball: install Citus from its packages (README) or set CITUS_SOURCE"
    command -v apt-get >/dev/null 2>&1 || die "Citus is not installed and apt-get is missing to build it"
    local deps=(postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev liblz4-dev
        libzstd-dev libkrb5-dev gcc make) missing=() p
    for p in "${deps[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing the build's packages: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
            || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
                 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } \
            || die "could not install ${missing[*]} (need root or passwordless sudo)"
    fi
    local work src
    work=$(mktemp -d /tmp/citus-build.XXXXXX)
    tar -xzf "$source_tarball" -C "$work"
    src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
    [ -f "$src/configure" ] || { rm -rf "$work"; die "no configure script in $source_tarball"; }
    log "building Citus from $source_tarball"
    if ! (cd "$src" && PG_CONFIG="$bin/pg_config" ./configure -q >"$work/build.log" 2>&1 \
            && make -j"$(nproc)" PG_CONFIG="$bin/pg_config" >>"$work/build.log" 2>&1 \
            && as_root make install PG_CONFIG="$bin/pg_config" >>"$work/build.log" 2>&1); then
        grep -E 'error:|Error [0-9]' "$work/build.log" | head -n 20 >&2 || tail -n 20 "$work/build.log" >&2
        rm -rf "$work"
        die "building Citus failed"
    fi
    rm -rf "$work"
    citus_installed || die "citus.so is missing after make install"
    log "Citus installed in $("$bin/pg_config" --pkglibdir)"
}

prepare_root() {
    [ -e "$root" ] && return 0
    if [ "$(id -u)" = 0 ]; then
        id "$os_user" >/dev/null 2>&1 \
            || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$os_user"
        mkdir -p "$root"
        chown "$os_user" "$root"
        if ! runuser -u "$os_user" -- test -w "$root"; then
            rmdir "$root"
            local tmp
            tmp=$(mktemp -d /tmp/booking-citus.XXXXXX)
            chown "$os_user" "$tmp"
            chmod 700 "$tmp"
            ln -s "$tmp" "$root"
            log ".citus -> $tmp ($os_user cannot reach $here)"
        fi
    else
        mkdir -p "$root"
    fi
}

node_running() { [ -f "$1/postmaster.pid" ] && run_pg "$bin/pg_ctl" -D "$1" status >/dev/null 2>&1; }

cmd_start() {
    [ -x "$bin/initdb" ] || die "PostgreSQL 15 is not installed ($bin/initdb): run scripts/pg.sh start once, or apt-get install postgresql-15"
    citus_installed || build_citus
    prepare_root
    local dir port data
    dir=$(readlink -f "$root")
    for port in "${ports[@]}"; do
        data=$dir/n$port
        if [ ! -f "$data/PG_VERSION" ]; then
            run_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
                >"$dir/initdb-$port.log" 2>&1 || { cat "$dir/initdb-$port.log" >&2; die "initdb failed for $data"; }
            # max_prepared_transactions: Citus commits a transaction that wrote on
            # several nodes with two-phase commit.
            cat >>"$data/postgresql.conf" <<EOF

# --- throwaway Citus node (scripts/citus.sh) ---
shared_preload_libraries = 'citus'
max_prepared_transactions = 200
max_connections = 1000
# Citus runs a maintenance worker per database: tests make one database each.
max_worker_processes = 256
shared_buffers = 128MB
listen_addresses = '$host'
port = $port
unix_socket_directories = '$dir'
log_min_messages = warning
EOF
        fi
        if ! node_running "$data"; then
            run_pg "$bin/pg_ctl" -D "$data" -l "$dir/n$port.log" -w -t 60 start >/dev/null \
                || { tail -n 20 "$dir/n$port.log" >&2; die "node on port $port did not start (log: $dir/n$port.log)"; }
        fi
    done
    prepare_db "$db"
    local active
    active=$(sql "$port0" "$db" -c "SELECT count(*) FROM citus_get_active_worker_nodes()")
    [ "$active" -eq "$workers" ] || die "expected $workers active workers, found $active"
    log "coordinator $host:$port0 and $active workers ($(sql "$port0" "$db" -c "SELECT citus_version()" | cut -d' ' -f1-2))"
    url
}

# prepare_db NAME: database NAME on every node, with the extension, and the workers
# registered on the coordinator's.
prepare_db() {
    local name=$1 port
    for port in "${ports[@]}"; do
        # Citus 13 passes a CREATE DATABASE on to the workers; older ones do not.
        if [ -z "$(sql "$port" postgres -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]; then
            sql "$port" postgres -c "CREATE DATABASE \"$name\""
        fi
        sql "$port" "$name" -c "CREATE EXTENSION IF NOT EXISTS citus"
    done
    sql "$port0" "$name" -c "SELECT citus_set_coordinator_host('$host', $port0)" >/dev/null
    for port in "${ports[@]:1}"; do
        if [ -z "$(sql "$port0" "$name" -c "SELECT 1 FROM pg_dist_node WHERE nodename = '$host' AND nodeport = $port")" ]; then
            sql "$port0" "$name" -c "SELECT citus_add_node('$host', $port)" >/dev/null
        fi
    done
}

cmd_createdb() {
    local name=$1
    [[ "$name" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "a database name is lower-case letters, digits and _, not '$name'"
    cmd_status || die "the formation does not run: scripts/citus.sh start"
    prepare_db "$name"
    printf 'postgres://postgres@%s:%s/%s\n' "$host" "$port0" "$name"
}

cmd_stop() {
    [ -e "$root" ] || return 0
    local dir port data
    dir=$(readlink -f "$root")
    for port in "${ports[@]}"; do
        data=$dir/n$port
        if node_running "$data"; then
            run_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
            log "stopped the node on port $port"
        fi
    done
}

cmd_crash() {
    local port=$1 dir pm pids=() left i
    [[ " ${ports[*]} " == *" $port "* ]] || die "no node of the formation on port '$port' (ports ${ports[*]})"
    [ -e "$root" ] || die "no formation under $root"
    dir=$(readlink -f "$root")
    node_running "$dir/n$port" || return 0
    # SIGKILL to the postmaster and every child at once, as the kernel's OOM killer or
    # a lost machine would: the port refuses at once, and nothing runs a shutdown.
    # Not `pg_ctl -m immediate`: under load a child that does not die at its SIGQUIT
    # is SIGKILLed only after 5 s, and a connection accepted meanwhile is served by a
    # "dead-end" child that waits up to authentication_timeout (60 s) for a startup
    # packet, with the postmaster waiting for it: stops of 55-60 s (twice in
    # scripts/faults.sh citus), with the port accepting and stalling every
    # connection, so the server's requests to that node each waited their full
    # timeout (reproduced with one SIGSTOPped backend and idle TCP connects: 64 s).
    pm=$(head -n 1 "$dir/n$port/postmaster.pid")
    kill -STOP "$pm" 2>/dev/null || true # it forks no new child from here on
    mapfile -t pids < <(pgrep -P "$pm" || true)
    kill -KILL "$pm" "${pids[@]}" 2>/dev/null || true
    # The node cannot start again while any of them holds its shared memory.
    for i in $(seq 1 1800); do
        left=0
        for p in "$pm" "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    [ "$left" = 0 ] || die "the node on port $port still has $left processes 180 s after SIGKILL"
    log "killed the node on port $port as a crash would (postmaster and ${#pids[@]} children)"
}

cmd_start_node() {
    local port=$1 dir
    [[ " ${ports[*]} " == *" $port "* ]] || die "no node of the formation on port '$port' (ports ${ports[*]})"
    [ -e "$root" ] || die "no formation under $root"
    dir=$(readlink -f "$root")
    if ! node_running "$dir/n$port"; then
        run_pg "$bin/pg_ctl" -D "$dir/n$port" -l "$dir/n$port.log" -w -t 60 start >/dev/null \
            || { tail -n 20 "$dir/n$port.log" >&2; die "node on port $port did not start (log: $dir/n$port.log)"; }
    fi
}

cmd_status() {
    [ -e "$root" ] || return 1
    local dir port
    dir=$(readlink -f "$root")
    for port in "${ports[@]}"; do node_running "$dir/n$port" || return 1; done
}

cmd_destroy() {
    cmd_stop
    if [ -L "$link" ]; then rm -rf "$(readlink -f "$link")"; rm -f "$link"; else rm -rf "$link"; fi
}

case "${1:-}" in
    start) cmd_start ;;
    install) citus_installed || build_citus ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) url ;;
    psql) shift; "$bin/psql" "$(url)" "$@" ;;
    destroy) cmd_destroy ;;
    crash) [ $# -eq 2 ] || die "usage: scripts/citus.sh crash PORT"; cmd_crash "$2" ;;
    start-node) [ $# -eq 2 ] || die "usage: scripts/citus.sh start-node PORT"; cmd_start_node "$2" ;;
    createdb) [ $# -eq 2 ] || die "usage: scripts/citus.sh createdb NAME"; cmd_createdb "$2" ;;
    *) sed -n '2,48p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
