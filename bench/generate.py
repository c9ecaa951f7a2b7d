#!/usr/bin/env python3
"""Generate a deterministic, realistic clinic data set for the Bunker benchmark.

The data set is one directory with two parts:

    db/clinic.db   a SQLite database in WAL mode (~40% of the size): patients, appointments,
                   free-text notes, an audit log and BLOB attachments. Rows are inserted day by
                   day over two years of history, so the tables interleave in the file the way
                   they do in a database that grew in production.
    files/         a study tree (~60%): thousands of 1-50 KiB JSON and text documents in
                   per-patient folders, tens of 1-20 MiB incompressible images, and
                   compressible CSV exports and application logs.

The same --size-mb and --seed give the same bytes (with the same Python and SQLite versions).
Random bytes come from random.Random(seed).randbytes and text from a small Zipf-weighted word
list, so 1 GiB takes well under a minute or two on one core. Standard library only.

--files N sets about how many files the whole set has: the documents' share of the tree is then
cut into smaller documents (log-uniform from 1 KiB up to a bound chosen so that their mean fills
the share with that many). Without it the documents are 1-50 KiB, about 20 files per MiB; the
10 GiB set of the performance issue wants about half a million files, about 49 per MiB.

Usage: python3 bench/generate.py OUT_DIR [--size-mb 1024] [--seed 42] [--files N]
"""

from __future__ import annotations

import argparse
import array
import datetime as dt
import json
import math
import operator
import os
import random
import sqlite3
import sys
import time
from pathlib import Path

MIB = 1024 * 1024
KIB = 1024

#: First day of the generated history; `mutate.py` continues after the last one.
START_DATE = dt.datetime(2022, 1, 3, 7, 0, 0)
#: Days of history in the database.
HISTORY_DAYS = 730

#: Share of the whole data set taken by the database; the file tree gets the rest.
DB_SHARE = 0.40
#: How much of each table's share of the database it takes (by raw bytes inserted).
TABLE_SHARES = {
    "patients": 0.05,
    "appointments": 0.10,
    "notes": 0.40,
    "audit_log": 0.15,
    "attachments": 0.30,
}
#: Raw bytes inserted grow by about this factor in the file (B-tree pages, indexes, row headers).
SQLITE_OVERHEAD = 1.12
#: How the file tree's budget is split between kinds of files.
TREE_SHARES = {"images": 0.45, "documents": 0.38, "exports": 0.10, "logs": 0.07}

# Ordered from frequent to rare; a Zipf-like weighting is applied in `TextMaker`.
WORDS = """
the of and to a in patient with is was for on no at as by be are not this reports denies
history left right pain mg daily blood pressure normal follow up plan review today noted
has had continue stable exam she he they her his within limits symptoms medication
treatment chronic acute mild moderate severe since last visit week weeks months year
years ago after before onset intermittent persistent improved worsening unchanged
assessment recommended advised discussed referral clinic nurse doctor physician therapy
dose twice once tablet oral topical prescribed refill allergy allergies known none
examination heart lungs clear abdomen soft tender non bilateral swelling rash fever cough
shortness breath chest headache dizziness nausea vomiting fatigue sleep appetite weight
loss gain diet exercise smoking alcohol denied occasional family social lives alone
married works retired independent mobility walking aid fall risk assessment score
laboratory results glucose hemoglobin cholesterol creatinine potassium sodium within
elevated reduced range repeat test ordered imaging xray ultrasound mri ct scan showed
findings consistent suggestive likely unlikely diagnosis differential including
hypertension diabetes asthma copd arthritis depression anxiety migraine infection
vaccination influenza booster given tolerated well adverse reaction observed minutes
consent obtained explained risks benefits alternatives questions answered understanding
verbalized agrees return if worse emergency department urgent routine appointment
scheduled months weeks telephone call letter sent gp specialist cardiology neurology
orthopedics dermatology physiotherapy occupational dietitian pharmacy wound dressing
changed healing granulation infection signs absent present swab culture antibiotics
course completed ongoing stopped switched increased decreased titrated target achieved
metformin lisinopril amlodipine atorvastatin salbutamol omeprazole sertraline ibuprofen
paracetamol insulin warfarin apixaban levothyroxine prednisolone amoxicillin
120/80 135/85 140/90 72bpm 88bpm 36.8C 37.9C 98% 95% 5.4mmol/L 7.2% 4.1 2.5 10 20 50
""".split()

FIRST_NAMES = """
Anna Ben Clara David Emma Felix Greta Hannah Ivan Julia Karl Lena Marco Nina Oskar Paula
Quentin Rosa Samuel Tara Ulrich Vera Walter Xenia Yusuf Zoe Amira Bruno Chiara Dmitri Elif
Farid Gabriel Helga Ines Jonas Katja Liam Mila Noah Olga Pedro Rania Sofia Tomas Uma Viktor
""".split()
LAST_NAMES = """
Meyer Schmidt Nguyen Rossi Kowalski Garcia Novak Jensen Dubois Silva Yilmaz Papadopoulos
Fischer Weber Wagner Becker Hoffmann Keller Richter Klein Wolf Neumann Schwarz Braun Zimmer
Hartmann Lange Werner Krause Lehmann Huber Kaiser Fuchs Peters Scholz Moeller Vogel Jung
""".split()
STREETS = "Main Oak Lake Hill Park Station Church Mill School River Garden Market".split()
CLINICIANS = [f"dr.{n.lower()}" for n in LAST_NAMES[:14]] + ["nurse.ali", "nurse.berg", "pt.costa"]
ROOMS = [f"R{n:02d}" for n in range(1, 19)]
APPOINTMENT_STATUS = ["booked", "arrived", "completed", "completed", "completed", "no-show", "cancelled"]
APPOINTMENT_REASONS = [
    "annual check-up", "follow-up", "medication review", "vaccination", "wound care",
    "blood test", "physiotherapy", "new complaint", "chronic care review", "referral letter",
]
NOTE_KINDS = ["progress", "soap", "phone", "letter", "discharge", "triage"]
AUDIT_ACTIONS = ["read", "read", "read", "read", "update", "create", "print", "export", "login"]
AUDIT_ENTITIES = ["patient", "appointment", "note", "attachment"]
ATTACHMENT_KINDS = [("scan", "application/pdf", "pdf"), ("photo", "image/jpeg", "jpg"),
                    ("ecg", "application/pdf", "pdf"), ("consent", "application/pdf", "pdf")]
LAB_TESTS = [("GLU", "mmol/L", 3.5, 11.0), ("HBA1C", "%", 4.5, 10.0), ("CHOL", "mmol/L", 3.0, 8.0),
             ("CREA", "umol/L", 45, 160), ("K", "mmol/L", 3.2, 5.6), ("NA", "mmol/L", 130, 148),
             ("HB", "g/dL", 9.5, 17.5), ("TSH", "mU/L", 0.2, 6.5), ("CRP", "mg/L", 0.1, 60)]
LOG_LEVELS = ["INFO"] * 12 + ["DEBUG"] * 5 + ["WARN"] * 2 + ["ERROR"]
API_PATHS = ["/api/patients/{}", "/api/patients/{}/notes", "/api/appointments/{}",
             "/api/attachments/{}", "/api/search?q=name", "/api/schedule/today", "/health"]

SCHEMA = """
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    mrn TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    address TEXT,
    insurance_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE appointments (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    starts_at TEXT NOT NULL,
    duration_min INTEGER NOT NULL,
    clinician TEXT NOT NULL,
    room TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX appointments_patient ON appointments(patient_id);
CREATE INDEX appointments_starts_at ON appointments(starts_at);
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    appointment_id INTEGER REFERENCES appointments(id),
    author TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX notes_patient ON notes(patient_id);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id INTEGER,
    details TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX attachments_patient ON attachments(patient_id);
"""


class TextMaker:
    """Cheap, deterministic English-like clinical text from a Zipf-weighted word list."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # Repeating word i in proportion to 1/(i+1) makes uniform draws follow Zipf's law. The
        # pool has exactly 65536 entries so that two random bytes pick a word.
        weights = [1 / (i + 1) for i in range(len(WORDS))]
        counts = [max(1, int(65536 * w / sum(weights))) for w in weights]
        counts[0] += 65536 - sum(counts)
        self.pool = [w for w, n in zip(WORDS, counts) for _ in range(n)]
        self.mean_word = sum(len(w) + 1 for w in self.pool) / len(self.pool)

    def words(self, count: int) -> tuple[str, ...]:
        """`count` random words (bulk draws from randbytes: much faster than choices)."""
        indices = array.array("H", self.rng.randbytes(2 * count))
        if sys.byteorder == "big":
            indices.byteswap()
        return operator.itemgetter(*indices)(self.pool) if count > 1 else (self.pool[indices[0]],)

    def text(self, nbytes: int) -> str:
        """About `nbytes` of sentences."""
        rng = self.rng
        words = list(self.words(max(3, int(nbytes / self.mean_word))))
        words[0] = words[0].capitalize()
        end = 5 + int(rng.random() * 14)  # sentences of 6 to 19 words
        while end < len(words) - 1:
            words[end] += "."
            words[end + 1] = words[end + 1].capitalize()
            end += 6 + int(rng.random() * 14)
        words[-1] += "."
        return " ".join(words)

    def paragraphs(self, nbytes: int) -> str:
        """About `nbytes` of text in paragraphs of a few hundred bytes."""
        parts = []
        left = nbytes
        while left > 0:
            size = min(left, 200 + int(self.rng.random() * 900))
            parts.append(self.text(size))
            left -= size + 2
        return "\n\n".join(parts)


def format_record(record: dict) -> bytes:
    """JSON with two-space indentation and one observation per line.

    Only the small outer object goes through json's slow pretty-printer; the observations are
    encoded one by one by its fast C encoder.
    """
    observations = record.pop("observations")
    body = json.dumps({**record, "observations": "@OBSERVATIONS@"}, indent=2)
    lines = ",\n    ".join(map(json.dumps, observations))
    record["observations"] = observations
    return (body.replace('"@OBSERVATIONS@"', f"[\n    {lines}\n  ]") + "\n").encode()


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """A size between low and high, small ones more likely (as real file sizes are)."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def timestamp(day: int, rng: random.Random) -> dt.datetime:
    """A moment during office hours on history day `day`."""
    return START_DATE + dt.timedelta(days=day, seconds=int(rng.random() * 11 * 3600))


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


def mrn(patient_id: int) -> str:
    return f"P{patient_id:07d}"


# --- database ---------------------------------------------------------------------------------


class ClinicRows:
    """Makes rows for each table; shared by the generator and by `mutate.py`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.text = TextMaker(rng)

    def patient(self, pid: int, day: int) -> tuple:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        born = dt.date(1930, 1, 1) + dt.timedelta(days=int(rng.random() * 33000))
        created = iso(timestamp(day, rng))
        return (pid, mrn(pid), first, last, born.isoformat(), rng.choice("FMFMX"),
                self.phone(), f"{first}.{last}{pid % 97}@example.org".lower(), self.address(),
                f"INS-{rng.getrandbits(40):010X}", created, created)

    def phone(self) -> str:
        return f"+49 30 {self.rng.randrange(1000000, 9999999)}"

    def address(self) -> str:
        rng = self.rng
        return f"{rng.randrange(1, 200)} {rng.choice(STREETS)} Street, {rng.randrange(10000, 99999)} Berlin"

    def appointment(self, aid: int, patient_id: int, day: int) -> tuple:
        rng = self.rng
        starts = timestamp(day + rng.randrange(0, 30), rng)
        created = iso(timestamp(day, rng))
        return (aid, patient_id, iso(starts), rng.choice((10, 15, 20, 30, 45, 60)),
                rng.choice(CLINICIANS), rng.choice(ROOMS), rng.choice(APPOINTMENT_STATUS),
                rng.choice(APPOINTMENT_REASONS), created, created)

    def note(self, nid: int, patient_id: int, appointment_id: int | None, day: int) -> tuple:
        rng = self.rng
        created = iso(timestamp(day, rng))
        body = self.text.paragraphs(int(log_uniform(rng, 200, 8 * KIB)))
        return (nid, patient_id, appointment_id, rng.choice(CLINICIANS), rng.choice(NOTE_KINDS),
                created, created, body)

    def audit(self, lid: int, entity_id: int, day: int) -> tuple:
        rng = self.rng
        action, entity = rng.choice(AUDIT_ACTIONS), rng.choice(AUDIT_ENTITIES)
        details = json.dumps({
            "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "session": f"{rng.getrandbits(64):016x}",
            "client": rng.choice(["web/4.2.1", "web/4.3.0", "ios/2.8", "api"]),
            "fields": rng.sample(["name", "phone", "address", "notes", "status", "dose"], k=2),
            "comment": self.text.text(int(log_uniform(rng, 20, 400))),
        })
        return (lid, iso(timestamp(day, rng)), rng.choice(CLINICIANS), action, entity,
                entity_id, details)

    def attachment(self, att_id: int, patient_id: int, day: int) -> tuple:
        rng = self.rng
        kind, mime, ext = rng.choice(ATTACHMENT_KINDS)
        data = rng.randbytes(int(log_uniform(rng, 16 * KIB, 1 * MIB)))
        return (att_id, patient_id, f"{kind}-{att_id:07d}.{ext}", mime, len(data),
                iso(timestamp(day, rng)), data)


def row_bytes(row: tuple) -> int:
    """Approximate stored size of a row: text and blobs by length, numbers as 8 bytes."""
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row)


INSERTS = {
    "patients": "INSERT INTO patients VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
    "appointments": "INSERT INTO appointments VALUES (?,?,?,?,?,?,?,?,?,?)",
    "notes": "INSERT INTO notes VALUES (?,?,?,?,?,?,?,?)",
    "audit_log": "INSERT INTO audit_log VALUES (?,?,?,?,?,?,?)",
    "attachments": "INSERT INTO attachments VALUES (?,?,?,?,?,?,?)",
}


def generate_database(path: Path, budget: int, seed: int) -> None:
    """Write the clinic database, filling about `budget` bytes, and leave it in WAL mode."""
    rng = random.Random(f"{seed}:db")
    rows = ClinicRows(rng)
    raw_budget = budget / SQLITE_OVERHEAD
    targets = {table: raw_budget * share for table, share in TABLE_SHARES.items()}
    filled = dict.fromkeys(TABLE_SHARES, 0)
    last_id = dict.fromkeys(TABLE_SHARES, 0)

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    # Bulk load without a journal, then switch to WAL as the application would run it.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    for day in range(HISTORY_DAYS):
        progress = (day + 1) / HISTORY_DAYS
        batch: dict[str, list[tuple]] = {table: [] for table in TABLE_SHARES}
        for table in TABLE_SHARES:  # patients first, so that other rows can refer to them
            while filled[table] < targets[table] * progress or last_id["patients"] == 0:
                last_id[table] += 1
                row = make_row(rows, table, last_id, day)
                batch[table].append(row)
                filled[table] += row_bytes(row)
        for table, values in batch.items():
            conn.executemany(INSERTS[table], values)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("ANALYZE")
    conn.close()


def make_row(rows: ClinicRows, table: str, last_id: dict[str, int], day: int) -> tuple:
    """The next row of `table`, referring to random earlier patients and appointments."""
    rng = rows.rng
    new_id = last_id[table]
    patient = 1 + int(rng.random() * max(1, last_id["patients"]))
    if table == "patients":
        return rows.patient(new_id, day)
    if table == "appointments":
        return rows.appointment(new_id, patient, day)
    if table == "notes":
        appointment = 1 + int(rng.random() * last_id["appointments"]) if last_id["appointments"] else None
        return rows.note(new_id, patient, appointment, day)
    if table == "audit_log":
        return rows.audit(new_id, patient, day)
    return rows.attachment(new_id, patient, day)


# --- file tree --------------------------------------------------------------------------------


class TreeWriter:
    """Writes the study tree's files; shared by the generator and by `mutate.py`."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.text = TextMaker(rng)

    def write(self, relative: str, data: bytes, day: int | None = None) -> int:
        """Write one file; its mtime is set to its history day when one is given."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if day is not None:
            moment = (START_DATE + dt.timedelta(days=day, hours=10)).timestamp()
            os.utime(path, (moment, moment))
        return len(data)

    def document(self, patient_id: int, index: int, day: int, size: int) -> tuple[str, bytes]:
        """A 1-50 KiB visit record, lab report (JSON), letter or consent form (text)."""
        rng = self.rng
        date = (START_DATE + dt.timedelta(days=day)).date().isoformat()
        kind = rng.choice(("visit", "visit", "labs", "letter", "consent"))
        folder = f"patients/{mrn(patient_id)}"
        if kind in ("visit", "labs"):
            name = f"{folder}/{date}-{kind}-{index:06d}.json"
            return name, self.json_record(patient_id, kind, date, size)
        name = f"{folder}/{date}-{kind}-{index:06d}.txt"
        header = (f"{kind.upper()}\nPatient: {mrn(patient_id)}\nDate: {date}\n"
                  f"Author: {rng.choice(CLINICIANS)}\n\n")
        return name, (header + self.text.paragraphs(max(100, size - len(header))) + "\n").encode()

    def json_record(self, patient_id: int, kind: str, date: str, size: int) -> bytes:
        rng = self.rng
        count = max(1, int(size * 0.6 / 110))
        observations = [
            {"code": code, "value": round(low + (high - low) * rng.random(), 2), "unit": unit,
             "at": f"{date}T{7 + int(rng.random() * 11):02d}:{int(rng.random() * 60):02d}:00",
             "flag": flag}
            for (code, unit, low, high), flag in zip(rng.choices(LAB_TESTS, k=count),
                                                      rng.choices(("", "", "", "H", "L"), k=count))
        ]
        record = {
            "resourceType": "Encounter" if kind == "visit" else "DiagnosticReport",
            "id": f"{kind}-{rng.getrandbits(48):012x}",
            "patient": mrn(patient_id),
            "date": date,
            "clinician": rng.choice(CLINICIANS),
            "vitals": {"bp": f"{rng.randrange(100, 160)}/{rng.randrange(60, 100)}",
                       "hr": rng.randrange(50, 110), "temp": round(rng.uniform(36.0, 38.5), 1)},
            "diagnoses": [f"{rng.choice('EIJKMF')}{rng.randrange(10, 99)}.{rng.randrange(10)}"
                          for _ in range(rng.randrange(1, 4))],
            "observations": observations,
            "summary": self.text.text(int(size * 0.3)),
        }
        return format_record(record)

    def image(self, size: int) -> bytes:
        """Incompressible bytes standing in for a DICOM or JPEG image, with a small header."""
        return b"\0" * 128 + b"DICM" + self.rng.randbytes(max(0, size - 132))

    def csv_export(self, size: int, day: int) -> bytes:
        """Lab results of the last month, about `size` bytes (lines are ~55 bytes)."""
        rng = self.rng
        count = max(1, size // 55)
        start = START_DATE + dt.timedelta(days=day - 30)
        moments = sorted(start + dt.timedelta(seconds=int(rng.random() * 30 * 86400)) for _ in range(count))
        lines = ["taken_at,patient,test,value,unit,flag,lab"]
        lines += [
            f"{moment:%Y-%m-%dT%H:%M:%S},P{1 + int(rng.random() * 50000):07d},"
            f"{code},{low + (high - low) * rng.random():.2f},{unit},{flag},LAB{lab}"
            for moment, (code, unit, low, high), flag, lab in zip(
                moments, rng.choices(LAB_TESTS, k=count), rng.choices(("", "", "H", "L"), k=count),
                rng.choices("12345", k=count))
        ]
        return ("\n".join(lines) + "\n").encode()

    def log(self, size: int, day: int) -> bytes:
        """An application log of one day, about `size` bytes (lines are ~105 bytes)."""
        rng = self.rng
        count = max(1, size // 105)
        start = START_DATE + dt.timedelta(days=day)
        moments = sorted(start + dt.timedelta(seconds=rng.random() * 12 * 3600) for _ in range(count))
        lines = [
            f"{moment.isoformat(sep=' ', timespec='milliseconds')} {level:5} "
            f"[worker-{int(rng.random() * 8)}] {method} {path.format(1 + int(rng.random() * 50000))} "
            f"{status} {1 + int(rng.random() * 900)}ms user={user} req={rng.getrandbits(32):08x}"
            for moment, level, method, path, status, user in zip(
                moments, rng.choices(LOG_LEVELS, k=count), rng.choices(("GET", "GET", "GET", "POST", "PUT"), k=count),
                rng.choices(API_PATHS, k=count), rng.choices((200, 200, 200, 200, 201, 304, 404, 500), k=count),
                rng.choices(CLINICIANS, k=count))
        ]
        return ("\n".join(lines) + "\n").encode()


#: Bounds of a document's size without --files.
DOCUMENT_SIZES = (1 * KIB, 50 * KIB)


def log_uniform_mean(low: float, high: float) -> float:
    return (high - low) / math.log(high / low)


def document_sizes(budget: float, files: int | None, database_files: int) -> tuple[float, float]:
    """The bounds of a document's size that make the whole set about `files` files.

    Images, exports and logs are a few hundred files even at 10 GiB, so the documents carry the
    count: their mean size is the documents' budget over the files left for them, and the upper
    bound of the log-uniform draw is found by bisection (the mean grows with it).
    """
    if files is None:
        return DOCUMENT_SIZES
    low = DOCUMENT_SIZES[0]
    wanted = budget / max(1, files - database_files)
    if wanted <= low * 1.05:
        raise SystemExit(f"--files {files} leaves documents under {low * 1.05 / KIB:.2f} KiB each: "
                         "ask for fewer files or a bigger --size-mb")
    lo, hi = low * 1.0001, 64 * MIB
    for _ in range(100):
        middle = (lo + hi) / 2
        lo, hi = (middle, hi) if log_uniform_mean(low, middle) < wanted else (lo, middle)
    return low, hi


def generate_tree(root: Path, budget: int, seed: int, files: int | None = None) -> None:
    """Write the study tree, filling about `budget` bytes (with about `files` files in all)."""
    rng = random.Random(f"{seed}:files")
    writer = TreeWriter(root, rng)
    budgets = {kind: budget * share for kind, share in TREE_SHARES.items()}
    # The database is a file and its WAL; images, exports and logs are counted as they come,
    # estimated here from their mean sizes so that the documents can take the rest.
    others = 2 + int(budgets["images"] / (10.5 * MIB) + budgets["exports"] / (2.7 * MIB)
                     + budgets["logs"] / (1.3 * MIB))
    smallest, largest = document_sizes(budgets["documents"], files, others)

    # Documents: patients get a handful to a few dozen each.
    written, index, patient = 0, 0, 0
    while written < budgets["documents"]:
        patient += 1 + int(rng.random() * 7)
        for _ in range(rng.randrange(3, 30)):
            index += 1
            day = int(rng.random() * HISTORY_DAYS)
            name, data = writer.document(patient, index, day, int(log_uniform(rng, smallest, largest)))
            written += writer.write(name, data, day)

    written, index = 0, 0
    while written < budgets["images"]:
        index += 1
        day = int(rng.random() * HISTORY_DAYS)
        size = min(int(rng.uniform(1 * MIB, 20 * MIB)), max(256 * KIB, int(budgets["images"] - written)))
        month = (START_DATE + dt.timedelta(days=day)).strftime("%Y/%m")
        written += writer.write(f"imaging/{month}/IMG-{index:05d}.dcm", writer.image(size), day)

    written, index = 0, 0
    while written < budgets["exports"]:
        index += 1
        day = min(HISTORY_DAYS - 1, index * 30)
        size = min(int(log_uniform(rng, 512 * KIB, 8 * MIB)), max(64 * KIB, int(budgets["exports"] - written)))
        written += writer.write(f"exports/lab-results-{index:04d}.csv", writer.csv_export(size, day), day)

    written, day = 0, HISTORY_DAYS
    while written < budgets["logs"] and day > 0:
        day -= 1
        date = (START_DATE + dt.timedelta(days=day)).date().isoformat()
        size = min(int(log_uniform(rng, 256 * KIB, 4 * MIB)), max(16 * KIB, int(budgets["logs"] - written)))
        written += writer.write(f"logs/app-{date}.log", writer.log(size, day), day)


def tree_size(root: Path) -> tuple[int, int]:
    """Total bytes and number of regular files under root."""
    total = count = 0
    for folder, _, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
            count += 1
    return total, count


def generate(out: Path, size_mb: int, seed: int, files: int | None = None) -> None:
    """Generate the whole data set into `out` (which must not exist or be empty)."""
    target = size_mb * MIB
    started = time.monotonic()
    generate_database(out / "db" / "clinic.db", int(target * DB_SHARE), seed)
    db_bytes = (out / "db" / "clinic.db").stat().st_size
    print(f"database: {db_bytes / MIB:.1f} MiB ({time.monotonic() - started:.1f}s)", file=sys.stderr)
    generate_tree(out / "files", max(1 * MIB, target - db_bytes), seed, files)
    total, count = tree_size(out)
    print(f"data set: {total / MIB:.1f} MiB in {count} files ({time.monotonic() - started:.1f}s)",
          file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory to create (must not exist or be empty)")
    parser.add_argument("--size-mb", type=int, default=1024, help="approximate size in MiB (default 1024)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--files", type=int, help="about how many files in all (default: documents of 1-50 KiB)")
    args = parser.parse_args()
    if args.files is not None and args.files < 1:
        parser.error("--files must be at least 1")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    generate(args.out, args.size_mb, args.seed, args.files)


if __name__ == "__main__":
    main()
