"""Followers copy their leaders' logs (replica fetchers, Fetch with a replica
id) in a three-broker cluster: every replica's segment files come out equal
to the leader's byte for byte, and a follower killed with kill -9 leaves the
ISR, catches up once it is back and joins the ISR again (AlterPartition), the
leader never moving."""
from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from interop.cluster import restart_after_crash, wait_for

TOPIC = "replicated"
SESSION_TIMEOUT_S = 6
OVERRIDES = {"zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_S * 1000), "replica.fetch.backoff.ms": "200"}


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def partition_state(zk) -> dict:
    data, _ = zk.get(f"/brokers/topics/{TOPIC}/partitions/0/state")
    return json.loads(data)


def produce_confluent(bootstrap: str, count: int, prefix: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5})
    failed = []
    for i in range(count):
        producer.produce(TOPIC, f"{prefix}-ck-{i}".encode() * 8, on_delivery=lambda err, _: err and failed.append(err))
        producer.poll(0)
    assert producer.flush(30) == 0 and not failed, failed


def produce_kafka_python(bootstrap: str, count: int, prefix: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    try:
        futures = [producer.send(TOPIC, f"{prefix}-kp-{i}".encode() * 8) for i in range(count)]
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()


def segments(cluster, broker_id: int) -> dict[str, bytes]:
    """The partition's segment files (name -> bytes) on a broker."""
    directory = cluster.brokers[broker_id].data_dir / f"{TOPIC}-0"
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.log"))}


def replicas_equal(cluster, leader: int) -> bool:
    theirs = segments(cluster, leader)
    return all(segments(cluster, b) == theirs for b in cluster.brokers if b != leader)


def test_followers_copy_the_leader_byte_for_byte_and_catch_up_after_a_kill(cluster, zk):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 3)], operation_timeout=30)[TOPIC].result(30)
    state = wait_for(lambda: zk.exists(f"/brokers/topics/{TOPIC}/partitions/0/state") and partition_state(zk),
                     20, "the partition's state")
    leader = state["leader"]
    assert sorted(state["isr"]) == [1, 2, 3]  # a new partition's live replicas are all in sync

    produce_confluent(cluster.bootstrap, 2500, "first")
    produce_kafka_python(cluster.bootstrap, 2500, "first")
    wait_for(lambda: replicas_equal(cluster, leader), 30, "every follower's segments to equal the leader's")
    assert sum(len(data) for data in segments(cluster, leader).values()) > 5000 * 40

    follower = next(b for b in cluster.brokers if b != leader)
    cluster.brokers[follower].kill9()
    produce_confluent(cluster.bootstrap, 1000, "while-down")
    produce_kafka_python(cluster.bootstrap, 1000, "while-down")
    assert segments(cluster, follower) != segments(cluster, leader)
    shrunk = wait_for(lambda: follower not in (s := partition_state(zk))["isr"] and s, SESSION_TIMEOUT_S + 20,
                      "the dead follower to leave the ISR")
    restart_after_crash(cluster.brokers[follower], SESSION_TIMEOUT_S + 20)
    wait_for(lambda: replicas_equal(cluster, leader), 30, "the restarted follower to catch up")
    after = wait_for(lambda: len((s := partition_state(zk))["isr"]) == 3 and s, 30,
                     "the restarted follower to rejoin the ISR")
    # The controller took the dead follower out (a new leader epoch, as Kafka's
    # controller does); the leader added it back (the same epoch, a new version).
    assert after["leader"] == leader == shrunk["leader"]
    assert after["leader_epoch"] == shrunk["leader_epoch"] > state["leader_epoch"]


def test_deleted_records_stay_deleted_after_a_leader_change(cluster, zk):
    """DeleteRecords moves the leader's log start; followers take it from
    their fetches, so the next leader starts its log there too (kafka-python's
    delete_records, librdkafka reads back)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic("trimmed", 1, 3)], operation_timeout=30)["trimmed"].result(30)
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    try:
        for i in range(100):
            producer.send("trimmed", b"m%d" % i)
        producer.flush(30)
        kp_admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        try:
            kp_admin.delete_records({KpTopicPartition("trimmed", 0): 40})
        finally:
            kp_admin.close()
        # Replicated with acks=all: every follower has fetched since the
        # deletion, and each fetch answer carries the leader's log start.
        producer.send("trimmed", b"after").get(timeout=30)
    finally:
        producer.close()
    data, _ = zk.get("/brokers/topics/trimmed/partitions/0/state")
    leader = json.loads(data)["leader"]
    assert cluster.brokers[leader].stop() == 0  # controlled shutdown: leadership moves to a follower
    survivors = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != leader)
    consumer = Consumer({"bootstrap.servers": survivors, "group.id": "trimmed-reader", "auto.offset.reset": "earliest"})
    try:
        # The new leader learnt the old one's high watermark from its fetches,
        # one fetch behind: it reaches 101 once the other follower fetches
        # from it (Kafka's new leader too waits for its followers' offsets).
        low, high = wait_for(lambda: (w := consumer.get_watermark_offsets(CkTopicPartition("trimmed", 0), timeout=10))
                             and w[1] == 101 and w, 10, "the new leader's high watermark at 101")
        assert low == 40
        consumer.assign([CkTopicPartition("trimmed", 0, 0)])  # before the log start: reset to earliest
        values = []
        while len(values) < 61:
            message = consumer.poll(10)
            assert message is not None, values
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    assert values == [b"m%d" % i for i in range(40, 100)] + [b"after"]
