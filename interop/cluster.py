"""A kafka-compat cluster of broker subprocesses sharing a ZooKeeper, as a
user starts one (broker.id and zookeeper.connect per broker), for the cluster
tests and ./scripts/cluster."""
from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from .broker_process import BrokerProcess, _recv_exactly, venv_executable

METADATA_KEY = 3


class Cluster:
    """Brokers 1..size, each with its own data dir and log under ``directory``."""

    def __init__(self, zk_connect: str, directory: Path, size: int = 3,
                 overrides: dict[str, str] | None = None, ports: list[int] | None = None):
        executable = venv_executable("kafka-compat")
        self.brokers: dict[int, BrokerProcess] = {}
        for i in range(1, size + 1):
            self.brokers[i] = BrokerProcess(
                executable, data_dir=directory / f"broker-{i}", log_path=directory / f"broker-{i}.log",
                overrides={"broker.id": str(i), "zookeeper.connect": zk_connect, **(overrides or {})},
                port=ports[i - 1] if ports else None)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def start(self, timeout: float = 30.0) -> None:
        """Start every broker; return once each one's Metadata lists all of
        them and names a controller. (A broker serves before the controller's
        first UpdateMetadata reaches it; until then its Metadata has no
        brokers and no controller, and a client asking then may wait long.)"""
        for broker in self.brokers.values():
            broker.start()
        self.wait_until_formed(timeout)

    def wait_until_formed(self, timeout: float) -> None:
        expected = set(b for b, broker in self.brokers.items() if broker.running())
        for broker in self.brokers.values():
            if broker.running():
                wait_for(lambda: (view := cluster_view(broker.host, broker.port)) and view[0] == expected
                         and view[1] in expected, timeout, f"broker at {broker.bootstrap} to see the whole cluster")

    def stop(self) -> None:
        """Stop every broker still running (SIGTERM; SIGKILL if it hangs)."""
        errors = []
        for broker in self.brokers.values():
            try:
                broker.stop()
            except TimeoutError as e:
                errors.append(str(e))
        if errors:
            raise TimeoutError("\n".join(errors))

    def logs(self) -> str:
        return "\n".join(b.log_tail(60) for b in self.brokers.values())


def cluster_view(host: str, port: int, timeout: float = 2.0) -> tuple[set[int], int] | None:
    """(the broker ids, the controller id) a broker's Metadata v1 answers, or
    None if it does not answer. Plain sockets, so ./scripts/cluster needs no client library."""
    correlation_id = 0x5EE
    client_id = b"interop-cluster"
    # header v1, then an empty topic array (brokers and controller only)
    body = struct.pack(">hhih", METADATA_KEY, 1, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            response = _recv_exactly(sock, size)
    except (OSError, EOFError):
        return None
    got_id, count = struct.unpack_from(">ii", response)
    if got_id != correlation_id:
        return None
    offset, brokers = 8, set()
    for _ in range(count):
        node_id, host_length = struct.unpack_from(">ih", response, offset)
        offset += 6 + host_length + 4  # node id, host, port
        rack_length = struct.unpack_from(">h", response, offset)[0]
        offset += 2 + max(rack_length, 0)
        brokers.add(node_id)
    controller = struct.unpack_from(">i", response, offset)[0]
    return brokers, controller


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something true; that value. Raises
    TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
