#!/usr/bin/env bash
# The benchmark: booking-server over HTTP next to pgbench running the same work in SQL.
#
#   scripts/bench.sh [--quick] [--duration SECS] [--concurrency N] [--out DIR]
#                    [--profile | --no-profile]
#   scripts/bench.sh --citus [--quick] [--duration SECS] [--rounds N] [--out DIR]
#
# --citus runs scripts/bench_citus.sh instead (issue 20): holds, herd and seat map on
# a Citus formation next to plain PostgreSQL, the same work the same way; see there.
#
# In one run, against one PostgreSQL (DATABASE_URL's server when set, else the
# throwaway cluster of scripts/pg.sh, started and stopped again if it was not running):
#   1. builds booking-server and booking-bench (release);
#   2. starts booking-server (ADMIN_TOKEN set, LOG_FORMAT=json, RUST_LOG=warn) on a
#      free loopback port and a fresh database, which it migrates;
#   3. runs the HTTP scenarios of booking-bench (fanout, expiry, holds at concurrency
#      1, holds, holds on random seats of 100,000-seat shows (holds-100k), holds with
#      an Idempotency-Key each (holds-keyed), holds of 1 place of a standing area, adds
#      of 1 seat to live holds, holds of 4 seats, book, cart sessions, seatmap, seatmap
#      with inventory, mixed, herd, the herd with keys (herd-keyed: every refusal
#      replayed exactly to a retry with its key), the herd on a standing area, best,
#      queue: 100,000 distinct buyers joining a queued show before its sales open),
#      and on a second server with RATE_HOLDS_PER_USER set (issue 19): a crowd of
#      distinct users alone and next to one user sending 1,000 holds/s
#      (abuse-baseline, abuse), and the herd (herd-limited),
#      each creating its own shows through the API, every pool of seats sized from the
#      duration and a generous bound on the rate (BENCH_HTTP_BOUND requests/s, 20,000);
#   4. --profile (the default of full runs): holds-100k once more under `perf record
#      -a` for its measured window, folded and drawn by inferno (cargo install inferno)
#      into profile/ (server.svg, postgres.svg, all.svg, *.folded, summary.txt);
#      skipped with a warning when perf or inferno is missing or perf may not record;
#   5. creates shows for pgbench in that same database (bench/setup.sql, pools sized
#      from BENCH_TWIN_BOUND transactions/s, 20,000, and BENCH_BATCH_BOUND holds/s,
#      150,000) and runs pgbench with each reference script (bench/hold1.sql,
#      hold_full.sql, hold_batch.sql, hold4.sql, seatmap.sql, herd.sql; -n -M prepared
#      -c N -j 2 -T SECS: every value a pgbench variable, sent as a parameter) at the
#      same concurrency (hold_batch.sql: 4 clients, BENCH_BATCH_CLIENTS), and hold1.sql
#      at concurrency 1 (the twin of holds-c1);
#   6. prints each HTTP figure next to its pgbench twin, the targets, the server's peak
#      RSS (VmHWM) and CPU time; results go to target/bench/<run>/ (JSON per scenario,
#      report.md, summary.json, server.log, metrics.txt, waits/ with what the database
#      sessions waited on during each run, profile/), target/bench/latest links it.
#
# --quick: every scenario for 2 s with small numbers (herd 500, area herd 500 on 100
# places, fanout 200; holds-100k on shows of 10,000 seats; best on a 400-seat show
# until sold out; queue 2,000 joins), no profile; checks that each ran, that the herds had exactly one
# winner (the keyed one every refusal replayed exactly), that the area herd had exactly
# as many winners as places (and the area's counts agree), that every cart session and
# every add answered as expected (and the seat maps agree), that no pool ran out, and
# that best sold out with no seat in two holds, that every queue join was answered 201
# and the pre-queue was shuffled at the start, never timings. Defaults: 10 s per
# scenario, concurrency 32, herd 10,000, area herd 10,000 on 2,000 places, fanout
# 10,000 subscribers.
# Exits non-zero when a scenario or pgbench run fails a check. Cleans up everything
# it started (server, database, cluster) on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

if [ "${1:-}" = --citus ]; then shift; exec scripts/bench_citus.sh "$@"; fi

quick=""
profile_run=""
duration=10
concurrency=32
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=yes; shift ;;
        --duration) duration="$2"; shift 2 ;;
        --duration=*) duration="${1#*=}"; shift ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        --concurrency=*) concurrency="${1#*=}"; shift ;;
        --out) out="$2"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --profile) profile_run=yes; shift ;;
        --no-profile) profile_run=no; shift ;;
        -h|--help) sed -n '2,55p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ -n "$quick" ]; then
    duration=2; warmup=0
    herd_clients=500; fanout_subscribers=200
    area_herd_args=(--clients 500 --capacity 100)
    holds_shows=10; holds4_shows=20; book_shows=5; mixed_shows=5
    best_bound=30; best_args=(--rows 10 --per-row 40)
    queue_joins=2000
    # Shows of 10,000 seats for holds-100k: a debug server makes 100,000 slowly.
    big_show=(--rows 50 --per-row 200)
    pool_show=(--rows 10 --per-row 200)
    stadium=(--seats 20000 --per-row 200)
else
    warmup=1
    herd_clients=10000; fanout_subscribers=10000
    area_herd_args=(--clients 10000 --capacity 2000)
    holds_shows=50; holds4_shows=100; book_shows=50; mixed_shows=20
    best_bound=120; best_args=()
    queue_joins=100000
    big_show=(--rows 500 --per-row 200)
    # Pools sized for the rate bounds below in fewer, larger shows (they are made
    # through the API, one request each).
    pool_show=(--rows 50 --per-row 200)
    stadium=(--seats 100000 --per-row 200)
fi
# The profile (perf, flame graphs) is part of full runs, not of --quick ones.
[ -n "$profile_run" ] || { [ -n "$quick" ] && profile_run=no || profile_run=yes; }
# Pools of seats, sized from the duration and a generous bound on the rate (issue 18,
# point 5: a faster machine must not run out of seats and fail the instrument's own
# check). booking-bench sizes its scenarios' pools from --rate-bound the same way;
# the pgbench pools below are sized here: per-request twins at most $twin_bound
# transactions/s a run (4x the 5,239 tps issue 18 measured for the full hold), the
# batched twin at most $batch_bound holds/s (2x the 70,000 it measured). The checks
# still say when a pool ran out.
twin_bound=${BENCH_TWIN_BOUND:-20000}
batch_bound=${BENCH_BATCH_BOUND:-150000}
http_bound=${BENCH_HTTP_BOUND:-20000}
pool_for() { echo $(( ($1 * ${2%.*} + 999) / 1000 * 1000 )); }  # rate x secs, rounded up
pool1=$(( 2 * $(pool_for "$twin_bound" "$duration") ))          # hold1 at c=N and at c=1
pool1=$(( (pool1 + 799) / 800 * 800 ))                             # whole rows, and /4
pool4=$(( 4 * $(pool_for "$((twin_bound / 2))" "$duration") ))
pool4=$(( (pool4 + 799) / 800 * 800 ))
full_shows=$(( ($(pool_for "$twin_bound" "$duration") + 99999) / 100000 ))
batch_shows=$(( ($(pool_for "$batch_bound" "$duration") + 99999) / 100000 ))
# An area has at most 100,000 places (the server's limit): area-holds runs out only
# above some 9,000 holds/s (10 s runs).
area_capacity=$(( $(pool_for "$http_bound" "$duration") + http_bound * warmup ))
[ "$area_capacity" -le 100000 ] || area_capacity=100000

log() { printf '\n== bench.sh: %s\n' "$*"; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

find_pg_tool() {
    local d
    for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    command -v "$1" 2>/dev/null || return 1
}
pgbench_bin="${PGBENCH:-$(find_pg_tool pgbench || true)}"
[ -x "$pgbench_bin" ] || die "pgbench not found (install postgresql-contrib / postgresql, or set PGBENCH)"
psql_bin="$(find_pg_tool psql || true)"
[ -x "$psql_bin" ] || die "psql not found"

# BOOKING_PROFILE=debug uses debug builds (quicker to build, for --quick in tests);
# figures worth reading come from release builds only.
profile="${BOOKING_PROFILE:-release}"
profile_flag=""; [ "$profile" = release ] && profile_flag="--release"
log "building booking-server and booking-bench ($profile)"
nice -n 10 cargo build --quiet $profile_flag -p booking-bench -p booking-server
bench_bin="target/$profile/booking-bench"
server_bin="target/$profile/booking-server"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    printf 'bench.sh: warning: the machine is busy (load average %s on %s cores): other work competes with the server, PostgreSQL and the load generator\n' \
        "$load_before" "$(nproc)" >&2
fi

run_id="$(date +%Y%m%d-%H%M%S)${quick:+-quick}"
out="${out:-target/bench/$run_id}"
mkdir -p "$out/pgbench"
out=$(cd "$out" && pwd)
ln -sfn "$out" "$here/target/bench/latest" 2>/dev/null || true

started_pg=""; server_pid=""; db=""; waits_pid=""; limited_pid=""
cleanup() {
    local rc=$?
    if [ -n "$limited_pid" ]; then kill -TERM "$limited_pid" 2>/dev/null || true; wait "$limited_pid" 2>/dev/null || true; fi
    if [ -n "$waits_pid" ]; then kill "$waits_pid" 2>/dev/null || true; wait "$waits_pid" 2>/dev/null || true; fi
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$db" ]; then
        "$psql_bin" "$DATABASE_URL" -X -q -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${DATABASE_URL:-}" ]; then
    # A cluster created here hands out ids from just below 1,000,000 (issue 12: nothing
    # may depend on short transaction ids); an existing one keeps its own.
    if ! scripts/pg.sh status; then
        PG_NEXT_XID="${PG_NEXT_XID:-999000}" scripts/pg.sh start >/dev/null; started_pg=yes
    fi
    DATABASE_URL=$(scripts/pg.sh url)
fi
export DATABASE_URL

db="booking_bench_$$"
"$psql_bin" "$DATABASE_URL" -X -q -c "CREATE DATABASE $db" >/dev/null
db_url=$(python3 - "$DATABASE_URL" "$db" <<'PY'
import sys, urllib.parse as u
url, db = sys.argv[1], sys.argv[2]
if "://" not in url:  # key=value form: a later key wins
    print(url + " dbname=" + db); sys.exit()
p = u.urlsplit(url)
print(u.urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment)))
PY
)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export ADMIN_TOKEN

log "starting booking-server on $url (database $db)"
DATABASE_URL="$db_url" BIND_ADDR="127.0.0.1:$port" LOG_FORMAT=json RUST_LOG=warn \
    "$server_bin" >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { tail -n 20 "$out/server.log" >&2; die "the server exited"; }
    sleep 0.1
done
curl -fsS "$url/readyz" >/dev/null 2>&1 || die "the server did not become ready"

failures=()
psql_db() { "$psql_bin" "$db_url" -X -q -v ON_ERROR_STOP=1 "$@"; }

# What the database's sessions are doing during a run: pg_stat_activity sampled every
# 0.2 s (waiting on what, or on CPU, and in which statement), counted per run into
# $out/waits/<name>.txt; the top lines are printed after the run.
mkdir -p "$out/waits"
waits_start() {
    local raw="$out/waits/$1.raw"
    (
        while :; do
            "$psql_bin" "$db_url" -X -At -F ' | ' -c "SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU') ELSE state || ' (' || coalesce(wait_event, '-') || ')' END, left(regexp_replace(query, '\s+', ' ', 'g'), 80) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state NOT IN ('idle') AND backend_type = 'client backend'" 2>/dev/null || true
            sleep 0.2
        done >"$raw"
    ) &
    waits_pid=$!
}
waits_stop() {
    local name=$1 raw="$out/waits/$1.raw" n
    kill "$waits_pid" 2>/dev/null || true
    wait "$waits_pid" 2>/dev/null || true
    waits_pid=""
    n=$(wc -l <"$raw")
    { echo "# $name: $n samples of busy database sessions (pg_stat_activity every 0.2 s)"; sort "$raw" | uniq -c | sort -rn | sed -n "1,12p"; } >"$out/waits/$name.txt"
    rm -f "$raw"
    sed -n '1,4p' "$out/waits/$name.txt"
}

# ---------------------------------------------------------------- HTTP scenarios
scenario() {
    local name=$1 scen=$2; shift 2
    log "booking-bench $scen ($name)"
    waits_start "$name"
    if ! "$bench_bin" "$scen" --url "${scenario_url:-$url}" --server-pid "${scenario_pid:-$server_pid}" --name "$name" \
        --json "$out/$name.json" "$@"; then
        failures+=("$name")
    fi
    waits_stop "$name"
    kill -0 "${scenario_pid:-$server_pid}" 2>/dev/null || die "the server died during $name (log: $out/server.log)"
}
common=(--duration "$duration" --warmup "$warmup")
scenario fanout fanout "${common[@]}" --subscribers "$fanout_subscribers" --rate 20
scenario expiry expiry "${common[@]}" --rate 20
scenario holds-c1 holds "${common[@]}" --concurrency 1 --shows 5 "${pool_show[@]}" \
    --rate-bound "$http_bound"
scenario holds holds "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" --shows "$holds_shows" \
    --rate-bound "$http_bound"
# The headline of issue 18, like with like: random seats of 100,000-seat shows, the
# twins' (hold_full.sql, hold_batch.sql) as well; the pool makes as many shows as
# --rate-bound needs.
scenario holds-100k holds "${common[@]}" --concurrency "$concurrency" --shows 1 "${big_show[@]}" \
    --rate-bound "$http_bound"
# The same as holds with an Idempotency-Key on every request, as careful clients send:
# the report gives its rate as a ratio to holds' (target >= 0.9).
scenario holds-keyed holds "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" --shows "$holds_shows" \
    --rate-bound "$http_bound" --keyed
# Holds of 1 place each, all on one standing area, measured as holds is: the report
# gives its rate as a ratio to holds' (target >= 0.8).
scenario area-holds area-holds "${common[@]}" --concurrency "$concurrency" --capacity "$area_capacity"
# Adds of 1 seat each to a live hold of the worker's own, the twin of holds (shows of
# the same size, same concurrency and duration; more of them: each hold grows to 10
# seats): the report gives its rate as a ratio to holds' (target >= 0.8).
scenario adds adds "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" --shows "$holds4_shows" \
    --rate-bound "$http_bound"
scenario holds-4 holds "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" --shows "$holds4_shows" --seats 4 \
    --rate-bound "$((http_bound / 2))"
scenario book book "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" --shows "$book_shows" \
    --rate-bound "$http_bound"
# Cart sessions: hold 2 seats, add 1, remove 1, confirm; sessions/s and each step's
# latency, every answer and the seat maps checked.
scenario cart cart "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" --shows "$book_shows" \
    --rate-bound "$http_bound"
scenario seatmap seatmap "${common[@]}" --concurrency "$concurrency"
# The same map with two ticket types, seat features and a blocked seat a row: the
# report gives its rate as a ratio to the plain one's (target >= 0.9).
scenario seatmap-inventory seatmap "${common[@]}" --concurrency "$concurrency" --inventory
# A stadium's map (issue 18): 100,000 seats (20,000 in --quick), read as the page reads
# it (compact, gzip) and in full with gzip; bytes sent, latency, a cold read.
scenario seatmap-stadium-full-gzip seatmap "${common[@]}" --concurrency "$concurrency" \
    "${stadium[@]}" --format full --encoding gzip
scenario seatmap-stadium-compact-gzip seatmap "${common[@]}" --concurrency "$concurrency" \
    "${stadium[@]}" --format compact --encoding gzip
scenario mixed mixed "${common[@]}" --concurrency "$concurrency" --shows "$mixed_shows"
scenario herd herd "${common[@]}" --clients "$herd_clients"
# The herd with a key per client; each refused client retries once with its key and
# must get its refusal replayed exactly.
scenario herd-keyed herd "${common[@]}" --clients "$herd_clients" --keyed
# The herd on a standing area: N buyers of 1 place at once, exactly capacity winners.
scenario area-herd area-herd "${common[@]}" "${area_herd_args[@]}"
# Best available until the show sells out (--duration only bounds it): requests/s,
# p99, lock attempts per success, single seats stranded at sell-out.
scenario best best --duration "$best_bound" --warmup 0 --concurrency "$concurrency" "${best_args[@]}"
# The rush into a waiting room (issue 19): distinct buyers joining a queued show in the
# minute before its sales open (100,000; 2,000 in --quick), then the shuffle at the start.
scenario queue queue --concurrency "$concurrency" --joins "$queue_joins"

# ---------------------------------------------------------------- limits per caller
# Issue 19, point 3, on a second server over the same database with the limit per user
# on (RATE_HOLDS_PER_USER, BENCH_LIMIT_RATE, 5/s: burst 10): the crowd of distinct
# users alone (abuse-baseline), the same crowd next to one user sending 1,000 holds/s
# (abuse: the crowd's p50/p99 beside the baseline's, the abuser's 429s), and the herd
# of distinct users on one seat (herd-limited, beside herd: not slowed by the limit);
# then the abuser on the first server, without a limit (abuse-unlimited).
limit_rate=${BENCH_LIMIT_RATE:-5/s}
limited_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
limited_url="http://127.0.0.1:$limited_port"
log "starting a second booking-server on $limited_url with RATE_HOLDS_PER_USER=$limit_rate"
DATABASE_URL="$db_url" BIND_ADDR="127.0.0.1:$limited_port" LOG_FORMAT=json RUST_LOG=warn \
    RATE_HOLDS_PER_USER="$limit_rate" "$server_bin" >"$out/server-limited.log" 2>&1 &
limited_pid=$!
for _ in $(seq 1 300); do
    curl -fsS "$limited_url/readyz" >/dev/null 2>&1 && break
    kill -0 "$limited_pid" 2>/dev/null || { tail -n 20 "$out/server-limited.log" >&2; die "the limited server exited"; }
    sleep 0.1
done
scenario_url=$limited_url; scenario_pid=$limited_pid
crowd=(--users "$([ -n "$quick" ] && echo 1000 || echo 10000)")
scenario abuse-baseline abuse "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" \
    --shows "$holds_shows" --rate-bound "$http_bound" "${crowd[@]}" --abuser-rate 0
scenario abuse abuse "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" \
    --shows "$holds_shows" --rate-bound "$http_bound" "${crowd[@]}" --abuser-rate 1000
scenario herd-limited herd "${common[@]}" --clients "$herd_clients"
unset scenario_url scenario_pid
# For contrast, the abuser on the first server, which has no limit: its holds served.
scenario abuse-unlimited abuse "${common[@]}" "${pool_show[@]}" --concurrency "$concurrency" \
    --shows "$holds_shows" --rate-bound "$http_bound" "${crowd[@]}" --abuser-rate 1000 --unlimited
curl -fsS "$limited_url/metrics" 2>/dev/null | grep '^booking_rate_limit' >"$out/metrics-limited.txt" || true
kill -TERM "$limited_pid" 2>/dev/null || true; wait "$limited_pid" 2>/dev/null || true; limited_pid=""

# ---------------------------------------------------------------- the profile
# holds-100k once more, under `perf record -a` (every process: the server, PostgreSQL's
# backends, the load generator, the kernel) for the measured window only, folded and
# drawn by inferno (`cargo install inferno`) into $out/profile/: server.svg (the
# server's threads), postgres.svg (every postgres process), all.svg, the folded stacks
# and summary.txt (CPU samples per process and the hottest functions). Its figures go
# to profile/holds-100k-profiled.json, not next to the others: perf slows what it sees.
find_tool() { command -v "$1" 2>/dev/null || { [ -x "$HOME/.cargo/bin/$1" ] && echo "$HOME/.cargo/bin/$1"; }; }
profile_holds() {
    local perf collapse flame
    perf=$(command -v perf || true); collapse=$(find_tool inferno-collapse-perf || true)
    flame=$(find_tool inferno-flamegraph || true)
    if [ -z "$perf" ] || [ -z "$collapse" ] || [ -z "$flame" ]; then
        echo "bench.sh: warning: no profile: perf or inferno (cargo install inferno) is missing" >&2
        return 0
    fi
    if ! "$perf" record -a -o /dev/null -- true >/dev/null 2>&1; then
        echo "bench.sh: warning: no profile: perf may not record here (perf_event_paranoid, or not root)" >&2
        return 0
    fi
    local dir="$out/profile" ready="$out/profile/ready"
    mkdir -p "$dir"; rm -f "$ready"
    log "profile: holds-100k under perf record -a for ${duration} s"
    "$bench_bin" holds --url "$url" --server-pid "$server_pid" --name holds-100k-profiled \
        --json "$dir/holds-100k-profiled.json" --duration "$duration" --warmup "$warmup" \
        --concurrency "$concurrency" --shows 1 "${big_show[@]}" --rate-bound "$http_bound" \
        --ready-file "$ready" >"$dir/holds-100k-profiled.txt" 2>&1 &
    local bench_pid=$!
    while [ ! -e "$ready" ] && kill -0 "$bench_pid" 2>/dev/null; do sleep 0.1; done
    # The warm-up, then the measured window: DWARF call graphs (release builds and
    # Debian's PostgreSQL keep no frame pointers; their unwind tables suffice).
    sleep "$warmup"
    "$perf" record -a -F 149 --call-graph dwarf,16384 -o "$dir/perf.data" -- sleep "$duration" \
        >"$dir/perf-record.txt" 2>&1 || true
    wait "$bench_pid" || failures+=("holds-100k-profiled")
    [ -s "$dir/perf.data" ] || { echo "bench.sh: warning: perf recorded nothing" >&2; return 0; }
    log "profile: folding and drawing (perf script, inferno)"
    # One pass of perf script (DWARF unwinding is its slow part); the stacks are split
    # by their first frame, the process name and pid (--pid).
    "$perf" script --no-inline -F +pid -i "$dir/perf.data" 2>/dev/null | "$collapse" --all --pid >"$dir/all.folded" 2>/dev/null || true
    grep -E "^[^;]*-$server_pid(/[0-9]+)?;" "$dir/all.folded" >"$dir/server.folded" || true
    grep -E '^postgres-[0-9]+(/[0-9]+)?;' "$dir/all.folded" >"$dir/postgres.folded" || true
    local f
    for f in all server postgres; do
        [ -s "$dir/$f.folded" ] && "$flame" --title "holds-100k, c=$concurrency: $f" \
            "$dir/$f.folded" >"$dir/$f.svg" 2>/dev/null || true
    done
    python3 - "$dir" "$server_pid" "$duration" <<'PY' >"$dir/summary.txt" || true
import collections, re, sys
d, server, secs = sys.argv[1], sys.argv[2], sys.argv[3]
def read(name):
    rows = []
    for line in open(f"{d}/{name}.folded"):
        stack, _, n = line.rstrip().rpartition(" ")
        if stack:
            rows.append((stack.split(";"), int(n)))
    return rows
rows = read("all")
total = sum(n for _, n in rows) or 1
by = collections.Counter()
for frames, n in rows:
    proc = re.sub(r"-\d+(/\d+)?$", "", frames[0])
    if frames[0].startswith(f"{proc}-{server}"):
        proc = "booking-server (" + proc + ")"
    by[proc] += n
print(f"# CPU samples per process: {total} in {secs} s (perf record -a -F 149)")
for p, n in by.most_common(12):
    print(f"{100 * n / total:6.1f}%  {n:7d}  {p}")
for name in ("server", "postgres"):
    sub = read(name)
    t = sum(n for _, n in sub) or 1
    own = collections.Counter()
    for frames, n in sub:
        own[frames[-1]] += n
    print(f"\n# {name}: {t} samples ({100 * t / total:.1f}% of all); hottest functions, self time")
    for f, n in own.most_common(30):
        print(f"{100 * n / t:6.1f}%  {f[:150]}")
PY
    rm -f "$dir/perf.data" "$ready"  # large; the folded stacks keep what it said
    sed -n '1,12p' "$dir/summary.txt"
}
if [ "$profile_run" = yes ]; then profile_holds; fi

# ---------------------------------------------------------------- pgbench twins
# After the HTTP scenarios, in the same database (whose tables now hold their data too):
# shows of their own for the scripts, created directly in SQL.
log "pgbench: creating its shows (pools of $pool1 and $pool4 seats, $full_shows and $batch_shows shows of 100,000)"
vars_file="$out/pgbench/vars.txt"
psql_db -v pool1="$pool1" -v pool4="$pool4" -v full_shows="$full_shows" \
    -v batch_shows="$batch_shows" -f bench/setup.sql >"$vars_file"
declare -A v
while IFS='=' read -r key value; do
    [[ "$key" =~ ^[a-z0-9_]+$ && "$value" =~ ^[0-9]+$ ]] && v[$key]=$value
done <"$vars_file"
for k in hold1_show hold1_first hold1_seats hold4_show hold4_first hold4_seats seatmap_show \
    herd_show herd_first full_show full_first full_seats batch_show batch_seats batch_shows; do
    [ -n "${v[$k]:-}" ] || die "bench/setup.sql did not print $k"
done

# run_pgbench NAME SCRIPT CLIENTS COUNT_SQL PER [pgbench args]: runs bench/SCRIPT.sql
# with -M prepared (values are pgbench variables, sent as parameters, as the server
# sends its own); COUNT_SQL (optional) counts the holds the script made, before and
# after: every transaction must have made PER of them (the seat pool was large enough).
run_pgbench() {
    local name=$1 script=$2 clients=$3 count_sql=$4 per=$5; shift 5
    log "pgbench $script.sql ($name): -M prepared -c $clients -j 2 -T $duration"
    local prefix="$out/pgbench/$name" before=0
    rm -f "$prefix".*
    if [ -n "$count_sql" ]; then before=$(psql_db -At -c "$count_sql"); fi
    local rc=0 threads=2
    if [ "$clients" -lt 2 ]; then threads=1; fi
    waits_start "pgbench-$name"
    "$pgbench_bin" -n -M prepared -c "$clients" -j "$threads" -T "$duration" "$@" \
        -f "bench/$script.sql" -l --log-prefix="$prefix" "$db_url" >"$out/pgbench-$name.txt" 2>&1 || rc=$?
    waits_stop "pgbench-$name"
    grep -E "^(number of|latency|tps)" "$out/pgbench-$name.txt" || true
    if [ $rc -ne 0 ]; then
        tail -n 5 "$out/pgbench-$name.txt" >&2
        failures+=("pgbench $name (exit $rc)")
        return 0
    fi
    local did_args=()
    if [ -n "$count_sql" ]; then did_args=(--did "$(( $(psql_db -At -c "$count_sql") - before ))"); fi
    "$bench_bin" pgbench --name "$name" --output "$out/pgbench-$name.txt" --log-prefix "$prefix" \
        --clients "$clients" --holds-per-transaction "$per" "${did_args[@]}" \
        --json "$out/pgbench-$name.json" >/dev/null \
        || failures+=("pgbench $name (checks)")
}
count_of() { echo "SELECT count(*) FROM holds WHERE user_id = 'pgbench-$1'"; }
run_pgbench hold1 hold1 "$concurrency" "$(count_of hold1)" 1 \
    -D show="${v[hold1_show]}" -D first="${v[hold1_first]}" -D pool="${v[hold1_seats]}" \
    -D clients="$concurrency" -D n=0 -D offset=0
# The same at concurrency 1 (the twin of holds-c1), further along the pool's sequence.
run_pgbench hold1-c1 hold1 1 "$(count_of hold1)" 1 \
    -D show="${v[hold1_show]}" -D first="${v[hold1_first]}" -D pool="${v[hold1_seats]}" \
    -D clients=1 -D n=0 -D offset="$(( v[hold1_seats] / 2 ))"
# The server's complete hold, per request (the event insert included), and its batch
# statement, 32 holds a transaction: both on random seats of 100,000-seat shows, as
# holds-100k takes them over HTTP.
run_pgbench hold-full hold_full "$concurrency" "$(count_of full)" 1 \
    -D show0="${v[full_show]}" -D first="${v[full_first]}" -D clients="$concurrency" -D n=0
# The batch statement at 4 clients (BENCH_BATCH_CLIENTS), as issue 18 measured it: the
# server runs at most HOLD_BATCHES (2) at once, and at 32 clients the twin's 1,024
# holds in flight queue on the same index and heap pages (measured: half of its
# pg_stat_activity samples waited on LWLock:BufferContent).
batch_clients="${BENCH_BATCH_CLIENTS:-4}"
run_pgbench hold-batch hold_batch "$batch_clients" "$(count_of batch)" 32 \
    -D show0="${v[batch_show]}" -D shows="${v[batch_shows]}" -D clients="$batch_clients" -D n=0
run_pgbench hold4 hold4 "$concurrency" "$(count_of hold4)" 1 \
    -D show="${v[hold4_show]}" -D first="${v[hold4_first]}" -D pool="${v[hold4_seats]}" \
    -D clients="$concurrency" -D n=0
run_pgbench seatmap seatmap "$concurrency" "" 1 -D show="${v[seatmap_show]}"
run_pgbench herd herd "$concurrency" "" 1 -D show="${v[herd_show]}" -D first="${v[herd_first]}"
herd_winners=$(psql_db -At -c "$(count_of herd)")
[ "$herd_winners" = 1 ] || failures+=("pgbench herd: $herd_winners winners")
rm -f "$out"/pgbench/*.[0-9]*  # per-transaction logs: summarised in pgbench-*.json

# ---------------------------------------------------------------- the server, the report
curl -fsS "$url/metrics" >"$out/metrics.txt" 2>/dev/null || true
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status")
read -r utime stime < <(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$server_pid/stat")
ticks=$(getconf CLK_TCK)
warnings=$(grep -c '"level":"WARN"' "$out/server.log" || true)
errors=$(grep -c '"level":"ERROR"' "$out/server.log" || true)
python3 - "$out/server.json" "$hwm_kb" "$utime" "$stime" "$ticks" "$warnings" "$errors" \
    "$concurrency" "$duration" "${quick:-}" "$profile" "$load_before" <<'PY'
import json, os, sys
path, hwm, ut, st, tck, warn, err, conc, dur, quick, profile, load_before = sys.argv[1:]
cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
mem = "?"
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal"):
        mem = "%.1f GiB" % (int(line.split()[1]) / 1048576); break
json.dump({
    "vmhwm_mb": round(int(hwm) / 1024, 1),
    "cpu_s": round((int(ut) + int(st)) / int(tck), 2),
    "log_warnings": int(warn), "log_errors": int(err),
    "machine": {"nproc": os.cpu_count(), "memory": mem, "cpu": cpu},
    "concurrency": int(conc), "duration_s": float(dur), "quick": bool(quick),
    "profile": profile,
    "loadavg_before": load_before, "loadavg_after": " ".join(open("/proc/loadavg").read().split()[:3]),
}, open(path, "w"), indent=2)
PY

log "report ($out)"
"$bench_bin" report --dir "$out" --server "$out/server.json" --markdown "$out/report.md" \
    --summary "$out/summary.json" || true
echo "server: peak RSS (VmHWM) $((hwm_kb / 1024)) MB, CPU $(python3 -c "print(round(($utime + $stime) / $ticks, 2))") s, log: $warnings warnings, $errors errors"
if [ -n "$quick" ]; then echo "(quick run: 2-second runs with small numbers; not figures to compare)"; fi

if [ ${#failures[@]} -gt 0 ]; then
    printf 'bench.sh: FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "bench.sh: all scenarios ran and passed their checks"
