"""The topic-config dependent checks of a produce request's batches (Kafka's
LogValidator), and the rewrites Kafka makes: LogAppendTime and recompression
to the topic's compression.type.

Records are only decoded when a setting demands it (timestamp bounds,
compacted topics, recompression) or the producer claims LogAppendTime;
otherwise the batch stays opaque bytes.
"""
from __future__ import annotations

from ..protocol.compression import compression_type_codec
from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.records import (LOG_APPEND_TIME, NO_TIMESTAMP, BatchView, Record, build_batch, set_create_time,
                                set_log_append_time, validate_produce_records)

LONG_MAX = 2**63 - 1


# A response lists at most this many of a batch's record errors (Kafka lists
# them all): a small compressed batch can hold a million keyless records, and
# listing each would cost hundreds of megabytes. The summary counts them all,
# and the client fails the unlisted records as part of an invalid batch.
MAX_LISTED_RECORD_ERRORS = 1000


class RecordErrors(KafkaError):
    """Kafka's RecordValidationException: the batch is refused because of the
    records listed as (index in the batch, message). A Produce v8+ response
    names them (KIP-467) so that the client fails just those records; the
    error_message is the summary Kafka's LogValidator.processRecordErrors makes."""

    def __init__(self, listed: list[tuple[int, str]], total: int, invalid_timestamp: bool):
        self.records = listed
        if invalid_timestamp:
            super().__init__(ErrorCode.INVALID_TIMESTAMP,
                             "One or more records have been rejected due to invalid timestamp")
        else:
            shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in listed[:3])
            super().__init__(
                ErrorCode.INVALID_RECORD,
                f"One or more records have been rejected due to {total} record errors in total, "
                f"and only showing the first three errors at most: [{shown}]")


def _java_long(value: int) -> int:
    """Wrap as Java's long arithmetic does (Kafka prints now + Long.MAX_VALUE so)."""
    return (value + 2**63) % 2**64 - 2**63


def _record_error(record: Record, index: int, batch: BatchView, config: dict, tp: str,
                  now_ms: int) -> tuple[ErrorCode, int, str] | None:
    """Kafka's LogValidator.validateRecord for a v2 record: its key, then its timestamp."""
    if record.key is None and "compact" in config["cleanup.policy"]:
        return ErrorCode.INVALID_RECORD, index, f"Compacted topic cannot accept message without key in topic partition {tp}"
    if config["message.timestamp.type"] == "CreateTime" and record.timestamp != NO_TIMESTAMP:
        before = config["message.timestamp.before.max.ms"]
        after = config["message.timestamp.after.max.ms"]
        if now_ms - record.timestamp > before or record.timestamp - now_ms > after:
            return ErrorCode.INVALID_TIMESTAMP, index, (
                f"Timestamp {record.timestamp} of message with offset {record.offset} is out of range. "
                f"The timestamp should be within [{_java_long(now_ms - before)}, {_java_long(now_ms + after)}]")
    elif batch.timestamp_type == LOG_APPEND_TIME:
        key_size = 0 if record.key is None else len(record.key)
        value_size = 0 if record.value is None else len(record.value)
        return ErrorCode.INVALID_TIMESTAMP, index, (
            f"Invalid timestamp type in message DefaultRecord(offset={record.offset}, timestamp={record.timestamp}, "
            f"key={key_size} bytes, value={value_size} bytes). Producer should not set timestamp type to LogAppendTime.")
    return None


def needs_decoding(batch: BatchView, config: dict) -> bool:
    """Whether ``check_batches`` decodes the batch's records: for a setting
    (compaction, timestamp bounds, recompression) or a LogAppendTime batch."""
    bounded = (config["message.timestamp.before.max.ms"] < LONG_MAX
               or config["message.timestamp.after.max.ms"] < LONG_MAX)
    target = compression_type_codec(config["compression.type"])
    return ("compact" in config["cleanup.policy"] or bounded or batch.timestamp_type == LOG_APPEND_TIME
            or (target is not None and target != batch.compression))


def _check_records(batch: BatchView, config: dict, tp: str, now_ms: int) -> None:
    """Every record's error, or none; decodes the records only when a setting
    (compaction, timestamp bounds) or a LogAppendTime batch calls for it."""
    bounded = (config["message.timestamp.before.max.ms"] < LONG_MAX
               or config["message.timestamp.after.max.ms"] < LONG_MAX)
    if not ("compact" in config["cleanup.policy"] or bounded or batch.timestamp_type == LOG_APPEND_TIME):
        return
    listed: list[tuple[int, str]] = []
    total = 0
    invalid_timestamp = False
    for i, record in enumerate(batch.records()):
        error = _record_error(record, i, batch, config, tp, now_ms)
        if error is not None:
            code, index, message = error
            total += 1
            invalid_timestamp = invalid_timestamp or code == ErrorCode.INVALID_TIMESTAMP
            if len(listed) < MAX_LISTED_RECORD_ERRORS:
                listed.append((index, message))
    if total:
        raise RecordErrors(listed, total, invalid_timestamp)


def _recompress(batch: BatchView, codec: int) -> bytes:
    return build_batch(
        ((r.key, r.value, r.headers, r.timestamp) for r in batch.records()),
        codec=codec,
        producer_id=batch.producer_id,
        producer_epoch=batch.producer_epoch,
        base_sequence=batch.base_sequence,
        transactional=batch.is_transactional,
        base_timestamp=batch.base_timestamp,
    )


def check_batches(records: bytearray, batches: list[BatchView], config: dict, tp: str, now_ms: int):
    """The checks that need the topic's config beyond its size limit. Returns
    (records, batches, log_append_time or None), records possibly rewritten.
    Raises KafkaError (RecordErrors for record-level errors) with Kafka's code and message."""
    (batch,) = batches  # validate_produce_records allows exactly one (v2) batch
    _check_records(batch, config, tp, now_ms)
    log_append = config["message.timestamp.type"] == "LogAppendTime"
    target = compression_type_codec(config["compression.type"])
    if target is not None and target != batch.compression:
        records = bytearray(_recompress(batch, target))
        batches = validate_produce_records(records)
    if log_append:
        set_log_append_time(records, batches[0].pos, now_ms)
        return records, batches, now_ms
    if batches[0].timestamp_type == LOG_APPEND_TIME:
        set_create_time(records, batches[0].pos)
    return records, batches, None
