#!/usr/bin/env bash
# The last-seat fight: N simultaneous users try to hold the same free seat over HTTP.
#
#   scripts/test_concurrency.sh [URL] [--users N]
#
# URL defaults to http://127.0.0.1:8080. When no server answers there, this script
# starts one itself (on a fresh database, with a demo show) and stops it afterwards.
# Prints successes, conflicts, other answers and wall time; exits non-zero unless
# exactly one request got 201 and all the others got 409.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

url="http://127.0.0.1:8080"
users=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --users) users="$2"; shift 2 ;;
        --users=*) users="${1#--users=}"; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        http://*) url="$1"; shift ;;
        *) echo "test_concurrency.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
url="${url%/}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

profile="${BOOKING_PROFILE:-debug}"
flag=""; [ "$profile" = release ] && flag="--release"
cargo build --quiet $flag -p booking-server --bins

started_pg=""; server_pid=""; db=""
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "$db" ]; then scripts/pg.sh psql -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; fi
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
}
trap cleanup EXIT

if ! curl -fsS "$url/healthz" >/dev/null 2>&1; then
    echo "test_concurrency.sh: no server at $url; starting one" >&2
    if [ -z "${DATABASE_URL:-}" ]; then
        if ! scripts/pg.sh status; then scripts/pg.sh start >/dev/null; started_pg=yes; fi
        export DATABASE_URL; DATABASE_URL=$(scripts/pg.sh url)
    fi
    db="booking_contend_$$"
    scripts/pg.sh psql -q -c "CREATE DATABASE $db" >/dev/null
    server_url=$(python3 - "$DATABASE_URL" "$db" <<'PY'
import sys, urllib.parse as u
url, db = sys.argv[1], sys.argv[2]
if "://" not in url:
    print(url + " dbname=" + db); sys.exit()
p = u.urlsplit(url)
print(u.urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment)))
PY
)
    DATABASE_URL="$server_url" BIND_ADDR="${url#http://}" DEMO_SHOW=true LOG_FORMAT=json RUST_LOG=warn \
        "target/$profile/booking-server" &
    server_pid=$!
    for _ in $(seq 1 300); do
        curl -fsS "$url/readyz" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { echo "test_concurrency.sh: the server exited" >&2; exit 1; }
        sleep 0.1
    done
fi

"target/$profile/booking-contend" --url "$url" --users "$users"
