#!/usr/bin/env bash
# Bunker's main job on an embedded default: a local repository under ./.bunker, a generated
# sample tree, then backup → change → incremental backup → verify → restore, and the result.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=.build/release/bunker
data=${BUNKER_DEMO_DIR:-.bunker/demo}
export BUNKER_REPOSITORY=${BUNKER_REPOSITORY:-$data/repository}
export BUNKER_PASSWORD=${BUNKER_PASSWORD:-demo-password-change-me}

echo "== Sample clinic tree in $data/studies"
rm -rf "$data/studies" "$data/restored"
mkdir -p "$data/studies/2025/patient-001" "$data/studies/2025/patient-002" "$data/studies/empty"
for i in $(seq 1 200); do
    printf 'Patient note %d\nFollow-up in %d weeks; lesion measured %d mm.\n' "$i" $((i % 8)) $((i % 17)) \
        > "$data/studies/2025/patient-00$((i % 2 + 1))/note-$i.txt"
done
head -c 8000000 /dev/urandom > "$data/studies/2025/patient-001/scan.dcm"
seq 1 200000 | sed 's/$/,measurement,ok/' > "$data/studies/2025/measurements.csv"
ln -sf 2025/measurements.csv "$data/studies/latest.csv"

if [ ! -f "$BUNKER_REPOSITORY/config" ]; then
    echo "== Creating the repository $BUNKER_REPOSITORY"
    "$bin" init
fi
echo "== Backup"
"$bin" backup "$data/studies" --tag demo --description "make run"
echo "== A small change, then an incremental backup"
echo "Amended note" >> "$data/studies/2025/patient-001/note-2.txt"
"$bin" backup "$data/studies" --tag demo
echo "== Snapshots"
"$bin" snapshots
echo "== Verify every stored byte"
"$bin" verify --read-data
echo "== Restore the latest snapshot into $data/restored"
"$bin" restore latest --target "$data/restored"
diff -r "$data/studies" "$data/restored/studies" && echo "Restored tree is identical to the source."
echo "== Repository statistics"
"$bin" stats
echo "== The audit trail of what was just done (catalog in ./.bunker)"
"$bin" audit list --limit 20
"$bin" audit verify
