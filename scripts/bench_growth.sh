#!/usr/bin/env bash
# Cost as data grows: the same requests on a database of 1, 1,000 and 10,000 shows.
#
#   scripts/bench_growth.sh [--quick] [--sizes 1,1000,10000] [--out DIR]
#                           [--duration SECS] [--events N]
#
# Against one PostgreSQL (DATABASE_URL's server when set, else the throwaway cluster of
# scripts/pg.sh, started and stopped again if it was not running) and one booking-server
# (release; BOOKING_PROFILE=debug for a debug build) on a fresh database, which it
# migrates:
#   1. grows the database in steps to each size of --sizes (shows of 10 x 100 seats,
#      every 10th seat booked: 100 bookings a show, a million at 10,000 shows; 50
#      expired holds a show; and, with the first step, a day of change-feed events:
#      --events, default 500,000), filled in SQL as the engine writes them
#      (scripts/growth_fill.sql says what and why);
#   2. at each size runs `booking-bench growth` (holds at --concurrency 32, seat maps
#      warm and cold, confirms, a herd of 10,000, `GET /shows` first and last page, each
#      on shows of its own and on random old shows of the fill: see
#      booking-bench/src/scenarios/growth.rs) and times the sweeper's and the feed's
#      statements per change in SQL (scripts/growth_costs.sql);
#   3. after the last size, times a hold's event to its SSE subscriber behind a long
#      transaction (5 s; 2 with --quick) in another database of the cluster and in the
#      server's own (bench/feed_stall.py: DIR/feed-stall.json);
#   4. writes DIR/growth-<size>.json per size (the HTTP result, the SQL costs, the fill's
#      time and the table sizes), DIR/growth.md (the table) and DIR/growth.png (latency
#      against size, drawn from the JSON by bench/plot_growth.py; matplotlib is
#      installed with pip when missing).
# Results go to target/bench/growth-<run>/ unless --out says otherwise.
#
# --quick: sizes 1, 10 and 100, 2,000 events, 1-second runs, herds of 200, 50 confirms:
# seconds, not minutes. It checks outcomes only (every hold and confirm 201, each herd
# exactly one winner, `GET /shows` lists every show once, the sweeper expired every
# lapsed hold and freed its seat, the stalled event arrived), never timings. Exits
# non-zero when a check fails. Cleans up everything it started (server, database,
# cluster) on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

quick=""; sizes=""; out=""; duration=""; events=""; concurrency=32
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=yes; shift ;;
        --sizes) sizes="$2"; shift 2 ;;
        --sizes=*) sizes="${1#*=}"; shift ;;
        --out) out="$2"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --duration) duration="$2"; shift 2 ;;
        --duration=*) duration="${1#*=}"; shift ;;
        --events) events="$2"; shift 2 ;;
        --events=*) events="${1#*=}"; shift ;;
        -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_growth.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -n "$quick" ]; then
    sizes="${sizes:-1,10,100}"; duration="${duration:-1}"; events="${events:-2000}"
    herd=200; confirms=50; own_shows=2; page_reads=20; lapsed=50; reps=5; warmup=0; stall_s=2
else
    sizes="${sizes:-1,1000,10000}"; duration="${duration:-5}"; events="${events:-500000}"
    herd=10000; confirms=2000; own_shows=40; page_reads=200; lapsed=500; reps=20; warmup=1; stall_s=5
fi
IFS=, read -r -a size_list <<<"$sizes"
prev=0
for n in "${size_list[@]}"; do
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt "$prev" ] || { echo "bench_growth.sh: --sizes must be growing numbers" >&2; exit 2; }
    prev=$n
done

log() { printf '\n== bench_growth.sh: %s\n' "$*"; }
die() { printf 'bench_growth.sh: %s\n' "$*" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

find_pg_tool() {
    local d
    for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    command -v "$1" 2>/dev/null || return 1
}
psql_bin="$(find_pg_tool psql || true)"
[ -x "$psql_bin" ] || die "psql not found"

profile="${BOOKING_PROFILE:-release}"
profile_flag=""; [ "$profile" = release ] && profile_flag="--release"
log "building booking-server and booking-bench ($profile)"
nice -n 10 cargo build --quiet $profile_flag -p booking-bench -p booking-server
bench_bin="target/$profile/booking-bench"
server_bin="target/$profile/booking-server"

run_id="$(date +%Y%m%d-%H%M%S)${quick:+-quick}"
out="${out:-target/bench/growth-$run_id}"
mkdir -p "$out"
out=$(cd "$out" && pwd)

started_pg=""; server_pid=""; db=""
cleanup() {
    local rc=$?
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
    if ! scripts/pg.sh status; then
        PG_NEXT_XID="${PG_NEXT_XID:-999000}" scripts/pg.sh start >/dev/null; started_pg=yes
    fi
    DATABASE_URL=$(scripts/pg.sh url)
fi
export DATABASE_URL

db="booking_growth_$$"
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

psql_db() { "$psql_bin" "$db_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
failures=()
filled=0; first_step=yes
for n in "${size_list[@]}"; do
    add=$((n - filled)); step_events=0
    [ -n "$first_step" ] && step_events=$events
    log "filling: $add show(s) more (to $n), $step_events events"
    t0=$(date +%s.%N)
    done_shows=0
    while [ "$done_shows" -lt "$add" ]; do
        chunk=$(( add - done_shows < 500 ? add - done_shows : 500 ))
        psql_db -At -v add="$chunk" -v events=0 -v seq="$((filled + done_shows))" \
            -f scripts/growth_fill.sql >"$out/old-ids-$n.txt"
        done_shows=$((done_shows + chunk))
    done
    done_events=0
    while [ "$done_events" -lt "$step_events" ]; do
        chunk=$(( step_events - done_events < 100000 ? step_events - done_events : 100000 ))
        psql_db -At -v add=0 -v events="$chunk" -v seq=0 -f scripts/growth_fill.sql >/dev/null
        done_events=$((done_events + chunk))
    done
    # Vacuumed and checkpointed before measuring: the fill's millions of new rows would
    # otherwise bring autovacuum and a checkpoint into the middle of the measurements
    # (the 2026-12-02 run's 10,000-show p99s of GET /shows, 5 ms against a p50 of 1.7).
    psql_db -c "VACUUM (ANALYZE)"
    psql_db -c "CHECKPOINT" 2>/dev/null || echo "bench_growth.sh: CHECKPOINT refused (not superuser): measuring without it" >&2
    fill_s=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
    echo "filled in $fill_s s"
    filled=$n; first_step=""
    expect=$(psql_db -At -c "SELECT count(*) FROM shows")

    log "booking-bench growth at $n shows ($expect in the database)"
    if ! "$bench_bin" growth --url "$url" --server-pid "$server_pid" --name "growth-$n" \
        --json "$out/http-$n.json" --duration "$duration" --warmup "$warmup" \
        --concurrency "$concurrency" --old-ids "$out/old-ids-$n.txt" --shows "$own_shows" \
        --confirms "$confirms" --herd "$herd" --page-reads "$page_reads" \
        --expect-shows "$expect"; then
        failures+=("growth-$n")
    fi
    kill -0 "$server_pid" 2>/dev/null || die "the server died at $n shows (log: $out/server.log)"

    log "sweeper and feed statements at $n shows"
    psql_db -At -v lapsed="$lapsed" -v reps="$reps" -f scripts/growth_costs.sql >"$out/costs-$n.txt"
    cat "$out/costs-$n.txt"
    psql_db -At -c "SELECT json_build_object(
            'shows', (SELECT count(*) FROM shows), 'seats', (SELECT count(*) FROM seats),
            'holds', (SELECT count(*) FROM holds), 'bookings', (SELECT count(*) FROM bookings),
            'seat_events', (SELECT count(*) FROM seat_events),
            'database_mb', round(pg_database_size(current_database()) / 1048576.0))" >"$out/counts-$n.txt"
    python3 - "$out" "$n" "$fill_s" "$lapsed" <<'PY' || failures+=("growth-$n (sql costs)")
import json, sys
out, n, fill_s, lapsed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
sweeper, feed = [json.loads(l) for l in open(f"{out}/costs-{n}.txt") if l.strip()]
doc = {
    "size": n, "fill_s": fill_s,
    "counts": json.loads(open(f"{out}/counts-{n}.txt").read()),
    "http": json.load(open(f"{out}/http-{n}.json")),
    "sweeper": sweeper, "feed": feed,
}
json.dump(doc, open(f"{out}/growth-{n}.json", "w"), indent=2)
ok = sweeper.get("sweeper_holds") == lapsed and sweeper.get("sweeper_seats_freed") == lapsed \
    and sweeper.get("sweeper_events") == lapsed
print(f"sweeper: {sweeper.get('sweeper_holds')} of {lapsed} lapsed holds expired, "
      f"{sweeper.get('sweeper_seats_freed')} seats freed, {sweeper.get('sweeper_events')} events")
sys.exit(0 if ok else 1)
PY
done

# The feed's watermark: a hold's event on its SSE stream behind a long transaction in
# another database of the cluster (DATABASE_URL's own), then in the server's database.
log "the feed behind a ${stall_s}-second transaction, in another database and in its own"
stall_show=$(curl -fsS -X POST "$url/shows" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -d '{"title": "growth stall", "starts_at": "2030-01-01T20:00:00Z", "prices": {"standard": 1200}, "rows": [{"row": "A", "seats": 10}]}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
{
    python3 bench/feed_stall.py "$url" "$stall_show" A1 "$psql_bin" "$DATABASE_URL" "$stall_s"
    python3 bench/feed_stall.py "$url" "$stall_show" A2 "$psql_bin" "$db_url" "$stall_s"
} >"$out/feed-stall.txt" || failures+=("feed stall")
cat "$out/feed-stall.txt"
python3 - "$out" <<'PY' || failures+=("feed stall (no event)")
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/feed-stall.txt") if l.strip()]
json.dump(rows, open(sys.argv[1] + "/feed-stall.json", "w"), indent=2)
sys.exit(0 if len(rows) == 2 and all(r["hold_to_event_ms"] is not None for r in rows) else 1)
PY

log "report ($out)"
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    python3 -m pip install --quiet --user matplotlib 2>/dev/null \
        || python3 -m pip install --quiet --user --break-system-packages matplotlib \
        || echo "bench_growth.sh: warning: matplotlib could not be installed: no plot" >&2
fi
python3 bench/plot_growth.py "$out" || failures+=("report")
if [ -n "$quick" ]; then echo "(quick run: small numbers; not figures to compare)"; fi
if [ ${#failures[@]} -gt 0 ]; then
    printf 'bench_growth.sh: FAILED: %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "bench_growth.sh: every size ran and passed its checks"
