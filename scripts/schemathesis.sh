#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a live `bunker serve` with the served OpenAPI document and a
# valid token: no 5xx, and every response conforms to the document (status code, content type,
# headers, schema). Installs schemathesis with pip when it is missing.
#
# The server runs on a free loopback port over a temporary data directory and repository with
# two sources (an SQLite database and a file tree), and is stopped at the end. Bounded: a few
# examples per operation (SCHEMATHESIS_EXAMPLES, default 15) and a time budget
# (SCHEMATHESIS_MAX_TIME seconds, default 75). BUNKER selects the binary (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v st >/dev/null 2>&1; then
    echo "== Installing schemathesis"
    python3 -m pip install --quiet schemathesis
fi
bin=${BUNKER:-$(swift build --show-bin-path)/bunker}
[ -x "$bin" ] || { echo "no bunker binary at $bin: run swift build first" >&2; exit 1; }

work=$(mktemp -d)
. scripts/live-server.sh
trap 'live_server_stop; rm -rf "$work"' EXIT
live_server_fixture "$work" "schemathesis-repository-password"
export BUNKER_ADMIN_PASSWORD="schemathesis-admin-password"
"$bin" init --quiet
"$bin" backup --quiet --description "before schemathesis"

live_server_start "$bin" "$work/serve.log"
base="http://127.0.0.1:$port/api/v1"

token=$(curl -fs -X POST "$base/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\": \"admin\", \"password\": \"$BUNKER_ADMIN_PASSWORD\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

echo "== schemathesis against $base"
# Login is fuzzed too: its failures are answered 401, then 429 (with Retry-After) once this
# address has failed too often; a locked administrator keeps the token taken above.
(cd "$work" && st run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-15}" --max-time "${SCHEMATHESIS_MAX_TIME:-75}" \
    --generation-database none --seed 6 --workers 1 --no-color)
