"""ListOffsets: earliest, latest, max timestamp, and by timestamp through the time index.

A consumer's READ_COMMITTED request (v2+) is answered up to the last stable
offset rather than the high watermark, as Kafka's fetchOffsetForTimestamp:
LATEST is the last stable offset, and a record found by time counts only
below it. A request with a replica id (a broker's, or the debugging -2) has
no isolation level in Kafka: up to the log end."""
from __future__ import annotations

from collections import Counter

from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
READ_COMMITTED = 1
CONSUMER_REPLICA_ID = -1


def _last_fetchable(log, consumer: bool, committed: bool) -> int:
    if not consumer:
        return log.log_end_offset
    return log.last_stable_offset if committed else log.high_watermark


def _lookup(log, timestamp: int, consumer: bool, committed: bool) -> tuple[int, int, int]:
    """(offset, timestamp, leader epoch) as Kafka's fetchOffsetByTimestamp
    answers them: the epoch is the log's latest for LATEST, the one holding
    the offset for EARLIEST, the found batch's otherwise; -1 where unknown.
    (-1, -1, -1) when nothing matches below the last fetchable offset (for a
    consumer the last stable offset at READ_COMMITTED, else the high
    watermark; the log end for others)."""
    last_fetchable = _last_fetchable(log, consumer, committed)
    if timestamp == LATEST:
        return last_fetchable, -1, _or_unknown(log.latest_epoch)
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return log.log_start_offset, -1, _or_unknown(log.epoch_for_offset(log.log_start_offset))
    if timestamp == LATEST_TIERED:
        return -1, -1, -1  # no tiered storage: nothing was ever uploaded
    if timestamp == MAX_TIMESTAMP:
        found = log.max_timestamp_offset()
    else:
        found = log.offset_for_timestamp(timestamp)
    if found is None or found.offset >= last_fetchable:
        return -1, -1, -1
    return found.offset, found.timestamp, found.leader_epoch


def _or_unknown(epoch: int | None) -> int:
    return -1 if epoch is None else epoch


@handles("ListOffsets")
async def list_offsets(ctx, request) -> dict:
    broker = ctx.broker
    version = ctx.api_version
    consumer = request.replica_id == CONSUMER_REPLICA_ID
    committed = version >= 2 and request.isolation_level == READ_COMMITTED
    topics_out = []
    for t in request.topics:
        counts = Counter(p.partition_index for p in t.partitions)
        partitions_out = []
        topics_out.append({"name": t.name, "partitions": partitions_out})
        for p in t.partitions:
            out = {"partition_index": p.partition_index, "error_code": ErrorCode.NONE,
                   "timestamp": -1, "offset": -1, "leader_epoch": -1, "old_style_offsets": []}
            partitions_out.append(out)
            if version >= 1 and counts[p.partition_index] > 1:
                out["error_code"] = ErrorCode.INVALID_REQUEST
                continue
            try:
                log = broker.replicas.leader_log(t.name, p.partition_index, p.current_leader_epoch)
            except KafkaError as e:
                out["error_code"] = e.code
                continue
            try:
                offset, timestamp, epoch = _lookup(log, p.timestamp, consumer, committed)
            except KafkaError as e:  # a stored batch that does not decode: that partition's error, as Kafka
                out["error_code"] = e.code
                continue
            if offset >= 0:
                out.update(offset=offset, timestamp=timestamp, leader_epoch=epoch)
                out["old_style_offsets"] = [offset]
    return {"topics": topics_out}
