"""Compressed batches from real producers are kept as sent and decompress
correctly in other clients."""
from __future__ import annotations

import uuid

import pytest

from interop.clients import CONSUMERS, PRODUCERS, TEXT_ONLY
from interop.messages import binary_messages, compressible, text_messages
from interop.segments import batch_codecs
from interop.verify import assert_delivered_in_order, assert_same_messages

CODECS = ("gzip", "snappy", "lz4", "zstd")
COUNT = 2_000

# (librdkafka infers LZ4 support from FindCoordinator being advertised and
# otherwise sends lz4 batches uncompressed; the on-disk codec check catches that.)
CASES = [(client, codec) for client in ("kafka-python", "confluent-kafka", "aiokafka", "java",
                                        "franz-go", "sarama")
         for codec in CODECS]
CASES += [("kafkajs", "gzip"), ("kcat", "zstd")]


@pytest.mark.parametrize("producer, codec", CASES)
def test_compressed_batches_round_trip(broker, new_topic, producer, codec):
    topic = new_topic()
    if producer in TEXT_ONLY:
        sent = text_messages(COUNT, seed=3, headers=(("run", uuid.uuid4().hex.encode()),))
    else:
        sent = binary_messages(COUNT, seed=3)
    sent = compressible(sent)
    offsets = PRODUCERS[producer](broker.bootstrap, topic, sent, compression=codec)
    assert_delivered_in_order(offsets, COUNT)

    codecs = batch_codecs(broker.data_dir, topic)
    assert codecs and set(codecs) == {codec}, f"batches on disk: {sorted(set(codecs))}"
    for consumer in ("kafka-python", "confluent-kafka", "java", "franz-go", "sarama"):
        records = CONSUMERS[consumer](broker.bootstrap, topic, COUNT)
        assert_same_messages(sent, records)


def test_topic_compression_type_recompresses(broker, new_topic):
    topic = new_topic(configs={"compression.type": "zstd"})
    sent = compressible(binary_messages(500, seed=4))
    PRODUCERS["kafka-python"](broker.bootstrap, topic, sent, compression="gzip")

    codecs = batch_codecs(broker.data_dir, topic)
    assert codecs and set(codecs) == {"zstd"}, f"batches on disk: {sorted(set(codecs))}"
    for consumer in ("confluent-kafka", "aiokafka"):
        assert_same_messages(sent, CONSUMERS[consumer](broker.bootstrap, topic, len(sent)))
