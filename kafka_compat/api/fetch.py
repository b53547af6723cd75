"""Fetch: long poll (max_wait_ms/min_bytes, woken by appends), response and
partition byte limits with at least one whole batch (KIP-74), records sent
from the segment files as file regions."""
from __future__ import annotations

import trio

from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.primitives import DeferredRecords
from ..server.sender import FileRegion
from .registry import handles

ZERO_UUID = bytes(16)
READ_COMMITTED = 1


class _Wanted:
    """One requested partition, resolved against the metadata."""

    __slots__ = ("topic_entry", "name", "index", "request", "log", "error")

    def __init__(self, topic_entry, name, index, request, log, error):
        self.topic_entry, self.name, self.index = topic_entry, name, index
        self.request, self.log, self.error = request, log, error


def _resolve(broker, request, version: int) -> tuple[list[dict], list[_Wanted]]:
    topics_out, wanted = [], []
    for t in request.topics:
        if version >= 13:
            meta = broker.metadata.topic_by_id(t.topic_id)
            missing = ErrorCode.UNKNOWN_TOPIC_ID
        else:
            meta = broker.topics.get(t.topic)
            missing = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        entry = {"topic": t.topic if meta is None else meta.name, "topic_id": t.topic_id, "partitions": []}
        topics_out.append(entry)
        for p in t.partitions:
            error = ErrorCode.NONE
            log = None
            if meta is None:
                error = missing
            else:
                log = broker.topics.partition_log(meta.name, p.partition)
                if log is None:
                    error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                else:
                    epoch = broker.metadata.leader_epoch(meta.name, p.partition)
                    if p.current_leader_epoch > epoch:
                        error = ErrorCode.UNKNOWN_LEADER_EPOCH
                    elif 0 <= p.current_leader_epoch < epoch:
                        error = ErrorCode.FENCED_LEADER_EPOCH
            wanted.append(_Wanted(entry, entry["topic"], p.partition, p, log, error))
    return topics_out, wanted


def _read_all(wanted: list[_Wanted], max_bytes: int, isolation_level: int) -> int:
    """Fill every partition entry; returns the bytes of records gathered."""
    total = 0
    for w in wanted:
        out = {"partition_index": w.index, "error_code": w.error, "high_watermark": -1,
               "last_stable_offset": -1, "log_start_offset": -1, "records": None,
               "aborted_transactions": [] if isolation_level == READ_COMMITTED else None}
        if w.error == ErrorCode.NONE:
            log = w.log
            out.update(high_watermark=log.high_watermark, last_stable_offset=log.high_watermark,
                       log_start_offset=log.log_start_offset)
            limit = min(w.request.partition_max_bytes, max_bytes - total)
            try:
                result = log.read(w.request.fetch_offset, max(limit, 0), min_one_batch=(total == 0),
                                  max_offset=log.high_watermark)
            except KafkaError as e:
                out["error_code"] = e.code
            else:
                if result.size:
                    out["records"] = DeferredRecords([FileRegion(*r) for r in result.regions], result.size)
                    total += result.size
                else:
                    out["records"] = b""
        w.topic_entry["partitions"].append(out)
    return total


@handles("Fetch", min_version=4)
async def fetch(ctx, request) -> dict:
    broker = ctx.broker
    version = ctx.api_version
    deadline = trio.current_time() + request.max_wait_ms / 1000
    while True:
        topics_out, wanted = _resolve(broker, request, version)
        total = _read_all(wanted, request.max_bytes, request.isolation_level)
        has_error = any(p["error_code"] for t in topics_out for p in t["partitions"])
        remaining = deadline - trio.current_time()
        if total >= request.min_bytes or has_error or remaining <= 0 or broker.shutting_down.is_set():
            break
        watched = [(w.name, w.index) for w in wanted if w.log is not None]
        await broker.waiters.wait_any(watched, remaining)
    return {"error_code": ErrorCode.NONE, "session_id": 0, "responses": topics_out}
