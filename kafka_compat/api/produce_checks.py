"""The topic-config dependent checks of a produce request's batches (Kafka's
LogValidator), and the rewrites Kafka makes: LogAppendTime and recompression
to the topic's compression.type.

Records are only decoded when a setting demands it (timestamp bounds,
compacted topics, recompression); otherwise the batch stays opaque bytes.
"""
from __future__ import annotations

from ..protocol.compression import compression_type_codec
from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.records import LOG_APPEND_TIME, BatchView, build_batch, set_log_append_time, validate_produce_records

LONG_MAX = 2**63 - 1


def _check_timestamps(batch: BatchView, config: dict, now_ms: int) -> None:
    before = config["message.timestamp.before.max.ms"]
    after = config["message.timestamp.after.max.ms"]
    if before >= LONG_MAX and after >= LONG_MAX:
        return
    for record in batch.records():
        ts = record.timestamp
        if (before < LONG_MAX and ts < now_ms - before) or (after < LONG_MAX and ts > now_ms + after):
            raise KafkaError(
                ErrorCode.INVALID_TIMESTAMP,
                f"Timestamp {ts} of message with offset {record.offset} is out of range. The timestamp should be "
                f"within [{now_ms - before if before < LONG_MAX else '-inf'}, "
                f"{now_ms + after if after < LONG_MAX else 'inf'}]",
            )


def _check_keys(batch: BatchView) -> None:
    for record in batch.records():
        if record.key is None:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Compacted topic cannot accept message without key.")


def _recompress(batch: BatchView, codec: int) -> bytes:
    records = [(r.key, r.value, r.headers, r.timestamp) for r in batch.records()]
    return build_batch(
        records,
        codec=codec,
        producer_id=batch.producer_id,
        producer_epoch=batch.producer_epoch,
        base_sequence=batch.base_sequence,
        transactional=batch.is_transactional,
        base_timestamp=batch.base_timestamp,
    )


def check_batches(records: bytearray, batches: list[BatchView], config: dict, now_ms: int):
    """The checks that need the topic's config beyond its size limit. Returns
    (records, batches, log_append_time or None), records possibly rewritten.
    Raises KafkaError with Kafka's code and message."""
    (batch,) = batches  # validate_produce_records allows exactly one (v2) batch
    if batch.timestamp_type == LOG_APPEND_TIME:
        raise KafkaError(ErrorCode.INVALID_TIMESTAMP, "Invalid timestamp type in batch: producers must use CreateTime")
    log_append = config["message.timestamp.type"] == "LogAppendTime"
    if "compact" in config["cleanup.policy"]:
        _check_keys(batch)
    if not log_append:
        _check_timestamps(batch, config, now_ms)
    target = compression_type_codec(config["compression.type"])
    if target is not None and target != batch.compression:
        records = bytearray(_recompress(batch, target))
        batches = validate_produce_records(records)
    if log_append:
        set_log_append_time(records, batches[0].pos, now_ms)
        return records, batches, now_ms
    return records, batches, None
