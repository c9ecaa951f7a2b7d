#!/usr/bin/env python3
"""Apply one deterministic "day" of realistic change to a data set made by generate.py.

The database (db/clinic.db, opened in WAL mode as the application would) gets a few percent of
its rows changed, scattered across the file: patients' contact details and appointment statuses
updated, addenda appended to notes, new appointments, notes, audit entries and attachments
inserted, some appointments, notes and attachments deleted (their pages are reused by later
inserts). The file tree gets a hundred documents modified (JSON rewritten, letters given an
addendum), fifty added, twenty removed, one new image and one new day's log. On small data sets
the document counts are capped at 10% of the documents.

The same data set, --seed and --day always give the same result, so every tool in a benchmark
run can be shown identical data. Standard library only.

Usage: python3 bench/mutate.py DATA_DIR [--seed 42] [--day 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sqlite3
import sys
from pathlib import Path

from generate import (APPOINTMENT_STATUS, CLINICIANS, HISTORY_DAYS, INSERTS, KIB, MIB, START_DATE,
                      ClinicRows, TreeWriter, format_record, iso, log_uniform, timestamp)

#: Per table: share of rows (of the table's current highest id) updated, inserted, deleted.
DB_CHANGES = {
    "patients": (0.02, 0.003, 0.0),
    "appointments": (0.03, 0.01, 0.005),
    "notes": (0.01, 0.01, 0.003),
    "audit_log": (0.0, 0.02, 0.0),
    "attachments": (0.0, 0.005, 0.003),
}
DOCUMENTS_MODIFIED = 100
DOCUMENTS_ADDED = 50
DOCUMENTS_REMOVED = 20


def scattered_ids(rng: random.Random, highest: int, share: float) -> list[int]:
    """About share × highest distinct ids spread over 1...highest, in ascending order."""
    count = min(highest, round(highest * share))
    return sorted(rng.sample(range(1, highest + 1), count)) if count else []


def mutate_database(path: Path, rng: random.Random, day: int) -> dict[str, int]:
    """Change a few percent of the rows on history day `day`; returns rows touched per kind."""
    rows = ClinicRows(rng)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    highest = {table: conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
               for table in DB_CHANGES}
    touched = {"updated": 0, "inserted": 0, "deleted": 0}
    now = iso(timestamp(day, rng))

    conn.execute("BEGIN")
    for table, (update_share, insert_share, delete_share) in DB_CHANGES.items():
        for row_id in scattered_ids(rng, highest[table], update_share):
            touched["updated"] += update_row(conn, rows, table, row_id, now)
        for row_id in scattered_ids(rng, highest[table], delete_share):
            touched["deleted"] += conn.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,)).rowcount
        inserts = max(1, round(highest[table] * insert_share))
        for offset in range(1, inserts + 1):
            new_id = highest[table] + offset
            patient = 1 + int(rng.random() * highest["patients"])
            conn.execute(INSERTS[table], new_row(rows, table, new_id, patient, highest, day))
            touched["inserted"] += 1
    conn.execute("COMMIT")
    conn.close()  # the last connection checkpoints the WAL into the database file
    return touched


def update_row(conn: sqlite3.Connection, rows: ClinicRows, table: str, row_id: int, now: str) -> int:
    rng = rows.rng
    if table == "patients":
        sql, values = "UPDATE patients SET phone = ?, address = ?, updated_at = ? WHERE id = ?", (
            rows.phone(), rows.address(), now, row_id)
    elif table == "appointments":
        sql, values = "UPDATE appointments SET status = ?, clinician = ?, updated_at = ? WHERE id = ?", (
            rng.choice(APPOINTMENT_STATUS), rng.choice(CLINICIANS), now, row_id)
    else:  # notes: an addendum makes the row grow, as amended notes do
        addendum = f"\n\nAddendum {now} by {rng.choice(CLINICIANS)}: " + rows.text.text(
            int(log_uniform(rng, 80, 1200)))
        sql, values = "UPDATE notes SET body = body || ?, updated_at = ? WHERE id = ?", (
            addendum, now, row_id)
    return conn.execute(sql, values).rowcount


def new_row(rows: ClinicRows, table: str, new_id: int, patient: int, highest: dict[str, int],
            day: int) -> tuple:
    if table == "patients":
        return rows.patient(new_id, day)
    if table == "appointments":
        return rows.appointment(new_id, patient, day)
    if table == "notes":
        return rows.note(new_id, patient, 1 + int(rows.rng.random() * highest["appointments"]), day)
    if table == "audit_log":
        return rows.audit(new_id, patient, day)
    return rows.attachment(new_id, patient, day)


def mutate_tree(root: Path, rng: random.Random, day: int) -> dict[str, int]:
    """Modify, add and remove documents, add an image and a log on history day `day`."""
    writer = TreeWriter(root, rng)
    documents = sorted(str(p.relative_to(root)) for p in (root / "patients").rglob("*") if p.is_file())
    cap = max(1, len(documents) // 10)
    counts = {"modified": 0, "added": 0, "removed": 0}

    modified, removed = min(cap, DOCUMENTS_MODIFIED), min(cap, DOCUMENTS_REMOVED)
    chosen = rng.sample(documents, min(len(documents), modified + removed))
    for relative in chosen[:modified]:
        modify_document(root / relative, writer, day)
        counts["modified"] += 1
    for relative in chosen[modified:]:
        (root / relative).unlink()
        counts["removed"] += 1

    for index in range(min(cap, DOCUMENTS_ADDED)):
        patient = int(rng.choice(documents).split("/")[1][1:])
        name, data = writer.document(patient, 10_000_000 + day * 1000 + index, day,
                                     int(log_uniform(rng, 1 * KIB, 50 * KIB)))
        writer.write(name, data)
        counts["added"] += 1

    # One new image and one day's log, kept in proportion on small data sets.
    date = START_DATE + dt.timedelta(days=day)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    size = min(int(rng.uniform(1 * MIB, 20 * MIB)), max(256 * KIB, total // 50))
    writer.write(f"imaging/{date:%Y/%m}/IMG-{date:%Y%m%d}-new.dcm", writer.image(size))
    log = writer.log(min(1 * MIB, max(16 * KIB, total // 500)), day)
    writer.write(f"logs/app-{date:%Y-%m-%d}.log", log)
    counts["added"] += 2
    return counts


def modify_document(path: Path, writer: TreeWriter, day: int) -> None:
    """Rewrite a JSON record with a new observation, or append an addendum to a letter."""
    rng = writer.rng
    date = (START_DATE + dt.timedelta(days=day)).date().isoformat()
    if path.suffix == ".json":
        record = json.loads(path.read_text())
        record["observations"].append({"code": "CRP", "value": round(rng.uniform(0.1, 60), 2),
                                       "unit": "mg/L", "at": f"{date}T12:00:00", "flag": ""})
        record["clinician"] = rng.choice(CLINICIANS)
        record["amended"] = date
        path.write_bytes(format_record(record))
    else:
        with path.open("a") as letter:
            letter.write(f"\nAddendum {date}: " + writer.text.paragraphs(int(log_uniform(rng, 200, 3000))) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="data set directory made by generate.py")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--day", type=int, default=1, help="which day of change to apply (default 1)")
    args = parser.parse_args()
    database = args.data / "db" / "clinic.db"
    if not database.is_file() or not (args.data / "files").is_dir():
        parser.error(f"{args.data} is not a data set made by generate.py")

    history_day = HISTORY_DAYS - 1 + args.day
    rows = mutate_database(database, random.Random(f"{args.seed}:mutate-db:{args.day}"), history_day)
    files = mutate_tree(args.data / "files", random.Random(f"{args.seed}:mutate-files:{args.day}"), history_day)
    print(f"day {args.day}: rows {rows}, files {files}", file=sys.stderr)


if __name__ == "__main__":
    main()
