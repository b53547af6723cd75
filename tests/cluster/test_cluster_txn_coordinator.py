"""The transaction coordinator in a three-broker cluster: the leader of the
transactional id's __transaction_state partition (replicated, RF 3 and
min.insync.replicas 2 as Kafka's defaults) coordinates, its markers reach the
other brokers' partitions over WriteTxnMarkers, and when it is killed with -9
another replica loads the state and goes on: a transaction open at the kill
ends whole (committed or aborted), and the producer commits more."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from interop.cluster import wait_for
from kafka_compat.group.partitioner import partition_for

TXN_PARTITIONS = 3
PER_TXN = 6
OVERRIDES = {"zookeeper.session.timeout.ms": "6000", "transaction.state.log.num.partitions": str(TXN_PARTITIONS)}
TIMEOUT = 60


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def coordinator(bootstrap: str, transactional_id: str) -> int:
    """The leader of the id's __transaction_state partition (-1: none now)."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics("__transaction_state", timeout=10)
    topic = metadata.topics.get("__transaction_state")
    partition = None if topic is None else topic.partitions.get(partition_for(transactional_id, TXN_PARTITIONS))
    return -1 if partition is None else partition.leader


def transact(producer: Producer, topic: str, label: str) -> None:
    producer.begin_transaction()
    for j in range(PER_TXN):
        producer.produce(topic, value=f"{label}-{j}".encode(), partition=j % 3)
    assert producer.flush(TIMEOUT) == 0
    producer.commit_transaction(TIMEOUT)


def read_committed(bootstrap: str, topic: str, at_least: int) -> list[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    values: list[str] = []
    idle_since = None
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                if len(values) >= at_least:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 1.0:
                        break
                continue
            values.append(message.value().decode())
    finally:
        consumer.close()
    return values


def test_transactions_survive_the_coordinators_kill9(cluster):
    bootstrap = cluster.bootstrap
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})],
                        operation_timeout=30)[topic].result(30)
    transactional_id = f"cluster-{uuid.uuid4().hex}"
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    producer.init_transactions(TIMEOUT)
    for i in range(10):
        transact(producer, topic, f"before{i}")
    victim = coordinator(bootstrap, transactional_id)
    assert victim in cluster.brokers
    # A transaction open (its records written) when the coordinator dies.
    producer.begin_transaction()
    for j in range(PER_TXN):
        producer.produce(topic, value=f"open-{j}".encode(), partition=j % 3)
    assert producer.flush(TIMEOUT) == 0
    cluster.brokers[victim].kill9()
    survivors = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim)
    wait_for(lambda: coordinator(survivors, transactional_id) not in (-1, victim), 30, "a new coordinator")
    try:
        producer.commit_transaction(TIMEOUT)
        open_committed = True
    except KafkaException as e:
        assert e.args[0].txn_requires_abort(), e
        producer.abort_transaction(TIMEOUT)
        open_committed = False
    for i in range(10):
        transact(producer, topic, f"after{i}")
    values = read_committed(survivors, topic, 20 * PER_TXN)
    counts: dict[str, int] = {}
    for value in values:
        label = value.rsplit("-", 1)[0]
        counts[label] = counts.get(label, 0) + 1
    expected = {f"before{i}": PER_TXN for i in range(10)} | {f"after{i}": PER_TXN for i in range(10)}
    if open_committed:
        expected["open"] = PER_TXN
    assert counts == expected
