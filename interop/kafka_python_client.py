"""kafka-python producer and consumer, in-process."""
from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .messages import Message, Record, record_from_consumer_record


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int = 0,
            compression: str | None = None, idempotent: bool = False,
            timeout: float = 60.0) -> list[int]:
    """Send every message, wait for all acknowledgements (acks=all) and
    return the offset of each message."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="interop-kafka-python",
        acks="all",
        enable_idempotence=idempotent,
        compression_type=compression,
        linger_ms=5,
        request_timeout_ms=15_000,
        delivery_timeout_ms=int(timeout * 1000),
    )
    try:
        futures = [
            producer.send(topic, key=m.key, value=m.value, headers=list(m.headers),
                          partition=partition, timestamp_ms=m.timestamp)
            for m in messages
        ]
        producer.flush(timeout=timeout)
        return [future.get(timeout=0).offset for future in futures]
    finally:
        producer.close(timeout=5)


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int = 0, timeout: float = 60.0) -> list[Record]:
    """Read from `start_offset` until `count` records arrived (or `timeout`
    passed), without a consumer group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="interop-kafka-python",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=15_000,
    )
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start_offset)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(record_from_consumer_record(r) for r in batch)
        return records
    finally:
        consumer.close(autocommit=False)
