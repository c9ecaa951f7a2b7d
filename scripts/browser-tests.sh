#!/usr/bin/env bash
# Drives the web console in a real headless Chromium (Selenium, tests/browser/console_test.py)
# against a live `bunker serve`: log in, back up with live progress, browse and download a file,
# restore with a wrong then the right password, find it in the audit trail, verify the chain,
# and check that an AUDITOR sees no restore button and is refused by the route.
#
# Installs Debian's chromium and chromium-driver (apt-get) and Selenium (pip) when missing. The
# server runs on a free loopback port over a temporary data directory, repository and sources,
# and is stopped at the end. A screenshot of each page is saved under BROWSER_TEST_OUTPUT
# (default: a new directory under /tmp, printed at the end). BUNKER selects the binary
# (default: the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "== Installing chromium and chromium-driver"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! python3 -c 'import selenium' >/dev/null 2>&1; then
    echo "== Installing selenium"
    python3 -m pip install --quiet selenium
fi
bin=${BUNKER:-$(swift build --show-bin-path)/bunker}
[ -x "$bin" ] || { echo "no bunker binary at $bin: run swift build first" >&2; exit 1; }

out=${BROWSER_TEST_OUTPUT:-$(mktemp -d /tmp/bunker-browser-test.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d)
. scripts/live-server.sh
trap 'live_server_stop; rm -rf "$work"' EXIT
live_server_fixture "$work" "browser-test-repository-password"
head -c 300000 /dev/urandom > "$work/studies/2025/scan-0001.dcm"
export CONSOLE_ADMIN_PASSWORD="browser-test-admin-password" CONSOLE_AUDITOR_PASSWORD="browser-test-auditor-password"
export CONSOLE_VIEWER_PASSWORD="browser-test-viewer-password"
"$bin" init --quiet
BUNKER_USER_PASSWORD="$CONSOLE_ADMIN_PASSWORD" "$bin" user add admin --full-name "Ada Admin" --role SYSTEM_ADMIN --quiet
BUNKER_USER_PASSWORD="$CONSOLE_AUDITOR_PASSWORD" "$bin" user add auditor --full-name "Otto Auditor" --role AUDITOR --quiet
BUNKER_USER_PASSWORD="$CONSOLE_VIEWER_PASSWORD" "$bin" user add viewer --full-name "Vic Viewer" --role VIEWER --quiet
"$bin" backup --quiet --type database --description "last night's database backup"
"$bin" drill --quiet > /dev/null
"$bin" hold add latest --reason "litigation 12" --quiet > /dev/null

live_server_start "$bin" "$work/serve.log"

echo "== browser tests against http://127.0.0.1:$port/ (screenshots in $out)"
status=0
CONSOLE_URL="http://127.0.0.1:$port" CONSOLE_SOURCES="$work/studies" CONSOLE_RESTORE_TARGET="$work/restored-files" BROWSER_TEST_OUTPUT="$out" \
    timeout 300 python3 tests/browser/console_test.py || status=$?
if [ "$status" -ne 0 ]; then
    echo "== bunker serve's log" >&2
    tail -n 40 "$work/serve.log" >&2
fi
echo "screenshots: $out"
exit "$status"
