"""Offsets committed in transactions (KIP-98, KIP-447) by a real client:
confluent-kafka's consume-transform-produce loop sends its consumer's
positions with send_offsets_to_transaction, then commits or aborts. What the
group has committed is read back by another client family (kafka-python's
OffsetFetch): nothing while the transaction is open, the offsets once it
commits, the earlier ones when it aborts."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as CkTopicPartition

from interop import confluent_client
from interop.admin import admin_client
from interop.messages import Message

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def broker_overrides():
    return {"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3",
            "transaction.state.log.num.partitions": "3"}


def committed_through_kafka_python(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    with admin_client(bootstrap) as client:
        offsets = client.list_group_offsets(group)[group]
    return {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}


def group_consumer(bootstrap: str, topic: str, group: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "txn-offsets",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "session.timeout.ms": 6000,
                         "socket.timeout.ms": 15_000})
    consumer.subscribe([topic])
    return consumer


def read(consumer: Consumer, count: int) -> list:
    records, deadline = [], time.monotonic() + TIMEOUT
    while len(records) < count:
        assert time.monotonic() < deadline, f"{len(records)} of {count} records after {TIMEOUT}s"
        for msg in consumer.consume(num_messages=count - len(records), timeout=0.2):
            if msg.error():
                raise KafkaException(msg.error())
            records.append(msg)
    return records


def positions(records: list) -> list[CkTopicPartition]:
    """The offsets to commit after ``records``: one past the last of each partition."""
    last: dict[tuple[str, int], int] = {}
    for msg in records:
        last[(msg.topic(), msg.partition())] = msg.offset() + 1
    return [CkTopicPartition(t, p, o) for (t, p), o in sorted(last.items())]


def test_send_offsets_to_transaction_commit_and_abort(broker, new_topic):
    source, sink = new_topic(partitions=2), new_topic()
    for partition in (0, 1):
        confluent_client.produce(broker.bootstrap, source,
                                 [Message(None, f"in-{partition}-{i}".encode()) for i in range(6)],
                                 partition=partition)
    group = f"txn-offsets-{uuid.uuid4().hex[:8]}"
    consumer = group_consumer(broker.bootstrap, source, group)
    producer = Producer(confluent_client.producer_config(
        broker.bootstrap, idempotent=True, **{"transactional.id": f"txn-{group}"}))
    try:
        producer.init_transactions(TIMEOUT)

        # Committed: the transaction's output and the consumer's offsets together.
        first = read(consumer, 8)
        producer.begin_transaction()
        for msg in first:
            producer.produce(sink, value=msg.value().replace(b"in", b"out"), partition=0)
        producer.send_offsets_to_transaction(positions(first), consumer.consumer_group_metadata(), TIMEOUT)
        producer.flush(TIMEOUT)
        # Pending in the open transaction: the group has committed nothing yet.
        assert committed_through_kafka_python(broker.bootstrap, group) == {}
        producer.commit_transaction(TIMEOUT)
        expected = {(tp.topic, tp.partition): tp.offset for tp in positions(first)}
        assert committed_through_kafka_python(broker.bootstrap, group) == expected

        # Aborted: the offsets of the rest are never committed.
        rest = read(consumer, 4)
        producer.begin_transaction()
        producer.send_offsets_to_transaction(positions(rest), consumer.consumer_group_metadata(), TIMEOUT)
        producer.abort_transaction(TIMEOUT)
        assert committed_through_kafka_python(broker.bootstrap, group) == expected
        # librdkafka's committed() (OffsetFetch with require_stable, as read_committed asks) agrees.
        committed = consumer.committed([CkTopicPartition(source, p) for p in (0, 1)], timeout=TIMEOUT)
        assert {(tp.topic, tp.partition): tp.offset for tp in committed} == expected
    finally:
        consumer.close()
