"""What an errored partition looks like on the wire: Fetch errors carry empty
(never null) records, Produce names the failing records of a batch (KIP-467),
and an acks=0 produce that fails closes the connection."""
from __future__ import annotations

import logging
import time

import pytest
import trio

from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import LOG_APPEND_TIME, BatchView, build_batch

from .test_requests import create_topic, fetch, produce, records


@pytest.mark.parametrize("version", [4, 11, 12])
async def test_fetch_errors_carry_empty_records_and_unknown_offsets(broker, version):
    client = await broker.client()
    await create_topic(client, "fe")
    await produce(client, "fe", records(3))
    beyond = await fetch(client, "fe", 10, version=version)
    assert beyond.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert beyond.records == b"" and beyond.records is not None  # size 0 on the wire, not -1
    assert (beyond.high_watermark, beyond.last_stable_offset, beyond.log_start_offset) == (-1, -1, -1)
    unknown = await fetch(client, "no-such-topic", 0, version=version)
    assert (unknown.error_code, unknown.records) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, b"")
    caught_up = await fetch(client, "fe", 3, version=version)
    assert (caught_up.error_code, caught_up.records, caught_up.high_watermark) == (ErrorCode.NONE, b"", 3)


def _batch(entries, **kw) -> bytearray:
    """A batch of (key, timestamp) records."""
    return bytearray(build_batch([(key, b"v", [], ts) for key, ts in entries], **kw))


async def test_keyless_records_on_a_compacted_topic_are_named(broker):
    client = await broker.client()
    await create_topic(client, "cmp", configs={"cleanup.policy": "compact"})
    now = int(time.time() * 1000)
    resp = await produce(client, "cmp", _batch([(b"a", now), (None, now), (b"c", now), (None, now)]))
    message = "Compacted topic cannot accept message without key in topic partition cmp-0"
    assert resp.error_code == ErrorCode.INVALID_RECORD
    assert [(e.batch_index, e.batch_index_error_message) for e in resp.record_errors] == [(1, message), (3, message)]
    assert resp.error_message == (
        "One or more records have been rejected due to 2 record errors in total, and only showing the first "
        f"three errors at most: [RecordError(batchIndex=1, message='{message}'), "
        f"RecordError(batchIndex=3, message='{message}')]")
    assert (await fetch(client, "cmp", 0)).high_watermark == 0
    old = await produce(client, "cmp", _batch([(b"a", now)]), version=7)  # v7 has no record errors
    assert old.error_code == ErrorCode.NONE


async def test_out_of_bounds_timestamps_are_named(broker):
    client = await broker.client()
    await create_topic(client, "ts", configs={"message.timestamp.before.max.ms": "60000",
                                              "message.timestamp.after.max.ms": "60000"})
    now = int(time.time() * 1000)
    resp = await produce(client, "ts", _batch([(b"a", now), (b"b", now - 3_600_000), (b"c", now + 3_600_000)]))
    assert (resp.error_code, resp.error_message) == (
        ErrorCode.INVALID_TIMESTAMP, "One or more records have been rejected due to invalid timestamp")
    assert [e.batch_index for e in resp.record_errors] == [1, 2]
    for error, (offset, ts) in zip(resp.record_errors, [(1, now - 3_600_000), (2, now + 3_600_000)]):
        text = error.batch_index_error_message
        assert text.startswith(f"Timestamp {ts} of message with offset {offset} is out of range. "
                               "The timestamp should be within [")
        low, high = map(int, text[text.index("[") + 1 : -1].split(", "))
        assert high - low == 120_000 and abs(low + 60_000 - now) < 60_000
    both = await produce(client, "ts", _batch([(b"a", now - 3_600_000)]))
    assert [e.batch_index for e in both.record_errors] == [0]
    assert (await produce(client, "ts", _batch([(b"a", now)]))).error_code == ErrorCode.NONE


async def test_one_unbounded_side_prints_as_java_long_overflow(broker):
    client = await broker.client()
    await create_topic(client, "ts1", configs={"message.timestamp.before.max.ms": "1000"})
    resp = await produce(client, "ts1", _batch([(b"a", 1_000)]))
    text = resp.record_errors[0].batch_index_error_message
    low, high = map(int, text[text.index("[") + 1 : -1].split(", "))
    assert high < 0 < low  # now + Long.MAX_VALUE wraps, as Kafka prints it


async def test_a_mixed_failure_reports_invalid_timestamp_and_every_record(broker):
    client = await broker.client()
    await create_topic(client, "mix", configs={"cleanup.policy": "compact", "message.timestamp.after.max.ms": "1000"})
    now = int(time.time() * 1000)
    resp = await produce(client, "mix", _batch([(None, now), (b"b", now + 3_600_000), (b"c", now)]))
    assert resp.error_code == ErrorCode.INVALID_TIMESTAMP
    assert [e.batch_index for e in resp.record_errors] == [0, 1]
    assert resp.record_errors[0].batch_index_error_message.startswith("Compacted topic cannot accept")


async def test_producer_log_append_time_batches(broker):
    """Kafka refuses a producer's LogAppendTime batch record by record on a
    LogAppendTime topic; on a CreateTime topic it stores it as CreateTime."""
    client = await broker.client()
    await create_topic(client, "lat-topic", configs={"message.timestamp.type": "LogAppendTime"})
    resp = await produce(client, "lat-topic", _batch([(b"ab", 5), (None, 5)], timestamp_type=LOG_APPEND_TIME))
    assert resp.error_code == ErrorCode.INVALID_TIMESTAMP
    assert [(e.batch_index, e.batch_index_error_message) for e in resp.record_errors] == [
        (0, "Invalid timestamp type in message DefaultRecord(offset=0, timestamp=5, key=2 bytes, value=1 bytes). "
            "Producer should not set timestamp type to LogAppendTime."),
        (1, "Invalid timestamp type in message DefaultRecord(offset=1, timestamp=5, key=0 bytes, value=1 bytes). "
            "Producer should not set timestamp type to LogAppendTime.")]
    await create_topic(client, "ct-topic")
    now = int(time.time() * 1000)
    stored = await produce(client, "ct-topic", _batch([(b"a", now)], timestamp_type=LOG_APPEND_TIME))
    assert stored.error_code == ErrorCode.NONE
    batch = BatchView(bytes((await fetch(client, "ct-topic", 0)).records))
    assert batch.timestamp_type != LOG_APPEND_TIME and batch.crc_ok() and batch.max_timestamp == now


async def test_other_produce_errors_carry_no_message(broker):
    """Kafka sets error_message only with record errors."""
    client = await broker.client()
    unknown = await produce(client, "nope", records(1))
    assert (unknown.error_code, unknown.error_message, unknown.record_errors) == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, [])
    await create_topic(client, "isr2", configs={"min.insync.replicas": "2"})
    short = await produce(client, "isr2", records(1), acks=-1)
    assert (short.error_code, short.error_message) == (ErrorCode.NOT_ENOUGH_REPLICAS, None)


def _acks0(client, partitions: dict[int, bytearray]) -> bytes:
    return client.encode("Produce", 9, {"acks": 0, "timeout_ms": 1000, "topic_data": [
        {"name": "a0", "partition_data": [{"index": i, "records": data} for i, data in partitions.items()]}]})


async def test_a_failed_acks0_produce_closes_the_connection_after_the_whole_request(broker, caplog):
    caplog.set_level(logging.INFO, logger="kafka_compat.server.connection")
    client = await broker.client()
    await create_topic(client, "a0")
    # The unknown partition comes first: the good one after it is still appended.
    await client.send_raw(_acks0(client, {7: records(1), 0: records(2)}))
    await client.send_raw(client.encode("Metadata", 12, {"topics": [{"name": "a0"}]}))
    with trio.fail_after(10):
        try:  # closed, the Metadata request unanswered; unread bytes make the close a reset
            assert await client.read_frame() is None
        except trio.BrokenResourceError:
            pass
    other = await broker.client()
    assert (await fetch(other, "a0", 0)).high_watermark == 2
    assert any("with ack=0: a0-7 -> UNKNOWN_TOPIC_OR_PARTITION" in r.getMessage() and r.levelname == "INFO"
               for r in caplog.records)


async def test_a_good_acks0_produce_keeps_the_connection(broker):
    client = await broker.client()
    await create_topic(client, "a0")
    await client.send_raw(_acks0(client, {0: records(2)}))
    resp = await client.request("Metadata", 12, {"topics": [{"name": "a0"}]})
    assert resp.topics[0].error_code == ErrorCode.NONE
    assert (await fetch(client, "a0", 0)).high_watermark == 2


async def test_a_failed_create_topic_has_empty_configs(broker):
    """Kafka answers a topic it could not create with an empty (not null) config list."""
    client = await broker.client()
    assert (await create_topic(client, "twice")).error_code == ErrorCode.NONE
    again = await create_topic(client, "twice")
    assert (again.error_code, again.configs, again.num_partitions) == (ErrorCode.TOPIC_ALREADY_EXISTS, [], -1)
