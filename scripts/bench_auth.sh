#!/usr/bin/env bash
# What verifying a JWT costs per request: twin runs of booking-bench `holds` (uncontended
# holds of random free seats) against two booking-servers on one PostgreSQL, one in
# AUTH_MODE=header (X-User-Id) and one in AUTH_MODE=jwt (HS256, a token per user,
# minted once by booking-bench --jwt-secret), alternated round by round so that drift
# of the machine falls on both alike.
#
#   scripts/bench_auth.sh [--quick] [--rounds N] [--duration SECS] [--concurrency N]
#
# Defaults: 3 rounds of 10 s each per mode at concurrency 32 (--quick: 1 round of 2 s,
# for a check that both modes run). Prints holds/s per run, the mean of each mode and
# jwt's as a share of header's (the target: within 10%); results go to
# target/bench/auth-<time>/ (JSON per run, summary.txt). Needs release builds
# (BOOKING_PROFILE=debug for debug ones) and a DATABASE_URL, or starts the throwaway
# cluster of scripts/pg.sh. Cleans up what it started.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

rounds=3; duration=10; concurrency=32; warmup=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=1; duration=2; warmup=0; shift ;;
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_auth.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

profile="${BOOKING_PROFILE:-release}"
flag=""; [ "$profile" = release ] && flag="--release"
cargo build $flag --quiet -p booking-server -p booking-bench
server_bin="target/$profile/booking-server"
bench_bin="target/$profile/booking-bench"

out="target/bench/auth-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

started_pg=""; pids=(); dbs=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    for d in "${dbs[@]}"; do
        scripts/pg.sh psql -q -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
    done
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
    exit "$rc"
}
trap cleanup EXIT
if [ -z "${DATABASE_URL:-}" ]; then
    if ! scripts/pg.sh status; then scripts/pg.sh start >/dev/null; started_pg=yes; fi
    DATABASE_URL=$(scripts/pg.sh url)
fi
export DATABASE_URL

with_db() {
    python3 - "$DATABASE_URL" "$1" <<'PY'
import sys, urllib.parse as u
url, db = sys.argv[1], sys.argv[2]
if "://" not in url:
    print(url + " dbname=" + db); sys.exit()
p = u.urlsplit(url)
print(u.urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment)))
PY
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))'); export ADMIN_TOKEN
secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

# start MODE: a server in that mode on a fresh database; sets url_MODE and pid_MODE.
start() {
    local mode=$1 db="booking_auth_${1}_$$" port
    scripts/pg.sh psql -q -c "CREATE DATABASE $db" >/dev/null
    dbs+=("$db")
    port=$(free_port)
    local extra=()
    [ "$mode" = jwt ] && extra=(AUTH_MODE=jwt "JWT_SECRET=$secret")
    env DATABASE_URL="$(with_db "$db")" BIND_ADDR="127.0.0.1:$port" LOG_FORMAT=json RUST_LOG=warn \
        "${extra[@]}" "$server_bin" >"$out/server-$mode.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$out/server-$mode.log" >&2; exit 1; }
        sleep 0.1
    done
    printf -v "url_$mode" '%s' "http://127.0.0.1:$port"
    printf -v "pid_$mode" '%s' "$pid"
}
start header
start jwt

: >"$out/summary.txt"
for r in $(seq 1 "$rounds"); do
    for mode in header jwt; do
        url_var="url_$mode"; pid_var="pid_$mode"
        extra=()
        [ "$mode" = jwt ] && extra=(--jwt-secret "$secret")
        echo "== bench_auth.sh: round $r, $mode" >&2
        "$bench_bin" holds --url "${!url_var}" --server-pid "${!pid_var}" --name "holds-$mode-$r" \
            --json "$out/holds-$mode-$r.json" --concurrency "$concurrency" --duration "$duration" \
            --warmup "$warmup" --shows 5 --rows 50 --per-row 200 --rate-bound 10000 "${extra[@]}" >&2
        python3 - "$out/holds-$mode-$r.json" "$mode" "$r" >>"$out/summary.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
op = r["ops"][r["primary"]]
print(sys.argv[2], sys.argv[3], op["throughput_rps"], op["status"].get("201", 0), op["latency"].get("p99_ms", ""))
PY
    done
done
python3 - "$out/summary.txt" <<'PY'
import sys, statistics
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for mode, rnd, tput, *_ in runs:
    by.setdefault(mode, []).append(float(tput))
for mode, v in by.items():
    print(f"{mode:6} holds/s: " + ", ".join(f"{x:,.0f}" for x in v) + f"  (mean {statistics.mean(v):,.0f})")
h, j = statistics.mean(by["header"]), statistics.mean(by["jwt"])
print(f"jwt / header: {j / h:.3f} (target: at least 0.90)")
PY
