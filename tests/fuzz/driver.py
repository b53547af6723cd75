"""Sends fuzz frames to a broker subprocess and judges every answer.

Each frame is followed by a sentinel (ApiVersions v0, which every broker
answers) on the same connection. Requests are answered in order, so when
the sentinel's answer arrives, the frame was handled: it got a response
(which must decode with its API's response schema and carry its correlation
id) or, for Produce with acks=0 only, none. When the connection closes before
the sentinel is answered, the frame closed it; frames pipelined behind it
were never read, and go again on a new connection. A frame that gets neither
within the timeout hung the connection, unless it is a Fetch allowed to wait
longer (a long poll). Everything else is a finding.
"""
from __future__ import annotations

import re
import select
import selectors
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kafka_compat.api.registry import load_handlers
from kafka_compat.protocol import schema
from kafka_compat.protocol.records import build_batch, iter_batches

from .frames import API_VERSIONS_KEY, CORRELATION_AT, Frame

PRODUCE_KEY = 0
# Topics the fuzzed requests name (frames.TOPICS), each making the broker do
# different work with a produced batch: decode it for keys (compact), recompress
# it (gzip), decode it for timestamps (ts).
FUZZ_TOPICS = {
    "fuzz-a": {},
    "fuzz-compact": {"cleanup.policy": "compact"},
    "fuzz-gzip": {"compression.type": "gzip"},
    "fuzz-ts": {"message.timestamp.before.max.ms": "3600000"},
}
# Broker settings for fuzzing: a group rebalances at once (no 3 s delay
# holding JoinGroup answers), and every other default as a user has it.
BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}


def _sentinel(correlation_id: int) -> bytes:
    payload = struct.pack(">hhih", API_VERSIONS_KEY, 0, correlation_id, 1) + b"s"
    return struct.pack(">i", len(payload)) + payload


def _frames_in(buf: bytearray) -> list[bytes]:
    """Complete response frames at the start of ``buf`` (removed from it)."""
    out = []
    while len(buf) >= 4:
        (size,) = struct.unpack_from(">i", buf)
        if len(buf) < 4 + size:
            break
        out.append(bytes(buf[4 : 4 + size]))
        del buf[: 4 + size]
    return out


@dataclass
class Exchange:
    """What came back for bytes sent on one connection."""

    responses: dict[int, bytes]  # correlation id -> response body (after the id)
    closed: bool  # the broker closed the connection
    timed_out: bool


def exchange(port: int, data: bytes, wanted: set[int], timeout: float, terminal: bool = False) -> Exchange:
    """Send ``data`` on a new connection while reading responses, until every
    correlation id in ``wanted`` is answered, the broker closes, or ``timeout``.
    ``terminal``: the last frame leaves the connection unusable; shut our side
    down after sending it (it may promise bytes that never come) and wait for
    the broker to close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setblocking(False)
    responses: dict[int, bytes] = {}
    buf = bytearray()
    out = memoryview(data)
    closed = False
    deadline = time.monotonic() + timeout
    with sock, selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while terminal or not wanted <= responses.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                return Exchange(responses, False, True)
            for _, events in sel.select(left):
                if events & selectors.EVENT_WRITE:
                    try:
                        out = out[sock.send(out):]
                        if not out and terminal:
                            sock.shutdown(socket.SHUT_WR)
                    except OSError:  # the broker closed the connection already
                        out = out[len(out):]
                    if not out:
                        sel.modify(sock, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(1 << 20)
                    except ConnectionResetError:
                        chunk = b""
                    if not chunk:
                        closed = True
                        break
                    buf += chunk
                    for frame in _frames_in(buf):
                        responses[struct.unpack_from(">i", frame)[0]] = frame[4:]
            if closed:
                break
    return Exchange(responses, closed, False)


@dataclass
class Tally:
    """Counts per outcome and per (API, version); findings in detail."""

    outcomes: Counter = field(default_factory=Counter)
    per_api: Counter = field(default_factory=Counter)  # (name, version) -> frames
    mutations: Counter = field(default_factory=Counter)
    findings: list[dict] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(self.outcomes.values())

    def merge(self, other: "Tally") -> None:
        self.outcomes += other.outcomes
        self.per_api += other.per_api
        self.mutations += other.mutations
        self.findings += other.findings


def _check_response(frame: Frame, sent: bytes, body: bytes) -> str | None:
    """Why the response to ``sent`` (the frame as sent) is wrong, or None."""
    if len(sent) < CORRELATION_AT + 4:
        return "a response to a frame too short to have a header"
    api_key, version = struct.unpack_from(">hh", sent, 4)
    entry = load_handlers().get(api_key)
    if entry is None:
        return f"a response to unknown API key {api_key}"
    if not entry.min_version <= version <= entry.max_version:
        if api_key != API_VERSIONS_KEY:
            return f"a response to unsupported version {version} of {entry.name}"
        version = 0
    if schema.is_flexible(api_key, version) and api_key != API_VERSIONS_KEY:
        body = body[1:]  # response header v1: empty tagged fields
    try:
        schema.codec(entry.name, version, "response").parse(body)
    except Exception as e:
        return f"the response does not decode as {entry.name} v{version}: {e}"
    return None


def _decode_sent(sent: bytes):
    """(API name, request) of a frame as the broker reads it, or None."""
    try:
        api_key, version = struct.unpack_from(">hh", sent, 4)
        entry = load_handlers()[api_key]
        (n,) = struct.unpack_from(">h", sent, 12)
        pos = 14 + max(n, 0) + (1 if schema.is_flexible(api_key, version) else 0)
        return entry.name, schema.codec(entry.name, version, "request").parse(sent[pos:])
    except Exception:
        return None


def _acks_zero(sent: bytes) -> bool:
    """Whether ``sent`` is a Produce request with acks=0: Kafka closes such a
    producer's connection when a partition fails, since it cannot answer."""
    decoded = _decode_sent(sent)
    return decoded is not None and decoded[0] == "Produce" and decoded[1].acks == 0


def _long_poll(sent: bytes, timeout: float) -> bool:
    """Whether ``sent`` is a Fetch that may wait longer than ``timeout`` seconds
    for data (a mutation made its max_wait_ms huge): silence is its answer."""
    decoded = _decode_sent(sent)
    return decoded is not None and decoded[0] == "Fetch" and decoded[1].max_wait_ms >= timeout * 1000


class Fuzzer:
    """Runs frames against the broker on ``port``: ``run(frames)`` sends them
    pipelined (``window`` at a time on one connection) and returns a Tally."""

    def __init__(self, port: int, timeout: float = 30.0, window: int = 64):
        self.port = port
        self.timeout = timeout
        self.window = window

    def run(self, frames: list[Frame]) -> Tally:
        tally = Tally()
        pending = list(frames)
        while pending:
            batch = []
            for f in pending:
                batch.append(f)
                if f.terminal or len(batch) == self.window:
                    break
            pending = pending[len(batch):]
            pending[:0] = self._run_window(batch, tally)
        return tally

    def _run_window(self, batch: list[Frame], tally: Tally) -> list[Frame]:
        """Send ``batch`` on one connection and record each frame's outcome;
        returns the frames that were never read (behind one that closed it)."""
        out = bytearray()
        sent = []
        wanted = set()
        for i, f in enumerate(batch):
            data = bytearray(f.data)
            if len(data) >= CORRELATION_AT + 4:
                struct.pack_into(">i", data, CORRELATION_AT, 2 * i)
            sent.append(bytes(data))
            out += data
            if not f.terminal:
                out += _sentinel(2 * i + 1)
                wanted.add(2 * i + 1)
        last = batch[-1]
        result = exchange(self.port, bytes(out), wanted, self.timeout, terminal=last.terminal)
        for i, f in enumerate(batch):
            if f.terminal:
                outcome = "closed" if result.closed else "hang"
            elif 2 * i + 1 in result.responses:
                outcome = "response" if 2 * i in result.responses else "no_response"
            elif result.closed or result.timed_out:
                outcome = "closed" if result.closed else "hang"
            else:
                raise AssertionError("exchange ended with a sentinel unanswered")
            self._record(tally, f, sent[i], outcome, result.responses.get(2 * i))
            if outcome in ("closed", "hang") and not f.terminal:
                return batch[i + 1:]
        return []

    def _record(self, tally: Tally, f: Frame, sent: bytes, outcome: str, response: bytes | None) -> None:
        if outcome == "hang" and _long_poll(sent, self.timeout):
            outcome = "long_poll"
        tally.outcomes[outcome] += 1
        tally.per_api[(f.name, f.version)] += 1
        tally.mutations[(f.mutation, outcome)] += 1
        problem = None
        if outcome == "hang":
            problem = "no response and no close within the timeout"
        elif outcome == "response":
            problem = _check_response(f, sent, response)
        elif outcome == "no_response" and not (sent[4:6] == struct.pack(">h", PRODUCE_KEY)):
            problem = "no response (only Produce with acks=0 may do that)"
        elif outcome == "closed" and f.mutation == "none" and not _acks_zero(sent):
            problem = "a valid request closed the connection"
        if problem:
            tally.findings.append({"problem": problem, "api": f.name, "version": f.version,
                                   "mutation": f.mutation, "frame": sent[:512].hex()})


# ---------------------------------------------------------------- a well-behaved client


class SteadyClient:
    """A producer and consumer that must not notice the fuzzing: it appends
    numbered records to its own topic (acks=-1) and reads every one back."""

    def __init__(self, port: int, topic: str = "steady"):
        self.port = port
        self.topic = topic
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.correlation_id = 0
        self.sent = 0
        self.read: list[bytes] = []  # values read back so far
        self.max_latency = 0.0

    def request(self, api: str, version: int, body: dict):
        start = time.monotonic()
        self.send(api, version, body)
        response = self.receive(api, version)
        self.max_latency = max(self.max_latency, time.monotonic() - start)
        return response

    def send(self, api: str, version: int, body: dict) -> None:
        spec = schema.all_specs()[api]
        self.correlation_id += 1
        header = struct.pack(">hhih", spec.api_key, version, self.correlation_id, 6) + b"steady"
        if schema.is_flexible(spec.api_key, version):
            header += b"\x00"
        payload = header + schema.codec(api, version, "request").build(body)
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def readable(self) -> bool:
        """Whether a response has (started to) come in."""
        return bool(select.select([self.sock], [], [], 0)[0])

    def receive(self, api: str, version: int):
        """The response to the last request sent."""
        spec = schema.all_specs()[api]
        (size,) = struct.unpack(">i", self._read(4))
        frame = self._read(size)
        assert struct.unpack_from(">i", frame)[0] == self.correlation_id
        skip = 5 if schema.is_flexible(spec.api_key, version) and spec.api_key != API_VERSIONS_KEY else 4
        return schema.codec(api, version, "response").parse(frame[skip:])

    def _read(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the steady client's connection")
            data += chunk
        return bytes(data)

    def create_topics(self, topics: dict[str, dict]) -> None:
        resp = self.request("CreateTopics", 7, {"timeout_ms": 5000, "topics": [
            {"name": name, "num_partitions": 1, "replication_factor": 1,
             "configs": [{"name": k, "value": v} for k, v in configs.items()]} for name, configs in topics.items()]})
        for t in resp.topics:
            assert t.error_code in (0, 36), (t.name, t.error_code, t.error_message)  # 36: exists

    def produce(self, n: int = 10) -> None:
        records = [(b"k%d" % i, b"steady-%d" % i, [], int(time.time() * 1000)) for i in range(self.sent, self.sent + n)]
        resp = self.request("Produce", 9, {"acks": -1, "timeout_ms": 5000, "topic_data": [
            {"name": self.topic, "partition_data": [{"index": 0, "records": build_batch(records)}]}]})
        part = resp.responses[0].partition_responses[0]
        assert part.error_code == 0 and part.base_offset == self.sent, (part.error_code, part.base_offset, self.sent)
        self.sent += n

    def verify(self) -> None:
        """Every record produced so far reads back, in order, exactly."""
        got = self.read
        while len(got) < self.sent:
            resp = self.request("Fetch", 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 24,
                                              "isolation_level": 0, "topics": [{"topic": self.topic, "partitions": [
                                                  {"partition": 0, "fetch_offset": len(got), "partition_max_bytes": 1 << 24}]}]})
            part = resp.responses[0].partitions[0]
            assert part.error_code == 0, part.error_code
            before = len(got)
            for batch in iter_batches(bytes(part.records or b"")):
                got += [r.value for r in batch.records() if r.offset >= len(got)]
            assert len(got) > before, f"no progress reading back at offset {before}"
        assert got == [b"steady-%d" % i for i in range(len(got))], "the steady client's records differ"
        assert len(got) == self.sent, (len(got), self.sent)

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- the broker's side


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def log_summary(log_text: str) -> tuple[Counter, list[str]]:
    """Why the broker closed connections (one count per kind of reason), and
    each traceback it logged (a handler or the server failed: a bug)."""
    reasons = Counter()
    for m in re.finditer(r"closing connection from \S+: (.*)", log_text):
        reasons[re.sub(r"-?\d+", "N", m.group(1))[:90]] += 1
    tracebacks = re.findall(r"\n([^\n]*\nTraceback \(most recent call last\):.*?\n\S[^\n]*)(?=\n)", log_text, re.S)
    return reasons, tracebacks
