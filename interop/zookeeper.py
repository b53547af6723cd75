"""A standalone ZooKeeper server run from Debian's `zookeeper` package.

`ZooKeeperProcess` starts `org.apache.zookeeper.server.ZooKeeperServerMain`
with a generated zoo.cfg on 127.0.0.1 and a free port, waits until the server
answers the `srvr` four-letter command as serving, and stops it by PID. Tests
start one per module; `./scripts/cluster` starts one for a development cluster.

The server is tuned for tests and development, not durability: the
transaction log is not fsynced (forceSync=no) and the tick is short (500 ms,
so sessions can be as short as 1 s and expire promptly). Its output goes to
`zookeeper.log` in the data directory.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

from interop import process
from interop.process import PortTaken, free_port

# zookeeper.jar's manifest names every jar it needs except an SLF4J binding;
# slf4j-simple (from libslf4j-java, a dependency of the package) logs to stderr.
CLASSPATH = ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar"]
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
# Small heap, serial GC and the C1 compiler only: start-up time is what counts.
JVM_OPTIONS = ["-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.net.preferIPv4Stack=true", "-Dzookeeper.jmx.log4j.disable=true"]
FOUR_LETTER_WORDS = "srvr,stat,mntr,cons,ruok"


class ZooKeeperNotInstalled(RuntimeError):
    pass


class ZooKeeperProcess(process.ProcessOwner):
    """One ZooKeeper server subprocess.

    `data_dir=None` uses a temporary directory, removed by `stop()`; a given
    directory is kept (and reused by the next start). `port=None` picks a free
    one. Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, data_dir: Path | None = None, port: int | None = None,
                 tick_time_ms: int = 500, startup_timeout: float = 30.0):
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self._fixed_port = port
        self.port = port
        self.host = "127.0.0.1"
        self.tick_time_ms = tick_time_ms
        self.startup_timeout = startup_timeout
        self.data_dir: Path | None = None

    def connect_string(self, chroot: str = "") -> str:
        """`host:port`, or `host:port/chroot` (a Kafka zookeeper.connect)."""
        if chroot and not chroot.startswith("/"):
            raise ValueError(f"chroot must start with '/': {chroot!r}")
        return f"{self.host}:{self.port}{chroot}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "zookeeper.log"

    def start(self) -> ZooKeeperProcess:
        if self.running():
            raise RuntimeError(f"ZooKeeper already running as pid {self.pid}")
        check_installed()
        if self._given_data_dir is not None:
            self.data_dir = self._given_data_dir
            self.data_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.data_dir = Path(tempfile.mkdtemp(prefix="zookeeper-"))
        # A free port can be taken by someone else before the server binds it;
        # then the server exits at once and another port is tried.
        for _ in range(3):
            self.port = self._fixed_port or free_port()
            try:
                self._launch()
                return self
            except PortTaken:
                if self._fixed_port:
                    raise RuntimeError(f"port {self.port} is already in use\n" + self.log_tail())
        raise RuntimeError("ZooKeeper could not bind a free port\n" + self.log_tail())

    def command(self, config: Path) -> list[str]:
        return ["java", *JVM_OPTIONS, "-cp", ":".join(CLASSPATH), MAIN_CLASS, str(config)]

    def _launch(self) -> None:
        config = self.data_dir / "zoo.cfg"
        config.write_text(self._config())
        # Own session: Ctrl-C in ./scripts/cluster reaches the script, which
        # stops the brokers before ZooKeeper.
        self._process = process.launch(self.command(config), self.log_path, new_session=True)
        try:
            process.wait_until_ready(
                self._process, self.serving, self.startup_timeout, name="ZooKeeper",
                not_ready=f"ZooKeeper on {self.connect_string()} did not serve",
                log_tail=self.log_tail, interval=0.02)
        except TimeoutError:
            self.stop()
            raise

    def _config(self) -> str:
        return "\n".join([
            f"tickTime={self.tick_time_ms}",
            f"dataDir={self.data_dir / 'data'}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            f"minSessionTimeout={2 * self.tick_time_ms}",
            # Kafka's zookeeper.session.timeout.ms defaults to 18000: not cut down.
            "maxSessionTimeout=60000",
            # Every broker and test connects from 127.0.0.1 (the default cap is 60).
            "maxClientCnxns=0",
            "admin.enableServer=false",
            f"4lw.commands.whitelist={FOUR_LETTER_WORDS}",
            "forceSync=no",
            # The transaction log is preallocated in 64 MB steps by default.
            "preAllocSize=4096",
            "",
        ])

    def serving(self) -> bool:
        """True when the server answers `srvr` as a serving server."""
        return four_letter_word(self.host, self.port, "srvr").startswith("Zookeeper version:")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; removes a temporary
        data directory. Returns the exit status (None if never started)."""
        status = None
        if self._process is not None:
            process.stop(self._process, timeout)
            status = self._process.returncode
        if self._given_data_dir is None and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
        return status

    def log_tail(self, lines: int = 30) -> str:
        return process.log_tail(self.data_dir and self.log_path, lines) or ""

    def __enter__(self) -> ZooKeeperProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def check_installed() -> None:
    missing = [jar for jar in CLASSPATH if not os.path.exists(jar)]
    if shutil.which("java") is None:
        missing.append("java")
    if missing:
        raise ZooKeeperNotInstalled(
            f"ZooKeeper is not installed (missing {', '.join(missing)}): "
            "run ./scripts/test once, or apt-get install zookeeper")


def four_letter_word(host: str, port: int, word: str, timeout: float = 1.0) -> str:
    """Send a four-letter command; the answer, or "" if there is none."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


def expire_session(connect_string: str, client_id: tuple[int, bytes], timeout: float = 10.0) -> None:
    """Force the expiry of a session, for tests (Kafka's tests and Curator do
    the same): join the session from a second connection with its id and
    password, then close that connection, which ends the session on the
    server. The session's own client finds it expired when it reconnects.

    Blocking: call it from a worker thread under trio.
    """
    from kazoo.client import KazooClient

    hosts = connect_string.partition("/")[0]  # the session is not in the chroot
    other = KazooClient(hosts=hosts, client_id=client_id)
    other.start(timeout=timeout)
    try:
        other.stop()
    finally:
        other.close()
