#!/usr/bin/env bash
# Two builds of booking-server side by side: alternating runs of the holds (c=32),
# herd (10,000 clients) and seat map (c=32) scenarios, each on a fresh database and a
# fresh server; a bench binary that knows `seatmap --inventory` also reads the map of
# a show with blocks, ticket types and features (`seatmap-inventory`), and one that
# knows `area-holds` also holds places of a standing area (c=32) and runs the herd of
# 10,000 buyers on an area of 2,000 places (`area-herd`).
#
#   scripts/bench_ab.sh BEFORE_BIN_DIR AFTER_BIN_DIR [PAIRS]
#
# Each BIN_DIR holds a release booking-server and booking-bench (e.g. the target/release
# of another checkout: `git worktree add /tmp/before <commit>` and build it there).
# PAIRS (default 3) alternating before/after runs, on the cluster of scripts/pg.sh
# (PG_DIR and PG_PORT as for pg.sh; started and stopped here when not running) or
# DATABASE_URL's server. Prints one line a run; results in target/bench/ab/. Bounded:
# 2 x PAIRS x (10 or 20 s of holds + one or two herds + 10 or 20 s of seat maps), on
# loopback.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
before=$1 after=$2 pairs=${3:-3}
out="$here/target/bench/ab"; mkdir -p "$out"
started=""
if [ -z "${DATABASE_URL:-}" ]; then
    if ! "$here/scripts/pg.sh" status; then PG_NEXT_XID="${PG_NEXT_XID:-999000}" "$here/scripts/pg.sh" start >/dev/null; started=yes; fi
    DATABASE_URL=$("$here/scripts/pg.sh" url)
fi
trap '[ -n "$started" ] && "$here/scripts/pg.sh" stop >/dev/null' EXIT
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
run() { # run LABEL BIN_DIR N
    local label=$1 bin=$2 n=$3
    local db="bench_ab_${label}_${n}_$$"
    psql "$DATABASE_URL" -X -q -c "CREATE DATABASE $db" >/dev/null
    local dburl port pid
    dburl=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$db")
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    DATABASE_URL="$dburl" BIND_ADDR="127.0.0.1:$port" ADMIN_TOKEN=$token LOG_FORMAT=json RUST_LOG=warn \
        "$bin/booking-server" >"$out/$label-$n.server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    ADMIN_TOKEN=$token "$bin/booking-bench" holds --url "http://127.0.0.1:$port" --server-pid "$pid" \
        -c 32 -d 10 --shows 50 --json "$out/$label-$n-holds.json" >/dev/null
    ADMIN_TOKEN=$token "$bin/booking-bench" herd --url "http://127.0.0.1:$port" --server-pid "$pid" \
        --clients 10000 --json "$out/$label-$n-herd.json" >/dev/null
    ADMIN_TOKEN=$token "$bin/booking-bench" seatmap --url "http://127.0.0.1:$port" --server-pid "$pid" \
        -c 32 -d 10 --json "$out/$label-$n-seatmap.json" >/dev/null
    if "$bin/booking-bench" seatmap --help | grep -q -- --inventory; then
        ADMIN_TOKEN=$token "$bin/booking-bench" seatmap --inventory --url "http://127.0.0.1:$port" \
            --server-pid "$pid" -c 32 -d 10 --json "$out/$label-$n-seatmap-inventory.json" >/dev/null
    fi
    rm -f "$out/$label-$n-area-holds.json" "$out/$label-$n-area-herd.json"
    if "$bin/booking-bench" --help | grep -q area-holds; then
        ADMIN_TOKEN=$token "$bin/booking-bench" area-holds --url "http://127.0.0.1:$port" \
            --server-pid "$pid" -c 32 -d 10 --json "$out/$label-$n-area-holds.json" >/dev/null || true
        ADMIN_TOKEN=$token "$bin/booking-bench" area-herd --url "http://127.0.0.1:$port" \
            --server-pid "$pid" --clients 10000 --capacity 2000 \
            --json "$out/$label-$n-area-herd.json" >/dev/null || true
    fi
    kill -TERM "$pid"; wait "$pid" || true
    psql "$DATABASE_URL" -X -q -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
    python3 - "$out/$label-$n" "$label $n" <<'PY'
import json, os, sys
base = sys.argv[1]
h, r = (json.load(open(f"{base}-{k}.json"))["ops"]["hold"] for k in ("holds", "herd"))
m = json.load(open(f"{base}-seatmap.json"))["ops"]["seatmap"]
line = (f"{sys.argv[2]}: holds {h['throughput_rps']:.0f} req/s (p50 {h['latency']['p50_ms']:.2f} / "
        f"p99 {h['latency']['p99_ms']:.1f} ms); herd p99 {r['latency']['p99_ms']:.0f} ms, {r['status']}; "
        f"seatmap {m['throughput_rps']:.0f} req/s")
if os.path.exists(f"{base}-seatmap-inventory.json"):
    i = json.load(open(f"{base}-seatmap-inventory.json"))["ops"]["seatmap"]
    line += f", with inventory {i['throughput_rps']:.0f} req/s"
if os.path.exists(f"{base}-area-holds.json"):
    a = json.load(open(f"{base}-area-holds.json"))["ops"]["hold"]
    line += f"; place holds {a['throughput_rps']:.0f} req/s ({a['throughput_rps'] / max(h['throughput_rps'], 1e-9):.2f}x)"
if os.path.exists(f"{base}-area-herd.json"):
    g = json.load(open(f"{base}-area-herd.json"))["ops"]["hold"]
    line += f"; area herd p99 {g['latency']['p99_ms']:.0f} ms, {g['status']}"
print(line)
PY
}
for n in $(seq 1 "$pairs"); do
    run before "$before" "$n"
    run after "$after" "$n"
done
