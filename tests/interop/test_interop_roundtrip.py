"""Messages produced by one real client come back byte for byte, in order and
at contiguous offsets, through the same or another real client."""
from __future__ import annotations

import uuid

import pytest

from interop.clients import CONSUMERS, PRODUCERS, TEXT_ONLY
from interop.messages import Message, binary_messages, now_ms, text_messages
from interop.verify import assert_delivered_in_order, assert_same_messages


def messages_for(producer: str, consumer: str, count: int) -> list[Message]:
    if TEXT_ONLY & {producer, consumer}:
        return text_messages(count, seed=count, headers=(
            ("source", producer.encode()), ("run", uuid.uuid4().hex.encode())))
    return binary_messages(count, seed=count)


def round_trip(bootstrap: str, topic: str, producer: str, consumer: str, count: int) -> None:
    sent = messages_for(producer, consumer, count)
    before = now_ms()
    offsets = PRODUCERS[producer](bootstrap, topic, sent)
    after = now_ms()
    assert_delivered_in_order(offsets, count)
    records = CONSUMERS[consumer](bootstrap, topic, count)
    assert_same_messages(sent, records, stamped_between=(before, after))


@pytest.mark.parametrize("producer, consumer", [
    ("kafka-python", "kafka-python"),
    ("confluent-kafka", "confluent-kafka"),
    ("aiokafka", "aiokafka"),
    ("kcat", "kcat"),
    ("kafkajs", "confluent-kafka"),
    ("java", "confluent-kafka"),
    ("confluent-kafka", "java"),
    ("java", "java"),
    ("franz-go", "confluent-kafka"),
    ("confluent-kafka", "franz-go"),
    ("sarama", "java"),
    ("java", "sarama"),
    ("franz-go", "sarama"),
    ("sarama-async", "franz-go"),
])
def test_ten_thousand_messages_round_trip(broker, new_topic, producer, consumer):
    round_trip(broker.bootstrap, new_topic(), producer, consumer, 10_000)


@pytest.mark.parametrize("producer, consumer", [
    ("kafka-python", "confluent-kafka"),
    ("confluent-kafka", "aiokafka"),
    ("aiokafka", "kafka-python"),
    ("kafkajs", "aiokafka"),
    ("kcat", "kafka-python"),
    ("confluent-kafka", "kcat"),
    ("aiokafka", "kafkajs"),  # kafkajs consumes through a consumer group
    ("java", "kafka-python"),
    ("kafka-python", "java"),
    ("java", "kcat"),
    ("kafkajs", "java"),
    ("kafka-python", "franz-go"),
    ("franz-go", "aiokafka"),
    ("kcat", "sarama"),
    ("sarama", "kcat"),
    ("sarama-async", "kafka-python"),
    ("kafkajs", "sarama"),
    ("franz-go", "kafkajs"),
])
def test_produce_with_one_client_consume_with_another(broker, new_topic, producer, consumer):
    round_trip(broker.bootstrap, new_topic(), producer, consumer, 1_000)


def test_consumers_start_at_a_given_offset(broker, new_topic):
    topic = new_topic()
    sent = binary_messages(300, seed=7)
    PRODUCERS["confluent-kafka"](broker.bootstrap, topic, sent)
    for name in ("kafka-python", "confluent-kafka", "aiokafka", "java", "franz-go", "sarama"):
        records = CONSUMERS[name](broker.bootstrap, topic, 100, start_offset=200)
        assert_same_messages(sent[200:], records, base_offset=200)
