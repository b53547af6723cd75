"""The subprocess plumbing the test servers share (our broker, ZooKeeper,
Apache Kafka, the Streams app): start one with its output appended to a log
file, wait with a deadline until it is ready or has exited, stop it by its
PID (SIGTERM, then SIGKILL after a grace period), and show the log's end
when something fails. Only the processes started here are ever signalled."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

KILL_TIMEOUT = 30.0


class ExitedDuringStartup(RuntimeError):
    """The process exited before it was ready; `tail` is its log's end."""

    def __init__(self, message: str, tail: str):
        super().__init__(message)
        self.tail = tail


class PortTaken(ExitedDuringStartup):
    """It exited because its port was taken (after free_port() chose it,
    someone else bound it): the caller may try other ports."""


class ProcessOwner:
    """What a wrapper that started one subprocess (`_process`, set by its
    start()) says about it and does to it, whatever the program."""

    _process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill9(self) -> None:
        """SIGKILL, as a crash; what it leaves on disk is kept for a restart."""
        if self._process is not None:
            kill9(self._process)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never 9092)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 9092:
            return port


def launch(command: list[str], log_path: Path, *, env: dict[str, str] | None = None,
           new_session: bool = False, stdout_pipe: bool = False) -> subprocess.Popen:
    """Start `command` with its output appended to `log_path`, after a line
    naming the command (a log kept across restarts shows each start).
    `stdout_pipe`: stdout is the caller's to read, only stderr goes to the log.
    `new_session`: Ctrl-C in a terminal doesn't reach it; its owner stops it."""
    with Path(log_path).open("ab") as log:
        log.write(f"\n--- starting: {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log if stdout_pipe else subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env}, start_new_session=new_session)


def wait_until_ready(process: subprocess.Popen, ready, timeout: float, *, name: str,
                     not_ready: str, log_tail, interval: float = 0.05) -> None:
    """Poll `ready()` every `interval` seconds until it is true. Raises
    ExitedDuringStartup (PortTaken when the log says the address is in use)
    if the process exits first, TimeoutError after `timeout` seconds; both
    end with `log_tail()`. `name` and `not_ready` word the messages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_tail()
            error = PortTaken if "Address already in use" in tail else ExitedDuringStartup
            raise error(f"{name} exited with code {process.returncode} during start-up\n" + tail, tail)
        if ready():
            return
        time.sleep(interval)
    raise TimeoutError(f"{not_ready} within {timeout}s\n" + log_tail())


def stop(process: subprocess.Popen, grace: float) -> bool:
    """SIGTERM (the program's own clean shutdown) and wait up to `grace`
    seconds; SIGKILL if it is still running then. True if it exited by
    itself (or had already)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            kill9(process)
            return False
    return True


def kill9(process: subprocess.Popen, timeout: float = KILL_TIMEOUT) -> None:
    """SIGKILL (a crash, as far as the program can tell) and wait until it is gone."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"pid {process.pid} outlived SIGKILL for {timeout}s") from None


def log_tail(log_path: Path | None, lines: int) -> str | None:
    """The last `lines` lines of a log, or None when there is none to read."""
    try:
        text = Path(log_path).read_text(errors="replace")
    except (OSError, TypeError):
        return None
    return "\n".join(text.splitlines()[-lines:])
