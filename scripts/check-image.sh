#!/usr/bin/env bash
# What can be proven of the container image on a machine without a Docker engine (issue 18):
# the release binary, built as the Dockerfile builds it (--static-swift-stdlib), runs inside a
# minimal Debian 12 root filesystem that mmdebstrap makes with exactly the packages the
# Dockerfile's run stage installs (read from the Dockerfile itself), as its non-root user
# `bunker` (uid 10001, made by the Dockerfile's own commands), under chroot: init, back up a
# SQLite database and a tree of files, verify every byte, restore both and compare them with
# the originals, and export the ZIP (its database.sql made by the sqlite3 shell there), whose
# SHA256SUMS must check.
#
# Usage: scripts/check-image.sh [BINARY]     (default: builds it with --static-swift-stdlib)
# Needs root (chroot, mounts) and Debian's mirror (mmdebstrap downloads the packages); installs
# mmdebstrap when missing. WORK (default a new directory under /tmp) keeps the root filesystem.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "check-image.sh needs root (chroot and mounts)" >&2; exit 1; }
if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "== Installing mmdebstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi

bin=${1:-}
if [ -z "$bin" ]; then
    echo "== Building bunker as the Dockerfile does (release, --static-swift-stdlib)"
    swift build -c release --product bunker --static-swift-stdlib
    bin="$(swift build -c release --show-bin-path)/bunker"
fi
[ -x "$bin" ] || { echo "no bunker binary at $bin" >&2; exit 1; }

# The run stage's packages: the lines of its `apt-get install` from the one naming libzstd1 to
# the `&& rm`, with the PostgreSQL major it defaults to.
pg_major=$(sed -n 's/^ARG PG_MAJOR=\([0-9]*\)$/\1/p' Dockerfile)
packages=$(awk '/^FROM debian/ {run = 1} run && /libzstd1/ {on = 1} on && /&& rm/ {exit} on {print}' Dockerfile \
    | tr -d '\\' | tr ' ' '\n' | grep -E '^[a-z"$]' | grep -vE '^(apt-get|install|rm|&&|DEBIAN_FRONTEND)' \
    | sed "s/\"postgresql-client-\${PG_MAJOR}\"/postgresql-client-$pg_major/" | sort -u | paste -sd, -)
[ -n "$packages" ] || { echo "could not read the run stage's packages from the Dockerfile" >&2; exit 1; }
echo "== Run-stage packages (from the Dockerfile): $packages"

work=${WORK:-$(mktemp -d /tmp/bunker-image.XXXXXX)}
mkdir -p "$work"
root="$work/root"
if [ ! -x "$root/usr/bin/sqlite3" ]; then
    rm -rf "$root"
    echo "== mmdebstrap bookworm into $root"
    mmdebstrap --quiet --variant=apt --include="$packages" bookworm "$root"
fi
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    umount "$root/dev" 2>/dev/null || true
}
trap cleanup EXIT
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"

# The Dockerfile's user and directories, by its own commands.
user_commands=$(awk '/^RUN groupadd/ {on = 1} on {print} on && !/\\$/ {exit}' Dockerfile | sed 's/^RUN //' | tr -d '\\' | tr '\n' ' ')
chroot "$root" /bin/bash -c "id bunker >/dev/null 2>&1 || ($user_commands)"
install -m 0755 "$bin" "$root/usr/local/bin/bunker"

# Data: a SQLite database and a tree, owned by the user.
rm -rf "$root/srv/clinic" "$root/repository"/* "$root/var/lib/bunker"/* "$root/tmp/restored"
mkdir -p "$root/srv/clinic/studies/2025" "$root/srv/clinic/db"
for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom > "$root/srv/clinic/studies/2025/scan-$i.dcm"; done
echo "note" > "$root/srv/clinic/studies/readme.txt"
chroot "$root" sqlite3 /srv/clinic/db/app.db "CREATE TABLE patients(id INTEGER PRIMARY KEY, name TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000) INSERT INTO patients SELECT i, 'patient ' || i FROM n;"
cat > "$root/etc/bunker/bunker.toml" <<'EOF'
data_dir = "/var/lib/bunker"

[repository]
path = "/repository"

[[source]]
name = "app-db"
kind = "sqlite"
path = "/srv/clinic/db/app.db"

[[source]]
name = "studies"
kind = "files"
path = "/srv/clinic/studies"
EOF
chroot "$root" chown -R bunker:bunker /srv/clinic

as_bunker() {
    chroot --userspec=10001:10001 "$root" /usr/bin/env -i HOME=/var/lib/bunker PATH=/usr/local/bin:/usr/bin:/bin \
        BUNKER_CONFIG=/etc/bunker/bunker.toml BUNKER_PASSWORD=image-check-password "$@"
}
echo "== As user bunker inside the root filesystem"
as_bunker bunker --version
as_bunker bunker init
as_bunker bunker backup --type full --description "image check"
as_bunker bunker verify --read-data
as_bunker bunker restore latest --target /tmp/restored
diff -r "$root/srv/clinic/studies" "$root/tmp/restored/studies"
restored_db=$(find "$root/tmp/restored/app-db" -name '*.db' | head -1)
[ -n "$restored_db" ] || { echo "the SQLite database was not restored" >&2; exit 1; }
want=$(chroot "$root" sqlite3 /srv/clinic/db/app.db "SELECT count(*), sum(id) FROM patients")
got=$(chroot "$root" sqlite3 "${restored_db#$root}" "SELECT count(*), sum(id) FROM patients")
[ "$want" = "$got" ] || { echo "the restored database differs: $got, not $want" >&2; exit 1; }
# The ZIP export writes database.sql with the sqlite3 shell, which the run stage installs for it.
as_bunker bunker export latest --zip /tmp/backup.zip
(cd "$work" && rm -rf unzipped && mkdir unzipped && cd unzipped && unzip -q "$root/tmp/backup.zip" && sha256sum -c --quiet SHA256SUMS)
grep -q "INSERT INTO" "$work"/unzipped/database.sql || grep -rq "INSERT INTO" "$work"/unzipped/*/database.sql
echo "image check passed: the static binary backs up, verifies and restores a SQLite database and a tree as uid 10001 with only the run stage's packages ($packages)"
