#!/usr/bin/env bash
# The fuzz scenario's HTTP half: schemathesis (from PyPI) against the served
# /openapi.json, every operation, with a user header and the admin token.
#
#   scripts/faults/fuzz.sh URL ADMIN_TOKEN MAX_EXAMPLES OUT_DIR
#
# Passes when no answer is a 5xx and every answer matches the document (status codes,
# content types, headers, body schemas), and when at least one request a operation was
# sent. Schemathesis is installed into target/faults/venv on first use (pinned).
# The other half (the newtypes and request parsing under proptest) is in the normal
# test suite: booking-core/tests/it/parsing.rs and booking-server/tests/parsing.rs.
set -euo pipefail

url=$1 token=$2 examples=$3 out=$4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$here/target/faults/venv"
version=4.32.5

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    echo "fuzz: installing schemathesis $version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$version"
fi

set +e
# From the output directory: schemathesis keeps a cache (.schemathesis/) where it runs.
cd "$out"
"$venv/bin/schemathesis" --config-file "$here/scripts/faults/schemathesis.toml" run "$url/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,allow_header_conformance,ignored_auth \
    --max-examples "$examples" \
    --header "X-User-Id: fuzz-user" \
    --header "Authorization: Bearer $token" \
    --workers 2 \
    --request-timeout 20 \
    --generation-database none \
    --suppress-health-check all \
    --exclude-path /shows/{show_id}/events \
    --report ndjson --report-dir "$out/schemathesis" \
    --no-color >"$out/schemathesis.txt" 2>&1
rc=$?
set -e
tail -n 40 "$out/schemathesis.txt"
requests=$(python3 - "$out/schemathesis" <<'EOF'
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
EOF
)
echo "fuzz: $requests requests sent by schemathesis (exit status $rc)"
echo "{\"schemathesis_requests\": $requests, \"schemathesis_exit\": $rc}" >"$out/fuzz.json"
exit "$rc"
