#!/usr/bin/env bash
# The fault suite: the server and its database under crashes, restarts, failover,
# overload and hostile input, each followed by an audit of the database against the
# log of every acknowledgement the load received (scripts/faults/audit.py).
#
#   scripts/faults.sh [--quick] [scenario ...]
#
# Scenarios (default: all of them, in this order):
#   kill-server  kill -9 the server 10 times during load, restarting it each time (a
#                webhook receiver must get every event: scripts/faults/webhooks.py; a
#                queued show's waiting room is audited: scripts/faults/queue.py)
#   restart-db   PostgreSQL stopped as by a crash (-m immediate) during load, then started
#   replicas     three server processes on one database, load spread over all three
#                (webhooks too)
#   authz        users reaching for each other's holds and bookings; admin without token
#   fuzz         schemathesis against /openapi.json (from PyPI, into target/faults/venv)
#   overload     thousands of connections, far more than the pool, and slow-header clients
#   failover     a pg_auto_failover formation; the primary is hard-killed during load
#   citus        a Citus formation (scripts/citus.sh, ports $FAULTS_CITUS_PORT, default
#                27500, and the next two: below the ephemeral range): a worker stopped as by a crash during load
#                (its shows 503, the other worker's sell on), then a shard moved; every
#                event reaches a webhook receiver, each show's in order
#
# --quick shortens every run (scripts/test.sh uses it for kill-server, restart-db,
# replicas, authz and fuzz). Everything runs on loopback, against a cluster of its own
# under .pg-faults (port $FAULTS_PG_PORT, default 25439) and a release build; whatever
# a scenario starts is stopped when it ends, however it ends. Results (logs, JSON
# figures, server logs) go to target/faults/<scenario>/; RELIABILITY.md reports them.
#
# Exit status 0 only when every scenario passed its checks.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

quick=false
scenarios=()
for a in "$@"; do
    case "$a" in
        --quick) quick=true ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        kill-server|restart-db|replicas|authz|fuzz|overload|failover|citus) scenarios+=("$a") ;;
        *) echo "faults.sh: unknown scenario or flag: $a" >&2; exit 2 ;;
    esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(kill-server restart-db replicas authz fuzz overload failover citus)

log() { printf '\n==> faults: %s\n' "$*" >&2; }
die() { printf 'faults: %s\n' "$*" >&2; exit 1; }

# Our own cluster, so that crashing it harms no one else's tests. Made anew for every
# run, handing out transaction ids from just below 1,000,000: kill-server's load and
# event stream cross that boundary (see xids_below), the others run with long ids.
export PG_DIR="$here/.pg-faults"
export PG_PORT="${FAULTS_PG_PORT:-25439}"
export PG_NEXT_XID="${FAULTS_NEXT_XID:-990000}"
xid_boundary=1000000
unset DATABASE_URL
"$here/scripts/pg.sh" destroy >/dev/null 2>&1 || true

out_root="$here/target/faults"
mkdir -p "$out_root"
pids=()
cleanup() {
    local p
    for p in "${pids[@]:-}"; do
        [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
    done
    "$here/scripts/faults/failover.sh" down >/dev/null 2>&1 || true
    if [ -e "$here/.citus-faults" ]; then
        CITUS_PORT="${FAULTS_CITUS_PORT:-27500}" CITUS_DIR="$here/.citus-faults" \
            "$here/scripts/citus.sh" destroy >/dev/null 2>&1 || true
    fi
    "$here/scripts/pg.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Citus before any cluster starts: building it installs PostgreSQL's server-dev
# package, which may upgrade the server's package under a running cluster (see
# scripts/bench_citus.sh).
case " ${scenarios[*]} " in *" citus "*) "$here/scripts/citus.sh" install ;; esac

log "building the release server"
cargo build --release -q -p booking-server --bin booking-server
server_bin="$here/target/release/booking-server"

admin_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export ADMIN_TOKEN="$admin_token"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

psql_bin() {
    if command -v psql >/dev/null 2>&1; then echo psql; else echo /usr/lib/postgresql/15/bin/psql; fi
}

base_url=""
ensure_cluster() {
    base_url=$("$here/scripts/pg.sh" start)
}

# A fresh database on the cluster; prints its URL.
new_db() {
    local name="faults_$1_$$_$RANDOM"
    "$(psql_bin)" "$base_url" -X -q -c "CREATE DATABASE $name" >/dev/null
    python3 - "$base_url" "$name" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
}

# start_server NAME PORT DB_URL [VAR=value ...]: starts it in the background; sets
# $server_pid. Its log is $out/NAME.log (appended: a restarted server adds to it).
server_pid=""
start_server() {
    local name=$1 port=$2 db=$3
    shift 3
    env DATABASE_URL="$db" BIND_ADDR="127.0.0.1:$port" LOG_FORMAT=json RUST_LOG=warn \
        DEMO_SHOW=false "$@" "$server_bin" >>"$out/$name.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
}

# stop_server PID: SIGTERM, and it must still have been running (no crash meanwhile)
# and must exit 0 (a clean drain).
stop_server() {
    local rc=0
    kill -0 "$1" 2>/dev/null || die "the server (pid $1) is no longer running (see $out)"
    kill -TERM "$1"
    wait "$1" || rc=$?
    [ "$rc" = 0 ] || die "the server (pid $1) exited with status $rc on SIGTERM"
}

wait_ready() {
    local url=$1 i
    for i in $(seq 1 300); do
        curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && return 0
        sleep 0.05
    done
    die "the server at $url did not become ready"
}

# create_show URL ROWS SEATS [LIMIT] [AREAS]: prints the new show's id. The front fifth
# of the rows is `premium`, the rest `standard`; two ticket types, `adult` (the default:
# every category) and `child` (standard seats and `standing` places only); LIMIT, when
# given (may be ""), is the show's max_seats_per_user; AREAS, when given, its standing
# areas as `CODE:CAPACITY:CATEGORY,...` (issue 15), e.g. `FLOOR:200:standing,BOX:20:premium`.
create_show() {
    python3 - "$1" "$2" "$3" "$admin_token" "${4:-}" "${5:-}" <<'EOF'
import json, sys, urllib.request
url, rows, seats, token, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
areas = [dict(zip(("area", "capacity", "category"), a.split(":"))) for a in sys.argv[6].split(",") if a]
letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
adult, child = {"standard": 1200, "premium": 1800}, {"standard": 800}
if any(a["category"] == "standing" for a in areas):
    adult["standing"], child["standing"] = 2500, 1000
body = {"title": "Fault show", "starts_at": "2027-01-01T20:00:00Z",
        "ticket_types": [{"type": "adult", "prices": adult}, {"type": "child", "prices": child}],
        "rows": [{"row": letters[i], "seats": seats,
                  "category": "premium" if i < rows // 5 else "standard"} for i in range(rows)]}
if areas:
    body["areas"] = [dict(a, capacity=int(a["capacity"])) for a in areas]
if limit:
    body["max_seats_per_user"] = int(limit)
req = urllib.request.Request(url + "/shows", json.dumps(body).encode(),
                             {"Content-Type": "application/json", "Authorization": "Bearer " + token})
print(json.load(urllib.request.urlopen(req))["id"])
EOF
}

# xids_below URL N: spends transaction ids (one autocommit statement each) until the
# next one handed out is N, so that what runs next straddles N.
xids_below() {
    local url=$1 n=$2 next
    next=$("$(psql_bin)" "$url" -X -At -c "SELECT pg_current_xact_id()")
    [ "$next" -lt "$n" ] || die "transaction ids are already at $next, past $n"
    python3 -c 'import sys; sys.stdout.write("SELECT pg_current_xact_id();\n" * int(sys.argv[1]))' \
        $((n - next - 1)) | "$(psql_bin)" "$url" -X -q -At >/dev/null
}

audit() {
    local db=$1
    shift
    python3 "$here/scripts/faults/audit.py" --db "$db" --json "$out/audit.json" "$@"
}

figures() { # figures KEY=VALUE ...: the scenario's figures, for RELIABILITY.md
    python3 - "$out/figures.json" "$@" <<'EOF'
import json, sys
path, pairs = sys.argv[1], sys.argv[2:]
try:
    doc = json.load(open(path))
except (OSError, ValueError):
    doc = {}
for p in pairs:
    k, v = p.split("=", 1)
    try:
        v = json.loads(v)
    except ValueError:
        pass
    doc[k] = v
json.dump(doc, open(path, "w"), indent=2)
EOF
}

# The buyer limit of the loads' second show (200 seats): a user (two workers of the
# load) keeps its bookings there, so it reaches the limit within a few holds.
limit_per_user=6

# Standing areas of the loads' two shows (issue 15): small enough to sell out within a
# --quick run, so that the load meets full areas (`409` with `"areas"`) and cancels,
# releases and expiries give places back at the edge. BOX is `premium`, which the
# `child` type does not sell (`409 ticket_type_unavailable` with an area entry).
areas_big="FLOOR:120:standing,BOX:20:premium"
areas_limited="PIT:40:standing"

# Webhooks (issue 17): a real receiver on loopback (scripts/faults/webhooks.py) gets an
# endpoint for every event type, made before the load; after the load every event of the
# feed must have reached it, in order per show, signed. It answers 500 to one request in
# 500, so some deliveries are retried (each failure holds its show back 1-2 s).
webhook_receiver() { # webhook_receiver SERVER_URL
    local rx_port
    rx_port=$(free_port)
    python3 "$here/scripts/faults/webhooks.py" serve --port "$rx_port" \
        --out "$out/webhooks.jsonl" --fail-every 500 >/dev/null 2>&1 &
    pids+=("$!")
    python3 "$here/scripts/faults/webhooks.py" create --url "$1" --token "$admin_token" \
        --hook "http://127.0.0.1:$rx_port/hook" --out "$out/webhook.json"
}
webhook_check() { # webhook_check DB
    python3 "$here/scripts/faults/webhooks.py" check --db "$1" --got "$out/webhooks.jsonl" \
        --hook-file "$out/webhook.json" --wait 300 --json "$out/webhooks.json" \
        || die "webhooks: the receiver did not get the feed (see above)"
}

now() { echo "$EPOCHREALTIME"; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }

# ------------------------------------------------------------------ kill-server
scenario_kill_server() {
    local db port url show limited kills=10 i max=0 limit=1 sse_late=""
    $quick && limit=10 # test.sh: a hang check, not a timing check
    db=$(new_db kill_server)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    start_server server "$port" "$db"
    wait_ready "$url"
    show=$(create_show "$url" 20 100 "" "$areas_big")
    limited=$(create_show "$url" 10 20 "$limit_per_user" "$areas_limited")
    # A queued show (issue 19): buyers join before and after its sales open and the
    # admitted ones hold from three threads each, through every kill; the audit checks
    # its waiting room (nobody lost, skipped, admitted twice or over max_seats).
    local queued queue_load
    queued=$(python3 "$here/scripts/faults/queue.py" create --url "$url" --token "$admin_token")
    python3 "$here/scripts/faults/queue.py" load --url "$url" --show "$queued" \
        --log "$out/queue.log" --stop-file "$out/stop" >"$out/queue.out" 2>&1 &
    queue_load=$!
    pids+=("$queue_load")
    webhook_receiver "$url"
    # An event stream of the show through every kill (it resumes with Last-Event-ID);
    # the audit checks it brought each event once, in order, across the boundary.
    python3 "$here/scripts/faults/probe.py" sse --url "$url" --show "$show" --out "$out/sse.txt" \
        --data "$out/sse-data.txt" --seconds 600 --from-start >/dev/null 2>&1 &
    local sse=$!
    pids+=("$sse")
    xids_below "$db" $((xid_boundary - 100))
    python3 "$here/scripts/faults/load.py" --url "$url" --show "$show" --show "$limited" \
        --workers 16 --log "$out/load.log" --stop-file "$out/stop" >"$out/load.out" 2>&1 &
    local load=$!
    pids+=("$load")
    # A resident prober: its own start-up is not counted in the recovery times.
    python3 "$here/scripts/faults/probe.py" watch --url "$url" --show "$show" \
        --out "$out/watch.txt" --stop-file "$out/stop" >/dev/null 2>&1 &
    pids+=("$!")
    local restarts=()
    for i in $(seq 1 "$kills"); do
        if $quick; then sleep "0.$((RANDOM % 6 + 3))"; else sleep "$((RANDOM % 2)).$((RANDOM % 10))"; fi
        kill -9 "$server_pid"
        wait "$server_pid" 2>/dev/null || true
        restarts+=("$(now)")
        start_server server "$port" "$db"
        wait_ready "$url"
        echo "kill $i: restarted"
        if [ "$i" = 1 ]; then
            # A second stream, opened once the load has crossed the boundary, asks for
            # everything from the show's first event: its first read of the feed spans
            # the boundary, so an order by the text of ids would show here at once.
            python3 "$here/scripts/faults/probe.py" sse --url "$url" --show "$show" \
                --out "$out/sse-late.txt" --data "$out/sse-late-data.txt" --seconds 600 \
                --from-start >/dev/null 2>&1 &
            sse_late=$!
            pids+=("$sse_late")
        fi
    done
    sleep 1
    touch "$out/stop"
    wait "$load" || die "the load generator failed (see $out/load.out)"
    wait "$queue_load" || die "the queue's load failed (see $out/queue.out)"
    audit "$db" --log "$out/load.log" --sweep-wait 15 --show "$show" --straddle "$xid_boundary" \
        --sse "$out/sse.txt" --sse "$out/sse-late.txt" --url "$url" \
        --sse-data "$out/sse-data.txt" --sse-data "$out/sse-late-data.txt" \
        --queue-show "$queued" --queue-log "$out/queue.log"
    webhook_check "$db"
    kill "$sse" "$sse_late" 2>/dev/null || true
    local recoveries
    recoveries=$(python3 "$here/scripts/faults/probe.py" recovery --url "$url" --show "$show" \
        --out "$out/watch.txt" --restarts "$(IFS=,; echo "${restarts[*]}")")
    echo "kill-server: seconds from each restart to serving again: $recoveries"
    max=$(python3 -c 'import json,sys; r = json.loads(sys.argv[1]); print(999 if None in r else max(r))' "$recoveries")
    figures kills="$kills" recovery_max_s="$max" recoveries_s="$recoveries"
    stop_server "$server_pid"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$max" "$limit" \
        || die "the server took $max s to serve again after a restart (limit $limit s)"
}

# ------------------------------------------------------------------ restart-db
scenario_restart_db() {
    local db port url show down_s=3 t0 took limit=2 timeout_ms=3000
    $quick && limit=15
    db=$(new_db restart_db)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    start_server server "$port" "$db" REQUEST_TIMEOUT_MS=$timeout_ms POOL_WAIT_MS=1000
    local srv=$server_pid
    wait_ready "$url"
    show=$(create_show "$url" 20 100 "" "$areas_big")
    local limited
    limited=$(create_show "$url" 10 20 "$limit_per_user" "$areas_limited")
    python3 "$here/scripts/faults/probe.py" sse --url "$url" --show "$show" --out "$out/sse.txt" \
        --data "$out/sse-data.txt" --seconds 600 --from-start >/dev/null 2>&1 &
    local sse=$!
    pids+=("$sse")
    python3 "$here/scripts/faults/load.py" --url "$url" --show "$show" --show "$limited" --workers 12 \
        --log "$out/load.log" --stop-file "$out/stop" >"$out/load.out" 2>&1 &
    local load=$!
    pids+=("$load")
    sleep 3
    log "restart-db: stopping PostgreSQL as a crash would"
    "$here/scripts/pg.sh" crash
    local ok=true
    python3 "$here/scripts/faults/probe.py" down --url "$url" --show "$show" --seconds "$down_s" \
        --timeout-ms "$timeout_ms" --json "$out/down.json" || ok=false
    local ready
    ready=$(curl -sS -o /dev/null -w '%{http_code}' "$url/readyz" 2>/dev/null || true)
    [ "$ready" = 503 ] || { echo "restart-db: PROBLEM: /readyz answered '$ready' while the database was down"; ok=false; }
    log "restart-db: starting PostgreSQL again"
    "$here/scripts/pg.sh" start >/dev/null
    t0=$(now)
    python3 "$here/scripts/faults/probe.py" up --url "$url" --show "$show" --limit 1000 \
        --since "$t0" --json "$out/up.json" || ok=false
    took=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recovery_s"])' "$out/up.json")
    echo "restart-db: serving again $took s after PostgreSQL accepted connections"
    # The LISTEN connection and the feed recovered: the stream opened before the crash
    # (or its reconnection) brings events of changes made after it.
    sleep 3
    local after
    after=$(python3 - "$out/sse.txt" "$t0" <<'EOF'
import sys
t0 = float(sys.argv[2])
n = 0
try:
    for line in open(sys.argv[1]):
        t, _ = line.split()
        n += float(t) > t0 + 0.5
except OSError:
    pass
print(n)
EOF
)
    echo "restart-db: $after events streamed after the restart"
    [ "$after" -gt 0 ] || { echo "restart-db: PROBLEM: no event streamed after the database came back"; ok=false; }
    touch "$out/stop"
    wait "$load" || { echo "restart-db: the load generator failed"; ok=false; }
    # The sweeper recovered: holds that lapsed after the restart are expired.
    audit "$db" --log "$out/load.log" --sweep-wait 15 --sse "$out/sse.txt" --show "$show" \
        --sse-data "$out/sse-data.txt" --url "$url" || ok=false
    kill -0 "$srv" 2>/dev/null || { echo "restart-db: PROBLEM: the server exited"; ok=false; }
    figures down_s="$down_s" recovery_s="$took" events_after_restart="$after"
    kill "$sse" 2>/dev/null || true
    stop_server "$srv"
    $ok || die "restart-db failed"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$took" "$limit" \
        || die "the server took $took s to serve again after the database came back (limit $limit s)"
}

# ------------------------------------------------------------------ replicas
scenario_replicas() {
    local db show i seconds=15 urls=() srvs=()
    $quick && seconds=6
    db=$(new_db replicas)
    for i in 1 2 3; do
        local port
        port=$(free_port)
        start_server "server$i" "$port" "$db"
        srvs+=("$server_pid")
        urls+=(--url "http://127.0.0.1:$port")
        wait_ready "http://127.0.0.1:$port"
    done
    show=$(create_show "${urls[1]}" 20 100 "" "$areas_big")
    local limited
    limited=$(create_show "${urls[1]}" 10 20 "$limit_per_user" "$areas_limited")
    webhook_receiver "${urls[1]}"
    python3 "$here/scripts/faults/load.py" "${urls[@]}" --show "$show" --show "$limited" --workers 24 \
        --log "$out/load.log" --duration "$seconds" >"$out/load.out" 2>&1 \
        || die "the load generator failed (see $out/load.out)"
    audit "$db" --log "$out/load.log" --sweep-wait 15 "${urls[@]}"
    webhook_check "$db"
    figures servers=3 seconds="$seconds"
    for i in "${srvs[@]}"; do stop_server "$i"; done
}

# ------------------------------------------------------------------ authz
scenario_authz() {
    local db port url
    db=$(new_db authz)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    start_server server "$port" "$db"
    wait_ready "$url"
    python3 "$here/scripts/faults/authz.py" --url "$url" --admin-token "$admin_token" \
        --json "$out/authz.json"
    audit "$db" --sweep-wait 15 --url "$url"
    stop_server "$server_pid"
}

# ------------------------------------------------------------------ fuzz
scenario_fuzz() {
    local db port url examples=250 seconds=300
    $quick && examples=60 seconds=60
    db=$(new_db fuzz)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    start_server server "$port" "$db" DEMO_SHOW=true
    wait_ready "$url"
    "$here/scripts/faults/fuzz.sh" "$url" "$admin_token" "$examples" "$seconds" "$out"
    # Whatever the fuzzer got the server to do, the invariants hold (but its confirms
    # name any external_ref, not load.py's).
    audit "$db" --sweep-wait 15 --url "$url" --any-external-ref
    stop_server "$server_pid"
}

# ------------------------------------------------------------------ overload
scenario_overload() {
    local db port url
    db=$(new_db overload)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    start_server server "$port" "$db" POOL_SIZE=8 POOL_WAIT_MS=500 REQUEST_TIMEOUT_MS=3000
    local srv=$server_pid
    wait_ready "$url"
    local show
    show=$(create_show "$url" 20 100)
    local args=(--url "$url" --show "$show" --server-pid "$srv" --json "$out/overload.json")
    if $quick; then args+=(--connections 1000 --in-flight 400 --seconds 5); fi
    python3 "$here/scripts/faults/overload.py" "${args[@]}"
    audit "$db" --sweep-wait 15 --url "$url"
    stop_server "$srv"
}

# ------------------------------------------------------------------ failover
scenario_failover() {
    local seconds=30
    $quick && seconds=15
    "$here/scripts/faults/failover.sh" run "$out" "$server_bin" "$seconds"
}

# ------------------------------------------------------------------ citus
# A Citus formation of its own (scripts/citus.sh: a coordinator and two workers, ports
# $FAULTS_CITUS_PORT and the next two, under .citus-faults), destroyed however the
# scenario ends; the server on the coordinator's URL, with shows on both workers.
citus_url=""
citus_sql() { "$(psql_bin)" "$citus_url" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
citus_node_of() { # citus_node_of SHOW: the port of the worker holding the show's shard group
    citus_sql "SELECT nodeport FROM citus_shards WHERE table_name = 'shows'::regclass
                  AND shardid = get_shard_id_for_distribution_column('shows', $1)"
}

scenario_citus() {
    local port url down_s=5 timeout_ms=3000 seconds_after=8
    $quick && seconds_after=4
    export CITUS_PORT="${FAULTS_CITUS_PORT:-27500}" CITUS_DIR="$here/.citus-faults"
    local victim=$((CITUS_PORT + 1)) other=$((CITUS_PORT + 2))
    # The nodes' logs are kept with the scenario's (the formation is destroyed).
    trap 'for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
          cp "$CITUS_DIR"/n*.log "$out/" 2>/dev/null || true
          "$here/scripts/citus.sh" destroy >/dev/null 2>&1 || true' EXIT
    "$here/scripts/citus.sh" destroy >/dev/null 2>&1 || true
    citus_url=$("$here/scripts/citus.sh" start)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    # The server migrates the new database, which distributes it (V13): that may take
    # longer than wait_ready's 15 s here, so it is waited for first.
    start_server server "$port" "$citus_url" REQUEST_TIMEOUT_MS=$timeout_ms POOL_WAIT_MS=1000
    local srv=$server_pid i
    for i in $(seq 1 600); do
        curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && break
        kill -0 "$srv" 2>/dev/null || die "the server exited at start-up (see $out/server.log)"
        sleep 0.1
    done
    wait_ready "$url"
    # Shows until each worker holds at least two (a show's shard is its id's hash's).
    local show node down_shows=() up_shows=()
    for i in $(seq 1 12); do
        if [ $((i % 2)) = 1 ]; then show=$(create_show "$url" 10 20 "" "$areas_big")
        else show=$(create_show "$url" 10 20 "$limit_per_user" "$areas_limited"); fi
        node=$(citus_node_of "$show")
        if [ "$node" = "$victim" ]; then down_shows+=("$show"); else up_shows+=("$show"); fi
        [ ${#down_shows[@]} -ge 2 ] && [ ${#up_shows[@]} -ge 2 ] && break
    done
    [ ${#down_shows[@]} -ge 2 ] && [ ${#up_shows[@]} -ge 2 ] \
        || die "not two shows on each worker after 12 (on $victim: ${down_shows[*]:-}; on $other: ${up_shows[*]:-})"
    echo "citus: shows on the worker $victim: ${down_shows[*]}; on $other: ${up_shows[*]}"
    # Webhooks routed per node: every event of both workers' shows, through the
    # outage and the move, each show's in its order.
    webhook_receiver "$url"
    local show_args=() s
    for s in "${down_shows[@]}" "${up_shows[@]}"; do show_args+=(--show "$s"); done
    python3 "$here/scripts/faults/load.py" --url "$url" "${show_args[@]}" --workers 16 \
        --log "$out/load.log" --stop-file "$out/stop" >"$out/load.out" 2>&1 &
    local load=$!
    pids+=("$load")
    sleep 4

    log "citus: stopping the worker on $victim as a crash would"
    local t_down t_stopped t_up t_ready t_back ok=true took
    t_down=$(now)
    "$here/scripts/citus.sh" crash "$victim"
    t_stopped=$(now)
    echo "citus: the worker was stopped in $(elapsed "$t_down" "$t_stopped") s"
    python3 "$here/scripts/faults/probe.py" down --node-down --url "$url" --show "${down_shows[0]}" \
        --seconds "$down_s" --timeout-ms "$timeout_ms" --json "$out/down.json" || ok=false
    log "citus: starting the worker on $victim again"
    t_up=$(now)
    "$here/scripts/citus.sh" start-node "$victim"
    t_ready=$(now)
    echo "citus: the worker accepted connections again $(elapsed "$t_up" "$t_ready") s after its start (recovery from WAL)"
    python3 "$here/scripts/faults/probe.py" up --url "$url" --show "${down_shows[0]}" --limit 15 \
        --since "$t_ready" --json "$out/up.json" || ok=false
    t_back=$(now)
    took=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recovery_s"])' "$out/up.json")
    echo "citus: the worker's shows served again $took s after it accepted connections"

    # A shard move under load: the shard group of a show being sold (with whatever
    # other shows hash to it) to the other worker. block_writes: the nodes run with
    # wal_level = replica, and a logical move would need logical.
    local moved=${down_shows[0]} shard t0 t1 move_s after_node
    shard=$(citus_sql "SELECT get_shard_id_for_distribution_column('shows', $moved)")
    sleep 2
    log "citus: moving shard $shard (show $moved) from $victim to $other"
    t0=$(now)
    citus_sql "SELECT citus_move_shard_placement($shard, '127.0.0.1', $victim, '127.0.0.1', $other,
                   shard_transfer_mode := 'block_writes')" >/dev/null
    t1=$(now)
    move_s=$(elapsed "$t0" "$t1")
    after_node=$(citus_node_of "$moved")
    echo "citus: moved in $move_s s; show $moved is now on $after_node"
    [ "$after_node" = "$other" ] || { echo "citus: PROBLEM: show $moved is on $after_node after the move"; ok=false; }
    sleep "$seconds_after"
    touch "$out/stop"
    wait "$load" || { echo "citus: the load generator failed (see $out/load.out)"; ok=false; }

    local down_csv up_csv sold_after_move
    down_csv=$(IFS=,; echo "${down_shows[*]}")
    up_csv=$(IFS=,; echo "${up_shows[*]}")
    python3 "$here/scripts/faults/outage.py" --log "$out/load.log" --down-shows "$down_csv" \
        --up-shows "$up_csv" --down-at "$t_down" --stopped-at "$t_stopped" --up-at "$t_up" --back-at "$t_back" \
        --moved-show "$moved" --moved-at "$t1" --timeout-ms "$timeout_ms" \
        --json "$out/outage.json" || ok=false
    audit "$citus_url" --log "$out/load.log" --sweep-wait 20 --url "$url" --moved-show "$moved" || ok=false
    webhook_check "$citus_url"
    kill -0 "$srv" 2>/dev/null || { echo "citus: PROBLEM: the server exited"; ok=false; }
    figures down_s="$(elapsed "$t_down" "$t_up")" stop_s="$(elapsed "$t_down" "$t_stopped")" \
        node_start_s="$(elapsed "$t_up" "$t_ready")" recovery_s="$took" move_s="$move_s" \
        down_at="$t_down" up_at="$t_up" move_started_at="$t0" move_ended_at="$t1" \
        moved_show="$moved" moved_shard="$shard" \
        down_shows="[$down_csv]" up_shows="[$up_csv]" \
        outage="$(cat "$out/outage.json" 2>/dev/null || echo null)"
    stop_server "$srv"
    $ok || die "citus failed"
}

failed=()
for s in "${scenarios[@]}"; do
    out="$out_root/$s"
    rm -rf "$out"
    mkdir -p "$out"
    log "$s"
    case "$s" in failover|citus) ;; *) ensure_cluster ;; esac
    started=$(now)
    # A subshell per scenario, with errexit on (an `if ( ... )` would turn it off) and
    # a trap that kills whatever the scenario started, however it ends.
    set +e
    (
        set -e
        trap 'for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
        "scenario_${s//-/_}"
    )
    rc=$?
    set -e
    if [ "$rc" = 0 ]; then
        figures seconds_total="$(elapsed "$started" "$(now)")" passed=true
        log "$s: passed ($out)"
    else
        figures passed=false
        log "$s: FAILED ($out)"
        # CI keeps only what is printed: the server's errors say why a 500 came.
        for f in "$out"/server*.log; do
            [ -f "$f" ] || continue
            echo "faults: errors in $(basename "$f") (first 20):" >&2
            grep '"level":"ERROR"' "$f" | head -20 | cut -c1-1000 >&2 || true
        done
        failed+=("$s")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    die "failed: ${failed[*]}"
fi
log "all scenarios passed: ${scenarios[*]}"
