"""A kafka-compat broker run as a subprocess, the way a user starts it."""
from __future__ import annotations

import socket
import struct
import sys
from pathlib import Path

from . import process
from .process import free_port

API_VERSIONS_KEY = 18


def api_versions_round_trip(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send ApiVersions v0 on a fresh connection; True if the broker answers
    with a matching correlation id and no error."""
    correlation_id = 0x1C0FFEE
    client_id = b"interop-probe"
    body = struct.pack(">hhih", API_VERSIONS_KEY, 0, correlation_id, len(client_id)) + client_id
    response = round_trip(host, port, body, timeout)
    if response is None:
        return False
    got_id, error_code = struct.unpack_from(">ih", response)
    return got_id == correlation_id and error_code == 0


def round_trip(host: str, port: int, request: bytes, timeout: float) -> bytes | None:
    """Send one request frame's body on a fresh connection; the response
    frame's body, or None if the broker can't be reached or hangs up."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            return _recv_exactly(sock, size)
    except (OSError, EOFError):
        return None


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


class BrokerProcess(process.ProcessOwner):
    """One broker subprocess on a fixed port and data directory.

    `start()` returns once the broker answers ApiVersions; `restart()` starts
    it again on the same port and data directory after `stop()` or `kill9()`.
    Its stdout and stderr are appended to `log_path` across restarts. `env`
    adds environment variables (e.g. the test-only KAFKA_COMPAT_TEST_FAULTS).
    """

    def __init__(self, executable: Path, data_dir: Path, log_path: Path,
                 overrides: dict[str, str] | None = None, port: int | None = None,
                 startup_timeout: float = 30.0, env: dict[str, str] | None = None):
        self.executable = Path(executable)
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.overrides = dict(overrides or {})
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.env = dict(env or {})

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.executable), "broker",
               "--listeners", f"PLAINTEXT://{self.bootstrap}",
               "--log-dirs", str(self.data_dir)]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def start(self) -> None:
        if self.running():
            raise RuntimeError(f"broker already running as pid {self.pid}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = process.launch(self.command(), self.log_path, env=self.env)
        process.wait_until_ready(
            self._process, lambda: api_versions_round_trip(self.host, self.port, timeout=1.0),
            self.startup_timeout, name="broker",
            not_ready=f"broker on {self.bootstrap} did not answer ApiVersions", log_tail=self.log_tail)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait for exit; returns the exit code. SIGKILLs and
        raises if the broker doesn't shut down within `timeout`."""
        if self._process is None:
            return 0
        if not process.stop(self._process, timeout):
            raise TimeoutError(
                f"broker pid {self._process.pid} ignored SIGTERM for {timeout}s; killed\n"
                + self.log_tail())
        return self._process.returncode

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 150) -> str:
        tail = process.log_tail(self.log_path, lines)
        if tail is None:
            return "(no broker log)"
        return f"--- last {len(tail.splitlines())} lines of {self.log_path} ---\n" + tail


def venv_executable(name: str) -> Path:
    """A console script installed beside the running interpreter."""
    return Path(sys.executable).parent / name
