#!/usr/bin/env bash
# Runs the server from a fresh clone: builds it (release), starts the throwaway
# PostgreSQL of scripts/pg.sh unless DATABASE_URL is set, and serves the API with a
# demo show. Ctrl-C stops everything it started.
#
#   scripts/run.sh                 # http://127.0.0.1:8080
#   BIND_ADDR=127.0.0.1:9000 scripts/run.sh
#
# Every variable of the configuration table in README.md is passed through.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

echo "run.sh: building the server (release)..." >&2
cargo build --release --quiet -p booking-server --bin booking-server

started_pg=""
server_pid=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$started_pg" ]; then scripts/pg.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${DATABASE_URL:-}" ]; then
    if ! scripts/pg.sh status; then
        scripts/pg.sh start >/dev/null
        started_pg=yes
    fi
    DATABASE_URL=$(scripts/pg.sh url)
fi
export DATABASE_URL
export BIND_ADDR="${BIND_ADDR:-127.0.0.1:8080}"
export DEMO_SHOW="${DEMO_SHOW:-true}"
url="http://$BIND_ADDR"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
target/release/booking-server &
server_pid=$!

for _ in $(seq 1 300); do
    if curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run.sh: the server exited; see its log above" >&2
        exit 1
    fi
    sleep 0.1
done

show=$(curl -fsS "$url/shows" | python3 -c 'import json,sys; s=json.load(sys.stdin)["shows"]; print(s[0]["id"] if s else "")' 2>/dev/null || true)
show=${show:-1}
cat <<EOF2

booking is serving on $url  (Ctrl-C stops it)

Try:
  curl -s $url/shows/$show/seats
  curl -s -X POST $url/shows/$show/holds -H 'X-User-Id: alice' -d '{"seats": ["E6", "E7"]}'
  curl -s -X POST $url/holds/<hold_id from above>/confirm -H 'X-User-Id: alice'

The whole API: $url/openapi.json

EOF2
wait "$server_pid"
