"""KIP-320 with a real consumer (confluent-kafka / librdkafka): a seek to a
position with a leader epoch is validated with OffsetForLeaderEpoch before
fetching; a position past its epoch's end is truncation, which the consumer
detects from our answer. The log holds several epochs, written as a follower
would have written them while this single broker was stopped."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.protocol.records import build_batch

DEADLINE_S = 30


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, value=b"epoch0-%d" % i)
    assert producer.flush(DEADLINE_S) == 0


async def add_epochs(partition_dir, batches) -> None:
    """Append (base offset, epoch, count) batches to the stopped broker's log."""
    log = PartitionLog.open(partition_dir, partition_dir.name.rsplit("-", 1)[0], 0, LogConfig({}),
                            clean_shutdown=True)
    for base, epoch, count in batches:
        data = bytearray(build_batch([(None, b"epoch%d-%d" % (epoch, i), [], int(time.time() * 1000))
                                      for i in range(count)], base_offset=base, partition_leader_epoch=epoch))
        log.append_as_follower(data)
    await log.close()


def next_message(consumer: Consumer):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            return message
    pytest.fail("no message within the deadline")


def seek_and_consume(consumer: Consumer, topic: str, offset: int, epoch: int):
    consumer.seek(TopicPartition(topic, 0, offset, leader_epoch=epoch))
    return next_message(consumer)


async def test_consumer_validates_positions_across_epochs(own_broker, new_topic):
    topic = new_topic()
    produce(own_broker.bootstrap, topic, 4)  # epoch 0: offsets 0-3
    own_broker.stop()
    await add_epochs(own_broker.data_dir / f"{topic}-0", [(4, 2, 4), (8, 5, 2)])  # epoch 2: 4-7, epoch 5: 8-9
    own_broker.start()

    consumer = Consumer({"bootstrap.servers": own_broker.bootstrap, "group.id": f"{topic}-g",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        first = next_message(consumer)
        assert (first.offset(), first.leader_epoch(), first.value()) == (0, 0, b"epoch0-0")

        # Inside epoch 2 (which ends at 8): valid, consumed from there.
        valid = seek_and_consume(consumer, topic, 6, 2)
        assert (valid.error(), valid.offset(), valid.leader_epoch(), valid.value()) == (None, 6, 2, b"epoch2-2")

        # Offset 9 at epoch 2 can't exist here (epoch 2 ended at 8): the log was
        # truncated under that position, and the consumer resumes at the epoch's end.
        moved = seek_and_consume(consumer, topic, 9, 2)
        assert (moved.error(), moved.offset(), moved.leader_epoch()) == (None, 8, 5)

        # An epoch older than all the log holds: its end is the first epoch's start.
        back = seek_and_consume(consumer, topic, 2, 0)
        assert (back.offset(), back.value()) == (2, b"epoch0-2")
    finally:
        consumer.close()


async def test_truncation_is_an_error_when_offsets_must_not_be_reset(own_broker, new_topic):
    topic = new_topic()
    produce(own_broker.bootstrap, topic, 4)
    own_broker.stop()
    await add_epochs(own_broker.data_dir / f"{topic}-0", [(4, 3, 2)])  # epoch 3: 4-5
    own_broker.start()

    consumer = Consumer({"bootstrap.servers": own_broker.bootstrap, "group.id": f"{topic}-g",
                         "auto.offset.reset": "error", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        assert next_message(consumer).offset() == 0
        valid = seek_and_consume(consumer, topic, 3, 1)  # epoch 1 is unknown: epoch 0's end is 4 >= 3, valid
        assert (valid.error(), valid.offset()) == (None, 3)
        failed = seek_and_consume(consumer, topic, 5, 0)  # epoch 0 ended at 4
        # librdkafka reports it as a failed offset reset naming the truncation.
        assert failed.error() is not None and failed.error().code() == KafkaError._AUTO_OFFSET_RESET
        assert "truncation detected at offset 5" in failed.error().str()
        assert "broker end offset is 4 (offset leader epoch 0)" in failed.error().str()
    finally:
        consumer.close()

