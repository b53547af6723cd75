"""confluent-kafka (librdkafka) producer and consumer, in-process."""
from __future__ import annotations

import time
import uuid

from confluent_kafka import (TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, Consumer,
                             KafkaException, Producer, TopicPartition)

from .messages import Message, Record

TIMESTAMP_TYPES = {TIMESTAMP_CREATE_TIME: "create", TIMESTAMP_LOG_APPEND_TIME: "log_append"}


def producer_config(bootstrap: str, *, compression: str | None = None,
                    idempotent: bool = False, **extra) -> dict:
    config = {
        "bootstrap.servers": bootstrap,
        "client.id": "interop-confluent",
        "acks": "all",
        "enable.idempotence": idempotent,
        "compression.type": compression or "none",
        "linger.ms": 5,
        "message.timeout.ms": 60_000,
        "socket.timeout.ms": 15_000,
    }
    config.update(extra)
    return config


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int = 0,
            compression: str | None = None, idempotent: bool = False,
            timeout: float = 60.0) -> list[int]:
    """Send every message, wait for all delivery reports and return the
    offset of each message; raises if any delivery failed."""
    producer = Producer(producer_config(bootstrap, compression=compression, idempotent=idempotent))
    offsets: list[int | None] = [None] * len(messages)
    errors: list[str] = []

    def reporter(index):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"message {index}: {err}")
            else:
                offsets[index] = msg.offset()
        return on_delivery

    for index, m in enumerate(messages):
        send_with_backpressure(producer, topic, m, partition, reporter(index))
    remaining = producer.flush(timeout)
    if errors or remaining:
        raise KafkaException(f"{len(errors)} deliveries failed, {remaining} unreported: {errors[:5]}")
    return offsets


def send_with_backpressure(producer: Producer, topic: str, m: Message, partition: int,
                           on_delivery) -> None:
    """produce(), serving delivery reports while librdkafka's queue is full."""
    while True:
        try:
            producer.produce(topic, value=m.value, key=m.key, headers=list(m.headers) or None,
                             partition=partition, timestamp=m.timestamp or 0,
                             on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)


def consumer(bootstrap: str, **extra) -> Consumer:
    """A consumer meant for assign(): librdkafka insists on a group.id, but
    nothing is committed."""
    config = {
        "bootstrap.servers": bootstrap,
        "client.id": "interop-confluent",
        "group.id": f"interop-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 15_000,
    }
    config.update(extra)
    return Consumer(config)


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int = 0, timeout: float = 60.0) -> list[Record]:
    """Read from `start_offset` until `count` records arrived (or `timeout`
    passed); raises on a consumer error."""
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, partition, start_offset)])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for msg in c.consume(num_messages=1000, timeout=0.2):
                if msg.error():
                    raise KafkaException(msg.error())
                records.append(_record(msg))
        return records
    finally:
        c.close()


def _record(msg) -> Record:
    ts_type, ts = msg.timestamp()
    return Record(
        partition=msg.partition(),
        offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        headers=tuple((k, v) for k, v in (msg.headers() or [])),
        timestamp=ts,
        timestamp_type=TIMESTAMP_TYPES.get(ts_type),
    )
