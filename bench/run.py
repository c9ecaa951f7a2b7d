#!/usr/bin/env python3
"""Benchmark Bunker against restic and Borg on the same clinic data set, in one run.

For each tool (encrypted, compressed, passwords from the environment) the runner measures, on
identical data: init, the first full backup, a backup with no change, a backup after one day of
change (mutate.py), a restore of the latest snapshot into an empty directory until the data is
on disk (restic and Borg followed by `sync -f`, as Bunker's restore ends with its own syncfs), and
a verification that reads all data; for Bunker also opening the index and restoring one file.
Every step is run under /usr/bin/time -v for wall time, CPU time (user+sys) and peak RSS; the
repository's size is taken after each step and its growth is the step's "bytes added".
Cheap-to-repeat steps run --repeat times and report the median.

It also measures the machine's limits (SHA-256, AES-256-GCM, zstd -3 both ways, reading the tree,
writing until on disk), then prints Markdown tables per tool, the ratios of Bunker to restic and
to Borg with the targets of issue 19, and Bunker's backup and restore throughput as a share of
the fastest this machine could do them, and writes them to bench/RESULTS.md (RESULTS-<size>mb.md
for other sizes).

Standard library only. Missing tools are installed from Debian's packages (apt-get), Borg 1.4
from PyPI (pip); a missing tool or a failing step is reported in the tables and the run goes on.

With an S3 column: Bunker and restic back up to, and restore from, one SeaweedFS server on
loopback (bench/s3.py), against each other and against Bunker on a local directory.

Usage: python3 bench/run.py [--size-mb 1024] [--repeat 3] [--tools bunker,restic,borg]
                            [--work bench/work] [--bunker-bin PATH] [--output FILE]
                            [--no-s3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import s3

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
MIB = 1024 * 1024
GNU_TIME = "/usr/bin/time"
PASSWORD = "bench-password-not-secret"
ALL_TOOLS = ("bunker", "restic", "borg")
#: Debian package providing each command the runner needs (Borg comes from PyPI, see borg_binary).
PACKAGES = {"restic": "restic", GNU_TIME: "time", "zstd": "zstd", "openssl": "openssl"}
#: The Borg release measured: 1.4 from PyPI, not Debian's 1.2 (issue 19).
BORG_REQUIREMENT = "borgbackup==1.4.*"
#: Debian packages that PyPI's borgbackup source package needs to build.
BORG_BUILD_PACKAGES = ("libssl-dev", "liblz4-dev", "libzstd-dev", "libxxhash-dev", "libacl1-dev", "pkg-config")

#: Steps in the order they run, with their labels in the tables.
STEPS = {
    "init": "init",
    "full": "first full backup",
    "nochange": "no-change backup",
    "change": "after-day-change backup",
    "restore": "restore latest",
    "verify": "verify (read all data)",
    "index": "open the index",
    "restore1": "restore one file",
}
#: Steps every tool runs; the rest are Bunker's own (the index and one-file restore of issue 19).
SHARED_STEPS = ("init", "full", "nochange", "change", "restore", "verify")
#: Targets of issue 19, as (label, step, metric, limit as a multiple of restic in the same run).
TARGETS = [
    ("First full backup, wall", "full", "wall", 0.45),
    ("No-change backup, wall", "nochange", "wall", 0.20),
    ("After-day-change backup, wall", "change", "wall", 0.25),
    ("Bytes added by the day", "change", "added", 0.12),
    ("Restore until on disk, wall", "restore", "wall", 0.40),
    ("Verify, wall", "verify", "wall", 0.40),
    ("Repository size after first backup", "full", "repo", 0.95),
    *((f"Peak memory, {STEPS[step]}", step, "rss", 0.80) for step in SHARED_STEPS),
]
#: Issue 19's targets in absolute terms (set for the 10 GiB data set), as (label, step, metric, limit).
ABSOLUTE_TARGETS = [
    ("Open the index (about a million blobs at 10 GiB)", "index", "wall", 1.0, "s"),
    ("Restore one file out of the snapshot", "restore1", "wall", 1.0, "s"),
    ("Peak memory, every step (worst shown)", None, "rss", 200.0, "MiB"),
]
#: Share of the machine's limit that Bunker's backup and restore should reach (issue 19).
LIMIT_SHARE_TARGET = 0.70


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- tools ------------------------------------------------------------------------------------


class Tool:
    """How to drive one backup tool. Backups run in the data set's parent and name `data`."""

    name = ""
    label = ""
    password_variable = ""

    def __init__(self, binary: str | None) -> None:
        self.binary = binary

    def version(self) -> str:
        return first_line([self.binary, "--version"])

    def init(self, repo: Path) -> list[str]:
        raise NotImplementedError

    def backup(self, repo: Path) -> list[str]:
        raise NotImplementedError

    def restore(self, repo: Path, target: Path) -> list[str]:
        """Restores the latest snapshot; runs with `target` (empty) as working directory."""
        raise NotImplementedError

    def verify(self, repo: Path) -> list[str]:
        raise NotImplementedError

    #: Whether the restore itself flushes the restored data to disk before it exits. Bunker's does
    #: (syncfs of the target); the others' are timed with a `sync -f` after them (timed_restore).
    flushes_restore = False

    def open_index(self, repo: Path) -> list[str] | None:
        """A cheap command that must load the whole repository index, or None where not measured."""
        return None

    def restore_file(self, repo: Path, target: Path, path: str) -> list[str] | None:
        """Restores the one file `path` (relative to the backed-up `data`'s parent), or None."""
        return None


def timed_restore(tool: Tool, argv: list[str], target: Path) -> list[str]:
    """The restore command as timed: until the restored data is on disk.

    Bunker's restore calls syncfs on its target before it exits; restic and Borg leave their
    writes in the page cache, so their time would stop before the disk has them. `sync -f`
    (GNU coreutils' syncfs of the target's file system) after them makes the comparison fair.
    A shell runs both, so /usr/bin/time still reports the restore's peak memory and the CPU of both.
    """
    if tool.flushes_restore:
        return argv
    return ["sh", "-c", 'target=$1; shift; "$@" && exec sync -f "$target"', "sh", str(target), *argv]


class Restic(Tool):
    name, label, password_variable = "restic", "restic", "RESTIC_PASSWORD"

    def version(self) -> str:
        return first_line([self.binary, "version"])

    def init(self, repo):
        # Repository version 2 is the one with compression (restic's default "auto" level).
        return [self.binary, "init", "--repo", str(repo), "--repository-version", "2"]

    def backup(self, repo):
        return [self.binary, "backup", "--repo", str(repo), "data"]

    def restore(self, repo, target):
        return [self.binary, "restore", "latest", "--repo", str(repo), "--target", str(target)]

    def verify(self, repo):
        return [self.binary, "check", "--read-data", "--repo", str(repo)]


class Borg(Tool):
    name, label, password_variable = "borg", "Borg", "BORG_PASSPHRASE"

    def __init__(self, binary):
        super().__init__(binary)
        self.archives = 0

    def init(self, repo):
        return [self.binary, "init", "--encryption=repokey", str(repo)]

    def backup(self, repo):
        self.archives += 1
        return [self.binary, "create", "--compression", "zstd,3", f"{repo}::state-{self.archives}", "data"]

    def restore(self, repo, target):
        return [self.binary, "extract", f"{repo}::state-{self.archives}"]

    def verify(self, repo):
        return [self.binary, "check", "--verify-data", str(repo)]


class Bunker(Tool):
    name, label, password_variable = "bunker", "Bunker", "BUNKER_PASSWORD"
    flushes_restore = True

    def version(self):
        found = super().version()
        return found if found != "unknown" else first_line([self.binary, "version"])

    def init(self, repo):
        return [self.binary, "init", "--repo", str(repo)]

    def backup(self, repo):
        return [self.binary, "backup", "--repo", str(repo), "data", "--quiet"]

    def restore(self, repo, target):
        return [self.binary, "restore", "--repo", str(repo), "latest", "--target", str(target)]

    def verify(self, repo):
        return [self.binary, "verify", "--repo", str(repo), "--read-data"]

    def open_index(self, repo):
        # `bunker stats` opens the repository with its index loaded and walks every blob in it;
        # `snapshots` would not do (it opens the repository without the index).
        return [self.binary, "stats", "--repo", str(repo)]

    def restore_file(self, repo, target, path):
        return [self.binary, "restore", "--repo", str(repo), "latest", "--target", str(target), "--include", path]


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown ({error.__class__.__name__})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines and out.returncode == 0 else "unknown"


# --- setup ------------------------------------------------------------------------------------


class Apt:
    """Installs Debian packages, running `apt-get update` at most once per run."""

    def __init__(self) -> None:
        self.updated = False

    @staticmethod
    def installed(package: str) -> bool:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        return done.returncode == 0 and done.stdout.strip().endswith(" installed")

    def install(self, packages: list[str], why: str) -> bool:
        """Installs `packages`; False (with a message) when that is impossible or fails."""
        if not packages:
            return True
        prefix = [] if os.geteuid() == 0 else (["sudo"] if shutil.which("sudo") else None)
        if prefix is None or shutil.which("apt-get") is None:
            log(f"{why}: cannot install {' '.join(packages)} here (need root and apt-get)")
            return False
        log(f"{why}: installing {' '.join(packages)} from Debian's packages")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        steps = [] if self.updated else [[*prefix, "apt-get", "update"]]
        for argv in (*steps, [*prefix, "apt-get", "install", "-y", *packages]):
            # Its progress goes to stderr with the runner's own, leaving stdout to the report.
            if subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr).returncode != 0:
                log(f"'{' '.join(argv)}' failed; going on with what is installed")
                return False
            self.updated = self.updated or argv[-1] == "update"
        return True


def install_missing(tools: list[str], apt: Apt) -> None:
    """Install the Debian packages of any missing command."""
    needed = [cmd for cmd in (*[t for t in tools if t in PACKAGES], GNU_TIME, "zstd", "openssl")
              if shutil.which(cmd) is None]
    apt.install(sorted({PACKAGES[cmd] for cmd in needed}), f"missing {', '.join(needed)}")


def borg_binary(apt: Apt) -> tuple[str | None, str | None]:
    """The `borg` that pip installed for this Python (Borg 1.4 from PyPI), installing it when missing;
    returns (path, error).

    The path comes from the installed distribution's own file list, so it is the entry point pip
    wrote (under the interpreter's prefix, a virtualenv's or the user's scripts directory), never
    Debian's /usr/bin/borg (1.2) nor a pyenv shim found first on PATH.
    """
    script = ("import importlib.metadata as m; d = m.distribution('borgbackup'); "
              "print(d.version); print(next(d.locate_file(f).resolve() for f in d.files "
              "if f.name == 'borg' and f.parent.name in ('bin', 'Scripts')))")
    for attempt in range(2):
        found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        lines = found.stdout.split()
        if found.returncode == 0 and len(lines) == 2 and os.access(lines[1], os.X_OK):
            if lines[0].startswith("1.4."):
                return lines[1], None
            if attempt == 1:
                return None, f"pip installed borgbackup {lines[0]}, not 1.4"
        if attempt == 0:
            # A source package: Borg's C extensions link OpenSSL, lz4, zstd, xxHash and libacl.
            apt.install([p for p in BORG_BUILD_PACKAGES if not Apt.installed(p)], "Borg 1.4 needs to build")
            log(f"installing Borg 1.4 from PyPI: {sys.executable} -m pip install '{BORG_REQUIREMENT}'")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", BORG_REQUIREMENT],
                           stdin=subprocess.DEVNULL, stdout=sys.stderr)
    return None, f"Borg 1.4 is not installed and could not be installed ({sys.executable} -m pip install '{BORG_REQUIREMENT}')"


def build_bunker() -> tuple[str | None, str | None]:
    """Build the release binary; returns (path, error)."""
    if shutil.which("swift") is None:
        return None, "swift is not installed"
    log("building Bunker: swift build -c release --product bunker")
    done = subprocess.run(["swift", "build", "-c", "release", "--product", "bunker"], cwd=REPO_ROOT,
                          stdin=subprocess.DEVNULL)
    binary = REPO_ROOT / ".build" / "release" / "bunker"
    if done.returncode != 0 or not binary.is_file():
        return None, f"swift build failed (exit {done.returncode})"
    return str(binary), None


@dataclass
class DataSet:
    """A generated data set: `path` is the `data` directory that every tool backs up."""

    path: Path
    size_mb: int
    seed: int
    bytes: int
    files: int
    database_bytes: int
    digest: str


def ensure_dataset(work: Path, size_mb: int, seed: int, files: int | None = None) -> DataSet:
    """Generate the data set once per size, seed, file count and generator version, then reuse it."""
    home = work / "datasets" / (f"clinic-{size_mb}mb-seed{seed}" + (f"-{files}files" if files else ""))
    marker = home / "dataset.json"
    generator = hashlib.sha256((BENCH_DIR / "generate.py").read_bytes()).hexdigest()[:16]
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.pop("generator", None) == generator:
            return DataSet(path=home / "data", **saved)
        log("generate.py changed since the cached data set was made; generating it again")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    data = home / "data"
    log(f"generating a {size_mb} MiB data set (seed {seed}{f', about {files} files' if files else ''}) in {data}")
    subprocess.run([sys.executable, str(BENCH_DIR / "generate.py"), str(data), "--size-mb", str(size_mb),
                    "--seed", str(seed)] + (["--files", str(files)] if files else []),
                   check=True, stdin=subprocess.DEVNULL)
    total, files = tree_size(data)
    dataset = DataSet(path=data, size_mb=size_mb, seed=seed, bytes=total, files=files,
                      database_bytes=(data / "db" / "clinic.db").stat().st_size, digest=tree_digest(data))
    saved = {k: v for k, v in dataset.__dict__.items() if k != "path"}
    marker.write_text(json.dumps({**saved, "generator": generator}, indent=2))
    return dataset


def clean_environment(tool: Tool, home: Path) -> dict[str, str]:
    """The parent's environment without backup settings, with a private HOME and the password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "BORG_", "BUNKER_", "BACKUP_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"), XDG_CONFIG_HOME=str(home / "config"))
    env[tool.password_variable] = PASSWORD
    return env


# --- files ------------------------------------------------------------------------------------


def walk_files(root: Path):
    """Paths of the regular files under root, in a stable order."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def tree_size(root: Path) -> tuple[int, int]:
    sizes = [os.path.getsize(path) for path in walk_files(root)]
    return sum(sizes), len(sizes)


def tree_digest(root: Path) -> str:
    """SHA-256 over every entry's relative path, kind and content (not times or owners)."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        relative = os.path.relpath(folder, root)
        digest.update(f"d {relative}\0".encode())
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                digest.update(f"l {relative}/{name} {os.readlink(path)}\0".encode())
            else:
                digest.update(f"f {relative}/{name} {file_sha256(path)}\0".encode())
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def read_tree(root: Path, evict_first: bool = False) -> tuple[int, float]:
    """Read every file once (to warm or measure the page cache); returns (bytes, seconds).

    With evict_first, each file's cached pages are dropped before it is read (posix_fadvise),
    which needs no privileges and gives a cold-ish sequential read.
    """
    total = 0
    started = time.monotonic()
    buffer = bytearray(MIB)
    for path in walk_files(root):
        fd = os.open(path, os.O_RDONLY)
        try:
            if evict_first:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            while count := os.readv(fd, [buffer]):
                total += count
        finally:
            os.close(fd)
    return total, time.monotonic() - started


def single_file(root: Path) -> Path:
    """The one-file restore's file: the middle one (in walk order) of the patients' documents.

    A small file in the widest part of the tree (tens of thousands of patient folders at 10 GiB),
    so its time is finding it (the trees on its path, not every tree), not copying its bytes.
    """
    patients = root / "files" / "patients"
    files = list(walk_files(patients if patients.is_dir() else root))
    return Path(files[len(files) // 2])


def find_restored_data(target: Path) -> Path:
    """Where a tool put the `data` directory it restored (some keep the absolute path)."""
    queue = [target]
    while queue:
        folder = queue.pop(0)
        if folder.name == "data" and (folder / "db").is_dir() and (folder / "files").is_dir():
            return folder
        queue.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()))
    return target


# --- measuring --------------------------------------------------------------------------------


class StepFailed(Exception):
    pass


@dataclass
class Run:
    wall: float
    cpu: float
    rss_kib: int
    added: int = 0


@dataclass
class Step:
    runs: list[Run] = field(default_factory=list)
    repo_bytes: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def median(self, metric: str) -> float | None:
        if metric == "repo":
            return self.repo_bytes
        values = [getattr(run, metric) for run in self.runs]
        return statistics.median(values) if values else None

    def peak(self, metric: str) -> float | None:
        values = [getattr(run, metric) for run in self.runs]
        return max(values) if values else None


#: Finished runs' folders, removed when the whole benchmark ends (see remove_later).
LEFT_FOR_THE_END: list[Path] = []


def remove_later(folder: Path, dataset_bytes: int) -> None:
    """Remove a finished run's folder when the whole benchmark ends, if the disk can wait.

    ext4 without a journal (this machine's root file system) does not give a new file an inode
    freed in the last minute or more (the kernel's `recently_deleted`): creating files right after
    tens of thousands were deleted scans past them all. A restore that followed the previous
    tool's clean-up took three times its system time (the S3 column's first Bunker restore: 17 s
    instead of 6). Removing at the end keeps each tool from paying for the one before it. Where
    the disk could not also hold the next run, the folder goes at once, and the log says so.
    """
    if shutil.disk_usage(folder.parent).free > 8 * dataset_bytes:
        LEFT_FOR_THE_END.append(folder)
    else:
        log(f"removing {folder} now (too little free disk to keep it until the end); "
            "a restore that follows soon may be slowed by ext4's inode reuse")
        shutil.rmtree(folder, ignore_errors=True)


def remove_left_folders() -> None:
    for folder in LEFT_FOR_THE_END:
        shutil.rmtree(folder, ignore_errors=True)
    LEFT_FOR_THE_END.clear()


def run_timed(argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> Run:
    """Run a command under /usr/bin/time -v; its output goes to log_path."""
    timing = log_path.with_suffix(".time")
    use_gnu_time = os.access(GNU_TIME, os.X_OK)
    with log_path.open("wb") as output:
        started = time.monotonic()
        if use_gnu_time:
            done = subprocess.run([GNU_TIME, "-v", "-o", str(timing), *argv], cwd=cwd, env=env,
                                  stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
            returncode, usage = done.returncode, None
        else:  # same numbers straight from the kernel
            child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                     stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)
            returncode = child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
    if returncode != 0:
        tail = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        raise StepFailed(f"exit {returncode}: {tail[-1].strip() if tail else 'no output'}")
    if usage is not None:
        return Run(wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss_kib=usage.ru_maxrss)
    return parse_gnu_time(timing.read_text(), wall)


def parse_gnu_time(report: str, fallback_wall: float) -> Run:
    """Wall, CPU and peak RSS from the output of /usr/bin/time -v."""
    fields = {}
    for line in report.splitlines():
        key, sep, value = line.strip().rpartition(": ")
        if sep:
            fields[key] = value.strip()
    wall = fallback_wall
    elapsed = fields.get("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    if elapsed:
        wall = 0.0
        for part in elapsed.split(":"):
            wall = wall * 60 + float(part)
    return Run(wall=wall, cpu=float(fields.get("User time (seconds)", 0)) + float(fields.get("System time (seconds)", 0)),
               rss_kib=int(fields.get("Maximum resident set size (kbytes)", 0)))


def repository_bytes(repo: Path) -> int:
    """Apparent size of the repository (the sum of its files' sizes, as du -sb counts)."""
    return tree_size(repo)[0] if repo.exists() else 0


@dataclass
class ToolResult:
    tool: Tool
    version: str = ""
    steps: dict[str, Step] = field(default_factory=dict)
    error: str | None = None
    changed_digest: str | None = None


class ToolBench:
    """Runs every step for one tool in its own directory under the work dir."""

    def __init__(self, tool: Tool, dataset: DataSet, work: Path, repeat: int) -> None:
        self.tool = tool
        self.dataset = dataset
        self.repeat = repeat
        self.root = work / "runs" / tool.name
        self.repo = self.root / "repo"
        self.source = self.root / "source"
        self.logs = work / "logs" / tool.name
        self.env = clean_environment(tool, self.root / "home")
        self.result = ToolResult(tool=tool)

    def run(self, keep: bool) -> ToolResult:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.logs, ignore_errors=True)
        for folder in (self.source, self.logs, self.root / "home"):
            folder.mkdir(parents=True)
        # A copy of state 0 that mutate.py then turns into state 1, identical for every tool.
        subprocess.run(["cp", "-a", str(self.dataset.path), str(self.source / "data")], check=True)
        self.result.version = self.tool.version()
        log(f"[{self.tool.name}] {self.result.version}")
        try:
            self.steps()
        finally:
            if not keep:
                remove_later(self.root, self.dataset.bytes)
        return self.result

    def steps(self) -> None:
        tool, repo, source, steps = self.tool, self.repo, self.source, self.result.steps
        steps["init"] = self.measure("init", lambda _: (tool.init(repo), source), 1)
        if steps["init"].error:
            for name in list(STEPS)[1:]:
                steps[name] = Step(error="skipped: init failed")
            return

        def backup(_: int) -> tuple[list[str], Path]:
            return tool.backup(repo), source

        def warm(_: int) -> None:
            read_tree(source / "data")

        steps["full"] = self.measure("full", backup, 1, before=warm)
        steps["nochange"] = self.measure("nochange", backup, self.repeat, before=warm)

        log(f"[{tool.name}] applying one day of change (mutate.py)")
        mutated = subprocess.run([sys.executable, str(BENCH_DIR / "mutate.py"), str(source / "data"),
                                  "--seed", str(self.dataset.seed), "--day", "1"], stdin=subprocess.DEVNULL)
        if mutated.returncode != 0:
            for name in ("change", "restore", "verify"):
                steps[name] = Step(error=f"skipped: mutate.py failed (exit {mutated.returncode})")
            return
        self.result.changed_digest = tree_digest(source / "data")
        steps["change"] = self.measure("change", backup, 1, before=warm)

        targets = [self.root / f"restore-{n + 1}" for n in range(self.repeat)]
        steps["restore"] = self.measure(
            "restore", lambda n: (timed_restore(tool, tool.restore(repo, targets[n]), targets[n]), targets[n]),
            self.repeat, before=lambda n: targets[n].mkdir(), after=self.check_restore(targets))
        steps["verify"] = self.measure("verify", lambda _: (tool.verify(repo), source), self.repeat)

        index = tool.open_index(repo)
        if index is not None:
            steps["index"] = self.measure("index", lambda _: (index, source), self.repeat)
        wanted = single_file(source / "data").relative_to(source).as_posix()
        singles = [self.root / f"restore-one-{n + 1}" for n in range(self.repeat)]
        if tool.restore_file(repo, singles[0], wanted) is not None:
            steps["restore1"] = self.measure(
                "restore1", lambda n: (tool.restore_file(repo, singles[n], wanted), singles[n]), self.repeat,
                before=lambda n: singles[n].mkdir(), after=self.check_single(singles, wanted))

        size = self.dataset.bytes
        for name in ("full", "restore", "verify"):
            wall = steps[name].median("wall")
            if wall and not steps[name].error:
                steps[name].notes.append(f"{size / wall / 1e6:.0f} MB/s")

    def check_restore(self, targets: list[Path]):
        """Compare the first restore with the source (untimed).

        The restores are kept until the tool's run ends: ext4 allocating inodes right after
        tens of thousands were deleted scans past the recently freed ones under the directory's
        lock, which made a restore after deleting the previous one up to twice as slow, for
        reasons no tool controls."""

        def after(n: int, step: Step) -> None:
            if n == 0 and not step.error:
                restored = tree_digest(find_restored_data(targets[n]))
                step.notes.append("restored data matches" if restored == self.result.changed_digest
                                  else "RESTORED DATA DIFFERS from the source")
        return after

    def check_single(self, targets: list[Path], wanted: str):
        """Compare the first one-file restore with the source (untimed): the file, and only it."""

        def after(n: int, step: Step) -> None:
            if n != 0 or step.error:
                return
            # Only under the restored top folder: the target is also the command's working
            # directory, where Bunker keeps its state (.bunker/).
            restored = list(walk_files(targets[n] / wanted.split("/")[0]))
            source = self.source / wanted
            if restored == [str(targets[n] / wanted)] and file_sha256(restored[0]) == file_sha256(str(source)):
                step.notes.append(f"{wanted} ({source.stat().st_size / 1024:,.0f} KiB) restored, matches")
            else:
                step.notes.append(f"RESTORE OF {wanted} WRONG: {len(restored)} files restored")
        return after

    def measure(self, name: str, command, repeat: int, before=None, after=None) -> Step:
        """Run a step `repeat` times (stopping at a failure).

        command(n) gives the argv and working directory of run n; before(n) runs untimed ahead
        of it and after(n, step) untimed behind it.
        """
        step = Step()
        for n in range(repeat):
            if before:
                before(n)
            argv, cwd = command(n)
            size_before = repository_bytes(self.repo)
            try:
                run = run_timed(argv, cwd, self.env, self.logs / f"{name}-{n + 1}.log")
            except (StepFailed, OSError) as error:
                step.error = str(error)
            else:
                run.added = repository_bytes(self.repo) - size_before
                step.runs.append(run)
            step.repo_bytes = repository_bytes(self.repo)
            if after:
                after(n, step)
            os.sync()  # so that this run's write-back is not paid by the next one
            if step.error:
                break
        status = f"FAILED ({step.error})" if step.error else (
            f"{step.median('wall'):.2f} s wall, {step.median('cpu'):.2f} s CPU, "
            f"{step.peak('rss_kib') / 1024:.0f} MiB peak")
        log(f"[{self.tool.name}] {STEPS[name]}: {status}")
        return step


class S3ToolBench(ToolBench):
    """The S3 column: init, first full backup and restore of the same data into a repository on
    a SeaweedFS server on loopback (bench/s3.py), the server's data directory counting as the
    repository's size."""

    def __init__(self, tool: Tool, dataset: DataSet, work: Path, repeat: int, server: s3.SeaweedFS) -> None:
        super().__init__(tool, dataset, work, repeat)
        self.root = work / "runs" / f"{tool.name}-s3"
        self.source = self.root / "source"
        self.logs = work / "logs" / f"{tool.name}-s3"
        self.env = {**clean_environment(tool, self.root / "home"), **server.environment()}
        self.repo = server.data
        self.location = s3.location(tool.name, server)

    def steps(self) -> None:
        tool, source, steps, where = self.tool, self.source, self.result.steps, self.location

        def command(argv: list[str]) -> list[str]:
            return s3.with_connections(tool.name, argv)

        steps["init"] = self.measure("init", lambda _: (command(tool.init(where)), source), 1)
        if steps["init"].error:
            for name in ("full", "restore"):
                steps[name] = Step(error="skipped: init failed")
            return
        steps["full"] = self.measure("full", lambda _: (command(tool.backup(where)), source), 1,
                                     before=lambda _: read_tree(source / "data"))
        self.result.changed_digest = self.dataset.digest
        targets = [self.root / f"restore-{n + 1}" for n in range(self.repeat)]
        steps["restore"] = self.measure(
            "restore", lambda n: (timed_restore(tool, command(tool.restore(where, targets[n])), targets[n]), targets[n]),
            self.repeat, before=lambda n: targets[n].mkdir(), after=self.check_restore(targets))
        for name in ("full", "restore"):
            wall = steps[name].median("wall")
            if wall and not steps[name].error:
                steps[name].notes.append(f"{self.dataset.bytes / wall / 1e6:.0f} MB/s")


def run_s3(adapters: dict[str, Tool], errors: dict[str, str], dataset: DataSet, work: Path,
           args) -> dict[str, ToolResult]:
    """Bunker and restic (those asked for) against one SeaweedFS server, stopped afterwards."""
    names = [n for n in ("bunker", "restic") if n in adapters]
    if not names:
        return {}
    server = s3.SeaweedFS(work)
    results: dict[str, ToolResult] = {}
    try:
        error = server.start()
        if error:
            log(f"[s3] not run: {error}")
            return {n: ToolResult(tool=adapters[n], error=error) for n in names}
        log(f"[s3] SeaweedFS serves S3 at {server.endpoint}")
        for name in names:
            if name in errors:
                results[name] = ToolResult(tool=adapters[name], error=errors[name])
                continue
            try:
                results[name] = S3ToolBench(adapters[name], dataset, work, args.repeat, server).run(args.keep)
            except (OSError, subprocess.CalledProcessError) as failure:
                results[name] = ToolResult(tool=adapters[name], error=f"benchmark aborted: {failure}")
    finally:
        server.stop()
    return results


#: Targets of the S3 column, as (label, step, metric, limit as a multiple of restic on S3).
S3_TARGETS = [
    ("S3 first full backup, wall", "full", "wall", 0.7),
    ("S3 restore, wall", "restore", "wall", 0.7),
    (f"S3 peak memory, worst step ({s3.CONNECTIONS} parallel uploads)", None, "rss", 1.0),
]


def s3_ratio_table(s3_results: dict[str, ToolResult], local: dict[str, ToolResult]) -> str | None:
    """Bunker on S3 against restic on S3, and against Bunker on a local directory."""
    me = s3_results.get("bunker")
    if me is None or me.error:
        return None
    rows = []
    restic = s3_results.get("restic")
    for label, step, name, limit in S3_TARGETS:
        value = ratio(me, restic, step, name)[0] if restic and not restic.error else None
        where = ratio(me, restic, step, name)[1] if value is not None else ""
        rows.append([label, f"≤ {limit:.2f}× restic", "n/a" if value is None else format_ratio(value, limit) + (f" ({where})" if where else ""),
                     "n/a" if value is None else ("pass" if value <= limit else "MISS")])
    home = local.get("bunker")
    for label, step in (("Bunker S3 / local throughput, first backup", "full"), ("Bunker S3 / local throughput, restore", "restore")):
        mine = metric(me, step, "wall")
        theirs = metric(home, step, "wall") if home and not home.error else None
        value = theirs / mine if mine and theirs else None
        rows.append([label, "≥ 0.80× local", "n/a" if value is None else f"{value:.2f}",
                     "n/a" if value is None else ("pass" if value >= 0.8 else "MISS")])
    return table(["Metric", "Target", "Ratio", "Result"], rows, right={2})


# --- machine ----------------------------------------------------------------------------------


def machine_line() -> str:
    uname = os.uname()
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f"{memory_kib / MIB:.1f} GiB RAM"
    except (OSError, AttributeError):
        memory = "unknown RAM"
    return f"{uname.sysname} {uname.release} {uname.machine} · {cpu} · {os.cpu_count()} cores · {memory}"


def openssl_speed(algorithm: str) -> float | None:
    """Single-core throughput in MB/s from `openssl speed` on 1 MiB blocks."""
    if shutil.which("openssl") is None:
        return None
    out = subprocess.run(["openssl", "speed", "-evp", algorithm, "-seconds", "1", "-bytes", "1048576"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    for line in out.stdout.splitlines():
        match = re.match(rf"{re.escape(algorithm)}\s+([\d.]+)k\s*$", line.strip(), re.IGNORECASE)
        if match:
            return float(match.group(1)) * 1000 / 1e6
    return None


@dataclass
class Limits:
    """The machine's measured ceilings (MB/s, None where not measured) and their table rows."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    sha256: float | None = None
    aes: float | None = None
    zstd_compress: float | None = None
    zstd_decompress: float | None = None
    zstd_ratio: float | None = None
    read_warm: float | None = None
    write_synced: float | None = None


def measure_limits(dataset: DataSet, work: Path) -> Limits:
    """The machine's ceilings for the work a backup and a restore do."""
    limits = Limits()
    rows = limits.rows
    sha = openssl_speed("sha256")
    if sha is None:
        block = os.urandom(64 * MIB)
        started = time.monotonic()
        hashlib.sha256(block).digest()
        sha = len(block) / (time.monotonic() - started) / 1e6
        rows.append(("SHA-256, one core (Python hashlib)", f"{sha:,.0f} MB/s"))
    else:
        rows.append(("SHA-256, one core (openssl speed)", f"{sha:,.0f} MB/s"))
    limits.sha256 = sha
    limits.aes = openssl_speed("aes-256-gcm")
    rows.append(("AES-256-GCM, one core (openssl speed)", f"{limits.aes:,.0f} MB/s" if limits.aes else "n/a (no openssl)"))

    zstd_speed(dataset, work, limits)

    total, spent = read_tree(dataset.path, evict_first=True)
    rows.append(("Sequential read of the tree, cold-ish (pages evicted)", f"{total / spent / 1e6:,.0f} MB/s"))
    total, spent = read_tree(dataset.path)
    limits.read_warm = total / spent / 1e6
    rows.append(("Sequential read of the tree, warm (page cache)", f"{limits.read_warm:,.0f} MB/s"))

    size, spent = write_synced(work / "limits", min(dataset.bytes, 1024 * MIB))
    limits.write_synced = size / spent / 1e6
    rows.append((f"Sequential write of {size / MIB:,.0f} MiB, one file, until on disk (syncfs)",
                 f"{limits.write_synced:,.0f} MB/s"))
    return limits


def write_synced(folder: Path, size: int) -> tuple[int, float]:
    """Write `size` bytes to one new file through the page cache, then `sync -f` its file system
    (as a restore's data is on disk only after its syncfs); returns (bytes, seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "write.bin"
    block = os.urandom(MIB)
    os.sync()  # earlier write-back is not this measure's
    started = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(fd, block[: min(MIB, size - written)])
    finally:
        os.close(fd)
    subprocess.run(["sync", "-f", str(path)], check=True)
    spent = time.monotonic() - started
    shutil.rmtree(folder, ignore_errors=True)
    return written, spent


def zstd_speed(dataset: DataSet, work: Path, limits: Limits) -> None:
    """zstd -3 compression and decompression on one core over a sample of the compressible data
    (database, documents, logs).

    zstd's own benchmark mode (-b) times both in memory, without file or pipe costs; both speeds
    are in bytes of uncompressed data per second.
    """
    label = "zstd -3 {}, one core, compressible sample"
    if shutil.which("zstd") is None:
        limits.rows += [(label.format(kind), "n/a (no zstd)") for kind in ("compression", "decompression")]
        return
    sample = work / "limits" / "sample.bin"
    sample.parent.mkdir(parents=True, exist_ok=True)
    half = 32 * MIB
    with sample.open("wb") as out:
        with (dataset.path / "db" / "clinic.db").open("rb") as database:
            out.write(database.read(half))
        written = 0
        for path in walk_files(dataset.path / "files"):
            if written >= half:
                break
            if "/imaging/" not in path:
                with open(path, "rb") as file:
                    written += out.write(file.read(half - written))
    size = sample.stat().st_size
    done = subprocess.run(["zstd", "-b3", "-e3", "-T1", "-i2", str(sample)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    shutil.rmtree(sample.parent, ignore_errors=True)
    found = re.findall(r"\(x?([\d.]+)\),\s*([\d.]+) MB/s,\s*([\d.]+) MB/s", done.stdout + done.stderr)
    if done.returncode != 0 or not found:
        limits.rows += [(label.format(kind), "failed") for kind in ("compression", "decompression")]
        return
    ratio_text, compress, decompress = found[-1]
    limits.zstd_ratio, limits.zstd_compress, limits.zstd_decompress = float(ratio_text), float(compress), float(decompress)
    limits.rows.append((f"{label.format('compression')} ({size / MIB:.0f} MiB, ratio {limits.zstd_ratio:.2f})",
                        f"{limits.zstd_compress:,.0f} MB/s"))
    limits.rows.append((label.format("decompression"), f"{limits.zstd_decompress:,.0f} MB/s"))


# --- report -----------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """A Markdown table padded so it also reads well in a terminal."""
    cells = [[str(c).replace("|", "/") for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value / MIB:,.1f}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def tool_table(result: ToolResult) -> str:
    rows = []
    for name, label in STEPS.items():
        step = result.steps.get(name)
        if step is None:
            continue
        notes = list(step.notes)
        if step.error:
            notes.insert(0, f"FAILED: {step.error[:160]}")
        rss = step.peak("rss_kib")
        rows.append([label, seconds(step.median("wall")), seconds(step.median("cpu")),
                     "—" if rss is None else f"{rss / 1024:,.0f}", mib(step.repo_bytes),
                     mib(step.median("added")), str(len(step.runs)), "; ".join(notes)])
    headers = ["Step", "Wall s", "CPU s", "Peak RSS MiB", "Repo MiB", "Added MiB", "Runs", "Notes"]
    return table(headers, rows, right={1, 2, 3, 4, 5, 6})


def metric(result: ToolResult, step: str, name: str) -> float | None:
    entry = result.steps.get(step)
    if entry is None or entry.error:
        return None
    return entry.peak("rss_kib") if name == "rss" else entry.median(name)


def ratio(subject: ToolResult, baseline: ToolResult, step: str | None, name: str) -> tuple[float | None, str]:
    """Subject/baseline for one target; for peak memory the worst step and its name."""
    if step is not None:
        mine, theirs = metric(subject, step, name), metric(baseline, step, name)
        return (mine / theirs if mine is not None and theirs else None), ""
    worst, where = None, ""
    for each in STEPS:
        mine, theirs = subject.steps.get(each), baseline.steps.get(each)
        if not mine or not theirs or mine.error or theirs.error or not mine.runs or not theirs.runs:
            continue
        value = mine.peak("rss_kib") / max(1, theirs.peak("rss_kib"))
        if worst is None or value > worst:
            worst, where = value, STEPS[each]
    return worst, where


def format_ratio(value: float, limit: float) -> str:
    """Two decimals, or three where two would hide which side of the limit the value is on."""
    text = f"{value:.2f}"
    return f"{value:.3f}" if float(text) == limit and value != limit else text


def ratio_table(results: dict[str, ToolResult]) -> tuple[str, str] | None:
    """Bunker (or else the first tool run) against each other tool; marks against restic."""
    names = list(results)
    if len(names) < 2:
        return None
    subject = "bunker" if "bunker" in results else names[0]
    baselines = [n for n in ("restic", "borg", "bunker") if n in results and n != subject]
    me = results[subject]
    with_targets = "restic" in baselines  # the targets are multiples of restic's figures
    headers = ["Metric", "Target"] if with_targets else ["Metric"]
    for base in baselines:
        headers.append(f"{me.tool.label}/{results[base].tool.label}")
        if base == "restic":
            headers.append("Result")
    rows = []
    for label, step, name, limit in TARGETS:
        row = [label, f"≤ {limit:.2f}× restic"] if with_targets else [label]
        for base in baselines:
            value, where = ratio(me, results[base], step, name)
            row.append("n/a" if value is None else format_ratio(value, limit) + (f" ({where})" if where else ""))
            if base == "restic":
                row.append("n/a" if value is None else ("pass" if value <= limit else "MISS"))
        rows.append(row)
    title = f"{me.tool.label} compared (ratios below 1 mean {me.tool.label} is faster or smaller)"
    first_number = 2 if with_targets else 1
    return title, table(headers, rows, right=set(range(first_number, len(headers))))


def absolute_table(results: dict[str, ToolResult]) -> str | None:
    """Bunker's figures against issue 19's absolute targets."""
    me = results.get("bunker")
    if me is None or me.error:
        return None
    rows = []
    for label, step, name, limit, unit in ABSOLUTE_TARGETS:
        if step is not None:
            value, where = metric(me, step, name), ""
        else:  # the worst step's peak memory
            peaks = [(entry.peak("rss_kib"), STEPS[each]) for each, entry in me.steps.items() if entry.runs]
            value, where = max(peaks) if peaks else (None, "")
            value = None if value is None else value / 1024
        shown = "n/a" if value is None else (f"{value:,.2f} s" if unit == "s" else f"{value:,.0f} MiB ({where})")
        rows.append([label, f"≤ {limit:,.0f} {unit}", shown,
                     "n/a" if value is None else ("pass" if value <= limit else "MISS")])
    return table(["Metric", "Target", "Bunker", "Result"], rows, right={2})


@dataclass
class Bound:
    """The fastest one operation on this data set could run here, and what it is made of."""

    cpu: float  # seconds of work on one core
    floor: float  # seconds of single-stream I/O that more cores do not shorten
    cores: int

    @property
    def seconds(self) -> float:
        return max(self.cpu / self.cores, self.floor)


def limit_section(limits: Limits, dataset: DataSet, results: dict[str, ToolResult]) -> list[str]:
    """Bunker's backup and restore throughput as a share of the fastest this machine could do them."""
    me = results.get("bunker")
    needed = (limits.sha256, limits.aes, limits.zstd_compress, limits.zstd_decompress, limits.zstd_ratio,
              limits.read_warm, limits.write_synced)
    stored = metric(me, "full", "repo") if me and not me.error else None
    if any(value is None for value in needed) or not stored:
        return ["Not computed: it needs every machine limit above and Bunker's first full backup."]
    mb = 1e6
    data, cores = dataset.bytes / mb, os.cpu_count() or 1
    stored /= mb
    r = limits.zstd_ratio
    # The repository holds the incompressible part as is and the compressible part at the sample's
    # ratio r: stored = (data - C) + C / r, so C = (data - stored) * r / (r - 1).
    compressible = min(data, max(0.0, (data - stored) * r / (r - 1))) if r > 1 else 0.0
    backup = Bound(cpu=data / limits.read_warm + 2 * data / limits.sha256 + compressible / limits.zstd_compress
                   + stored / limits.aes + stored / limits.write_synced,
                   floor=max(data / limits.read_warm, stored / limits.write_synced), cores=cores)
    restore = Bound(cpu=stored / limits.aes + compressible / limits.zstd_decompress + data / limits.sha256
                    + data / limits.write_synced,
                    floor=data / limits.write_synced, cores=cores)
    lines = [
        f"The fastest a backup and a restore of this data set could run on this machine's {cores} cores, from the "
        "per-core throughputs above (MB/s), with D the data set, S Bunker's repository after the first backup and "
        f"C the compressible part: D = {data:,.0f} MB, S = {stored:,.0f} MB, C = (D − S) × r / (r − 1) = "
        f"{compressible:,.0f} MB (r = {r:.2f}, the zstd sample's ratio).",
        "",
        "- backup work (CPU s) = D / warm read + D / SHA-256 (chunk names, HMAC-SHA-256) + D / SHA-256 (whole "
        "files) + C / zstd -3 + S / AES-256-GCM + S / write; single-stream floor = max(D / warm read, S / write)",
        "- restore work (CPU s) = S / AES-256-GCM + C / zstd decompression + D / SHA-256 + D / write; "
        "single-stream floor = D / write",
        f"- limit = max(work / {cores} cores, floor); share = limit / Bunker's wall time (the same as Bunker's "
        "MB/s over the limit's)",
        "",
        "Content-defined chunking, directory walking and metadata are not counted: the limit is a bound "
        "Bunker cannot reach, not an estimate of it.",
        "",
    ]
    rows = []
    for label, step, bound in (("Backup (first full)", "full", backup), ("Restore (until on disk)", "restore", restore)):
        wall = metric(me, step, "wall")
        share = bound.seconds / wall if wall else None
        rows.append([label, f"{bound.cpu:,.2f}", f"{bound.floor:,.2f}", f"{bound.seconds:,.2f}",
                     f"{dataset.bytes / bound.seconds / mb:,.0f}", seconds(wall),
                     "—" if not wall else f"{dataset.bytes / wall / mb:,.0f}",
                     "n/a" if share is None else f"{share:.0%}", f"≥ {LIMIT_SHARE_TARGET:.0%}",
                     "n/a" if share is None else ("pass" if share >= LIMIT_SHARE_TARGET else "MISS")])
    lines.append(table(["Operation", "Work CPU s", "Floor s", "Limit s", "Limit MB/s", "Bunker s", "Bunker MB/s",
                        "Share", "Target", "Result"], rows, right={1, 2, 3, 4, 5, 6, 7}))
    return lines


def render(args, dataset: DataSet, machine: str, limits: Limits, results: dict[str, ToolResult],
           versions: list[str], s3_results: dict[str, ToolResult] | None = None) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Bunker benchmark results",
        "",
        f"- Date: {now}",
        f"- Machine: {machine}",
        f"- Tools: {'; '.join(versions)}",
        f"- Data set: {dataset.bytes / MIB:,.1f} MiB in {dataset.files:,} files "
        f"(SQLite database {dataset.database_bytes / MIB:,.1f} MiB), --size-mb {dataset.size_mb}, seed {dataset.seed}, "
        f"content digest {dataset.digest[:12]}",
        f"- Settings: restic repository v2 (compression auto); Borg repokey, zstd,3; Bunker defaults. "
        "Restores are timed until the data is on disk: Bunker's restore calls syncfs on its target before it "
        "exits, restic's and Borg's are followed by `sync -f TARGET` in the same timed command. "
        + (f"Median of {args.repeat} runs for no-change backup, restore and verify." if args.repeat > 1
           else "One run per step."),
        "- Command: `python3 bench/run.py " + " ".join(sys.argv[1:]) + "`",
    ]
    digests = {r.changed_digest for r in results.values() if r.changed_digest}
    if len(digests) > 1:
        lines.append("- WARNING: the tools did not see identical data after the day of change")
    lines += ["", "## Machine limits", "", table(["Measure", "Throughput"], limits.rows, right={1})]
    for result in results.values():
        lines += ["", f"## {result.tool.label}", ""]
        lines.append(f"Not run: {result.error}" if result.error else tool_table(result))
    compared = ratio_table(results)
    if compared:
        title, body = compared
        lines += ["", "## Ratios", "", title + ".", "", body]
    absolute = absolute_table(results)
    if absolute:
        lines += ["", "## Absolute targets", "",
                  "Issue 19 sets these for the 10 GiB data set (`--size-mb 10240`); smaller sets show the trend.",
                  "", absolute]
    if "bunker" in results:
        lines += ["", "## Close to the limit", "", *limit_section(limits, dataset, results)]
    if s3_results:
        lines += ["", "## S3 (SeaweedFS on loopback)", "",
                  f"Each tool in its own prefix of one bucket on one `weed mini` server on 127.0.0.1, "
                  f"{s3.CONNECTIONS} uploads at once (restic: `-o s3.connections={s3.CONNECTIONS}`); "
                  "Repo MiB is the server's data directory (both tools' data, they run one after the other)."]
        for result in s3_results.values():
            lines += ["", f"### {result.tool.label} on S3", ""]
            lines.append(f"Not run: {result.error}" if result.error else tool_table(result))
        compared = s3_ratio_table(s3_results, results)
        if compared:
            lines += ["", "### S3 ratios", "", compared]
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="data set size in MiB (default 1024)")
    parser.add_argument("--seed", type=int, default=42, help="data set seed (default 42)")
    parser.add_argument("--files", type=int,
                        help="about how many files (default: the generator's mix up to 1 GiB, "
                             "then 500,000 per 10 GiB as the performance issue asks)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the cheap steps, median reported (default 3)")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma-separated (default bunker,restic,borg)")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "work", help="work directory (default bench/work)")
    parser.add_argument("--bunker-bin", help="use this bunker binary instead of building one")
    parser.add_argument("--output", type=Path,
                        help="Markdown report (default bench/RESULTS.md, or bench/RESULTS-<size>mb.md for other sizes)")
    parser.add_argument("--keep", action="store_true", help="keep the repositories in the work directory")
    parser.add_argument("--no-s3", dest="s3", action="store_false",
                        help="skip the S3 column (Bunker and restic on a SeaweedFS server on loopback)")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(ALL_TOOLS)
    if unknown or not tools:
        parser.error(f"unknown tools {', '.join(sorted(unknown))}; choose from {', '.join(ALL_TOOLS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.files is None and args.size_mb > 1024:
        # The 1 GiB set keeps the mix the earlier results were measured on (about 20 files per
        # MiB); bigger sets model a bigger clinic, with the half a million files at 10 GiB.
        args.files = round(args.size_mb * 500_000 / 10_240)
    if args.files is not None and args.files < 1:
        parser.error("--files must be at least 1")
    if args.output is None:
        # Other sizes go beside the 1 GiB results instead of over them.
        args.output = BENCH_DIR / ("RESULTS.md" if args.size_mb == 1024 else f"RESULTS-{args.size_mb}mb.md")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    apt = Apt()
    install_missing(tools, apt)
    adapters: dict[str, Tool] = {}
    errors: dict[str, str] = {}
    for name in tools:
        if name == "bunker":
            binary, error = (args.bunker_bin, None) if args.bunker_bin else build_bunker()
            if binary and not os.access(binary, os.X_OK):
                binary, error = None, f"{binary} is not an executable file"
            binary = str(Path(binary).resolve()) if binary else None
            adapters[name] = Bunker(binary)
        elif name == "borg":
            binary, error = borg_binary(apt)
            adapters[name] = Borg(binary)
        else:
            binary = shutil.which(name)
            error = None if binary else f"{name} is not installed"
            adapters[name] = Restic(binary)
        if error:
            errors[name] = error

    dataset = ensure_dataset(work, args.size_mb, args.seed, args.files)
    log(f"data set: {dataset.bytes / MIB:.1f} MiB in {dataset.files} files at {dataset.path}")
    machine = machine_line()
    log("measuring the machine's limits")
    limits = measure_limits(dataset, work)

    results: dict[str, ToolResult] = {}
    try:
        for name, tool in adapters.items():
            if name in errors:
                results[name] = ToolResult(tool=tool, error=errors[name])
                log(f"[{name}] not run: {errors[name]}")
                continue
            try:
                results[name] = ToolBench(tool, dataset, work, args.repeat).run(args.keep)
            except (OSError, subprocess.CalledProcessError) as error:
                results[name] = ToolResult(tool=tool, error=f"benchmark aborted: {error}")
                log(f"[{name}] aborted: {error}")

        s3_results = run_s3(adapters, errors, dataset, work, args) if args.s3 else {}
    finally:
        remove_left_folders()

    versions = [r.version or f"{r.tool.name}: not run" for r in results.values()]
    versions.append(f"Python {platform.python_version()}")
    versions += [first_line(["zstd", "--version"]).replace("*** ", "").replace(" ***", ""), first_line(["openssl", "version"])]
    report = render(args, dataset, machine, limits, results, versions, s3_results)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    log(f"written to {args.output}")


if __name__ == "__main__":
    main()
