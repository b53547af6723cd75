"""Reading a topic back in the cluster tests (kafka-python, no group)."""
from __future__ import annotations

from kafka import KafkaConsumer


def consume_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """The values of the first ``count`` messages of every partition of
    ``topic``, from the beginning; fewer if 20 s pass without a message."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=20_000)
    try:
        values = []
        for message in consumer:
            values.append(message.value)
            if len(values) == count:
                break
        return values
    finally:
        consumer.close()
