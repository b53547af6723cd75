"""The log cleaner's worker process: one per log.cleaner.threads, so that the
cleaning's Python work runs on another core instead of taking the GIL from
the broker's event loop (a cleaner thread in the broker's process halved a
busy event loop's throughput). The broker's cleaner task drives it from a
worker thread: it sends a LogToClean, gets the offset map built, then one
cleaned segment (``.cleaned`` files, flushed) per group of segments, and
swaps each in itself.

Messages are pickled objects behind a 4-byte length on the process's stdin
and stdout; the process runs only on otherwise idle cores (SCHED_IDLE) and
dies with the broker (PR_SET_PDEATHSIG, and EOF on stdin).
"""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

import trio

from .cleaner import CleanedTransactionMetadata, Cleaner, CleanerStats, CleaningAborted, LogToClean, Throttler
from .offset_map import SkimpyOffsetMap

_LENGTH = struct.Struct(">I")
_PR_SET_PDEATHSIG = 1


def send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """The next message; EOFError when the other side has gone."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError
    return pickle.loads(data)


class _Job:
    """The log being cleaned: what the map step learned, kept for the groups."""

    def __init__(self, ltc: LogToClean):
        self.ltc = ltc
        self.txns = CleanedTransactionMetadata()
        self.stats = CleanerStats()


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Answer requests until the broker closes the pipe:
    ("init", memory, io_buffer_size, max_io_buffer_size, load_factor, io_bytes_per_second) -> ("ok",)
    ("map", LogToClean) -> ("ok", end offset, map utilization)
    ("clean", group indexes, now ms, upper bound offset) -> ("ok", CleanerStats)
    and ("error", kind, message) when a step fails (kind: aborted, io, invalid)."""
    cleaner: Cleaner | None = None
    job: _Job | None = None
    while True:
        try:
            request = receive(inp)
        except EOFError:
            return
        try:
            kind = request[0]
            if kind == "init":
                _, memory, io_buffer_size, max_io_buffer_size, load_factor, rate = request
                throttler = Throttler(rate, threading.Event())
                cleaner = Cleaner(SkimpyOffsetMap(memory), io_buffer_size, max_io_buffer_size, load_factor,
                                  throttler, lambda: None)
                send(out, ("ok",))
            elif kind == "map":
                job = _Job(request[1])
                end = cleaner.build_offset_map(job.ltc, job.stats)
                send(out, ("ok", end, cleaner.offset_map.utilization))
            elif kind == "clean":
                _, indexes, now_ms, upper = request
                group = [job.ltc.segments[i] for i in indexes]
                cleaned = cleaner.clean_segments(job.ltc, group, job.txns, now_ms, upper, job.stats)
                cleaned.close()
                send(out, ("ok", job.stats))
            else:
                send(out, ("error", "invalid", f"unknown request {kind!r}"))
        except CleaningAborted as e:
            send(out, ("error", "aborted", str(e)))
        except OSError as e:
            send(out, ("error", "io", f"{e.strerror or e} ({e.filename})"))
        except Exception as e:  # a corrupt segment, an undecodable batch: the log becomes uncleanable
            send(out, ("error", "invalid", f"{type(e).__name__}: {e}"))


def main() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: EOF on stdin still ends the process
    if os.getppid() == 1:
        return  # the broker died before the death signal was armed
    # Background work: the broker's own work comes first. SCHED_IDLE runs it
    # only on a core nothing else wants, and any waking task preempts it. At
    # nice 19 a CPU-bound process still slowed the single broker's produce
    # bench by about 35% (wake-ups wait for its time slice) and under
    # SCHED_IDLE by about 2%; nice 19 remains where SCHED_IDLE is missing.
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write on the message pipe
    serve(inp, out)


# ---------------------------------------------------------------- the broker's side


class ProcessRunner:
    """A cleaner task's worker process, started on first use and again after
    it died; each step waits for its answer in a worker thread. Cancelled
    (shutdown), the process is killed: its unfinished .cleaned files are
    dropped by the next cleaning or the next start-up."""

    def __init__(self, memory: int, io_buffer_size: int, max_io_buffer_size: int, load_factor: float,
                 io_bytes_per_second: float):
        self._init = ("init", memory, io_buffer_size, max_io_buffer_size, load_factor, io_bytes_per_second)
        self._process: subprocess.Popen | None = None
        self._initialized = False

    def _start(self) -> None:
        """Start the process from the event loop's thread: PR_SET_PDEATHSIG
        fires when the thread that started it ends, and worker threads come
        and go."""
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
        # -P: not the working directory first on the import path (a kafka_compat
        # folder there would be run instead); -c rather than -m: running the
        # module as __main__ after its package imported it warns in the log.
        self._process = subprocess.Popen([sys.executable, "-P", "-c",
                                          "from kafka_compat.log.cleaner_worker import main; main()"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._initialized = False

    def _round_trip(self, process: subprocess.Popen, request: tuple) -> tuple:
        try:
            send(process.stdin, request)
            reply = receive(process.stdout)
        except (EOFError, OSError):
            self.close()
            raise ValueError(f"the cleaner worker process exited ({process.poll()})") from None
        if reply[0] == "error":
            _, kind, message = reply
            if kind == "aborted":
                raise CleaningAborted(message)
            if kind == "io":
                raise OSError(message)
            raise ValueError(message)
        return reply

    def _call_blocking(self, process: subprocess.Popen, request: tuple) -> tuple:
        if not self._initialized:
            self._round_trip(process, self._init)
            self._initialized = True
        return self._round_trip(process, request)

    async def _call(self, *request: Any) -> tuple:
        if self._process is None or self._process.poll() is not None:
            self._start()
        process = self._process
        try:
            return await trio.to_thread.run_sync(self._call_blocking, process, request, abandon_on_cancel=True)
        except trio.Cancelled:
            self.close()
            raise

    async def build_offset_map(self, ltc: LogToClean) -> tuple[int, float]:
        _, end, utilization = await self._call("map", ltc)
        return end, utilization

    async def clean_group(self, indexes: list[int], now_ms: int, upper_bound_offset: int) -> CleanerStats:
        return (await self._call("clean", indexes, now_ms, upper_bound_offset))[1]

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        if process is not None:
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
