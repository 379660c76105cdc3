#!/usr/bin/env bash
# The seat-map page in headless Chromium: two users on one show, then one on a show
# with sections, blocked seats, seat features, ticket types and a limit per buyer, then
# two on a show with seats and a standing area (browser-tests/seatmap.test.mjs), then
# the page as a cart of the current hold: seats and places added, taken out and retyped
# (browser-tests/cart.test.mjs), then a 100,000-seat show drawn on a canvas from the
# compact map, a seat held from it and another user's hold seen live
# (browser-tests/bigmap.test.mjs), then a queued show: joined before the start, the
# map opening by itself on admission, with the allowance (browser-tests/queue.test.mjs),
# then the page against a second server on the same database in AUTH_MODE=jwt: a token
# pasted, a hold and a booking made with it, followed live (browser-tests/jwt.test.mjs).
# The tests create those shows themselves with the
# admin token.
#
#   scripts/test_browser.sh
#
# Installs what it needs when missing (Debian's chromium, playwright-core from npm),
# starts a server on a fresh database with a show, runs the tests, stops the server.
# Screenshots: target/browser/*.png.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
    echo "test_browser.sh: installing Debian's chromium" >&2
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo -n"
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
command -v node >/dev/null || { echo "test_browser.sh: node is required (Debian: nodejs)" >&2; exit 1; }
if [ ! -d browser-tests/node_modules/playwright-core ]; then
    (cd browser-tests && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --quiet -p booking-server --bin booking-server

started_pg=""; server_pid=""; jwt_pid=""; db="booking_browser_$$"
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "$jwt_pid" ]; then kill -TERM "$jwt_pid" 2>/dev/null || true; wait "$jwt_pid" 2>/dev/null || true; fi
    scripts/pg.sh psql -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
}
trap cleanup EXIT
if [ -z "${DATABASE_URL:-}" ]; then
    if ! scripts/pg.sh status; then scripts/pg.sh start >/dev/null; started_pg=yes; fi
    DATABASE_URL=$(scripts/pg.sh url); export DATABASE_URL
fi
scripts/pg.sh psql -q -c "CREATE DATABASE $db" >/dev/null
server_db=$(python3 - "$DATABASE_URL" "$db" <<'PY'
import sys, urllib.parse as u
url, db = sys.argv[1], sys.argv[2]
if "://" not in url:
    print(url + " dbname=" + db); sys.exit()
p = u.urlsplit(url)
print(u.urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment)))
PY
)
port="${BROWSER_TEST_PORT:-18090}"
token="browser-test-admin-token-$$"
DATABASE_URL="$server_db" BIND_ADDR="127.0.0.1:$port" ADMIN_TOKEN="$token" \
    HOLD_TTL_SECONDS=300 MAX_HOLD_SECONDS=600 LOG_FORMAT=json RUST_LOG=warn \
    target/debug/booking-server &
server_pid=$!
jwt_port=$((port + 1))
jwt_secret="browser-test-jwt-secret-$$-0123456789abcdef"
DATABASE_URL="$server_db" BIND_ADDR="127.0.0.1:$jwt_port" ADMIN_TOKEN="$token" \
    AUTH_MODE=jwt JWT_SECRET="$jwt_secret" \
    HOLD_TTL_SECONDS=300 MAX_HOLD_SECONDS=600 LOG_FORMAT=json RUST_LOG=warn \
    target/debug/booking-server &
jwt_pid=$!
for p in "$port" "$jwt_port"; do
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$p/readyz" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { echo "test_browser.sh: the server exited" >&2; exit 1; }
        kill -0 "$jwt_pid" 2>/dev/null || { echo "test_browser.sh: the jwt server exited" >&2; exit 1; }
        sleep 0.1
    done
done
show=$(curl -fsS -X POST "http://127.0.0.1:$port/shows" -H "Authorization: Bearer $token" \
    -d '{"title": "Browser test", "starts_at": "2030-01-01T20:00:00Z", "prices": {"standard": 1200},
         "rows": [{"row": "A", "seats": 12, "aisles_after": [4, 8]}, {"row": "B", "seats": 12}]}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

cd browser-tests
status=0
for test in seatmap cart bigmap queue; do
    echo "test_browser.sh: $test.test.mjs" >&2
    BASE_URL="http://127.0.0.1:$port" SHOW_ID="$show" ADMIN_TOKEN="$token" CHROMIUM="$chromium_bin" \
        SHOT_DIR="$here/target/browser" node "$test.test.mjs" || status=1
done
echo "test_browser.sh: jwt.test.mjs" >&2
BASE_URL="http://127.0.0.1:$jwt_port" SHOW_ID="$show" ADMIN_TOKEN="$token" JWT_SECRET="$jwt_secret" \
    CHROMIUM="$chromium_bin" SHOT_DIR="$here/target/browser" node jwt.test.mjs || status=1
exit "$status"
