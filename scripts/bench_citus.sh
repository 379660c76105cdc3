#!/usr/bin/env bash
# The benchmark on a Citus formation next to plain PostgreSQL (issue 20), the same work
# the same way on both; `scripts/bench.sh --citus [...]` runs it.
#
#   scripts/bench_citus.sh [--quick] [--duration SECS] [--rounds N] [--out DIR]
#                          [--only NAME,...]
#
# Two targets, each its own PostgreSQL 15 on this machine:
#   pg     a plain cluster of scripts/pg.sh (PG_DIR=$BENCH_PG_DIR, default .pg-bench;
#          PG_PORT=$BENCH_PG_PORT, default 54339), started here when it does not run;
#   citus  a formation of scripts/citus.sh (a coordinator and 2 workers; CITUS_PORT and
#          CITUS_DIR as that script takes them), started here when it does not run.
# Each round, on each target in turn (pg first), on a fresh database that a release
# booking-server migrates (on Citus the migrations distribute the schema: 32 shards by
# show id, every show table co-located with shows):
#   HTTP (booking-bench): holds at concurrency 1, 8 and 32 on many shows (16 shows of
#   6,000 seats, spread over the shards, so over both workers), holds at 32 on one show
#   (100,000 seats), the herd (10,000 clients on one seat), the seat map (1,000 seats,
#   c=32, no background writers: the server answers from its cache, fed by the feed);
#   SQL (pgbench, bench/*.sql, -M prepared): hold1.sql at c=1 and c=32 (one show),
#   seatmap.sql at c=1 and c=32 (the seat map read from the database), herd.sql at c=32;
#   on Citus also the same pgbench runs against the worker holding the show (Citus
#   routes there locally: `worker`) and on that worker's shard tables directly
#   (`shard`: the script's table names replaced by the shard's, plain PostgreSQL
#   underneath), and the remote commands the coordinator sends for one hold
#   (citus.log_remote_commands), both for where the overhead goes.
# Every run records the CPU seconds of each node's processes, the server and the load
# generator (bench/cpu_sampler.py). Each round takes BENCH_LOCK
# (/tmp/booking-heavy.lock) for itself, the build too, so other sessions' builds and
# tests wait between rounds, not for the whole run.
# Results: target/bench-citus/<run>/<target>/r<N>/ (JSON per run, cpu/, server.log),
# placement.txt (which worker holds which show), report.md (bench/citus_report.py:
# median and range over the rounds, the ratio citus/pg).
# --quick: 2 s runs, herd 500, 1 round: checks that every run works, not figures.
# --only: just the runs named (holds-c1, holds-c8, holds-c32, holds-one-c32, herd,
# seatmap, pgbench: all the SQL runs), e.g. to repeat one.
# BENCH_SERVER_BIN runs another build of booking-server (an A/B of two commits: build
# the other one in a worktree of its own, with a target directory of its own).
# The servers run with REQUEST_TIMEOUT_MS=60000 (default 10,000): on the formation,
# POST /shows of the 100,000-seat show took longer than 10 s and was answered 503.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

quick=""; duration=10; rounds=3; out=""; only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=yes; shift ;;
        --duration) duration="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --only) only=",$2,"; shift 2 ;;
        -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_citus.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
warmup=1; herd_clients=10000
if [ -n "$quick" ]; then duration=2; warmup=0; herd_clients=500; rounds=1; fi

log() { printf '\n== bench_citus.sh: %s\n' "$*"; }
die() { printf 'bench_citus.sh: %s\n' "$*" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pgbin=/usr/lib/postgresql/15/bin
psql_bin=$pgbin/psql; pgbench_bin=${PGBENCH:-$pgbin/pgbench}
[ -x "$pgbench_bin" ] || die "pgbench not found ($pgbench_bin)"
export PG_DIR="${BENCH_PG_DIR:-$here/.pg-bench}" PG_PORT="${BENCH_PG_PORT:-54339}"
lock="${BENCH_LOCK:-/tmp/booking-heavy.lock}"
exec 9>>"$lock"

run_id="$(date +%Y%m%d-%H%M%S)${quick:+-quick}"
out="${out:-target/bench-citus/$run_id}"
mkdir -p "$out"; out=$(cd "$out" && pwd)

started_pg=""; started_citus=""; server_pid=""; sampler_pid=""; current_db=""
cleanup() {
    local rc=$?
    [ -z "$current_db" ] || db_drop "$current_db"
    [ -z "$sampler_pid" ] || { kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null; } || true
    [ -z "$server_pid" ] || { kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; } || true
    [ -z "$started_pg" ] || scripts/pg.sh stop || true
    [ -z "$started_citus" ] || scripts/citus.sh stop || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building booking-server and booking-bench (release), under $lock"
flock 9
nice -n 10 cargo build --quiet --release -p booking-bench -p booking-server
flock -u 9
bench_bin=target/release/booking-bench; server_bin=${BENCH_SERVER_BIN:-target/release/booking-server}
[ -x "$server_bin" ] || die "no server binary at $server_bin"

# Citus first: building it installs PostgreSQL's server-dev package, which may upgrade
# the server's own package underneath a cluster already running (seen on a fresh
# machine: 15.18 running, 15.20 installed, "could not load library plpgsql.so:
# undefined symbol" at the plain cluster's first migration).
scripts/citus.sh install
env -u DATABASE_URL scripts/pg.sh status || { env -u DATABASE_URL scripts/pg.sh start >/dev/null; started_pg=yes; }
scripts/citus.sh status || { scripts/citus.sh start >/dev/null; started_citus=yes; }
citus_port=${CITUS_PORT:-57300}
pid_of() { head -n1 "$1/postmaster.pid"; }
citus_dir=$(readlink -f "${CITUS_DIR:-$here/.citus}")

failures=()
ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))'); export ADMIN_TOKEN

# sampled NAME CMD...: runs CMD with the CPU sampler on this target's roots.
sampled() {
    local name=$1; shift
    python3 bench/cpu_sampler.py "$dir/cpu/$name.json" "${roots[@]}" server="${server_pid:-0}" &
    sampler_pid=$!
    local rc=0
    "$@" || rc=$?
    kill "$sampler_pid"; wait "$sampler_pid" || true; sampler_pid=""
    return $rc
}
wanted() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }
scenario() {
    local name=$1 scen=$2; shift 2
    wanted "$name" || return 0
    log "$target r$round: booking-bench $scen ($name)"
    sampled "$name" "$bench_bin" "$scen" --url "$url" --server-pid "$server_pid" --name "$name" \
        --json "$dir/$name.json" --duration "$duration" --warmup "$warmup" "$@" \
        || failures+=("$target r$round $name")
}
# pgb NAME SCRIPT CLIENTS URL COUNT_USER [pgbench -D args]: pgbench with -M prepared,
# summarised by booking-bench (p50/p99 from the per-transaction logs); COUNT_USER,
# when set, names the holds' user_id: every transaction must have made its hold.
pgb() {
    local name=$1 script=$2 clients=$3 dburl=$4 user=$5; shift 5
    log "$target r$round: pgbench $script ($name) -c $clients"
    local prefix="$dir/pgbench/$name" before=0 rc=0 threads=2
    [ "$clients" -ge 2 ] || threads=1
    [ -z "$user" ] || before=$(q "$db_url" "SELECT count(*) FROM holds WHERE user_id = '$user'")
    sampled "pgbench-$name" "$pgbench_bin" -n -M prepared -c "$clients" -j "$threads" -T "$duration" \
        "$@" -f "$script" -l --log-prefix="$prefix" "$dburl" >"$dir/pgbench-$name.txt" 2>&1 || rc=$?
    grep -E "^(tps|latency average)" "$dir/pgbench-$name.txt" || true
    if [ $rc -ne 0 ]; then tail -n 5 "$dir/pgbench-$name.txt" >&2; failures+=("$target r$round pgbench $name"); return 0; fi
    local did=()
    [ -z "$user" ] || did=(--did "$(( $(q "$db_url" "SELECT count(*) FROM holds WHERE user_id = '$user'") - before ))")
    "$bench_bin" pgbench --name "$name" --output "$dir/pgbench-$name.txt" --log-prefix "$prefix" \
        --clients "$clients" "${did[@]}" --json "$dir/pgbench-$name.json" >/dev/null \
        || failures+=("$target r$round pgbench $name (checks)")
    rm -f "$prefix".*
}
q() { "$psql_bin" "$1" -X -At -v ON_ERROR_STOP=1 -c "$2"; }
with_db() { python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit((p.scheme, p.netloc, "/" + sys.argv[2], "", "")))' "$1" "$2"; }

bench_target() {
    local db="bench_citus_$$_r${round}" port
    current_db=$db
    dir="$out/$target/r$round"; mkdir -p "$dir/cpu" "$dir/pgbench"
    if [ "$target" = citus ]; then
        db_url=$(scripts/citus.sh createdb "$db")
        roots=(coordinator="$(pid_of "$citus_dir/n$citus_port")"
               worker1="$(pid_of "$citus_dir/n$((citus_port + 1))")"
               worker2="$(pid_of "$citus_dir/n$((citus_port + 2))")")
    else
        local base; base=$(env -u DATABASE_URL scripts/pg.sh url)
        q "$base" "CREATE DATABASE $db" >/dev/null
        db_url=$(with_db "$base" "$db")
        roots=(postgres="$(pid_of "$(readlink -f "$PG_DIR")/data")")
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    url="http://127.0.0.1:$port"
    DATABASE_URL="$db_url" BIND_ADDR="127.0.0.1:$port" LOG_FORMAT=json RUST_LOG=warn \
        REQUEST_TIMEOUT_MS=60000 "$server_bin" >"$dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 600); do
        curl -fsS "$url/readyz" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { tail -n 20 "$dir/server.log" >&2; die "the server exited ($target)"; }
        sleep 0.1
    done
    curl -fsS "$url/readyz" >/dev/null || die "the server did not become ready ($target)"

    local many=(--shows 16 --rows 30 --per-row 200) one=(--shows 1 --rows 500 --per-row 200)
    scenario holds-c1 holds --concurrency 1 "${many[@]}" --rate-bound 2000
    scenario holds-c8 holds --concurrency 8 "${many[@]}" --rate-bound 8000
    scenario holds-c32 holds --concurrency 32 "${many[@]}" --rate-bound 8000
    scenario holds-one-c32 holds --concurrency 32 "${one[@]}" --rate-bound 8000
    scenario herd herd --clients "$herd_clients"
    scenario seatmap seatmap --concurrency 32 --background 0
    kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
    if ! wanted pgbench; then db_drop "$db"; current_db=""; return 0; fi

    # pgbench's shows: hold1's pool of 200,000 seats in one show (each run below starts
    # at its own offset of the pool's sequence), the 1,000-seat map, the herd's row.
    "$psql_bin" "$db_url" -X -q -v ON_ERROR_STOP=1 -v pool1=200000 -v pool4=800 \
        -v full_shows=0 -v batch_shows=0 -f bench/setup.sql >"$dir/vars.txt"
    declare -A v
    while IFS='=' read -r key value; do
        [[ "$key" =~ ^[a-z0-9_]+$ && "$value" =~ ^[0-9]+$ ]] && v[$key]=$value
    done <"$dir/vars.txt"
    local h1=(-D show="${v[hold1_show]}" -D first="${v[hold1_first]}" -D pool="${v[hold1_seats]}" -D n=0)
    pgb hold1-c1 bench/hold1.sql 1 "$db_url" pgbench-hold1 "${h1[@]}" -D clients=1 -D offset=0
    pgb hold1-c32 bench/hold1.sql 32 "$db_url" pgbench-hold1 "${h1[@]}" -D clients=32 -D offset=20000
    pgb seatmap-c1 bench/seatmap.sql 1 "$db_url" "" -D show="${v[seatmap_show]}"
    pgb seatmap-c32 bench/seatmap.sql 32 "$db_url" "" -D show="${v[seatmap_show]}"
    pgb herd-c32 bench/herd.sql 32 "$db_url" "" -D show="${v[herd_show]}" -D first="${v[herd_first]}"
    local winners; winners=$(q "$db_url" "SELECT count(*) FROM holds WHERE user_id = 'pgbench-herd'")
    [ "$winners" = 1 ] || failures+=("$target r$round pgbench herd: $winners winners")

    if [ "$target" = citus ]; then
        citus_overhead "${v[hold1_show]}" "${v[seatmap_show]}" "${h1[@]}"
        # Which node holds which show: the shows of the HTTP runs and pgbench's.
        q "$db_url" "SELECT split_part(s.title, ' ', 1) || ' ' || split_part(s.title, ' ', 2) AS shows,
                            n.nodeport, count(*)
                       FROM shows s
                       JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column('shows', s.id)
                       JOIN pg_dist_node n ON n.groupid = p.groupid
                      GROUP BY 1, 2 ORDER BY 1, 2" >"$dir/placement.txt"
    fi
    db_drop "$db"; current_db=""
}

# citus_overhead HOLD_SHOW MAP_SHOW [hold1 -D args]: the same pgbench runs on the worker
# that holds the shows (Citus plans there and runs locally) and on its shard tables.
citus_overhead() {
    local hshow=$1 mshow=$2; shift 2
    local wport; wport=$(q "$db_url" "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
                                       WHERE p.shardid = get_shard_id_for_distribution_column('shows', $mshow)")
    local wport_h; wport_h=$(q "$db_url" "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
                                       WHERE p.shardid = get_shard_id_for_distribution_column('shows', $hshow)")
    local wurl wurl_h; wurl=$(echo "$db_url" | sed "s/:$citus_port\//:$wport\//")
    wurl_h=$(echo "$db_url" | sed "s/:$citus_port\//:$wport_h\//")
    echo "seatmap show $mshow on port $wport, hold1 show $hshow on port $wport_h" >"$dir/overhead-nodes.txt"
    # The scripts with each table named by the show's shard (word-bounded: hold_seats
    # is not seats).
    shard_script() {
        local show=$1 src=$2 dst=$3 t id
        cp "$src" "$dst"
        for t in shows seats holds hold_seats ticket_prices; do
            id=$(q "$db_url" "SELECT get_shard_id_for_distribution_column('$t', $show)")
            sed -i -E "s/\\b$t\\b/${t}_$id/g" "$dst"
        done
    }
    shard_script "$mshow" bench/seatmap.sql "$dir/seatmap-shard.sql"
    shard_script "$hshow" bench/hold1.sql "$dir/hold1-shard.sql"
    pgb worker-hold1-c1 bench/hold1.sql 1 "$wurl_h" pgbench-hold1 "$@" -D clients=1 -D offset=60000
    pgb worker-hold1-c32 bench/hold1.sql 32 "$wurl_h" pgbench-hold1 "$@" -D clients=32 -D offset=80000
    pgb worker-seatmap-c1 bench/seatmap.sql 1 "$wurl" "" -D show="$mshow"
    pgb worker-seatmap-c32 bench/seatmap.sql 32 "$wurl" "" -D show="$mshow"
    # A shard is Citus's to write: manual changes are refused unless allowed.
    PGOPTIONS="-c citus.enable_manual_changes_to_shards=on" \
        pgb shard-hold1-c1 "$dir/hold1-shard.sql" 1 "$wurl_h" pgbench-hold1 "$@" -D clients=1 -D offset=120000
    PGOPTIONS="-c citus.enable_manual_changes_to_shards=on" \
        pgb shard-hold1-c32 "$dir/hold1-shard.sql" 32 "$wurl_h" pgbench-hold1 "$@" -D clients=32 -D offset=140000
    pgb shard-seatmap-c1 "$dir/seatmap-shard.sql" 1 "$wurl" "" -D show="$mshow"
    pgb shard-seatmap-c32 "$dir/seatmap-shard.sql" 32 "$wurl" "" -D show="$mshow"
    # The coordinator's remote commands for one hold of hold1.sql's kind on a free seat
    # (a psql session: NOTICE lines "issuing ...", one per command sent).
    local seat; seat=$(q "$db_url" "SELECT min(id) FROM seats WHERE show_id = $hshow AND hold_id IS NULL")
    "$psql_bin" "$db_url" -X -q -v ON_ERROR_STOP=1 >"$dir/remote-commands.txt" 2>&1 <<SQL || failures+=("$target r$round remote commands")
SET citus.log_remote_commands = on;
BEGIN;
SELECT s.xmin::text AS seen, tp.price FROM seats s JOIN shows sh ON sh.id = s.show_id
  LEFT JOIN ticket_prices tp ON tp.show_id = s.show_id AND tp.category = s.category AND tp.type = sh.default_ticket_type
 WHERE s.show_id = $hshow AND s.id = $seat FOR UPDATE OF s \gset
INSERT INTO holds (show_id, id, user_id, expires_at, total)
VALUES ($hshow, gen_random_uuid(), 'remote-commands', now() + interval '600 seconds', :price) RETURNING id AS hold_id \gset
INSERT INTO hold_seats (show_id, hold_id, seat_id, ticket_type, price) VALUES ($hshow, :'hold_id', $seat, 'full', :price);
UPDATE seats SET hold_id = :'hold_id' WHERE show_id = $hshow AND id = $seat AND xmin::text = :'seen';
COMMIT;
SQL
}

db_drop() {
    if [ "$target" = citus ]; then
        local port
        for port in $citus_port $((citus_port + 1)) $((citus_port + 2)); do
            q "postgres://postgres@127.0.0.1:$port/postgres" "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null 2>&1 || true
        done
    else
        q "$(env -u DATABASE_URL scripts/pg.sh url)" "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null || true
    fi
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >"$out/machine.txt"
for round in $(seq 1 "$rounds"); do
    flock 9
    log "round $round of $rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    for target in pg citus; do bench_target; done
    flock -u 9
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

python3 bench/citus_report.py "$out" >"$out/report.md" || failures+=("report")
cat "$out/report.md"
if [ ${#failures[@]} -gt 0 ]; then printf 'bench_citus.sh: FAILED: %s\n' "${failures[@]}" >&2; exit 1; fi
echo "bench_citus.sh: every run ran and passed its checks ($out)"
