"""Idempotent producers (InitProducerId, producer id and sequence numbers on
every batch): every message lands exactly once, in order."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from interop.admin import offset_range
from interop.clients import CONSUMERS, PRODUCERS
from interop.messages import binary_messages, now_ms
from interop.verify import assert_delivered_in_order, assert_same_messages

COUNT = 5_000


@pytest.mark.parametrize("producer", ["confluent-kafka", "kafka-python", "aiokafka", "kafkajs", "java",
                                      "franz-go", "sarama", "sarama-async"])
def test_idempotent_producer_writes_each_message_once(broker, new_topic, producer):
    topic = new_topic()
    sent = binary_messages(COUNT, seed=6)
    offsets = PRODUCERS[producer](broker.bootstrap, topic, sent, idempotent=True)
    assert_delivered_in_order(offsets, COUNT)
    assert offset_range(broker.bootstrap, topic) == (0, COUNT)
    assert_same_messages(sent, CONSUMERS["confluent-kafka"](broker.bootstrap, topic, COUNT))


def test_concurrent_idempotent_producers_keep_their_own_order(broker, new_topic):
    """Two producer ids writing to one partition at the same time: each one's
    messages land exactly once and in its own order."""
    topic = new_topic()
    start = now_ms() - 600_000  # distinct timestamps tell the two apart
    batches = {"confluent-kafka": binary_messages(2_000, seed=8, base_timestamp=start),
               "kafka-python": binary_messages(2_000, seed=9, base_timestamp=start + 100_000)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(PRODUCERS[name], broker.bootstrap, topic, sent, idempotent=True)
                   for name, sent in batches.items()]
        for future in futures:
            future.result()
    total = sum(map(len, batches.values()))
    records = CONSUMERS["kafka-python"](broker.bootstrap, topic, total)
    assert [r.offset for r in records] == list(range(total))
    for name, sent in batches.items():
        wanted = set(sent)
        mine = [r.message() for r in records if r.message() in wanted]
        assert mine == sent, f"{name}'s messages are not exactly once and in order"
