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

With replication factor 3 (``leader_failover``): a broker that leads
partitions but is not the controller is stopped with SIGTERM (a controlled
shutdown: the controller moves its leaderships before it exits), and
"sigterm_s" is the time from the signal until both other brokers' Metadata
show another leader for every partition it led. It is started again, and
once it is back in every ISR the other broker that is not the controller is
killed with kill -9: "kill9_s" is the same time from the kill, "expired_s"
from the kill until ZooKeeper reports its registration gone (its session
expired: SESSION_TIMEOUT_MS), after which the controller elects new leaders.

A follower's catch-up (``catch_up``): a topic whose partitions a broker
other than the controller only follows, all three replicas in the ISR;
that broker is stopped with SIGTERM (the controller takes it out of the
ISRs), the bench writes the given data with acks=all, then restarts it.
"catch_up_s" is the time from the restart until every one of its logs holds
as many bytes as its leader's (read from the segment files: a follower
copies the leader's batches byte for byte), "catch_up_mb_per_s" the bytes
it was behind over that time (start-up included), "isr_s" the time until
ZooKeeper's partition states have it in every ISR again.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from kafka_compat.protocol import schema
from kafka_compat.protocol.headers import encode_request_header, parse_response_header
from kafka_compat.protocol.primitives import FrameReader

from . import procstat
from .workloads import CatchUp, ClientStep

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
CATCH_UP_POLL_S = 0.01
CATCH_UP_TIMEOUT_S = 600
FULL_ISR_TIMEOUT_S = 120


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


def _controller(zk: KazooClient) -> int:
    return json.loads(zk.get("/controller")[0])["brokerid"]


def _partition_states(zk: KazooClient, topic: str, partitions: int) -> dict[int, dict]:
    """{partition: its state znode (leader, isr, epochs)}, the reads pipelined."""
    pending = {p: zk.get_async(f"/brokers/topics/{topic}/partitions/{p}/state") for p in range(partitions)}
    return {p: json.loads(result.get(timeout=10)[0]) for p, result in pending.items()}


def _full_isr(zk: KazooClient, topic: str, partitions: int, replicas: int) -> bool:
    try:
        states = _partition_states(zk, topic, partitions)
    except NoNodeError:
        return False
    return all(len(state["isr"]) == replicas for state in states.values())


def _log_bytes(directory: Path) -> int:
    """The bytes of a partition's segment files (.log)."""
    try:
        return sum(entry.stat().st_size for entry in os.scandir(directory) if entry.name.endswith(".log"))
    except FileNotFoundError:
        return 0


class _Stopping(threading.Thread):
    """A broker's SIGTERM and wait for its exit, in the background; when it exited."""

    def __init__(self, broker):
        super().__init__(daemon=True)
        self.broker = broker
        self.error: BaseException | None = None
        self.exited: float | None = None
        self.start()

    def run(self) -> None:
        try:
            self.broker.stop()
        except BaseException as e:  # (re-raised by finish)
            self.error = e
        self.exited = time.time()

    def finish(self) -> float:
        self.join()
        if self.error is not None:
            raise RuntimeError(f"stopping the broker failed: {self.error}")
        return self.exited


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

    @contextmanager
    def _zk(self):
        zk = KazooClient(hosts=self.zookeeper.connect_string())
        zk.start()
        try:
            yield zk
        finally:
            zk.stop()
            zk.close()

    def failover(self, topic: str, partitions: int) -> dict:
        with self._zk() as zk:
            return self._failover(zk, topic, partitions)

    def _wait_for_full_isr(self, zk: KazooClient, topic: str, partitions: int) -> None:
        wait_for(lambda: _full_isr(zk, topic, partitions, SIZE), FULL_ISR_TIMEOUT_S,
                 f"every replica of {topic} in its ISR", 0.05)

    def leader_failover(self, topic: str, partitions: int) -> dict:
        """Controlled shutdown of one broker leading partitions, its restart, then
        kill -9 of another (neither the controller): the seconds until every
        partition each led has a new leader in the other brokers' Metadata."""
        with self._zk() as zk:
            self._wait_for_full_isr(zk, topic, partitions)
            controller = _controller(zk)
            first, second = sorted(i for i in self.cluster.brokers if i != controller)
            figures = {f"sigterm_{k}": v for k, v in self._leaders_move(zk, topic, first, graceful=True).items()}
            self.cluster.brokers[first].start()
            self._wait_for_full_isr(zk, topic, partitions)
            figures.update({f"kill9_{k}": v for k, v in self._leaders_move(zk, topic, second, graceful=False).items()})
            figures["expired_s"] = figures.pop("kill9_deregistered_s")
            figures["sigterm_s"], figures["kill9_s"] = figures.pop("sigterm_led_s"), figures.pop("kill9_led_s")
            return figures

    def _leaders_move(self, zk: KazooClient, topic: str, victim_id: int, graceful: bool) -> dict:
        victim = self.cluster.brokers[victim_id]
        survivors = [b for i, b in self.cluster.brokers.items() if i != victim_id]
        view = _view(survivors[0], topic)
        if view is None:
            raise RuntimeError(f"broker at {survivors[0].bootstrap} does not answer Metadata")
        led = {p for p, leader in view[1].items() if leader == victim_id}
        if not led:
            raise RuntimeError(f"broker {victim_id} leads none of {topic}'s partitions")
        deregistered: list[float] = []
        zk.exists(f"/brokers/ids/{victim_id}", watch=lambda event: deregistered.append(time.time()))
        t0 = time.time()
        if graceful:
            stopping = _Stopping(victim)
        else:
            victim.kill9()

        def moved(broker) -> bool:
            view = _view(broker, topic)
            return view is not None and all(view[1].get(p, -1) not in (victim_id, -1) for p in led)

        for broker in survivors:
            wait_for(lambda: moved(broker), FAILOVER_TIMEOUT_S, f"new leaders for broker {victim_id}'s partitions",
                     POLL_S)
        figures = {"led_s": time.time() - t0, "partitions": len(led)}
        if graceful:
            figures["exit_s"] = stopping.finish() - t0
        wait_for(lambda: deregistered, FAILOVER_TIMEOUT_S, f"broker {victim_id}'s registration to go", POLL_S)
        figures["deregistered_s"] = deregistered[0] - t0
        return figures

    def catch_up(self, topic: str, spec: CatchUp, run_step) -> dict:
        """Stop a follower, write ``spec``'s data with acks=all, restart it:
        the seconds until its logs hold as many bytes as its leaders'.
        ``run_step(ClientStep)`` runs a client step on ``topic``."""
        with self._zk() as zk:
            follower_id = max(i for i in self.cluster.brokers if i != _controller(zk))
            leaders = sorted(i for i in self.cluster.brokers if i != follower_id)
            assignment = [[leaders[p % 2], leaders[(p + 1) % 2], follower_id] for p in range(spec.partitions)]
            run_step(ClientStep("create", {"partitions": spec.partitions, "replica_assignment": assignment}))
            produce = {"partitions": spec.partitions, "size": spec.size, "acks": "all", "existing": True}
            # A little data with every replica in the ISR: the follower has its logs.
            run_step(ClientStep("produce", {**produce, "count": 100 * spec.partitions}))
            self._wait_for_full_isr(zk, topic, spec.partitions)
            follower = self.cluster.brokers[follower_id]
            follower.stop()
            written = run_step(ClientStep("produce", {**produce, "count": spec.messages}))

            def level(p: int) -> tuple[int, int]:
                """(the follower's log bytes, its leader's) for partition ``p``."""
                return (_log_bytes(follower.data_dir / f"{topic}-{p}"),
                        _log_bytes(self.cluster.brokers[assignment[p][0]].data_dir / f"{topic}-{p}"))

            before = [level(p) for p in range(spec.partitions)]
            behind = sum(leader - ours for ours, leader in before)
            targets = [leader for _, leader in before]
            t0 = time.time()
            follower.start()
            started = time.time()
            registration = wait_for(lambda: zk.exists(f"/brokers/ids/{follower_id}"), FAILOVER_TIMEOUT_S,
                                    f"broker {follower_id}'s registration", POLL_S)
            registered = registration.ctime / 1000
            caught_up = in_isr = None
            deadline = t0 + CATCH_UP_TIMEOUT_S
            while caught_up is None or in_isr is None:
                now = time.time()
                if caught_up is None and all(_log_bytes(follower.data_dir / f"{topic}-{p}") >= targets[p]
                                             for p in range(spec.partitions)):
                    caught_up = now
                if in_isr is None and all(follower_id in state["isr"]
                                          for state in _partition_states(zk, topic, spec.partitions).values()):
                    in_isr = now
                if now > deadline:
                    raise TimeoutError(f"broker {follower_id} did not catch up in {CATCH_UP_TIMEOUT_S} s "
                                       f"({sum(level(p)[0] for p in range(spec.partitions)) / 1e6:.0f} of "
                                       f"{sum(targets) / 1e6:.0f} MB)")
                time.sleep(CATCH_UP_POLL_S)
            after = [level(p) for p in range(spec.partitions)]
            if after != [(t, t) for t in targets]:
                raise RuntimeError(f"the logs changed or differ after the catch-up: {after} against {targets}")
            seconds = caught_up - t0
            return {"catch_up_s": seconds, "catch_up_mb_per_s": behind / seconds / 1e6, "behind_mb": behind / 1e6,
                    "startup_s": started - t0, "registered_s": registered - t0,
                    "copy_mb_per_s": behind / (caught_up - registered) / 1e6, "isr_s": in_isr - t0,
                    "write_mb_per_s": written["mb_per_s"], "write_msg_per_s": written["msg_per_s"]}

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
            # The consumers' group makes this topic; replication factor 1 as ever (the
            # replication workloads make their topics with replication factor 3).
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
