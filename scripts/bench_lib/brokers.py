"""The systems under test and their processes: start one fresh, wait until it
answers a request, read its CPU time and peak RSS, restart it, stop it.

A system is our broker, a peer started from a command, a peer at a given
address (no process of ours: no CPU, RSS or restart figures), or the sink.
Every process listens on a free port of 127.0.0.1 and is stopped by its PID.
"""
from __future__ import annotations

import compileall
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import kafka_compat

from . import procstat

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
PROBE_INTERVAL_S = 0.005

# ApiVersions v0 with correlation id 1 and client id "bench-probe".
_CLIENT_ID = b"bench-probe"
_PROBE_REQUEST = struct.pack(">hhih", 18, 0, 1, len(_CLIENT_ID)) + _CLIENT_ID
_PROBE = struct.pack(">i", len(_PROBE_REQUEST)) + _PROBE_REQUEST


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def answers_requests(port: int) -> bool:
    """True when the server on ``port`` answers an ApiVersions request."""
    try:
        with socket.create_connection((HOST, port), timeout=5) as s:
            s.sendall(_PROBE)
            head = b""
            while len(head) < 8:
                data = s.recv(8 - len(head))
                if not data:
                    return False
                head += data
            return struct.unpack(">ii", head)[1] == 1
    except OSError:
        return False


class Process:
    """A server process we started, listening on ``port``."""

    def __init__(self, argv: list[str], port: int, log_path: Path, clean_exit: tuple[int, ...] = (0,)):
        self.argv, self.port, self.log_path = argv, port, log_path
        self.clean_exit = clean_exit  # the exit statuses of a clean shutdown after SIGTERM
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def start(self) -> float:
        """Start and wait until it answers; the seconds that took."""
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = t0 + READY_TIMEOUT_S
        while not answers_requests(self.port):
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with status {self.popen.returncode}: {self.log_tail()}")
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} did not answer on port {self.port} in {READY_TIMEOUT_S} s")
            time.sleep(PROBE_INTERVAL_S)
        return time.perf_counter() - t0

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL if it is still there after STOP_TIMEOUT_S.
        True when it exited by itself with a clean status (0 unless told)."""
        if self.popen is None or self.popen.poll() is not None:
            return self.popen is not None and self.popen.returncode in self.clean_exit
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(STOP_TIMEOUT_S) in self.clean_exit
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return False

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Running:
    """One start of a system, for one workload run."""

    bootstrap: str
    process: Process | None = None
    data_dir: Path | None = None
    restartable: bool = False

    def cpu_seconds(self) -> float | None:
        return None if self.process is None else procstat.cpu_seconds(self.process.pid)

    def peak_rss_mb(self) -> float | None:
        return None if self.process is None else procstat.peak_rss_mb(self.process.pid)

    def restart(self) -> float:
        """Clean shutdown, then start again on the same data; the seconds to serving."""
        if not self.restartable:
            raise RuntimeError("this system cannot be restarted with its data")
        if not self.process.stop():
            raise RuntimeError(f"no clean shutdown: {self.process.log_tail()}")
        return self.process.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class System:
    """How to get a fresh instance of one system under test.

    ``argv(port, data_dir)`` builds the command line; with none, ``bootstrap``
    is the address of a server someone else runs. ``keeps_data``: a restart
    finds what was written before (workloads that restart need it).
    ``clean_exit``: the exit statuses of a clean shutdown after SIGTERM (a
    JVM's is 143, 128 + SIGTERM, even when its shutdown hooks ran to the end).
    """

    name: str
    version: str
    argv: Callable[[int, Path], list[str]] | None = None
    bootstrap: str | None = None
    keeps_data: bool = False
    notes: list[str] = field(default_factory=list)
    clean_exit: tuple[int, ...] = (0,)

    def start(self, run_dir: Path, label: str) -> Running:
        if self.argv is None:
            return Running(self.bootstrap)
        data_dir = run_dir / f"{label}-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        try:
            process = Process(self.argv(port, data_dir), port, run_dir / f"{label}.log", self.clean_exit)
            process.start()
        except BaseException:
            shutil.rmtree(data_dir, ignore_errors=True)
            raise
        return Running(f"{HOST}:{port}", process, data_dir, restartable=self.keeps_data)


def ours(venv: Path, overrides: list[str], version: str) -> System:
    """Our broker, from the project's virtualenv, on a fresh data directory.

    Its modules are byte-compiled first, as installing a package does: with
    PYTHONDONTWRITEBYTECODE set (our machines set it), an editable install
    would compile every module from source at each start (~70 ms of start-up).
    """
    compileall.compile_dir(Path(kafka_compat.__file__).parent, quiet=1)

    def argv(port: int, data_dir: Path) -> list[str]:
        extra = [arg for kv in overrides for arg in ("-o", kv)]
        return [str(venv / "bin" / "kafka-compat"), "broker", "--listeners", f"PLAINTEXT://{HOST}:{port}",
                "--log-dirs", str(data_dir), "--log-level", "WARN", *extra]

    return System("ours", version, argv, keeps_data=True)


def peer_command(template: str, version: str) -> System:
    """A peer started by a command; ``{port}`` and ``{data_dir}`` in it are
    filled in. The command must run the broker itself in the foreground (exec),
    so that the PID we hold is the broker's."""

    def argv(port: int, data_dir: Path) -> list[str]:
        return shlex.split(template.format(port=port, data_dir=data_dir, host=HOST))

    return System("peer", version, argv)


def peer_address(bootstrap: str, version: str) -> System:
    return System("peer", version, bootstrap=bootstrap,
                  notes=["the peer runs elsewhere: no CPU, RSS or start-up figures for it"])


def sink() -> System:
    def argv(port: int, data_dir: Path) -> list[str]:
        return [sys.executable, "-m", "bench_lib.sink", "--port", str(port)]

    return System("sink", "bench_lib.sink", argv)
