"""Consumer groups in a three-broker cluster: the coordinator is the leader of
the group's __consumer_offsets partition, found through any broker, and it
loads the group's offsets when it (again) becomes that leader."""
from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer

from interop.cluster import restart_after_crash, wait_for
from kafka_compat.group.partitioner import partition_for

OFFSETS_PARTITIONS = 6
OVERRIDES = {"zookeeper.session.timeout.ms": "6000", "group.initial.rebalance.delay.ms": "0",
             "offsets.topic.num.partitions": str(OFFSETS_PARTITIONS), "offsets.topic.replication.factor": "1"}


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def produce(bootstrap: str, topic: str, count: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)], operation_timeout=30)[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(count):
        producer.produce(topic, f"{i}".encode())
    assert producer.flush(30) == 0


def offsets_leader(bootstrap: str, group: str) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics("__consumer_offsets", timeout=10)
    return metadata.topics["__consumer_offsets"].partitions[partition_for(group, OFFSETS_PARTITIONS)].leader


def consume_confluent(bootstrap: str, group: str, topic: str, count: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    values = []
    try:
        wait_for(lambda: _poll_into(consumer, values) and len(values) >= count, 60, f"{count} messages")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def _poll_into(consumer, values: list[int]) -> bool:
    message = consumer.poll(0.5)
    if message is not None and message.error() is None:
        values.append(int(message.value()))
    return True


def test_group_coordinator_reloads_offsets_when_it_leads_again(cluster):
    produce(cluster.bootstrap, "grouped", 90)
    first = consume_confluent(cluster.bootstrap, "g1", "grouped", 90)
    assert sorted(first) == list(range(90))
    coordinator = offsets_leader(cluster.bootstrap, "g1")
    victim = cluster.brokers[coordinator]
    victim.kill9()
    restart_after_crash(victim, 30)
    wait_for(lambda: offsets_leader(cluster.bootstrap, "g1") == coordinator, 30, "the coordinator leading again")
    # Nothing new to read: a consumer of the group (another client family) starts at the committed end.
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(90, 100):
        producer.produce("grouped", f"{i}".encode())
    assert producer.flush(30) == 0
    consumer = KafkaConsumer("grouped", bootstrap_servers=cluster.bootstrap, group_id="g1",
                             auto_offset_reset="earliest", consumer_timeout_ms=15_000, enable_auto_commit=False)
    try:
        rest = []
        for message in consumer:
            rest.append(int(message.value))
            if len(rest) == 10:
                break
    finally:
        consumer.close()
    assert sorted(rest) == list(range(90, 100))
