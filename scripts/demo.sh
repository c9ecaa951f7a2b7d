#!/usr/bin/env bash
# Bunker's main job on an embedded default: a local repository and an SQLite catalog under
# ./.bunker/demo, a demo clinic (an SQLite database in WAL mode and a studies tree) configured
# as sources; then backup → change → incremental backup → verify → restore drill, and finally
# `bunker serve`: the HTTP API and the scheduler, until Ctrl-C.
# BUNKER_DEMO_NO_SERVE=1 stops before serving; BUNKER_LISTEN picks the address (127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${BUNKER_BIN:-$PWD/.build/release/bunker}
demo=${BUNKER_DEMO_DIR:-$PWD/.bunker/demo}
mkdir -p "$demo"
export BUNKER_CONFIG=${BUNKER_CONFIG:-$demo/bunker.toml}
export BUNKER_PASSWORD=${BUNKER_PASSWORD:-demo-password-change-me}

if [ ! -f "$demo/app.db" ]; then
    echo "== A demo clinic in $demo: app.db (SQLite, WAL) and studies/"
    sqlite3 "$demo/app.db" >/dev/null <<'SQL'
PRAGMA journal_mode = wal;
CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT NOT NULL, born TEXT, notes TEXT);
CREATE TABLE visits (id INTEGER PRIMARY KEY, patient INTEGER REFERENCES patients(id), at TEXT, finding TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO patients SELECT i, 'Patient ' || i, date('1950-01-01', '+' || (i * 7) || ' days'),
    'Follow-up in ' || (i % 8) || ' weeks; lesion ' || (i % 17) || ' mm.' FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
INSERT INTO visits SELECT i, 1 + i % 2000, datetime('2025-01-01', '+' || i || ' hours'), 'finding ' || i FROM n;
SQL
    mkdir -p "$demo/studies/2025/patient-001" "$demo/studies/2025/patient-002"
    for i in $(seq 1 200); do
        printf 'Dermatology note %d\nLesion measured %d mm.\n' "$i" $((i % 17)) > "$demo/studies/2025/patient-00$((i % 2 + 1))/note-$i.txt"
    done
    head -c 4000000 /dev/urandom > "$demo/studies/2025/patient-001/scan.dcm"
fi

if [ ! -f "$BUNKER_CONFIG" ]; then
    cat > "$BUNKER_CONFIG" <<TOML
data_dir = "$demo/data"

[repository]
path = "$demo/repository"

[[source]]
name = "app-db"
kind = "sqlite"
path = "$demo/app.db"

[[source]]
name = "studies"
kind = "files"
path = "$demo/studies"

[server]
listen = "${BUNKER_LISTEN:-127.0.0.1:8080}"
TOML
fi

if [ ! -f "$demo/repository/config" ]; then
    echo "== Creating the repository $demo/repository"
    "$bin" init
fi
echo "== Backup of every source (database online copy + file tree)"
"$bin" backup --description "make run"
echo "== The application writes; an incremental backup stores only what changed"
sqlite3 "$demo/app.db" "UPDATE patients SET notes = notes || ' Reviewed.' WHERE id % 50 = 0; INSERT INTO visits (patient, at, finding) VALUES (7, datetime('now'), 'new');"
echo "Amended note" >> "$demo/studies/2025/patient-001/note-2.txt"
"$bin" backup --type full
echo "== Snapshots"
"$bin" snapshots
echo "== Verify every stored byte"
"$bin" verify --read-data
echo "== Restore drill: restore into scratch places, check, time it"
"$bin" drill
echo "== Repository statistics"
"$bin" stats
echo "== The audit trail"
"$bin" audit verify

if [ "${BUNKER_DEMO_NO_SERVE:-}" = "1" ]; then
    exit 0
fi
echo "== Starting the server (Ctrl-C stops it)"
exec "$bin" serve
