#!/usr/bin/env bash
# The fuzz scenario's HTTP half: schemathesis (from PyPI) against the served
# /openapi.json, every operation but the event stream, with a user header and the
# admin token.
#
#   scripts/faults/fuzz.sh URL ADMIN_TOKEN MAX_EXAMPLES SECONDS OUT_DIR
#
# Runs every check (`--checks all`) in every phase: examples, coverage, fuzzing, and
# the stateful phase, which follows the document's links (create a hold, then confirm,
# extend, release or read it; confirm, then read or cancel the booking) and the ones
# schemathesis infers. SECONDS is the time budget of the whole run: schemathesis
# repeats fuzzing and stateful testing, MAX_EXAMPLES cases per operation a round,
# until it is spent. Passes when no check fails; what schemathesis.toml and
# schemathesis_hooks.py configure (each with why) are the only exceptions, and the
# failures the hook drops are listed at the end.
#
# Schemathesis is installed into target/faults/venv on first use (pinned). The
# other half (the newtypes and request parsing under proptest) is in the normal test
# suite: booking-core/tests/it/parsing.rs and booking-server/tests/it/parsing.rs; the
# server's integration tests hold every answer against the document too.
set -euo pipefail

url=$1 token=$2 examples=$3 seconds=$4 out=$5
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$here/target/faults/venv"
version=4.32.5

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    echo "fuzz: installing schemathesis $version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$version"
fi

dropped="$out/schemathesis-dropped.tsv"
: >"$dropped"
set +e
# From the output directory: schemathesis keeps a cache (.schemathesis/) where it runs.
cd "$out"
run_schemathesis() {
    SCHEMATHESIS_HOOKS="$here/scripts/faults/schemathesis_hooks.py" \
    SCHEMATHESIS_DROPPED_LOG="$dropped" \
    "$venv/bin/schemathesis" --config-file "$here/scripts/faults/schemathesis.toml" run "$url/openapi.json" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$examples" \
        --max-time "$seconds" \
        --header "X-User-Id: fuzz-user" \
        --header "Authorization: Bearer $token" \
        --workers 2 \
        --request-timeout 20 \
        --generation-database none \
        --suppress-health-check all \
        --exclude-path /shows/{show_id}/events \
        --exclude-path /shows/{show_id}/queue/me/events \
        --report ndjson --report-dir "$out/schemathesis" \
        --no-color >"$out/schemathesis.txt" 2>&1
}
run_schemathesis
rc=$?
# A crash of schemathesis itself, with no check failed, is run once more: seen once in
# CI (2026-12-02), "SystemError: AST constructor recursion depth mismatch" inside its
# coverage phase's schema walk, with all 3,328 cases passed; the rerun passed. Any
# failed check still fails the scenario.
if [ "$rc" != 0 ] && grep -q "Runtime Error" "$out/schemathesis.txt" \
        && ! grep -q "= FAILURES =" "$out/schemathesis.txt"; then
    echo "fuzz: schemathesis crashed with no check failed; running it once more" >&2
    cp "$out/schemathesis.txt" "$out/schemathesis-crashed.txt"
    : >"$dropped"
    rm -rf "$out/schemathesis"
    run_schemathesis
    rc=$?
fi
set -e
tail -n 40 "$out/schemathesis.txt"
requests=$(python3 - "$out/schemathesis" <<'PY'
import glob, json, sys
n = 0
for path in glob.glob(sys.argv[1] + "/*.ndjson"):
    for line in open(path):
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        # Each ScenarioFinished event carries the recorded interactions (one per request).
        if "ScenarioFinished" in ev:
            n += len(ev["ScenarioFinished"].get("recorder", {}).get("interactions", {}))
print(n)
PY
)
if [ -s "$dropped" ]; then
    echo "fuzz: failures that are the API as documented, dropped by schemathesis_hooks.py (each in $dropped):"
    cut -f1,2 "$dropped" | sort | uniq -c | sed 's/^/    /'
fi
ndropped=$(wc -l <"$dropped")
echo "fuzz: $requests requests sent by schemathesis in at most ${seconds} s (exit status $rc)"
echo "{\"schemathesis_requests\": $requests, \"schemathesis_exit\": $rc, \"dropped_by_hooks\": $ndropped}" >"$out/fuzz.json"
exit "$rc"
