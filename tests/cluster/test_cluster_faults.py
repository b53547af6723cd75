"""Faults a ZooKeeper-mode cluster survives as Kafka's does: a broker's
ZooKeeper session expiring (it re-registers with a new broker epoch and the
controller re-syncs it), ZooKeeper unreachable at start, a broker id that is
already registered, and a broker restarted with the same id. Real ZooKeeper,
real broker processes, confluent-kafka and kafka-python; every message
acknowledged before a fault is read back after it."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic as KpNewTopic
from kazoo.client import KazooClient

from interop.broker_process import BrokerProcess, free_port, venv_executable
from interop.cluster import Cluster, cluster_view, wait_for
from interop.zookeeper import ZooKeeperProcess
from tests.cluster.readers import consume_all

SESSION_TIMEOUT_MS = 6000
SESSION_TIMEOUT_S = SESSION_TIMEOUT_MS / 1000
# Replication factor 1 throughout: without replication (not built yet) a partition
# with more replicas could not move its leadership on a controlled shutdown.
OVERRIDES = {"zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS), "offsets.topic.num.partitions": "3",
             "group.initial.rebalance.delay.ms": "0",
             "offsets.topic.replication.factor": "1"}


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def registration_epoch(zk: KazooClient, broker_id: int) -> int | None:
    """The broker epoch of a registration (its znode's czxid), None if absent."""
    stat = zk.exists(f"/brokers/ids/{broker_id}")
    return None if stat is None else stat.czxid


def zk_controller(zk: KazooClient) -> int | None:
    data = zk.exists("/controller") and zk.get("/controller")[0]
    return json.loads(data)["brokerid"] if data else None


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> leader id, as the broker's Metadata answers (librdkafka)."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return {p: info.leader for p, info in metadata.topics[topic].partitions.items()}


def all_led(bootstrap: str, topic: str, count: int) -> dict[int, int] | None:
    by_partition = leaders(bootstrap, topic)
    return by_partition if len(by_partition) == count and min(by_partition.values()) >= 0 else None


def create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)[topic].result(30)


def produce_confluent(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    """The values acknowledged (acks=all, idempotent); fails on any error."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    acked, failed = [], []
    for value in values:
        producer.produce(topic, value, key=value,
                         on_delivery=lambda err, msg: failed.append(err) if err else acked.append(msg.value()))
    assert producer.flush(30) == 0 and not failed, failed
    return acked


def produce_kafka_python(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    """The values acknowledged (acks=all); the producer retries until its
    delivery timeout, as real producers do: a new partition's leader may take
    a moment to take it on (its LeaderAndIsr reads the topic's config from
    ZooKeeper, which waits while the broker reconnects)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000,
                             delivery_timeout_ms=25_000)
    try:
        futures = [(value, producer.send(topic, value, key=value)) for value in values]
        return [value for value, future in futures if future.get(timeout=30)]
    finally:
        producer.close()


def consume_confluent(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    values: list[bytes] = []

    def poll() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
        return len(values) >= count

    try:
        wait_for(poll, 60, f"{count} messages from {topic}")
        return values
    finally:
        consumer.close()


def controller_id(bootstrap: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.describe_cluster()["controller_id"]
    finally:
        admin.close()


@pytest.mark.parametrize("victim_role", ["controller", "other broker"])
def test_session_expiry_is_survived(cluster, zk, victim_role):
    """SIGSTOP a broker for longer than its session timeout: ZooKeeper expires
    its session (its registration goes, and with it /controller if it held it).
    After SIGCONT it must re-register under a new broker epoch, step down if it
    was controller, and be re-synced by the controller: it leads its partitions
    again and takes new ones (a LeaderAndIsr carrying a stale broker epoch would
    be refused)."""
    create(cluster.bootstrap, "expiry", 6)
    before = wait_for(lambda: all_led(cluster.bootstrap, "expiry", 6), 20, "leaders for 6 partitions")
    acked = produce_confluent(cluster.bootstrap, "expiry", [f"before-{i}".encode() for i in range(60)])

    controller = zk_controller(zk)
    victim_id = controller if victim_role == "controller" else next(i for i in cluster.brokers if i != controller)
    victim = cluster.brokers[victim_id]
    others = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim_id)
    old_epoch = registration_epoch(zk, victim_id)

    os.kill(victim.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: registration_epoch(zk, victim_id) is None, SESSION_TIMEOUT_S + 15,
                 "the stopped broker's registration to expire")
        if victim_role == "controller":
            wait_for(lambda: zk_controller(zk) not in (None, victim_id), SESSION_TIMEOUT_S, "a new controller")
        # A config change the stopped broker can only learn of after its session is back.
        admin = AdminClient({"bootstrap.servers": others})
        resource = ConfigResource("topic", "expiry", set_config={"max.message.bytes": "2000"})
        admin.alter_configs([resource])[resource].result(30)
    finally:
        os.kill(victim.pid, signal.SIGCONT)

    new_epoch = wait_for(lambda: registration_epoch(zk, victim_id), 30, "the broker to re-register")
    assert new_epoch > old_epoch
    # Every broker names the one controller ZooKeeper has, and it is not the
    # broker that lost its session (a controller steps down when its session goes).
    wait_for(lambda: {controller_id(b.bootstrap) for b in cluster.brokers.values()} == {zk_controller(zk)},
             20, "every broker to name the controller")
    if victim_role == "controller":
        assert zk_controller(zk) != victim_id
    # The victim leads what it led before, as its own Metadata and the others' say.
    for bootstrap in (victim.bootstrap, others):
        assert wait_for(lambda: all_led(bootstrap, "expiry", 6), 20, f"every partition led, via {bootstrap}") == before

    # The victim's logs apply the change made while it was away.
    victims_partition = next(p for p, leader in before.items() if leader == victim_id)
    producer = Producer({"bootstrap.servers": victim.bootstrap})
    errors = []
    producer.produce("expiry", b"x" * 5000, partition=victims_partition,
                     on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    assert [e.code() for e in errors] == [KafkaError.MSG_SIZE_TOO_LARGE]

    # A topic only the victim can lead: the controller must address it with its new epoch.
    admin = KafkaAdminClient(bootstrap_servers=others)
    try:
        admin.create_topics([KpNewTopic("after-expiry", -1, -1, replica_assignments={0: [victim_id], 1: [victim_id]})])
    finally:
        admin.close()
    wait_for(lambda: all_led(victim.bootstrap, "after-expiry", 2), 20, "the new topic led by the victim")
    acked_new = produce_kafka_python(victim.bootstrap, "after-expiry", [f"new-{i}".encode() for i in range(20)])
    assert sorted(consume_confluent(others, "after-expiry", 20)) == sorted(acked_new)

    acked += produce_kafka_python(victim.bootstrap, "expiry", [f"after-{i}".encode() for i in range(60)])
    assert sorted(consume_all(victim.bootstrap, "expiry", len(acked))) == sorted(acked)
    assert sorted(consume_confluent(others, "expiry", len(acked))) == sorted(acked)


def test_a_zookeeper_restart_within_the_session_timeout_is_ridden_out(tmp_path):
    """ZooKeeper stops and comes back on the same port and data: every
    broker's connection drops, but the sessions live on. Nobody re-registers,
    the controller stays, and the cluster keeps working (its watches re-armed)."""
    zookeeper = ZooKeeperProcess(data_dir=tmp_path / "zookeeper").start()
    cluster = Cluster(zookeeper.connect_string("/kafka"), tmp_path, 3, OVERRIDES)
    try:
        cluster.start()
        zk = KazooClient(hosts=zookeeper.connect_string("/kafka"))
        zk.start()
        create(cluster.bootstrap, "ridden", 3)
        acked = produce_confluent(cluster.bootstrap, "ridden", [f"before-{i}".encode() for i in range(30)])
        epochs = {i: registration_epoch(zk, i) for i in cluster.brokers}
        controller = zk_controller(zk)

        port = zookeeper.port
        zookeeper.stop()
        zookeeper = ZooKeeperProcess(data_dir=tmp_path / "zookeeper", port=port).start()
        wait_for(lambda: zk.connected and {i: registration_epoch(zk, i) for i in cluster.brokers} == epochs, 20,
                 "the same registrations")
        assert zk_controller(zk) == controller
        # It kept its controller state throughout: a dropped connection is no lost election.
        assert "no longer the controller" not in cluster.brokers[controller].log_path.read_text()
        create(cluster.bootstrap, "after-restart", 3)  # the controller still acts on new topics
        acked_new = produce_kafka_python(cluster.bootstrap, "after-restart", [f"{i}".encode() for i in range(30)])
        assert sorted(consume_confluent(cluster.bootstrap, "after-restart", 30)) == sorted(acked_new)
        acked += produce_kafka_python(cluster.bootstrap, "ridden", [f"after-{i}".encode() for i in range(30)])
        assert sorted(consume_all(cluster.bootstrap, "ridden", len(acked))) == sorted(acked)
        zk.stop()
        zk.close()
    except Exception:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
        zookeeper.stop()


def test_zookeeper_unreachable_at_start_exits_after_the_connection_timeout(tmp_path):
    port = free_port()
    broker = BrokerProcess(venv_executable("kafka-compat"), tmp_path / "broker", tmp_path / "broker.log",
                           overrides={"broker.id": "1", "zookeeper.connect": f"127.0.0.1:{port}/kafka",
                                      "zookeeper.connection.timeout.ms": "2000"})
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with code 1 during start-up"):
        broker.start()
    elapsed = time.monotonic() - started
    assert elapsed >= 2.0
    # One line while retrying (not kazoo's two per attempt), one when giving up.
    lines = [line for line in broker.log_path.read_text().splitlines() if line and not line.startswith("--- starting")]
    assert len(lines) == 2, lines
    assert lines[0].endswith(f"WARNING Cannot reach ZooKeeper at 127.0.0.1:{port} yet (Connection dropped: socket "
                             "connection error: Connection refused): retrying until zookeeper.connection.timeout.ms "
                             "has passed (kafka_compat.cluster.zk_client)")
    assert lines[1] == (f"kafka-compat: error: Timed out waiting for connection to ZooKeeper at 127.0.0.1:{port}/kafka "
                        "within 2000 ms (zookeeper.connection.timeout.ms)")


def test_zookeeper_coming_up_within_the_connection_timeout_is_waited_for(tmp_path):
    port = free_port()
    broker = BrokerProcess(venv_executable("kafka-compat"), tmp_path / "broker", tmp_path / "broker.log",
                           overrides={"broker.id": "1", "zookeeper.connect": f"127.0.0.1:{port}/kafka",
                                      "zookeeper.connection.timeout.ms": "60000"})
    zookeeper = ZooKeeperProcess(port=port)
    starting = threading.Thread(target=broker.start)  # returns once the broker serves
    try:
        starting.start()
        wait_for(lambda: broker.log_path.exists() and "Cannot reach ZooKeeper" in broker.log_path.read_text(),
                 30, "the broker to try ZooKeeper")
        zookeeper.start()
        starting.join(60)
        assert broker.running() and not starting.is_alive()
        wait_for(lambda: cluster_view(broker.host, broker.port) == ({1}, 1), 20, "the broker to be its controller")
        create(broker.bootstrap, "late", 2)
        acked = produce_confluent(broker.bootstrap, "late", [f"{i}".encode() for i in range(30)])
        assert sorted(consume_all(broker.bootstrap, "late", 30)) == sorted(acked)
    finally:
        broker.stop()
        zookeeper.stop()


def test_a_broker_id_already_registered_refuses_to_start(cluster, zk, tmp_path):
    owner = zk.exists("/brokers/ids/2").ephemeralOwner
    epoch = registration_epoch(zk, 2)
    twin = BrokerProcess(venv_executable("kafka-compat"), tmp_path / "twin", tmp_path / "twin.log",
                         overrides={**cluster.brokers[1].overrides, "broker.id": "2"})
    with pytest.raises(RuntimeError, match="exited with code 1 during start-up"):
        twin.start()
    log = twin.log_path.read_text()
    # Kafka's message (KafkaZkClient.CheckedEphemeral), session ids in hex
    assert (f"Error while creating ephemeral at /brokers/ids/2, node already exists and owner '0x{owner:x}' "
            f"does not match current session '") in log, log
    # The broker that holds the id is untouched and serves.
    assert registration_epoch(zk, 2) == epoch
    create(cluster.brokers[2].bootstrap, "still-two", 3)
    acked = produce_kafka_python(cluster.brokers[2].bootstrap, "still-two", [b"x"] * 10)
    assert len(consume_confluent(cluster.bootstrap, "still-two", 10)) == len(acked) == 10


@pytest.mark.parametrize("how", ["clean", "kill -9"])
def test_a_restarted_broker_rejoins_and_gets_its_partitions_back(cluster, zk, how):
    create(cluster.bootstrap, "rejoin", 9)
    before = wait_for(lambda: all_led(cluster.bootstrap, "rejoin", 9), 20, "leaders for 9 partitions")
    acked = produce_confluent(cluster.bootstrap, "rejoin", [f"before-{i}".encode() for i in range(90)])
    acked += produce_kafka_python(cluster.bootstrap, "rejoin", [f"kp-{i}".encode() for i in range(30)])

    victim_id = max(before.values())
    victim = cluster.brokers[victim_id]
    others = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim_id)
    theirs = sorted(p for p, leader in before.items() if leader == victim_id)
    old_epoch = registration_epoch(zk, victim_id)
    if how == "clean":
        assert victim.stop() == 0
        assert registration_epoch(zk, victim_id) is None  # a clean stop closes the session at once
    else:
        victim.kill9()
        wait_for(lambda: registration_epoch(zk, victim_id) is None, SESSION_TIMEOUT_S + 15,
                 "the killed broker's session to expire")
    # Replication factor 1: its partitions have no leader while it is away.
    wait_for(lambda: sorted(p for p, leader in leaders(others, "rejoin").items() if leader < 0) == theirs,
             20, "its partitions offline")

    victim.start()
    assert registration_epoch(zk, victim_id) > old_epoch
    for bootstrap in (victim.bootstrap, others):
        assert wait_for(lambda: all_led(bootstrap, "rejoin", 9), 20, f"every partition led, via {bootstrap}") == before
    acked += produce_kafka_python(victim.bootstrap, "rejoin", [f"after-{i}".encode() for i in range(45)])
    assert sorted(consume_confluent(others, "rejoin", len(acked))) == sorted(acked)
    assert sorted(consume_all(victim.bootstrap, "rejoin", len(acked))) == sorted(acked)
