"""Resource limits of a broker subprocess (started as a user starts it): many
idle connections, slow clients (slowloris), clients that never read their
responses, and a frame announcing 2 GB. Each test measures the broker's memory
(VmRSS, VmHWM from /proc/<pid>/status) and the round-trip latency of another
client meanwhile, and prints them (run with -s to see them).

CI runs a reduced size; KAFKA_COMPAT_LIMITS=full runs the full one (10,000
idle connections, 1,000 slow clients for 30 s, 500 deaf clients)::

    KAFKA_COMPAT_LIMITS=full ./scripts/test tests/integration/test_resource_limits.py -s
"""
from __future__ import annotations

import os
import resource
import select
import socket
import struct
import threading
import time

import pytest

from interop.broker_process import BrokerProcess, venv_executable

FULL = os.environ.get("KAFKA_COMPAT_LIMITS") == "full"
IDLE_CONNECTIONS = 10_000 if FULL else 1_000
SLOW_CLIENTS, SLOW_SECONDS = (1_000, 30) if FULL else (100, 5)
DEAF_CLIENTS = 500 if FULL else 50
DEADLINE = 60
MIB = 1024 * 1024

API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 5) + b"probe"
API_VERSIONS_FRAME = struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0


@pytest.fixture(scope="module", autouse=True)
def open_files_limit():
    """This process holds one socket per client: raise the soft limit as far as needed."""
    need = IDLE_CONNECTIONS + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.fail(f"these tests open {need} sockets but the hard open-files limit is {hard} (raise it: ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start_broker(tmp_path, **overrides) -> BrokerProcess:
    executable = venv_executable("kafka-compat")
    if not executable.exists():
        pytest.fail(f"{executable} is missing: install the package with `pip install -e .` (./scripts/test does it)")
    broker = BrokerProcess(executable, tmp_path / "data", tmp_path / "broker.log",
                           overrides={k.replace("_", "."): str(v) for k, v in overrides.items()})
    broker.start()
    return broker


def memory(pid: int) -> tuple[float, float]:
    """The process's (VmRSS, VmHWM) in MiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return bytes(data)


def read_api_versions_response(sock: socket.socket) -> None:
    (size,) = struct.unpack(">i", recv_exactly(sock, 4))
    correlation_id, error_code = struct.unpack_from(">ih", recv_exactly(sock, size))
    assert (correlation_id, error_code) == (1, 0)


class Probe:
    """Another client: ApiVersions round trips on one connection."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.samples: list[float] = []

    def round_trip(self) -> None:
        start = time.perf_counter()
        self.sock.sendall(API_VERSIONS_FRAME)
        read_api_versions_response(self.sock)
        self.samples.append(time.perf_counter() - start)

    def latency(self, n: int = 0) -> str:
        """p50/p99/max in ms of the samples so far (taking ``n`` more first); resets them."""
        for _ in range(n):
            self.round_trip()
        s = sorted(self.samples)
        self.samples = []
        pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
        return f"p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {s[-1] * 1000:.2f} ms over {len(s)}"

    def close(self) -> None:
        self.sock.close()


def report(title: str, **numbers) -> None:
    print(f"\n[limits] {title}: " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in numbers.items()))


def connect_many(port: int, n: int, **sockopts) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        sock = socket.socket()
        for opt, value in sockopts.items():
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, opt), value)
        sock.settimeout(DEADLINE)
        sock.connect(("127.0.0.1", port))
        socks.append(sock)
    return socks


def test_many_idle_connections(tmp_path):
    broker = start_broker(tmp_path)
    probe = Probe(broker.port)
    socks: list[socket.socket] = []
    try:
        rss_before, _ = memory(broker.pid)
        before = probe.latency(500)
        started = time.monotonic()
        socks = connect_many(broker.port, IDLE_CONNECTIONS)
        for sock in socks:  # each one served
            sock.sendall(API_VERSIONS_FRAME)
        for sock in socks:
            read_api_versions_response(sock)
        opened = time.monotonic() - started
        rss, hwm = memory(broker.pid)
        during = probe.latency(500)
        per_connection_kib = (rss - rss_before) * 1024 / IDLE_CONNECTIONS
        report(f"{IDLE_CONNECTIONS} idle connections",
               opened_and_served_in=f"{opened:.2f} s", broker_rss=f"{rss_before:.1f} -> {rss:.1f} MiB",
               hwm=f"{hwm:.1f} MiB", per_connection=f"{per_connection_kib:.1f} KiB",
               probe_before=before, probe_with_them_open=during)
        assert per_connection_kib < 32  # a task, a socket and small buffers, no per-connection frame buffer
    finally:
        for sock in socks:
            sock.close()
        probe.close()
        broker.stop()


def test_slow_clients_hold_little_and_others_keep_working(tmp_path):
    """Slowloris: clients announce the largest request allowed (socket.request.max.bytes,
    100 MB) and then send one byte a second."""
    broker = start_broker(tmp_path)
    probe = Probe(broker.port)
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        rss_before, _ = memory(broker.pid)
        before = probe.latency(500)
        socks = connect_many(broker.port, SLOW_CLIENTS)
        for sock in socks:
            sock.sendall(struct.pack(">i", 104857600))

        def trickle():
            tick = time.monotonic()
            for _ in range(SLOW_SECONDS):
                for sock in socks:
                    sock.send(b"\x00")
                tick += 1
                if stop.wait(max(0.0, tick - time.monotonic())):
                    return

        trickler = threading.Thread(target=trickle)
        trickler.start()
        peak = rss_before
        while trickler.is_alive():  # the probe works throughout
            probe.round_trip()
            if len(probe.samples) % 100 == 0:
                peak = max(peak, memory(broker.pid)[0])
        trickler.join()
        rss, hwm = memory(broker.pid)
        report(f"{SLOW_CLIENTS} clients sending 1 byte/s for {SLOW_SECONDS} s",
               broker_rss=f"{rss_before:.1f} -> peak {peak:.1f} -> {rss:.1f} MiB", hwm=f"{hwm:.1f} MiB",
               probe_before=before, probe_meanwhile=probe.latency())
        # No frame buffers for requests that have not arrived (100 MB each announced).
        assert hwm - rss_before < 32 + SLOW_CLIENTS * 64 / 1024
        for sock in socks:  # not idle (bytes keep coming), so still open, as in Kafka
            sock.send(b"\x00")
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        probe.close()
        broker.stop()


def fill_until_blocked(socks: list[socket.socket]) -> int:
    """Pipeline ApiVersions requests on every socket, reading nothing, until
    none can take more for a second: the broker stopped reading them."""
    sent = 0
    for sock in socks:
        sock.setblocking(False)
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    while True:
        ready = poller.poll(1000)
        if not ready:
            return sent
        for fd, _ in ready:
            try:
                while True:
                    by_fd[fd].send(API_VERSIONS_FRAME * 64)
                    sent += 64
            except BlockingIOError:
                pass
            except ConnectionError:  # already closed as idle (a large fill takes a while)
                poller.unregister(fd)


def test_clients_that_never_read_their_responses(tmp_path):
    """Their sends block, so the broker reads nothing more from them and holds
    at most one response each; connections.max.idle.ms then closes them (no
    response went out for that long), as Kafka's idle expiry does."""
    idle_ms = 5000
    broker = start_broker(tmp_path, connections_max_idle_ms=idle_ms)
    probe = Probe(broker.port)
    socks: list[socket.socket] = []
    try:
        rss_before, _ = memory(broker.pid)
        before = probe.latency(500)
        socks = connect_many(broker.port, DEAF_CLIENTS, SO_RCVBUF=16384, SO_SNDBUF=16384)
        requests = fill_until_blocked(socks)
        blocked_at = time.monotonic()
        rss, hwm = memory(broker.pid)
        probe.close()  # (idle meanwhile, so closed by now if the fill took long)
        probe = Probe(broker.port)
        during = probe.latency(500)
        # The broker closes them once idle: it had unread requests, so the client sees a reset.
        poller = select.poll()
        for sock in socks:
            poller.register(sock, select.POLLRDHUP)
        closed: set[int] = set()
        while len(closed) < len(socks):
            assert time.monotonic() - blocked_at < idle_ms / 1000 + DEADLINE, f"{len(closed)} closed"
            for fd, events in poller.poll(1000):
                if events & (select.POLLERR | select.POLLHUP | select.POLLRDHUP):
                    closed.add(fd)
                    poller.unregister(fd)
        closed_after = time.monotonic() - blocked_at
        rss_after, _ = memory(broker.pid)
        report(f"{DEAF_CLIENTS} clients pipelining requests and never reading",
               requests_sent=requests, broker_rss=f"{rss_before:.1f} -> {rss:.1f} -> {rss_after:.1f} MiB (closed)",
               hwm=f"{hwm:.1f} MiB", all_closed_after=f"{closed_after:.1f} s (connections.max.idle.ms {idle_ms})",
               probe_before=before, new_probe_meanwhile=during, probe_after=Probe(broker.port).latency(500))
        # Per client at most what it read ahead (64 KiB), one request and one response.
        assert hwm - rss_before < 32 + DEAF_CLIENTS * 192 / 1024
    finally:
        for sock in socks:
            sock.close()
        probe.close()
        broker.stop()


@pytest.mark.parametrize("size", [2**31 - 1, -(2**31)])
def test_a_frame_announcing_2_gb_is_refused_without_allocating(tmp_path, size):
    broker = start_broker(tmp_path)
    probe = Probe(broker.port)
    try:
        probe.latency(100)
        rss_before, hwm_before = memory(broker.pid)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=DEADLINE) as sock:
            sock.sendall(struct.pack(">i", size) + b"\x00" * 1000)
            try:
                assert sock.recv(1) == b""
            except ConnectionResetError:
                pass  # closed with our bytes unread
        rss, hwm = memory(broker.pid)
        report(f"a frame announcing {size} bytes", broker_rss=f"{rss_before:.1f} -> {rss:.1f} MiB",
               hwm=f"{hwm_before:.1f} -> {hwm:.1f} MiB", probe_after=probe.latency(100))
        assert hwm - hwm_before < 8
        assert f"request of {size} bytes exceeds socket.request.max.bytes (104857600)" in broker.log_tail()
    finally:
        probe.close()
        broker.stop()
