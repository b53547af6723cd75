"""Offsets committed in transactions (KIP-98, KIP-447) by real clients:
confluent-kafka's consume-transform-produce loop sends its consumer's
positions with send_offsets_to_transaction, then commits or aborts; kafka-python
and aiokafka producers send offsets for a group id. What the group has
committed is read back by another client family's OffsetFetch: nothing new
while the transaction is open, the offsets once it commits, the earlier ones
when it aborts."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient

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


def committed_through_confluent(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=TIMEOUT)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def offsets_in_transactions_kafka_python(bootstrap: str, transactional_id: str, group: str,
                                         transactions: list[tuple[dict, bool]], between) -> None:
    from kafka import KafkaProducer, OffsetAndMetadata, TopicPartition
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                             enable_idempotence=True, acks="all", request_timeout_ms=15_000)
    try:
        producer.init_transactions()
        for offsets, commit in transactions:
            producer.begin_transaction()
            producer.send_offsets_to_transaction(
                {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}, group)
            between()
            producer.commit_transaction() if commit else producer.abort_transaction()
    finally:
        producer.close(timeout=5)


def offsets_in_transactions_aiokafka(bootstrap: str, transactional_id: str, group: str,
                                     transactions: list[tuple[dict, bool]], between) -> None:
    async def run():
        from aiokafka import AIOKafkaProducer, TopicPartition
        from aiokafka.structs import OffsetAndMetadata
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                                    enable_idempotence=True, acks="all", request_timeout_ms=15_000)
        await producer.start()
        try:
            for offsets, commit in transactions:
                await producer.begin_transaction()
                await producer.send_offsets_to_transaction(
                    {TopicPartition(t, p): OffsetAndMetadata(o, "") for (t, p), o in offsets.items()}, group)
                await asyncio.get_running_loop().run_in_executor(None, between)
                await (producer.commit_transaction() if commit else producer.abort_transaction())
        finally:
            await producer.stop()
    asyncio.run(asyncio.wait_for(run(), TIMEOUT * 3))


@pytest.mark.parametrize("family", ["kafka-python", "aiokafka"])
def test_offsets_sent_to_transactions_by_group_id(broker, new_topic, family):
    """Producers that send only the group id (TxnOffsetCommit before KIP-447's
    v3, or v3 without a member): a group of offsets alone; read back through
    confluent-kafka's admin (OffsetFetch) after each transaction."""
    topic = new_topic(partitions=2)
    group = f"txn-{family}-{uuid.uuid4().hex[:8]}"
    first, second = {(topic, 0): 3, (topic, 1): 4}, {(topic, 0): 9, (topic, 1): 9}
    seen_while_open = []
    run = {"kafka-python": offsets_in_transactions_kafka_python, "aiokafka": offsets_in_transactions_aiokafka}[family]
    run(broker.bootstrap, f"txn-{group}", group, [(first, True), (second, False), (second, True)],
        lambda: seen_while_open.append(committed_through_confluent(broker.bootstrap, group)))
    # Open: nothing, then the first transaction's offsets (the second aborted).
    assert seen_while_open == [{}, first, first]
    assert committed_through_confluent(broker.bootstrap, group) == second
