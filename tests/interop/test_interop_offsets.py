"""ListOffsets as clients use it: offsets for timestamps, beginning and end."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from interop import confluent_client, kafka_python_client, kcat_client
from interop.admin import create_topic
from interop.messages import Message, now_ms

COUNT = 100
STEP = 10  # ms between consecutive timestamps


@pytest.fixture(scope="module")
def timed_topic(broker):
    """A topic whose message i has timestamp base + STEP * i."""
    name = f"timed-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, name)
    base = now_ms() - 3_600_000 + 1  # an hour ago, still within any timestamp limit
    messages = [Message(b"k%d" % i, b"v%d" % i, (), base + STEP * i) for i in range(COUNT)]
    kafka_python_client.produce(broker.bootstrap, name, messages)
    return name, base


def expectations(base: int) -> list[tuple[int, int | None]]:
    """(target timestamp, first offset whose timestamp is >= target)."""
    return [
        (base - 100_000, 0),
        (base, 0),
        (base + STEP * 37, 37),
        (base + STEP * 37 + 1, 38),
        (base + STEP * (COUNT - 1), COUNT - 1),
        (base + STEP * (COUNT - 1) + 1, None),
    ]


def test_kafka_python_offsets_for_times_and_ends(broker, timed_topic):
    name, base = timed_topic
    tp = KpTopicPartition(name, 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=15_000)
    try:
        for target, offset in expectations(base):
            found = consumer.offsets_for_times({tp: target})[tp]
            if offset is None:
                assert found is None, f"timestamp {target}: {found}"
            else:
                assert found is not None, f"timestamp {target}: no offset, expected {offset}"
                assert (found.offset, found.timestamp) == (offset, base + STEP * offset)
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: COUNT}
    finally:
        consumer.close(autocommit=False)


def test_confluent_offsets_for_times_and_watermarks(broker, timed_topic):
    name, base = timed_topic
    consumer = confluent_client.consumer(broker.bootstrap)
    try:
        for target, offset in expectations(base):
            [found] = consumer.offsets_for_times([CkTopicPartition(name, 0, target)], timeout=15)
            assert found.error is None, found.error
            assert found.offset == (-1 if offset is None else offset), f"timestamp {target}"
        assert consumer.get_watermark_offsets(CkTopicPartition(name, 0), timeout=15) == (0, COUNT)
    finally:
        consumer.close()


def test_confluent_admin_list_offsets(broker, timed_topic):
    name, base = timed_topic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    tp = CkTopicPartition(name, 0)
    specs = {"earliest": (OffsetSpec.earliest(), 0), "latest": (OffsetSpec.latest(), COUNT),
             "timestamp": (OffsetSpec.for_timestamp(base + STEP * 50), 50)}
    for label, (spec, expected) in specs.items():
        result = admin.list_offsets({tp: spec})[tp].result(timeout=30)
        assert result.offset == expected, label


def test_kcat_query_offset_for_time(broker, timed_topic):
    name, base = timed_topic
    for target, offset in expectations(base):
        got = kcat_client.offset_for_time(broker.bootstrap, name, 0, target)
        assert got == (-1 if offset is None else offset), f"timestamp {target}"


def test_out_of_order_timestamps_give_first_offset_at_or_after(broker, new_topic):
    """Kafka answers with the earliest offset whose timestamp is >= the
    target, even when timestamps go backwards."""
    name = new_topic()
    base = now_ms() - 600_000
    stamps = [base + d for d in (100, 300, 200, 400, 250, 500)]
    confluent_client.produce(broker.bootstrap, name,
                             [Message(None, b"%d" % i, (), ts) for i, ts in enumerate(stamps)])
    tp = KpTopicPartition(name, 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False)
    try:
        for target, offset in [(base + 150, 1), (base + 250, 1), (base + 301, 3),
                               (base + 450, 5), (base + 501, None)]:
            found = consumer.offsets_for_times({tp: target})[tp]
            assert (found and found.offset) == offset, f"timestamp {target}: {found}"
    finally:
        consumer.close(autocommit=False)
