#!/usr/bin/env python3
"""Benchmark PostgreSQL point-in-time recovery with Bunker (issue 16), on real PostgreSQL 15 clusters.

Four parts, each on clusters of its own (initdb into the work directory, Unix sockets only, run as
the `postgres` user when the benchmark runs as root), every server stopped at the end:

1. WAL archiving: real 16 MiB segments written by pgbench (collected by an archive_command that
   copies them aside) are pushed again one call at a time, as PostgreSQL calls archive_command:
   `cp` + `sync` (the floor), `bunker wal push` synchronous, `bunker wal push` into the async
   spool (with the drainer running beside it, and alone: pushes, then a timed `bunker wal drain`),
   and `pgbackrest archive-push`. Segments/s, per-call latency p50/p99, repository bytes per
   segment.
2. Base backups of a pgbench cluster: Bunker, `pg_basebackup -Ft -z` and pgBackRest (full, then
   incremental), first day and after a pgbench run that changes a few percent of the rows: wall
   time, CPU, peak RSS (/usr/bin/time -v) and bytes added.
3. Restore to a moment: `bunker restore latest --pgdata DIR --to-time T --start` after some
   archived WAL; the restored cluster must hold what committed before T and nothing after
   (the benchmark fails if not).
4. RPO under load: pgbench plus a heartbeat row a second, archive_command = bunker wal push,
   archive_timeout; the postmaster is killed with SIGKILL, its data directory deleted, the
   cluster restored with `--latest --start`; the RPO is the kill's time minus the newest
   heartbeat recovered. A trial of mode `stream` (e.g. --rpo-trials stream:full:600) also runs
   `bunker wal stream` ([source.wal] stream = true, every 5 s), killed with the server.

Standard library only. pgBackRest comes from Debian's `pgbackrest` package (installed with
apt-get when missing, unless --no-install); without it its columns say why they are empty.

Usage: python3 bench/pitr.py --bunker-bin PATH [--work DIR] [--output bench/RESULTS-pitr.md]
                             [--scale 20] [--segments 32] [--archive-timeout 20] [--rpo-trials LIST]
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import platform
import pwd
import random
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
MIB = 1024 * 1024
SEGMENT = 16 * MIB
GNU_TIME = "/usr/bin/time"
PASSWORD = "bench-password-not-secret"
PG_USER = "postgres"
AS_ROOT = os.geteuid() == 0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchFailure(Exception):
    """A step whose result is wrong (not merely slow): the run stops and says so."""


# --- processes --------------------------------------------------------------------------------


def pg_bin() -> Path:
    versions = sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        sys.exit("PostgreSQL's server is not installed (Debian: apt-get install postgresql).")
    return versions[-1]


PG_BIN = pg_bin()
WORK: Path = Path("/tmp")  # set in main()
LOGS: Path = Path("/tmp")


def pg_env() -> dict[str, str]:
    return {"PATH": f"{PG_BIN}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC",
            "HOME": str(WORK), "PGUSER": PG_USER}


def as_postgres() -> dict:
    """subprocess arguments that run a child as PostgreSQL's user (when we are root)."""
    if not AS_ROOT:
        return {}
    entry = pwd.getpwnam(PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def run(argv: list, *, pg: bool = True, check: bool = True, timeout: float | None = 900,
        output: Path | None = None, env: dict | None = None, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """Runs a command (as PostgreSQL's user with `pg`); output captured, or into `output`."""
    argv = [str(a) for a in argv]
    kwargs = dict(cwd=str(WORK), env=env or pg_env(), stdin=stdin, timeout=timeout, **(as_postgres() if pg else {}))
    if output is not None:
        with open(output, "ab") as sink:
            done = subprocess.run(argv, stdout=sink, stderr=subprocess.STDOUT, **kwargs)
        done.stdout = output.read_text(errors="replace")[-4000:]
    else:
        done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
        done.stdout = (done.stdout or "") + (done.stderr or "")
    if check and done.returncode != 0:
        raise BenchFailure(f"`{shlex.join(argv)}` exited {done.returncode}: {done.stdout[-2000:]}")
    return done


@dataclass
class Measure:
    """One command under /usr/bin/time -v."""
    argv: list
    wall: float = 0.0
    cpu: float = 0.0
    rss_mib: float = 0.0
    status: int = 0
    output: str = ""
    extra: dict = field(default_factory=dict)


def timed(label: str, argv: list, *, pg: bool = True, check: bool = True) -> Measure:
    timefile, logfile = LOGS / f"{label}.time", LOGS / f"{label}.log"
    for f in (timefile, logfile):
        f.unlink(missing_ok=True)
        f.touch()
        own(f)
    done = run([GNU_TIME, "-v", "-o", timefile, *argv], pg=pg, check=False, output=logfile, timeout=3600)
    m = Measure(argv=[str(a) for a in argv], status=done.returncode, output=logfile.read_text(errors="replace"))
    fields = {}
    for line in timefile.read_text(errors="replace").splitlines():
        key, _, value = line.strip().rpartition(": ")
        fields[key] = value
    clock = fields.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "0:0")
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part)
    m.wall = seconds
    m.cpu = float(fields.get("User time (seconds)", 0)) + float(fields.get("System time (seconds)", 0))
    m.rss_mib = float(fields.get("Maximum resident set size (kbytes)", 0)) / 1024
    if check and m.status != 0:
        raise BenchFailure(f"{label}: `{shlex.join(m.argv)}` exited {m.status}: {m.output[-2000:]}")
    return m


def own(path: Path) -> None:
    if AS_ROOT:
        entry = pwd.getpwnam(PG_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def mkdirs(path: Path) -> Path:
    """A directory PostgreSQL's user owns (every missing level of it)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        p.mkdir(mode=0o755)
        own(p)
    return path


def du(path: Path) -> int:
    """Apparent size in bytes of a file tree (as `du -sb`)."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def preread(path: Path) -> None:
    """Reads a tree once so that every tool starts from a warm page cache."""
    for root, _, files in os.walk(path):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    while f.read(4 * MIB):
                        pass
            except OSError:
                pass


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def first_line(argv: list) -> str:
    try:
        out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines and out.returncode == 0 else "unknown"


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (to kill a server's whole tree by id)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --- clusters ---------------------------------------------------------------------------------

LIVE_DATA_DIRS: list[Path] = []  # every data directory a server may run on; stopped at the end
USED_PORTS: set[int] = set()


def free_port() -> int:
    while True:
        port = random.randint(20000, 60000)
        if port not in USED_PORTS:
            USED_PORTS.add(port)
            return port


def postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def stop_server(data: Path, grace: float = 10) -> None:
    """Stops the server on `data` (fast, then immediate), SIGKILL to its tree after a short grace."""
    pid = postmaster_pid(data)
    if pid is None or not alive(pid):
        return
    tree = descendants(pid)
    for mode in ("fast", "immediate"):
        try:
            run([PG_BIN / "pg_ctl", "-D", data, "-m", mode, "-w", "-t", str(int(grace)), "stop"], check=False, timeout=grace + 5)
        except subprocess.TimeoutExpired:
            pass
        if not alive(pid):
            return
    for p in [pid, *tree]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Cluster:
    """A PostgreSQL cluster in `root` (data in root/data, socket in root), PostgreSQL's user."""

    def __init__(self, root: Path, settings: dict[str, str]) -> None:
        self.root = mkdirs(root)
        self.data = root / "data"
        self.socket = root
        self.port = free_port()
        self.settings = {"listen_addresses": "''", "unix_socket_directories": f"'{root}'", "port": str(self.port),
                         "max_wal_size": "2GB", **settings}

    def initdb(self) -> "Cluster":
        run([PG_BIN / "initdb", "-D", self.data, "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-instructions"],
            output=self.root / "initdb.log")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# bench/pitr.py\n")
            for key, value in self.settings.items():
                conf.write(f"{key} = {value}\n")
        return self

    def start(self) -> "Cluster":
        LIVE_DATA_DIRS.append(self.data)
        run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w", "-t", "120", "start"],
            output=self.root / "pg_ctl.log")
        return self

    def psql(self, sql: str, db: str = "postgres") -> str:
        return psql(self.socket, self.port, sql, db)

    def conninfo(self) -> list[str]:
        return ["-h", str(self.socket), "-p", str(self.port), "-U", PG_USER]

    def stop(self) -> None:
        stop_server(self.data)


def psql(host: Path, port: int, sql: str, db: str = "postgres", check: bool = True) -> str:
    done = run([PG_BIN / "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", PG_USER,
                "-d", db, "-c", sql], check=check, timeout=600)
    return done.stdout.strip()


def wait_archived(cluster: Cluster, segment: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if last >= segment and len(last) == 24:
            return
        time.sleep(0.2)
    raise BenchFailure(f"segment {segment} was not archived in {timeout:.0f} s: "
                       f"{cluster.psql('SELECT * FROM pg_stat_archiver')}")


def switch_and_wait(cluster: Cluster, timeout: float = 300) -> str:
    segment = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    wait_archived(cluster, segment, timeout)
    return segment


# --- configurations ---------------------------------------------------------------------------


class Bunker:
    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def config(self, path: Path, repo: Path, source: str, cluster: Cluster, spool: Path | None = None,
               stream: bool = False) -> Path:
        """A bunker.toml with one physical postgres source; the repository is made with `bunker init`.
        With `stream`, the source's WAL is also streamed (`bunker wal stream`, every 5 s)."""
        text = (f'data_dir = "{path.parent}/bunker-data"\n\n[repository]\npath = "{repo}"\n'
                f'password_file = "{WORK}/password"\n\n[[source]]\nname = "{source}"\nkind = "postgres"\n'
                f'method = "physical"\nhost = "{cluster.socket}"\nport = {cluster.port}\nuser = "{PG_USER}"\n'
                f'database = "postgres"\ntimeout = "1h"\n')
        if spool is not None:
            text += f'\n[source.wal]\nasync = true\nspool_dir = "{spool}"\nspool_max = 256\n'
        elif stream:
            text += '\n[source.wal]\nstream = true\nstream_interval = 5\n'
        path.write_text(text)
        own(path)
        run([self.binary, "init", "--config", path], output=LOGS / f"init-{path.stem}.log")
        return path

    def push(self, config: Path, source: str) -> list:
        return [self.binary, "wal", "push", "--config", config, "--source", source]

    def archive_command(self, config: Path, source: str) -> str:
        return f"{self.binary} wal push --config {config} --source {source} %p"


class PgBackRest:
    def __init__(self) -> None:
        self.binary = shutil.which("pgbackrest")

    def config(self, path: Path, repo: Path, stanza: str, cluster: Cluster, archive_check: bool = False) -> Path:
        base = mkdirs(path.parent / "pgbackrest")
        text = (f"[global]\nrepo1-path={repo}\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={PASSWORD}\n"
                f"compress-type=zst\ncompress-level=3\nprocess-max=2\nstart-fast=y\nrepo1-retention-full=99\n"
                f"archive-check={'y' if archive_check else 'n'}\nlog-path={mkdirs(base / 'log')}\n"
                f"lock-path={mkdirs(base / 'lock')}\nspool-path={mkdirs(base / 'spool')}\n"
                f"log-level-console=warn\nlog-level-file=info\n\n"
                f"[{stanza}]\npg1-path={cluster.data}\npg1-socket-path={cluster.socket}\npg1-port={cluster.port}\n"
                f"pg1-user={PG_USER}\n")
        mkdirs(repo)
        path.write_text(text)
        os.chmod(path, 0o640)
        own(path)
        return path

    def cmd(self, config: Path, stanza: str, *args) -> list:
        return [self.binary, f"--config={config}", f"--stanza={stanza}", *args]


# --- 1. WAL archiving -------------------------------------------------------------------------


@dataclass
class PushSeries:
    label: str
    command: str
    latencies: list = field(default_factory=list)
    inside_ms: list = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    repo_bytes: int = 0
    drain: Measure | None = None
    drain_empty_after: float | None = None
    note: str = ""


def push_all(series: PushSeries, segments: list[Path], argv_for, json_out: bool = False) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for segment in segments:
        t0 = time.perf_counter()
        done = run(argv_for(segment), check=False, timeout=600)
        series.latencies.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise BenchFailure(f"{series.label}: push of {segment.name} exited {done.returncode}: {done.stdout[-1500:]}")
        if json_out:
            try:
                series.inside_ms.append(float(json.loads(done.stdout[done.stdout.index("{"):])["milliseconds"]))
            except (ValueError, KeyError):
                pass
    series.wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    series.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spool_files(spool: Path) -> list[str]:
    if not spool.exists():
        return []
    return [n for n in os.listdir(spool) if not n.startswith(".")]


def section_archive(ctx: dict, args, bunker: Bunker, pgbr: PgBackRest) -> None:
    root = mkdirs(WORK / "archive")
    walsrc = mkdirs(root / "generated")
    cluster = Cluster(root / "pg", {
        "archive_mode": "on", "archive_command": f"'test ! -f {walsrc}/%f && cp %p {walsrc}/%f'",
        "synchronous_commit": "off", "fsync": "off", "checkpoint_timeout": "30s", "max_wal_size": "4GB"}).initdb().start()
    log(f"archive: pgbench -i -s {args.archive_scale}, then pgbench until {args.segments} segments are written")
    run([PG_BIN / "pgbench", *cluster.conninfo(), "-i", "-q", "-s", args.archive_scale, "postgres"], pg=False,
        output=LOGS / "archive-pgbench-init.log")
    first = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    start_lsn = cluster.psql("SELECT pg_current_wal_lsn()")
    started = time.monotonic()
    bench = subprocess.Popen([str(PG_BIN / "pgbench"), *cluster.conninfo(), "-c", "4", "-j", "2", "-M", "prepared", "-T", "900", "-n", "postgres"],
                             stdout=open(LOGS / "archive-pgbench.log", "w"), stderr=subprocess.STDOUT, cwd=str(WORK), env=pg_env())
    try:
        while True:
            written = int(cluster.psql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start_lsn}')").split(".")[0])
            if written >= (args.segments + 1) * SEGMENT or bench.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        bench.terminate()
        bench.wait(timeout=30)
    generation = time.monotonic() - started
    last = switch_and_wait(cluster)
    names = sorted(n for n in os.listdir(walsrc) if len(n) == 24 and first < n < last)
    segments = [walsrc / n for n in names[:args.segments]]
    if len(segments) < args.segments:
        raise BenchFailure(f"pgbench wrote {len(segments)} full segments, {args.segments} were asked for")
    ctx["archive_generation"] = {"seconds": generation, "segments": len(segments),
                                 "mib_s": written / MIB / generation, "first": segments[0].name, "last": segments[-1].name}
    cluster.stop()
    log(f"archive: {len(segments)} segments {segments[0].name}..{segments[-1].name} in {generation:.0f} s; pushing them")
    results: list[PushSeries] = []

    floor = mkdirs(root / "cp-sync")
    s = PushSeries("cp + sync (floor)", f"sh -c 'cp %p {floor}/%f && sync {floor}/%f'")
    push_all(s, segments, lambda p: ["sh", "-c", f"cp {p} {floor}/{p.name} && sync {floor}/{p.name}"])
    s.repo_bytes = du(floor)
    results.append(s)
    os.system("sync")

    sync_cfg = bunker.config(root / "sync.toml", root / "repo-sync", "bench", cluster)
    s = PushSeries("Bunker wal push, sync", shlex.join(map(str, bunker.push(sync_cfg, "bench"))) + " %p")
    push_all(s, segments, lambda p: [*bunker.push(sync_cfg, "bench"), "--json", p], json_out=True)
    s.repo_bytes = du(root / "repo-sync" / "wal")
    results.append(s)
    os.system("sync")

    # Async as PostgreSQL drives it: every push spools, the first starts the drainer, which ships
    # beside the next pushes; measured until the spool is empty.
    spool = root / "spool-live"
    live_cfg = bunker.config(root / "async-live.toml", root / "repo-async-live", "bench", cluster, spool=spool)
    s = PushSeries("Bunker wal push, async (drainer running beside)",
                   shlex.join(map(str, bunker.push(live_cfg, "bench"))) + " %p")
    push_all(s, segments, lambda p: [*bunker.push(live_cfg, "bench"), "--json", p], json_out=True)
    t0 = time.perf_counter()
    while spool_files(spool / "bench") and time.perf_counter() - t0 < 600:
        time.sleep(0.05)
    s.drain_empty_after = time.perf_counter() - t0
    s.repo_bytes = du(root / "repo-async-live" / "wal")
    results.append(s)
    os.system("sync")

    # Async, the two halves apart: the pushes with the drainer's lock held (so none starts),
    # then one timed `bunker wal drain`.
    spool = root / "spool-split"
    split_cfg = bunker.config(root / "async-split.toml", root / "repo-async-split", "bench", cluster, spool=spool)
    lockdir = mkdirs(spool / "bench")
    os.chmod(spool, 0o700)
    os.chmod(lockdir, 0o700)
    lockfile = lockdir / ".drain.lock"
    lockfile.touch()
    own(lockfile)
    s = PushSeries("Bunker wal push, async (spool only; then `wal drain`)",
                   shlex.join(map(str, bunker.push(split_cfg, "bench"))) + " %p")
    with open(lockfile, "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        push_all(s, segments, lambda p: [*bunker.push(split_cfg, "bench"), "--json", p], json_out=True)
        fcntl.flock(held, fcntl.LOCK_UN)
    if len(spool_files(lockdir)) != len(segments):
        raise BenchFailure(f"the spool holds {len(spool_files(lockdir))} files, {len(segments)} were pushed")
    # The drainer waits a moment on an empty spool before it exits: the time until the spool is
    # empty is measured beside the process's own.
    drained: dict = {}
    drainer = threading.Thread(target=lambda: drained.update(m=timed(
        "archive-wal-drain", [bunker.binary, "wal", "drain", "--config", split_cfg, "--source", "bench"], check=False)))
    t0 = time.perf_counter()
    drainer.start()
    while spool_files(lockdir) and drainer.is_alive():
        time.sleep(0.05)
    s.drain_empty_after = time.perf_counter() - t0
    drainer.join()
    s.drain = drained["m"]
    if s.drain.status != 0:
        raise BenchFailure(f"`bunker wal drain` exited {s.drain.status}: {s.drain.output[-1500:]}")
    if spool_files(lockdir):
        raise BenchFailure(f"`bunker wal drain` left {len(spool_files(lockdir))} files in the spool")
    s.repo_bytes = du(root / "repo-async-split" / "wal")
    results.append(s)
    os.system("sync")

    if pgbr.binary:
        try:
            cfg = pgbr.config(root / "pgbackrest.conf", root / "repo-pgbackrest", "bench", cluster)
            run(pgbr.cmd(cfg, "bench", "--no-online", "stanza-create"), output=LOGS / "archive-pgbackrest-stanza.log")
            s = PushSeries("pgBackRest archive-push (zstd 3, aes-256-cbc)", shlex.join(pgbr.cmd(cfg, "bench", "archive-push")) + " %p")
            push_all(s, segments, lambda p: [*pgbr.cmd(cfg, "bench", "archive-push"), p])
            s.repo_bytes = du(root / "repo-pgbackrest" / "archive")
            results.append(s)
        except BenchFailure as error:
            ctx.setdefault("not_measured", []).append(f"pgBackRest archive-push: {error}")
    # What any push pays before its work: starting and ending the process.
    starts = {}
    for name, argv in (("bunker", [bunker.binary, "--version"]), ("pgbackrest", [pgbr.binary, "version"] if pgbr.binary else None)):
        if argv:
            times = []
            for _ in range(10):
                t0 = time.perf_counter()
                run(argv)
                times.append(time.perf_counter() - t0)
            starts[name] = times
    ctx["process_start"] = starts
    ctx["archive"] = results
    ctx["archive_segments"] = len(segments)
    ctx["archive_note_pgbackrest_async"] = (
        "pgBackRest's asynchronous archive-push is not measured: it ships ahead by reading the `.ready` files of a live "
        "cluster's `pg_wal/archive_status`, which a replay of segments from a directory does not have.")


# --- 2. base backups and 3. restore to a moment -----------------------------------------------


def section_base(ctx: dict, args, bunker: Bunker, pgbr: PgBackRest) -> None:
    root = mkdirs(WORK / "base")
    cluster = Cluster(root / "pg", {"archive_mode": "on", "archive_command": "'/bin/true'", "synchronous_commit": "off",
                                    "checkpoint_timeout": "5min"}).initdb().start()
    ctx["base_cluster"] = cluster
    log(f"base: pgbench -i -s {args.scale}")
    run([PG_BIN / "pgbench", *cluster.conninfo(), "-i", "-q", "-s", args.scale, "postgres"], pg=False,
        output=LOGS / "base-pgbench-init.log")
    cluster.psql("VACUUM ANALYZE")
    config = bunker.config(root / "bunker.toml", root / "repo-bunker", "clinic", cluster)
    ctx["base_config"] = config
    cluster.psql(f"ALTER SYSTEM SET archive_command = '{bunker.archive_command(config, 'clinic')}'")
    cluster.psql("SELECT pg_reload_conf()")
    switch_and_wait(cluster)  # archiving into Bunker works before the first base backup
    ctx["base_size"] = du(cluster.data)
    ctx["base_db_size"] = int(cluster.psql("SELECT pg_database_size('postgres')"))
    pgbr_cfg = None
    if pgbr.binary:
        try:
            pgbr_cfg = pgbr.config(root / "pgbackrest.conf", root / "repo-pgbackrest", "clinic", cluster)
            run(pgbr.cmd(pgbr_cfg, "clinic", "stanza-create"), output=LOGS / "base-pgbackrest-stanza.log")
        except BenchFailure as error:
            pgbr_cfg = None
            ctx.setdefault("not_measured", []).append(f"pgBackRest base backups: {error}")

    rows = []
    accounts = args.scale * 100000
    for day in (1, 2, 3):
        if day == 3:
            # A clinic's day touches recent records, not random ones across the whole table: one
            # UPDATE of as many contiguous accounts.
            count = max(1, int(accounts * args.change_pct / 100))
            first = accounts // 2
            log(f"base: one UPDATE of {count} contiguous accounts")
            cluster.psql(f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > {first} AND aid <= {first + count}")
            ctx["base_changed_block"] = {"rows": count, "first": first + 1, "last": first + count}
        if day == 2:
            transactions = max(1, int(accounts * args.change_pct / 100))
            log(f"base: pgbench -b simple-update, {transactions} transactions ({args.change_pct} % of {accounts} accounts)")
            run([PG_BIN / "pgbench", *cluster.conninfo(), "-n", "-b", "simple-update", "-c", "2", "-j", "2",
                 "-t", transactions // 2, "postgres"], pg=False, output=LOGS / "base-pgbench-change.log")
            ctx["base_changed"] = {"transactions": transactions // 2 * 2, "accounts": accounts}
        cluster.psql("CHECKPOINT")
        row = {"day": day}
        steps = [("bunker", [bunker.binary, "backup", "--config", config, "--source", "clinic", "--json"])]
        steps.append(("pg_basebackup", [PG_BIN / "pg_basebackup", *cluster.conninfo(), "-D", root / f"pg_basebackup-{day}",
                                        "-Ft", "-z", "-X", "fetch", "-c", "fast"]))
        if pgbr_cfg:
            steps.append(("pgbackrest", pgbr.cmd(pgbr_cfg, "clinic", "backup", f"--type={'full' if day == 1 else 'incr'}")))
        for tool, argv in steps:
            preread(cluster.data)
            os.system("sync")
            repo = {"bunker": root / "repo-bunker", "pg_basebackup": root / f"pg_basebackup-{day}",
                    "pgbackrest": root / "repo-pgbackrest" / "backup"}[tool]
            before = du(repo) - (du(repo / "wal") if tool == "bunker" else 0)
            log(f"base: day {day}, {tool}")
            try:
                m = timed(f"base-{tool}-day{day}", argv)
            except BenchFailure as error:
                row[tool] = str(error)
                continue
            m.extra["added"] = du(repo) - (du(repo / "wal") if tool == "bunker" else 0) - before
            if tool == "bunker":
                try:
                    out = json.loads(m.output[m.output.index("{"):m.output.rindex("}") + 1])
                    m.extra["data_added"] = out["summary"]["data_added"]
                    m.extra["total"] = out["summary"]["total_bytes"]
                except (ValueError, KeyError):
                    pass
            row[tool] = m
        rows.append(row)
    ctx["base"] = rows


def section_restore(ctx: dict, args, bunker: Bunker) -> None:
    cluster: Cluster = ctx["base_cluster"]
    config = ctx["base_config"]
    root = WORK / "base"
    log(f"restore: pgbench for {args.restore_wal_seconds} s after the last base backup, then sentinels")
    archived_before = int(cluster.psql("SELECT archived_count FROM pg_stat_archiver"))
    run([PG_BIN / "pgbench", *cluster.conninfo(), "-n", "-c", "2", "-j", "2", "-T", args.restore_wal_seconds, "postgres"],
        pg=False, output=LOGS / "restore-pgbench.log")
    cluster.psql("CREATE TABLE sentinel (label text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    expected = cluster.psql("SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ',' || (SELECT count(*) FROM pgbench_history)")
    cluster.psql("INSERT INTO sentinel (label) VALUES ('before')")
    time.sleep(1)
    moment = cluster.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1)
    cluster.psql("INSERT INTO sentinel (label) VALUES ('after'); UPDATE pgbench_accounts SET abalance = abalance + 1000000 WHERE aid = 1")
    switch_and_wait(cluster)
    archived = int(cluster.psql("SELECT archived_count FROM pg_stat_archiver")) - archived_before
    target = root / "restored-to-time"
    port = free_port()
    LIVE_DATA_DIRS.append(target)
    argv = [bunker.binary, "restore", "latest", "--config", config, "--source", "clinic", "--pgdata", target,
            "--to-time", moment, "--start", "--port", port, "--json"]
    log(f"restore: to {moment}")
    m = timed("restore-to-time", argv)
    try:
        labels = psql(target, port, "SELECT string_agg(label, ',' ORDER BY label) FROM sentinel")
        state = psql(target, port, "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ',' || (SELECT count(*) FROM pgbench_history)")
        count = int(psql(target, port, "SELECT count(*) FROM pgbench_accounts"))
        recovering = psql(target, port, "SELECT pg_is_in_recovery()")
    finally:
        stop_server(target)
    checks = [("the row committed before T is there, the one after is not", labels == "before", labels),
              ("sum(abalance), count(pgbench_history) as at T", state == expected, f"{state} (expected {expected})"),
              ("pgbench_accounts rows", count == args.scale * 100000, str(count)),
              ("promoted (not in recovery)", recovering == "f", recovering)]
    ctx["restore"] = {"measure": m, "moment": moment, "archived_segments": archived, "checks": checks,
                      "size": du(target)}
    failed = [c for c in checks if not c[1]]
    if failed:
        raise BenchFailure("restore to a moment is WRONG: " + "; ".join(f"{c[0]}: {c[2]}" for c in failed))
    shutil.rmtree(target, ignore_errors=True)


# --- 4. RPO under load ------------------------------------------------------------------------


def drainers_of(config: Path) -> list[int]:
    """`bunker wal drain` processes started for `config` (they run in a session of their own)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"drain" in cmdline and str(config).encode() in cmdline:
                found.append(int(entry))
    return found


def rpo_trial(ctx: dict, args, bunker: Bunker, number: int, mode: str, rate: str, timeout: int, seconds: int) -> dict:
    root = mkdirs(WORK / "rpo" / f"trial-{number}")
    cluster = Cluster(root / "pg", {"archive_mode": "on", "archive_command": "'/bin/true'",
                                    "archive_timeout": str(timeout), "checkpoint_timeout": "5min"}).initdb().start()
    spool = root / "spool" if mode == "async" else None
    config = bunker.config(root / "bunker.toml", root / "repo", "rpo", cluster, spool=spool, stream=mode == "stream")
    run([PG_BIN / "pgbench", *cluster.conninfo(), "-i", "-q", "-s", args.rpo_scale, "postgres"], pg=False,
        output=LOGS / f"rpo-{number}-pgbench-init.log")
    cluster.psql("CREATE TABLE heartbeat (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    cluster.psql(f"ALTER SYSTEM SET archive_command = '{bunker.archive_command(config, 'rpo')}'")
    cluster.psql("SELECT pg_reload_conf()")
    switch_and_wait(cluster)
    run([bunker.binary, "backup", "--config", config, "--source", "rpo"], output=LOGS / f"rpo-{number}-backup.log")
    switch_and_wait(cluster)

    stop = threading.Event()
    committed: list[float] = []
    backlog: list[int] = []

    def heartbeat() -> None:
        tick = time.monotonic()
        while not stop.is_set():
            try:
                out = psql(cluster.socket, cluster.port,
                           "INSERT INTO heartbeat DEFAULT VALUES RETURNING extract(epoch FROM at)", check=True)
                committed.append(float(out.split()[0]))
            except (BenchFailure, subprocess.SubprocessError, ValueError, IndexError):
                pass
            tick += 1
            stop.wait(max(0.0, tick - time.monotonic()))

    def sample_backlog() -> None:
        status = cluster.data / "pg_wal" / "archive_status"
        while not stop.is_set():
            try:
                ready = sum(1 for n in os.listdir(status) if n.endswith(".ready"))
                waiting = len(spool_files(spool / "rpo")) if spool else 0
                backlog.append(ready + waiting)
            except OSError:
                pass
            stop.wait(0.5)

    streamer = None
    if mode == "stream":
        # `bunker wal stream`, as `bunker serve` runs it: lost with the machine below.
        streamer = subprocess.Popen([str(bunker.binary), "wal", "stream", "--config", str(config), "--source", "rpo"],
                                    stdout=open(LOGS / f"rpo-{number}-stream.log", "w"), stderr=subprocess.STDOUT,
                                    cwd=str(WORK), **as_postgres())
    load = [str(PG_BIN / "pgbench"), *cluster.conninfo(), "-n", "-c", "2", "-j", "1", "-T", str(seconds + 60)]
    if rate != "full":
        load += ["-R", rate]
    archived_before = int(cluster.psql("SELECT archived_count FROM pg_stat_archiver"))
    wal_before = float(cluster.psql("SELECT wal_bytes FROM pg_stat_wal"))
    log(f"rpo trial {number}: {mode} push, pgbench {'at full speed' if rate == 'full' else rate + ' tps'}, "
        f"heartbeat every second, archive_timeout {timeout} s, kill after {seconds} s")
    bench = subprocess.Popen([*load, "postgres"], stdout=open(LOGS / f"rpo-{number}-pgbench.log", "w"),
                             stderr=subprocess.STDOUT, cwd=str(WORK), env=pg_env())
    threads = [threading.Thread(target=heartbeat, daemon=True), threading.Thread(target=sample_backlog, daemon=True)]
    for t in threads:
        t.start()
    try:
        time.sleep(seconds)
        archived = int(cluster.psql("SELECT archived_count FROM pg_stat_archiver")) - archived_before
        failed = cluster.psql("SELECT failed_count FROM pg_stat_archiver")
        wal_bytes = float(cluster.psql("SELECT wal_bytes FROM pg_stat_wal")) - wal_before
        # The machine is lost: the postmaster, every process of the server (an archive_command in
        # flight included) and, with the async spool, the drainer die at once; the data
        # directory and the spool are deleted.
        pid = postmaster_pid(cluster.data)
        victims = [pid, *descendants(pid)] + (drainers_of(config) if spool else [])
        if streamer is not None:
            victims += [streamer.pid, *descendants(streamer.pid)]
        killed_at = time.time()
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        stop.set()
        bench.terminate()
        try:
            bench.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bench.kill()
        for t in threads:
            t.join(timeout=10)
    time.sleep(0.5)
    shutil.rmtree(cluster.data)
    if spool:
        shutil.rmtree(spool, ignore_errors=True)
    target = root / "restored"
    port = free_port()
    LIVE_DATA_DIRS.append(target)
    log(f"rpo trial {number}: restore --latest --start")
    m = timed(f"rpo-{number}-restore", [bunker.binary, "restore", "latest", "--config", config, "--source", "rpo",
                                         "--pgdata", target, "--latest", "--start", "--port", port, "--json"])
    try:
        newest = float(psql(target, port, "SELECT extract(epoch FROM max(at)) FROM heartbeat"))
        rows = int(psql(target, port, "SELECT count(*) FROM heartbeat"))
    finally:
        stop_server(target)
    shutil.rmtree(target, ignore_errors=True)
    return {"mode": mode, "rate": rate, "killed_at": killed_at, "newest_recovered": newest,
            "newest_committed": max(committed) if committed else float("nan"), "committed_rows": len(committed),
            "recovered_rows": rows, "rpo": killed_at - newest,
            "lost_commits": (max(committed) - newest) if committed else float("nan"),
            "restore": m, "archived": archived, "failed": failed, "wal_mib_s": wal_bytes / MIB / seconds,
            "timeout": timeout, "seconds": seconds,
            "backlog_max": max(backlog) if backlog else 0}


def section_rpo(ctx: dict, args, bunker: Bunker) -> None:
    trials = []
    for number, spec in enumerate(args.rpo_trials.split(","), 1):
        mode, rate, timeout = (spec.split(":") + ["full", str(args.archive_timeout)][len(spec.split(":")) - 1:])[:3]
        # Long enough for two forced switches at least (streaming does not wait for them).
        seconds = args.rpo_load_seconds if mode == "stream" else max(args.rpo_load_seconds, int(timeout) * 5 // 2)
        try:
            trials.append(rpo_trial(ctx, args, bunker, number, mode, rate, int(timeout), seconds))
        except BenchFailure as error:
            trials.append({"mode": mode, "rate": rate, "timeout": timeout, "seconds": seconds, "error": str(error)})
        finally:
            stop_server(WORK / "rpo" / f"trial-{number}" / "pg" / "data")
    ctx["rpo"] = trials


# --- the report -------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:,.1f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "—"


def other_builds() -> list[str]:
    names = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(("swift-frontend", "swift-build", "swiftc", "swift-driver", "clang", "ld")):
                names.add(comm)
    return sorted(names)


def built_from(binary: str) -> str:
    """`, built at commit X` when the binary sits in a checkout's .build directory."""
    path = Path(binary).resolve()
    for parent in path.parents:
        if parent.name == ".build":
            commit = first_line(["git", "-C", parent.parent, "log", "-1", "--format=%h %s"])
            configuration = "release" if "release" in path.parts else "debug" if "debug" in path.parts else "?"
            return f", a {configuration} build of the checkout at commit {commit[:60]}"
    return ""


def machine(args, bunker: Bunker, pgbr: PgBackRest) -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return [
        f"- Machine: `{' '.join(platform.uname()[i] for i in (0, 2, 4))}`, {cpu}, {os.cpu_count()} cores, {mem:.1f} GiB memory",
        f"- Bunker: `{bunker.binary}` (copied from `{args.bunker_bin}`{built_from(args.bunker_bin)}), "
        f"{first_line([bunker.binary, '--version'])}",
        f"- PostgreSQL: {first_line([PG_BIN / 'postgres', '--version'])}; pgbench, pg_basebackup from `{PG_BIN}`",
        f"- pgBackRest: {first_line([pgbr.binary, 'version']) if pgbr.binary else 'not installed'}",
        f"- Python {platform.python_version()}; `/usr/bin/time -v` for wall, CPU (user + system) and peak RSS",
    ]


def report(ctx: dict, args, bunker: Bunker, pgbr: PgBackRest) -> str:
    out = ["# Benchmark: PostgreSQL point-in-time recovery (issue 16)", "",
           f"Run {ctx['started']:%Y-%m-%d %H:%M} UTC, {ctx['duration'] / 60:.1f} minutes, by "
           f"`python3 bench/pitr.py {' '.join(sys.argv[1:])}`.", ""]
    out += machine(args, bunker, pgbr)
    builds = ctx.get("builds", [])
    out.append(f"- Load beside the benchmark: load average {ctx['load_before']} at the start, {ctx['load_after']} at the end"
               + (f"; **other builds shared the cores** (seen running: {', '.join(builds)}), so times are noisy and "
                  "on the slow side" if builds else "; no compiler seen running"))
    out.append("")

    if "archive" in ctx:
        g = ctx["archive_generation"]
        n = ctx["archive_segments"]
        out += ["## 1. WAL archiving", "",
                f"{n} segments of 16 MiB ({g['first']} … {g['last']}) written by `pgbench -c 4 -j 2 -M prepared` (TPC-B, scale "
                f"{args.archive_scale}, `synchronous_commit = off`, `fsync = off` (the WAL is the same), `checkpoint_timeout = 30s` so that full-page images "
                f"are part of the WAL as in production) at {g['mib_s']:.1f} MiB/s of WAL, collected by "
                "`archive_command = 'test ! -f DIR/%f && cp %p DIR/%f'`. Each is then pushed again, one process per "
                "segment, one after the other, as PostgreSQL's archiver calls `archive_command`; every command runs as "
                "`postgres`. *Latency* is the whole call (process start to exit) measured by the runner; *inside* "
                "is what `bunker wal push --json` reports for its own work (`milliseconds`). *CPU* is user + system "
                "of the pushes (the drainer of the async modes is counted only where it is timed on its own). "
                "*Bytes/segment* is what the repository (or directory) grew by, divided by the segments.", "",
                "| Method | segments/s | latency p50 | latency p99 | inside p50 | CPU/segment | bytes/segment | compression |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for s in ctx["archive"]:
            per = s.repo_bytes / n
            inside = ms(statistics.median(s.inside_ms) / 1000) if s.inside_ms else "—"
            out.append(f"| {s.label} | {n / s.wall:.2f} | {ms(percentile(s.latencies, 50))} | {ms(percentile(s.latencies, 99))} "
                       f"| {inside} | {ms(s.cpu / n)} | {mib(per)} | {SEGMENT / per:.2f}× |")
        out.append("")
        for s in ctx["archive"]:
            if s.drain is not None:
                d = s.drain
                out.append(f"- **{s.label}**: `bunker wal drain` (4 files at a time) emptied the spool of the {n} segments "
                           f"in {s.drain_empty_after:.1f} s ({n / s.drain_empty_after:.2f} segments/s) and exited after "
                           f"{d.wall:.1f} s (it waits on an empty spool before it exits); CPU {d.cpu:.1f} s, peak RSS "
                           f"{d.rss_mib:.0f} MiB. Pushes plus drain: {n / (s.wall + s.drain_empty_after):.2f} segments/s.")
            elif s.drain_empty_after is not None:
                total = s.wall + s.drain_empty_after
                out.append(f"- **{s.label}**: the pushes took {s.wall:.1f} s; the spool was empty {s.drain_empty_after:.1f} s "
                           f"after the last push returned: {n / total:.2f} segments/s end to end into the repository.")
        by = {s.label: s for s in ctx["archive"]}
        sync = by.get("Bunker wal push, sync")
        pgb = next((s for s in ctx["archive"] if s.label.startswith("pgBackRest")), None)
        floor = by.get("cp + sync (floor)")
        if sync and pgb:
            out.append(f"- Bunker sync against pgBackRest archive-push: throughput {ratio(n / sync.wall, n / pgb.wall)}, "
                       f"p50 latency {ratio(percentile(sync.latencies, 50), percentile(pgb.latencies, 50))}, "
                       f"bytes/segment {ratio(sync.repo_bytes, pgb.repo_bytes)}, CPU {ratio(sync.cpu, pgb.cpu)}.")
        live = by.get("Bunker wal push, async (drainer running beside)")
        if live and pgb:
            out.append(f"- Bunker async (push latency) against pgBackRest archive-push: p50 "
                       f"{ratio(percentile(live.latencies, 50), percentile(pgb.latencies, 50))}, p99 "
                       f"{ratio(percentile(live.latencies, 99), percentile(pgb.latencies, 99))}.")
        if sync and floor:
            out.append(f"- Bunker sync against the `cp` + `sync` floor: p50 latency "
                       f"{ratio(percentile(sync.latencies, 50), percentile(floor.latencies, 50))}.")
        starts = ctx.get("process_start", {})
        if starts:
            out.append("- Starting and ending the process alone (10 runs as `postgres`, p50): " + ", ".join(
                f"`{name} {'--version' if name == 'bunker' else 'version'}` {ms(percentile(t, 50))}" for name, t in starts.items())
                + ": the floor of every call.")
        out.append(f"- {ctx['archive_note_pgbackrest_async']}")
        out += ["", "Commands (`%p` is the segment's path):", ""]
        out += [f"- {s.label}: `{s.command}`" for s in ctx["archive"]]
        out.append("")

    if "base" in ctx:
        out += ["## 2. Base backups", "",
                f"A cluster made by `pgbench -i -s {args.scale}` ({mib(ctx['base_size'])} of files in the data directory, "
                f"database {mib(ctx['base_db_size'])}), archiving its WAL with `bunker wal push` (not counted below: "
                "Bunker's bytes exclude the repository's `wal/`). Second day: after "]
        ch = ctx.get("base_changed")
        if ch:
            out[-1] += (f"`pgbench -b simple-update -c 2 -j 2 -t {ch['transactions'] // 2}` ({ch['transactions']:,} updates of random "
                        f"rows among {ch['accounts']:,} accounts, about {100 * ch['transactions'] / ch['accounts']:.1f} %, spread over "
                        "the whole table, so that most of its pages change; plus as many `pgbench_history` inserts), then `CHECKPOINT`.")
        blk = ctx.get("base_changed_block")
        if blk:
            out[-1] += (f" Third day: one `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN {blk['first']} AND "
                        f"{blk['last']}` ({blk['rows']:,} contiguous rows, as a day that touches recent records: a few % of the "
                        "table's pages and of its index change), then `CHECKPOINT`.")
        out[-1] += (" Before each backup the data directory is read once (warm cache) and `sync` is called. *Added* is what the "
                    "repository (pg_basebackup: the output directory) grew by. pgBackRest 2.45 has file-level incremental "
                    "backups (block incremental came in 2.46): a changed relation file is stored again whole.")
        out += ["", "| Day | Tool | wall | CPU | peak RSS | added | note |", "|---|---|---:|---:|---:|---:|---|"]
        labels = {"bunker": "Bunker", "pg_basebackup": "pg_basebackup -Ft -z", "pgbackrest": "pgBackRest"}
        for row in ctx["base"]:
            for tool in ("bunker", "pg_basebackup", "pgbackrest"):
                m = row.get(tool)
                kind = "" if tool != "pgbackrest" else ("full" if row["day"] == 1 else "incr")
                if isinstance(m, Measure):
                    note = kind
                    if "data_added" in m.extra:
                        note = f"data_added {mib(m.extra['data_added'])} (before zstd) of {mib(m.extra['total'])}"
                    out.append(f"| {row['day']} | {labels[tool]} | {m.wall:.1f} s | {m.cpu:.1f} s | {m.rss_mib:.0f} MiB | "
                               f"{mib(m.extra['added'])} | {note} |")
                elif m is not None:
                    out.append(f"| {row['day']} | {labels[tool]} | FAILED | | | | {m[:200]} |")
                elif tool == "pgbackrest":
                    out.append(f"| {row['day']} | {labels[tool]} | not measured | | | | see below |")
        out.append("")
        for row in ctx["base"]:
            b = row.get("bunker")
            for tool in ("pg_basebackup", "pgbackrest"):
                o = row.get(tool)
                if isinstance(b, Measure) and isinstance(o, Measure):
                    out.append(f"- Day {row['day']}, Bunker against {labels[tool]}: wall {ratio(b.wall, o.wall)}, CPU "
                               f"{ratio(b.cpu, o.cpu)}, peak RSS {ratio(b.rss_mib, o.rss_mib)}, bytes added "
                               f"{ratio(b.extra['added'], o.extra['added'])}.")
        out += ["", "Commands:", ""]
        for tool, m in ctx["base"][-1].items():
            if isinstance(m, Measure):
                out.append(f"- {labels[tool]}: `{shlex.join(m.argv)}`")
        out.append("")

    if "restore" in ctx:
        r = ctx["restore"]
        m = r["measure"]
        out += ["## 3. Restore to a moment", "",
                f"After the last base backups, `pgbench -c 2 -j 2 -T {args.restore_wal_seconds}`, then a row "
                f"`before`, a moment T = `{r['moment']}` one second later, and a row `after` (with an update of "
                f"`pgbench_accounts`) one second after T; {r['archived_segments']} WAL files were archived between the "
                "end of the last base backup's run and the restore (the restore replays them through "
                "`bunker wal fetch`). Then:", "",
                f"`{shlex.join(m.argv)}`", "",
                "| wall | CPU (bunker) | peak RSS | restored data directory |", "|---:|---:|---:|---:|",
                f"| {m.wall:.1f} s | {m.cpu:.1f} s | {m.rss_mib:.0f} MiB | {mib(r['size'])} |", "",
                "The wall time includes the server's start and recovery (the WAL replay and every `wal fetch` run by "
                "PostgreSQL; their CPU is not in the CPU column). Checks on the restored, promoted server (the run "
                "fails if one does not hold):", ""]
        out += [f"- {name}: {'ok' if passed else 'FAILED'} ({detail})" for name, passed, detail in r["checks"]]
        out.append("")

    if "rpo" in ctx:
        out += ["## 4. RPO under load", "",
                f"For each trial, a new cluster (`pgbench -i -s {args.rpo_scale}`, `synchronous_commit = on`), "
                "`archive_command = 'bunker wal push …'` and the trial's `archive_timeout` (the issue's figure is "
                "`archive_timeout = 60`, RPO ≤ 60 s; shorter timeouts keep the run short, and the bound scales with "
                "them), a Bunker base backup, then `pgbench -c 2 -j 1` (at full speed, or rate-limited with `-R`) and a "
                "heartbeat (`INSERT INTO heartbeat DEFAULT VALUES RETURNING …` through psql, once a second) for the "
                "trial's load time. Then the machine is lost: SIGKILL to the postmaster and every process "
                "of the server at once (an `archive_command` in flight included; in async mode the drainer too), "
                "its data directory deleted (and the async spool). "
                "`bunker restore latest --source rpo --pgdata NEW --latest --start` brings it back from the repository "
                "alone. *RPO* = the kill's time − the newest heartbeat recovered; *lost commits* = the newest heartbeat "
                "committed (acknowledged to the client) − the newest recovered. *WAL written* is `pg_stat_wal.wal_bytes` over the load. *Backlog* is the most WAL files waiting "
                "(`.ready` in `pg_wal/archive_status`, plus the spool) seen in samples every 0.5 s.", "",
                "| # | push | load | archive_timeout | load time | WAL written | archived during load | backlog max | heartbeats committed / recovered | lost commits | **RPO** | restore wall |",
                "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for i, t in enumerate(ctx["rpo"], 1):
            load = "pgbench full speed" if t["rate"] == "full" else f"pgbench -R {t['rate']}"
            if "error" in t:
                out.append(f"| {i} | {t['mode']} | {load} | {t['timeout']} s | {t['seconds']} s | FAILED: {t['error'][:300]} | | | | | | |")
                continue
            out.append(f"| {i} | {t['mode']} | {load} | {t['timeout']} s | {t['seconds']} s | {t['wal_mib_s']:.2f} MiB/s | {t['archived']} files (failed {t['failed']}) | {t['backlog_max']} | "
                       f"{t['committed_rows']} / {t['recovered_rows']} | {t['lost_commits']:.1f} s | **{t['rpo']:.1f} s** | "
                       f"{t['restore'].wall:.1f} s |")
        good = [t for t in ctx["rpo"] if "error" not in t]
        if good:
            out.append("")
            for timeout in sorted({t["timeout"] for t in good}):
                worst = max(t["rpo"] for t in good if t["timeout"] == timeout)
                out.append(f"- `archive_timeout = {timeout}`: worst RPO measured **{worst:.1f} s** "
                           f"({'within' if worst <= timeout + 5 else 'ABOVE'} the timeout plus a few seconds to push).")
        out.append("")

    notes = ctx.get("not_measured", [])
    if notes:
        out += ["## Not measured", ""] + [f"- {n}" for n in notes] + [""]
    out += ["Logs of every timed command (and their `/usr/bin/time -v` reports) are in the work directory's `logs/`.", ""]
    return "\n".join(out)


# --- main -------------------------------------------------------------------------------------


def install_pgbackrest(allowed: bool) -> None:
    if shutil.which("pgbackrest") or not allowed or not AS_ROOT or not shutil.which("apt-get"):
        return
    log("installing pgbackrest from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "pgbackrest"]):
        if subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL).returncode != 0:
            log(f"'{' '.join(argv)}' failed; going on without pgBackRest")
            return


def main() -> int:
    global WORK, LOGS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bunker-bin", required=True, help="the bunker binary (copied into the work directory)")
    parser.add_argument("--work", default="/tmp/bench-pitr-work", help="work directory (emptied first)")
    parser.add_argument("--output", default=str(BENCH_DIR / "RESULTS-pitr.md"))
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale of the base backup cluster (20: ~300 MiB)")
    parser.add_argument("--change-pct", type=float, default=2.0, help="second day: updates, as %% of the accounts")
    parser.add_argument("--segments", type=int, default=32, help="WAL segments pushed in part 1")
    parser.add_argument("--archive-scale", type=int, default=10, help="pgbench scale of the cluster that writes them")
    parser.add_argument("--restore-wal-seconds", type=int, default=15, help="pgbench run between base backup and target")
    parser.add_argument("--archive-timeout", type=int, default=20, help="archive_timeout of the RPO trials (s)")
    parser.add_argument("--rpo-load-seconds", type=int, default=45,
                        help="load before the kill, per trial (s; at least 2.5 x the trial's archive_timeout)")
    parser.add_argument("--rpo-scale", type=int, default=5)
    parser.add_argument("--rpo-trials", default="sync:full,sync:50,async:50",
                        help="comma-separated MODE[:RATE[:ARCHIVE_TIMEOUT]] (sync|async, tps or full, seconds)")
    parser.add_argument("--parts", default="archive,base,restore,rpo", help="which parts to run")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install pgbackrest")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "restore" in parts:
        parts.add("base")

    WORK = Path(args.work).resolve()
    if WORK.exists():
        for data in WORK.glob("**/postmaster.pid"):
            stop_server(data.parent)
        shutil.rmtree(WORK)
    mkdirs(WORK)
    try:
        reachable = run(["test", "-w", WORK], check=False).returncode == 0
    except OSError:
        reachable = False
    if not reachable:
        sys.exit(f"{PG_USER} cannot enter {WORK}; choose a --work every user can traverse (e.g. under /tmp)")
    LOGS = mkdirs(WORK / "logs")
    (WORK / "password").write_text(PASSWORD + "\n")
    os.chmod(WORK / "password", 0o600)
    own(WORK / "password")
    binary = mkdirs(WORK / "bin") / "bunker"
    shutil.copy2(args.bunker_bin, binary)
    os.chmod(binary, 0o755)
    install_pgbackrest(not args.no_install)
    bunker, pgbr = Bunker(binary), PgBackRest()

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)

    ctx: dict = {"started": dt.datetime.now(dt.timezone.utc), "load_before": round(os.getloadavg()[0], 2),
                 "builds": other_builds()}
    if not pgbr.binary:
        ctx.setdefault("not_measured", []).append("pgBackRest: not installed (Debian's `pgbackrest` package).")
    began = time.monotonic()
    status = 0
    try:
        for part, run_part in (("archive", lambda: section_archive(ctx, args, bunker, pgbr)),
                               ("base", lambda: section_base(ctx, args, bunker, pgbr)),
                               ("restore", lambda: section_restore(ctx, args, bunker)),
                               ("rpo", lambda: section_rpo(ctx, args, bunker))):
            if part in parts:
                ctx["builds"] = sorted(set(ctx["builds"]) | set(other_builds()))
                run_part()
                if part == "restore" or (part == "base" and "restore" not in parts):
                    ctx["base_cluster"].stop()
    except BenchFailure as error:
        log(f"FAILED: {error}")
        ctx.setdefault("not_measured", []).append(f"**The run stopped here: {error}**")
        status = 1
    finally:
        for data in reversed(LIVE_DATA_DIRS):
            stop_server(data)
    ctx["duration"] = time.monotonic() - began
    ctx["load_after"] = round(os.getloadavg()[0], 2)
    ctx["builds"] = sorted(set(ctx["builds"]) | set(other_builds()))
    text = report(ctx, args, bunker, pgbr)
    Path(args.output).write_text(text)
    print(text)
    log(f"wrote {args.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
