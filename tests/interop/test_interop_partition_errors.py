"""Real clients meeting partition errors: a consumer whose position is past
the log end applies auto.offset.reset (librdkafka drops a Fetch response whose
errored partition has null records, so it would refetch forever), and a
producer fails exactly the records a batch was refused for (KIP-467)."""
from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import InvalidRecordError

from interop import confluent_client
from interop.clients import PRODUCERS
from interop.messages import Message, now_ms

BEYOND = 1_000  # a position far past the log end
DEADLINE = 30.0


def _values(n: int, start: int = 0) -> list[Message]:
    return [Message(key=b"k", value=f"m{i}".encode(), timestamp=now_ms()) for i in range(start, start + n)]


def _confluent_read(bootstrap, topic, reset, position_then, count) -> list[tuple[int, bytes]]:
    """Assign at BEYOND, read `count` messages; once the position is reset to
    `position_then[0]`, call `position_then[1]` (None: nothing to wait for).
    librdkafka's position() stays unset until a message is consumed, so the
    position it fetches from comes from its statistics (next_offset)."""
    next_offset = [BEYOND]

    def on_stats(text):
        partition = json.loads(text)["topics"].get(topic, {}).get("partitions", {}).get("0")
        if partition is not None:
            next_offset[0] = partition["next_offset"]

    consumer = confluent_client.consumer(bootstrap, **{"auto.offset.reset": reset, "stats_cb": on_stats,
                                                        "statistics.interval.ms": 100})
    try:
        consumer.assign([TopicPartition(topic, 0, BEYOND)])
        return _read(lambda: [(m.offset(), m.value()) for m in consumer.consume(100, timeout=0.2)
                              if not _error(m)],
                     lambda: next_offset[0], position_then, count)
    finally:
        consumer.close()


def _error(msg) -> bool:
    """librdkafka reports the reset as an informational consumer error."""
    if msg.error() is None:
        return False
    assert msg.error().code() == ConfluentError._AUTO_OFFSET_RESET or "Offset out of range" in str(msg.error())
    return True


def _kafka_python_read(bootstrap, topic, reset, position_then, count) -> list[tuple[int, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset=reset, fetch_max_wait_ms=100, request_timeout_ms=15_000)
    tp = KafkaTopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        consumer.seek(tp, BEYOND)
        return _read(lambda: [(r.offset, r.value) for batch in consumer.poll(timeout_ms=200).values() for r in batch],
                     lambda: consumer.position(tp, timeout_ms=1000), position_then, count)
    finally:
        consumer.close(autocommit=False)


def _read(poll, position, position_then, count) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + DEADLINE
    while position_then is not None:
        assert time.monotonic() < deadline, f"position stayed at {position()}, never reset"
        got += poll()
        if position() == position_then[0]:
            position_then[1]()
            break
    while len(got) < count:
        assert time.monotonic() < deadline, f"read {got} only"
        got += poll()
    return got


READERS = {"confluent-kafka": _confluent_read, "kafka-python": _kafka_python_read}


@pytest.mark.parametrize("client", list(READERS))
def test_a_position_past_the_end_resets_to_earliest(broker, new_topic, client):
    topic = new_topic()
    PRODUCERS["confluent-kafka"](broker.bootstrap, topic, _values(5))
    got = READERS[client](broker.bootstrap, topic, "earliest", None, 5)
    assert got == [(i, f"m{i}".encode()) for i in range(5)]


@pytest.mark.parametrize("client", list(READERS))
def test_a_position_past_the_end_resets_to_latest(broker, new_topic, client):
    topic = new_topic()
    PRODUCERS["confluent-kafka"](broker.bootstrap, topic, _values(5))
    more = lambda: PRODUCERS["confluent-kafka"](broker.bootstrap, topic, _values(2, start=5))  # noqa: E731
    got = READERS[client](broker.bootstrap, topic, "latest", (5, more), 2)
    assert got == [(5, b"m5"), (6, b"m6")]


KEYS = [b"a", None, b"c", None, b"e"]  # one batch; the keyless records can't go to a compacted topic
INVALID = {1, 3}


def test_librdkafka_fails_exactly_the_invalid_records(broker, new_topic):
    """librdkafka fails the named records with INVALID_RECORD and the rest of
    the batch with its local _INVALID_DIFFERENT_RECORD (without record errors
    it would fail them all with INVALID_RECORD)."""
    topic = new_topic(configs={"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 500, "acks": "all"})
    errors: dict[int, int] = {}
    for i, key in enumerate(KEYS):
        producer.produce(topic, key=key, value=b"v", partition=0,
                         on_delivery=lambda err, msg, i=i: errors.__setitem__(i, err and err.code()))
    assert producer.flush(DEADLINE) == 0
    assert errors == {i: ConfluentError.INVALID_RECORD if i in INVALID else ConfluentError._INVALID_DIFFERENT_RECORD
                      for i in range(len(KEYS))}


def test_kafka_python_fails_exactly_the_invalid_records(broker, new_topic):
    """kafka-python raises InvalidRecordError with the record's own message for
    the named records, and a plain KafkaError for the rest of the batch."""
    topic = new_topic(configs={"cleanup.policy": "compact"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=500, acks="all")
    try:
        futures = [producer.send(topic, key=key, value=b"v", partition=0) for key in KEYS]
        producer.flush(DEADLINE)
        outcomes = [future.exception for future in futures]
    finally:
        producer.close(timeout=5)
    for i, error in enumerate(outcomes):
        if i in INVALID:
            assert isinstance(error, InvalidRecordError)
            assert "Compacted topic cannot accept message without key in topic partition" in str(error)
        else:
            assert error is not None and not isinstance(error, InvalidRecordError)
            assert "part of a batch which had one more more invalid records" in str(error)
