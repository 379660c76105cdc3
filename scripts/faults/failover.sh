#!/usr/bin/env bash
# The failover scenario: a pg_auto_failover formation on loopback (a monitor, a primary
# and two synchronous standbys, number_sync_standbys = 1), the server on its multi-host
# URI with target_session_attrs=read-write, and the primary hard-killed during load.
#
#   scripts/faults/failover.sh run OUT_DIR SERVER_BIN SECONDS
#   scripts/faults/failover.sh up      # only bring the formation up (prints the URI)
#   scripts/faults/failover.sh down    # stop everything it started
#
# `run` brings the formation up, starts the server and the load (scripts/faults/load.py,
# which retries in-doubt requests with their idempotency key), kills the primary's
# pg_autoctl, postmaster and backends with SIGKILL, measures the outage (the last
# acknowledged write before the kill to the first after it), lets the load write on the
# new primary, then audits the new primary against every acknowledgement, and brings
# the killed node back as a standby. Figures go to OUT_DIR/figures.json.
#
# Installs Debian's postgresql-15-auto-failover when pg_autoctl is missing (needs root
# or passwordless sudo). The nodes run as the `postgres` user when we are root, with
# their files in $FAILOVER_DIR (default /tmp/booking-failover), ports 25600-25603 (below the ephemeral range, so no client socket holds them).
# Field notes on these commands: ../shared/notes/pg_auto_failover.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B="${FAILOVER_DIR:-/tmp/booking-failover}"
PGBIN=/usr/lib/postgresql/15/bin
MONPORT=25600
NODES=(node1 node2 node3)
PORTS=(25601 25602 25603)

log() { printf 'failover: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1; fi
}

ensure_installed() {
    if command -v pg_autoctl >/dev/null 2>&1 && [ -x "$PGBIN/pg_ctl" ]; then return 0; fi
    log "installing postgresql-15-auto-failover"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "cannot run apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-15-auto-failover >&2 \
        || die "cannot install postgresql-15-auto-failover"
    as_root service postgresql stop >/dev/null 2>&1 || true
}

# Every pg_autoctl call runs as the cluster owner with the same XDG environment: that is
# where pg_autoctl keeps its config, state and pid files.
AS_PG() {
    local envs=(HOME="$B" XDG_CONFIG_HOME="$B/config" XDG_DATA_HOME="$B/share"
                XDG_RUNTIME_DIR="$B/run" PATH="$PGBIN:/usr/bin:/bin")
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- env "${envs[@]}" "$@")
    else
        env "${envs[@]}" "$@"
    fi
}

psql_bin() { if command -v psql >/dev/null 2>&1; then echo psql; else echo "$PGBIN/psql"; fi; }
MON="postgres://autoctl_node@127.0.0.1:$MONPORT/pg_auto_failover"
mon_sql() { "$(psql_bin)" "$MON" -X -At -c "$1" 2>/dev/null; }

states() { mon_sql "select string_agg(nodename||':'||reportedstate||'/'||goalstate, ',' order by nodeid) from pgautofailover.node"; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2 i
    shift 2
    for i in $(seq 1 $((limit * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "timed out waiting for $what (states: $(states || true))"
}

start_bg() { # start_bg PGDATA: `pg_autoctl run` in its own session, as the owner
    AS_PG setsid "$(command -v pg_autoctl)" run --pgdata "$1" >>"$1.log" 2>&1 < /dev/null &
}

small_memory() { # pg_autoctl writes shared_buffers = 25% of RAM; three nodes need less
    # Short checkpoints too: a node that cannot rewind rejoins by pg_basebackup, which
    # waits for a (spread) checkpoint of the new primary first.
    printf 'shared_buffers = 128MB\ncheckpoint_timeout = 30s\n' | AS_PG tee -a "$1/postgresql.conf" >/dev/null
}

up() {
    ensure_installed
    down >/dev/null 2>&1 || true
    rm -rf "$B"
    mkdir -p "$B/config" "$B/share" "$B/run"
    [ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system postgres; chown -R postgres "$B"; }
    chmod 700 "$B/run"

    log "creating the monitor on port $MONPORT"
    AS_PG pg_autoctl create monitor --pgdata "$B/monitor" --pgport $MONPORT --hostname 127.0.0.1 \
        --auth trust --no-ssl --pgctl "$PGBIN/pg_ctl" >"$B/create-monitor.log" 2>&1 \
        || { tail -20 "$B/create-monitor.log" >&2; die "cannot create the monitor"; }
    AS_PG pg_autoctl config set --pgdata "$B/monitor" postgresql.listen_addresses 127.0.0.1 >/dev/null
    small_memory "$B/monitor"
    start_bg "$B/monitor"
    wait_for 60 "the monitor" mon_sql "select 1"
    # Tuned timeouts (the field notes): a dead primary is noticed in about 5 s.
    "$(psql_bin)" "postgres://postgres@127.0.0.1:$MONPORT/pg_auto_failover" -X -q >/dev/null <<'EOF'
ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 5000;
ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 10000;
ALTER SYSTEM SET pgautofailover.health_check_period = 1000;
ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000;
ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1;
ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500;
SELECT pg_reload_conf();
EOF

    local i
    for i in 0 1 2; do
        local n=${NODES[$i]} p=${PORTS[$i]}
        log "creating $n on port $p"
        AS_PG pg_autoctl create postgres --pgdata "$B/$n" --pgport "$p" --pghost 127.0.0.1 \
            --listen 127.0.0.1 --hostname 127.0.0.1 --name "$n" --dbname booking \
            --monitor "$MON" --auth trust --no-ssl --pgctl "$PGBIN/pg_ctl" >"$B/create-$n.log" 2>&1 \
            || { tail -20 "$B/create-$n.log" >&2; die "cannot create $n"; }
        small_memory "$B/$n"
        AS_PG pg_autoctl config set --pgdata "$B/$n" timeout.network_partition_timeout 5 >/dev/null
        start_bg "$B/$n"
        if [ "$i" = 0 ]; then
            wait_for 90 "$n to be the primary" is_state "$n" single
        fi
    done
    wait_for 180 "one primary and two secondaries" formation_ready
    # With two standbys pg_auto_failover asks for ANY 1 of them (number_sync_standbys 1):
    # a commit is acknowledged once a standby has it too. Refuse to test without it.
    local sync
    sync=$("$(psql_bin)" "$(uri)" -X -At -c "show synchronous_standby_names")
    case "$sync" in ANY\ 1*) ;; *) die "the primary does not replicate synchronously: '$sync'" ;; esac
    log "formation up: $(states); synchronous_standby_names = $sync"
    uri
}

uri() {
    echo "postgres://postgres@127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}/booking?target_session_attrs=read-write&connect_timeout=2"
}

is_state() { # is_state NODE STATE
    [ "$(mon_sql "select reportedstate from pgautofailover.node where nodename = '$1'")" = "$2" ]
}

formation_ready() { # one primary and two secondaries, each at its goal
    [ "$(mon_sql "select count(*) filter (where reportedstate = 'primary' and goalstate = 'primary')::text || '/' || count(*) filter (where reportedstate = 'secondary' and goalstate = 'secondary') from pgautofailover.node")" = 1/2 ]
}

primary() { mon_sql "select nodename from pgautofailover.node where reportedstate = 'primary' limit 1"; }

# Kills a node the hard way: its pg_autoctl run and children, the postmaster and every
# backend, each by pid (backends run in their own sessions).
hard_kill() {
    local n=$1 pids="" pm s
    # `pg_autoctl run` leads a session of its own (start_bg); its workers rename
    # themselves, so they are found by session, not by command line.
    for s in $(pgrep -f "pg_autoctl run --pgdata $B/$n\$" || true); do
        pids="$pids $(pgrep -s "$s" || true)"
    done
    pm=$(head -1 "$B/$n/postmaster.pid" 2>/dev/null || true)
    [ -n "$pm" ] && pids="$pids $pm $(pgrep -P "$pm" || true)"
    # shellcheck disable=SC2086
    [ -n "${pids// /}" ] && kill -9 $pids 2>/dev/null || true
}

down() {
    local d
    for d in "$B"/node1 "$B"/node2 "$B"/node3 "$B"/monitor; do
        [ -d "$d" ] || continue
        AS_PG timeout 20 pg_autoctl stop --pgdata "$d" >/dev/null 2>&1 || true
    done
    for d in node1 node2 node3 monitor; do hard_kill "$d"; done
    pkill -9 -f "pg_autoctl.*$B" 2>/dev/null || true
    # Workers of a pg_autoctl whose supervisor died rename themselves and live on
    # (orphans): find them by the environment every AS_PG call gives.
    local p
    for p in $(pgrep -x pg_autoctl 2>/dev/null; pgrep -f '^pg_autoctl' 2>/dev/null); do
        if { tr '\0' '\n' < "/proc/$p/environ"; } 2>/dev/null | grep -qx "XDG_CONFIG_HOME=$B/config"; then
            kill -9 "$p" 2>/dev/null || true
        fi
    done
}

run() {
    local out=$1 server_bin=$2 seconds=$3
    trap 'kill -9 ${srv:-} ${load:-} 2>/dev/null || true; down >/dev/null 2>&1 || true' EXIT
    local t_up db_uri
    t_up=$EPOCHREALTIME
    db_uri=$(up)
    log "formation up in $(python3 -c "print(round($EPOCHREALTIME - $t_up, 1))") s"

    local port url token
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    url="http://127.0.0.1:$port"
    token=${ADMIN_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_hex(16))')}
    DATABASE_URL="$db_uri" BIND_ADDR="127.0.0.1:$port" ADMIN_TOKEN="$token" LOG_FORMAT=json \
        RUST_LOG=warn DEMO_SHOW=false REQUEST_TIMEOUT_MS=5000 POOL_WAIT_MS=1000 \
        "$server_bin" >>"$out/server.log" 2>&1 &
    srv=$!
    local i
    for i in $(seq 1 200); do curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && break; sleep 0.05; done
    local show
    show=$(python3 - "$url" "$token" <<'EOF'
import json, sys, urllib.request
# A standing area too (issue 15), small enough to sell out during the run.
body = {"title": "Failover", "starts_at": "2027-01-01T20:00:00Z",
        "prices": {"standard": 1000, "standing": 2500},
        "rows": [{"row": chr(65 + i), "seats": 100} for i in range(20)],
        "areas": [{"area": "FLOOR", "capacity": 150, "category": "standing"}]}
req = urllib.request.Request(sys.argv[1] + "/shows", json.dumps(body).encode(),
                             {"Content-Type": "application/json", "Authorization": "Bearer " + sys.argv[2]})
print(json.load(urllib.request.urlopen(req))["id"])
EOF
)
    python3 "$here/scripts/faults/load.py" --url "$url" --show "$show" --workers 16 \
        --log "$out/load.log" --stop-file "$out/stop" --retry-budget 60 >"$out/load.out" 2>&1 &
    load=$!
    sleep 5
    local victim t_kill
    victim=$(primary)
    [ -n "$victim" ] || die "no primary to kill (states: $(states))"
    log "killing the primary, $victim (states: $(states))"
    hard_kill "$victim"
    # Counted from when every process of the node is gone.
    t_kill=$EPOCHREALTIME
    # Writes resume on the new primary: wait for a fresh acknowledged hold.
    local resumed=""
    for i in $(seq 1 600); do
        resumed=$(python3 - "$out/load.log" "$t_kill" <<'EOF'
import json, sys
t_kill = float(sys.argv[2])
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    # An answer to a request sent after the kill (not one that was on its way back).
    if r.get("op") == "ack" and r.get("what") == "hold" and r.get("sent", 0) > t_kill:
        print(r["t"]); break
EOF
)
        [ -n "$resumed" ] && break
        sleep 0.2
    done
    [ -n "$resumed" ] || die "writes did not resume within 120 s of the kill (states: $(states))"
    log "writes resumed; new states: $(states)"
    sleep "$seconds"
    touch "$out/stop"
    wait "$load" || die "the load generator failed"
    # The killed node comes back as a standby.
    # Not part of the promise (the formation serves without it), so reported, not
    # required: a node that cannot be rewound is copied afresh, which takes longer.
    local t_back rejoin=null i
    t_back=$EPOCHREALTIME
    start_bg "$B/$victim"
    for i in $(seq 1 450); do
        if is_state "$victim" secondary; then
            rejoin=$(python3 -c "print(round($EPOCHREALTIME - $t_back, 1))")
            break
        fi
        sleep 0.2
    done
    [ "$rejoin" = null ] && log "$victim did not rejoin within 90 s (states: $(states))"
    python3 "$here/scripts/faults/audit.py" --db "$db_uri" --log "$out/load.log" \
        --sweep-wait 20 --url "$url" --json "$out/audit.json"
    python3 - "$out" "$t_kill" "$victim" "$rejoin" <<'EOF'
import json, sys
out, t_kill, victim, rejoin = sys.argv[1], float(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
last_before, first_after, in_doubt_retried, replayed = None, None, 0, 0
for line in open(out + "/load.log"):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("op") == "ack" and r.get("what") in ("hold", "confirm", "cancel"):
        if r["t"] <= t_kill:
            last_before = r["t"]
        elif first_after is None and r.get("sent", 0) > t_kill:
            first_after = r["t"]
        if r.get("attempts", 1) > 1:
            in_doubt_retried += 1
        replayed += bool(r.get("replayed"))
audit = json.load(open(out + "/audit.json"))
figures = {
    "killed": victim,
    "outage_s": round(first_after - last_before, 2),
    "kill_to_first_write_s": round(first_after - t_kill, 2),
    "acknowledged": audit["acknowledged"], "lost": audit["lost"],
    "places_lost": audit.get("places_lost"), "areas": audit.get("areas"),
    "areas_over_capacity": audit.get("areas_over_capacity"),
    "refusals_with_areas": audit.get("refusals_with_areas"),
    "requests": audit["requests"], "answers_by_status": audit["answers_by_status"],
    "acks_after_retrying_with_the_same_key": in_doubt_retried,
    "retries_answered_from_the_idempotency_record": replayed,
    "killed_node_back_as_standby_s": rejoin,
}
try:
    prev = json.load(open(out + "/figures.json"))
except (OSError, ValueError):
    prev = {}
prev.update(figures)
json.dump(prev, open(out + "/figures.json", "w"), indent=2)
print("failover: " + json.dumps(figures))
EOF
    kill "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    uri) uri ;;
    run) shift; run "$@" ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
