"""aiokafka producer and consumer, each run in its own asyncio event loop."""
from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .messages import Message, Record, record_from_consumer_record


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int = 0,
            compression: str | None = None, idempotent: bool = False,
            timeout: float = 60.0) -> list[int]:
    """Send every message with acks=all and return the offset of each."""
    return asyncio.run(asyncio.wait_for(
        _produce(bootstrap, topic, messages, partition, compression, idempotent), timeout))


async def _produce(bootstrap, topic, messages, partition, compression, idempotent):
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="interop-aiokafka",
        acks="all",
        enable_idempotence=idempotent,
        compression_type=compression,
        linger_ms=5,
        request_timeout_ms=15_000,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=m.key, value=m.value, headers=list(m.headers),
                                partition=partition, timestamp_ms=m.timestamp)
            for m in messages
        ]
        return [(await future).offset for future in futures]
    finally:
        await producer.stop()


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int = 0, timeout: float = 60.0) -> list[Record]:
    """Read from `start_offset` until `count` records arrived (or `timeout`
    passed), without a consumer group."""
    return asyncio.run(_consume(bootstrap, topic, count, partition, start_offset, timeout))


async def _consume(bootstrap, topic, count, partition, start_offset, timeout):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="interop-aiokafka",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=15_000,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start_offset)
        records: list[Record] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < count and loop.time() < deadline:
            batches = await consumer.getmany(tp, timeout_ms=200)
            for batch in batches.values():
                records.extend(record_from_consumer_record(r) for r in batch)
        return records
    finally:
        await consumer.stop()
