#!/usr/bin/env bash
# Scrapes a live `bunker serve` as Prometheus would, with a service token: creates a VIEWER token
# with `bunker token create`, fetches /api/v1/metrics with it (Authorization: Bearer), and parses
# the body with the official Prometheus Python client's parser
# (prometheus_client.parser.text_string_to_metric_families), checking that the parse succeeds and
# that known families carry the values of the backup made before. Then revokes the token with the
# CLI while the server runs, and checks that the next scrape gets 401. Installs prometheus_client
# with pip when it is missing. A few seconds. BUNKER selects the binary (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import prometheus_client.parser' 2>/dev/null; then
    echo "== Installing prometheus_client"
    python3 -m pip install --quiet prometheus_client
fi
bin=${BUNKER:-$(swift build --show-bin-path)/bunker}
[ -x "$bin" ] || { echo "no bunker binary at $bin: run swift build first" >&2; exit 1; }

work=$(mktemp -d)
. scripts/live-server.sh
trap 'live_server_stop; rm -rf "$work"' EXIT
live_server_fixture "$work" "prometheus-repository-password"
export BUNKER_ADMIN_PASSWORD="prometheus-admin-password"
"$bin" init --quiet
"$bin" backup --quiet --description "before the scrape"
"$bin" token create prometheus --role VIEWER --expires 1d --quiet > "$work/bunker-token"

live_server_start "$bin" "$work/serve.log"
url="http://127.0.0.1:$port/api/v1/metrics"

echo "== Scraping $url with a service token"
curl -fsS -H "Authorization: Bearer $(cat "$work/bunker-token")" "$url" > "$work/metrics.txt"
python3 - "$work/metrics.txt" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
families = {family.name: family for family in text_string_to_metric_families(text)}
# The parser names a counter's family without its _total suffix.
for name in ["bunker_backups", "bunker_restores", "bunker_repository_size_bytes", "bunker_repository_snapshots",
             "bunker_last_backup_success_timestamp_seconds"]:
    assert name in families, f"no family {name}; parsed: {sorted(families)}"
assert families["bunker_backups"].type == "counter", families["bunker_backups"].type

def value(family, sample_name, **labels):
    matches = [s.value for s in families[family].samples if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, f"{sample_name}{labels}: {matches}"
    return matches[0]

assert value("bunker_backups", "bunker_backups_total", outcome="success") == 1, "the backup made before the scrape is counted"
assert value("bunker_repository_snapshots", "bunker_repository_snapshots") == 1
assert value("bunker_repository_size_bytes", "bunker_repository_size_bytes") > 0
print(f"parsed {len(families)} metric families")
PY

status=$(curl -s -o /dev/null -w '%{http_code}' "$url")
[ "$status" = 401 ] || { echo "a scrape without a token got $status, not 401" >&2; exit 1; }
"$bin" token revoke prometheus --quiet
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$work/bunker-token")" "$url")
[ "$status" = 401 ] || { echo "a scrape with a revoked token got $status, not 401" >&2; exit 1; }
echo "== Scrape with a service token: ok (revoked: 401)"
