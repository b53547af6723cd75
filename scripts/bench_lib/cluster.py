"""The cluster under test: one ZooKeeper and three of our brokers
(interop.cluster, the brokers as a user starts them) on free ports of
127.0.0.1, started fresh for each run, and what only a cluster can be asked:
how long a controller failover takes.

A controller failover is measured as Kafka's controller does its work after
the old one dies: kill -9 of the controller's broker; once its ZooKeeper
session expires (zookeeper.session.timeout.ms is cut to SESSION_TIMEOUT_MS
here) another broker wins /controller, reads every partition's state, marks
the dead broker's partitions leaderless and tells the brokers. "failover_s"
is the time from the new /controller znode's creation (its ctime) until
every live broker's Metadata names the new controller and every partition
that has a live replica has a leader. With replication factor 1 the dead
broker's partitions can only have a leader again once it is back: the
broker is then restarted, and "rejoin_s" is the time from its new
registration (the ctime of /brokers/ids/<id>) until every broker's Metadata
shows all partitions with a leader.
"""
from __future__ import annotations

import io
import json
import shutil
import socket
import struct
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from kafka_compat.protocol import schema
from kafka_compat.protocol.headers import encode_request_header, parse_response_header
from kafka_compat.protocol.primitives import FrameReader

from . import procstat

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # interop/ lives beside scripts/

from interop.cluster import Cluster, restart_after_crash, wait_for  # noqa: E402
from interop.zookeeper import ZooKeeperNotInstalled, ZooKeeperProcess, check_installed  # noqa: E402, F401

SIZE = 3
SESSION_TIMEOUT_MS = 2000
CONNECTION_TIMEOUT_MS = 30000  # (it would be the session timeout)
METADATA_KEY = 3
METADATA_VERSION = 12  # what librdkafka 2.x sends
POLL_S = 0.005
FAILOVER_TIMEOUT_S = 60


class MetadataConnection:
    """One connection to a broker sending Metadata requests for one topic,
    one at a time: ``round_trip()`` for the raw answer (latency), ``ask()``
    decoded."""

    def __init__(self, host: str, port: int, topic: str | None):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = {"topics": None if topic is None else [{"name": topic, "topic_id": bytes(16)}],
                "allow_auto_topic_creation": False, "include_topic_authorized_operations": False}
        out = io.BytesIO()
        schema.codec("Metadata", METADATA_VERSION, "request").build_stream(body, out, deferred=[])
        request = encode_request_header(METADATA_KEY, METADATA_VERSION, 1, "bench-metadata") + out.getvalue()
        self.request = struct.pack(">i", len(request)) + request

    def round_trip(self) -> bytearray:
        self.sock.sendall(self.request)
        size = struct.unpack(">i", self._exactly(4))[0]
        return self._exactly(size)

    def ask(self):
        frame = self.round_trip()
        _, pos = parse_response_header(frame, METADATA_KEY, METADATA_VERSION)
        return schema.codec("Metadata", METADATA_VERSION, "response").parse_stream(FrameReader(frame, pos))

    def _exactly(self, size: int) -> bytearray:
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            n = self.sock.recv_into(view[got:])
            if not n:
                raise EOFError("the broker closed the connection")
            got += n
        return data

    def close(self) -> None:
        self.sock.close()


def _view(broker, topic: str) -> tuple[int, dict[int, int]] | None:
    """(controller id, {partition: leader}) in a broker's Metadata; None if it does not answer."""
    try:
        connection = MetadataConnection(broker.host, broker.port, topic)
        try:
            response = connection.ask()
        finally:
            connection.close()
    except OSError:
        return None
    leaders = {p.partition_index: p.leader_id for t in response.topics for p in t.partitions}
    return response.controller_id, leaders


class RunningCluster:
    """One start of the cluster, for one workload run (the runner's Running)."""

    process = None  # no single process to profile
    restartable = False

    def __init__(self, directory: Path, zookeeper: ZooKeeperProcess, cluster: Cluster):
        self.directory, self.zookeeper, self.cluster = directory, zookeeper, cluster
        self.bootstrap = cluster.bootstrap

    def _pids(self) -> list[int]:
        return [b.pid for b in self.cluster.brokers.values() if b.running()]

    def cpu_seconds(self) -> float:
        """The brokers' CPU time together."""
        return sum(procstat.cpu_seconds(pid) for pid in self._pids())

    def peak_rss_mb(self) -> float:
        """The brokers' peak RSS added up."""
        return sum(procstat.peak_rss_mb(pid) for pid in self._pids())

    def restart(self) -> float:
        raise RuntimeError("the cluster is not restarted as a whole")

    def stop(self) -> None:
        """Stop the brokers, then ZooKeeper; their data goes, their logs stay."""
        try:
            self.cluster.stop()
        finally:
            self.zookeeper.stop()
            for broker in self.cluster.brokers.values():
                shutil.rmtree(broker.data_dir, ignore_errors=True)
            shutil.rmtree(self.zookeeper.data_dir / "data", ignore_errors=True)

    def failover(self, topic: str, partitions: int) -> dict:
        zk = KazooClient(hosts=self.zookeeper.connect_string())
        zk.start()
        try:
            return self._failover(zk, topic, partitions)
        finally:
            zk.stop()
            zk.close()

    def _failover(self, zk: KazooClient, topic: str, partitions: int) -> dict:
        def controller() -> tuple[int, float]:
            """The controller's id and when it was elected (its znode's ctime, s)."""
            data, stat = zk.get("/controller")
            return json.loads(data)["brokerid"], stat.ctime / 1000

        old, _ = controller()
        victim = self.cluster.brokers[old]
        survivors = [b for i, b in self.cluster.brokers.items() if i != old]
        theirs = {p for p, leader in _view(survivors[0], topic)[1].items() if leader == old}
        victim.kill9()

        def new_controller():
            try:
                current = controller()
            except NoNodeError:
                return None
            return current if current[0] != old else None

        new, elected = wait_for(new_controller, FAILOVER_TIMEOUT_S, "a new controller", POLL_S)

        def failed_over(broker) -> bool:
            view = _view(broker, topic)
            return (view is not None and view[0] == new and len(view[1]) == partitions
                    and all((leader >= 0) == (p not in theirs) for p, leader in view[1].items()))

        for broker in survivors:
            wait_for(lambda: failed_over(broker), FAILOVER_TIMEOUT_S, "the failover", POLL_S)
        failover_s = time.time() - elected

        restart_after_crash(victim, FAILOVER_TIMEOUT_S)
        registered = zk.get(f"/brokers/ids/{old}")[1].ctime / 1000

        def all_led(broker) -> bool:
            view = _view(broker, topic)
            return view is not None and len(view[1]) == partitions and min(view[1].values()) >= 0

        for broker in self.cluster.brokers.values():
            wait_for(lambda: all_led(broker), FAILOVER_TIMEOUT_S, "every partition led again", POLL_S)
        return {"failover_s": failover_s, "rejoin_s": time.time() - registered, "offline_partitions": len(theirs)}


class ClusterSystem:
    """A fresh ZooKeeper and SIZE brokers per run (the runner's System)."""

    name = "cluster"
    keeps_data = False
    notes: list[str] = []

    def __init__(self, version: str, overrides: list[str]):
        check_installed()
        self.version = f"{version}, {SIZE} brokers on one ZooKeeper"
        self.overrides = dict(kv.split("=", 1) for kv in overrides)

    def start(self, run_dir: Path, label: str) -> RunningCluster:
        directory = run_dir / label
        zookeeper = ZooKeeperProcess(data_dir=directory / "zookeeper")
        zookeeper.start()
        cluster = Cluster(zookeeper.connect_string(), directory, SIZE, {
            "zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS),
            "zookeeper.connection.timeout.ms": str(CONNECTION_TIMEOUT_MS),
            # Replication factor 1 throughout (the consumers' group makes this topic): with
            # 3 a broker's controlled shutdown would wait out its retries, no follower
            # being in sync until replication exists.
            "offsets.topic.replication.factor": "1", **self.overrides})
        try:
            cluster.start()
        except BaseException:
            try:
                cluster.stop()
            finally:
                zookeeper.stop()
            raise
        return RunningCluster(directory, zookeeper, cluster)
