"""OffsetCommit, TxnOffsetCommit, OffsetFetch and OffsetDelete: committed
offsets kept by the group coordinator in ``__consumer_offsets``.

Partitions of topics that don't exist are answered UNKNOWN_TOPIC_OR_PARTITION
here, before the coordinator sees the rest, as Kafka does. OffsetCommit and
OffsetFetch v0 (which Kafka kept in ZooKeeper) use the same storage as the
other versions.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

from ..group.log_format import OffsetAndMetadata
from ..protocol.errors import ErrorCode
from .registry import handles

DEFAULT_TIMESTAMP = -1
DEFAULT_RETENTION = -1
# TxnOffsetCommit clients from v4 understand TRANSACTION_ABORTABLE (KIP-890).
FIRST_TXN_OFFSET_COMMIT_WITH_ABORTABLE = 4


def _exists(broker, topic: str, partition: int) -> bool:
    meta = broker.topics.get(topic)
    return meta is not None and 0 <= partition < meta.partitions


def _by_topic(entries: Iterable[tuple[tuple[str, int], dict]]) -> list[dict]:
    """[((topic, partition), fields)] -> [{name, partitions: [...]}] in order."""
    topics: dict[str, list[dict]] = {}
    for (topic, partition), fields in entries:
        topics.setdefault(topic, []).append({"partition_index": partition, **fields})
    return [{"name": name, "partitions": partitions} for name, partitions in topics.items()]


@handles("OffsetCommit")
async def offset_commit(ctx, request) -> dict:
    broker = ctx.broker
    version = ctx.api_version
    now = int(time.time() * 1000)
    retention = request.retention_time_ms if 2 <= version <= 4 else DEFAULT_RETENTION
    expire = None if retention == DEFAULT_RETENTION else now + retention
    requested: list[tuple[str, int]] = []
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    for topic in request.topics:
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            requested.append(tp)
            if _exists(broker, *tp):
                offsets[tp] = OffsetAndMetadata(
                    offset=p.committed_offset,
                    leader_epoch=p.committed_leader_epoch,
                    metadata=p.committed_metadata or "",
                    commit_timestamp=now if p.commit_timestamp == DEFAULT_TIMESTAMP else p.commit_timestamp,
                    expire_timestamp=expire,
                )
    errors = {}
    if offsets:
        errors = await broker.groups.commit_offsets(request.group_id, request.member_id, request.group_instance_id,
                                                    request.generation_id_or_member_epoch, offsets)
    return {"topics": _by_topic(
        (tp, {"error_code": errors.get(tp, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)}) for tp in requested
    )}


@handles("TxnOffsetCommit")
async def txn_offset_commit(ctx, request) -> dict:
    """Offsets committed in a producer's transaction (pending until its
    marker). Unknown topics and partitions first, then the coordinator's
    checks (KafkaApis.handleTxnOffsetCommitRequest); clients before v2 don't
    know COORDINATOR_LOAD_IN_PROGRESS and get COORDINATOR_NOT_AVAILABLE."""
    broker = ctx.broker
    now = int(time.time() * 1000)
    requested: list[tuple[str, int]] = []
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    for topic in request.topics:
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            requested.append(tp)
            if _exists(broker, *tp):
                offsets[tp] = OffsetAndMetadata(p.committed_offset, p.committed_leader_epoch,
                                                p.committed_metadata or "", now)
    errors = {}
    if offsets:
        errors = await broker.groups.commit_txn_offsets(
            request.group_id, request.transactional_id, request.producer_id, request.producer_epoch,
            request.member_id, request.group_instance_id, request.generation_id, offsets,
            abortable=ctx.api_version >= FIRST_TXN_OFFSET_COMMIT_WITH_ABORTABLE)
    if ctx.api_version < 2:
        errors = {tp: ErrorCode.COORDINATOR_NOT_AVAILABLE if e == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS else e
                  for tp, e in errors.items()}
    return {"topics": _by_topic(
        (tp, {"error_code": errors.get(tp, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)}) for tp in requested
    )}


def _fetched_topics(fetched: dict) -> list[dict]:
    return _by_topic(
        (tp, {"committed_offset": o.offset, "committed_leader_epoch": o.leader_epoch, "metadata": o.metadata,
              "error_code": o.error})
        for tp, o in fetched.items()
    )


def _partitions(topics) -> list[tuple[str, int]] | None:
    """Requested partitions; None means all the group has committed."""
    if topics is None:
        return None
    return [(t.name, p) for t in topics for p in t.partition_indexes]


@handles("OffsetFetch")
async def offset_fetch(ctx, request) -> dict:
    coordinator = ctx.broker.groups
    version = ctx.api_version
    if version >= 8:
        groups = []
        for group in request.groups:
            error, fetched = coordinator.fetch_offsets(group.group_id, _partitions(group.topics),
                                                       request.require_stable)
            groups.append({"group_id": group.group_id, "error_code": error,
                           "topics": _fetched_topics(fetched) if error == ErrorCode.NONE else []})
        return {"groups": groups}
    partitions = _partitions(request.topics)
    error, fetched = coordinator.fetch_offsets(request.group_id, partitions, request.require_stable)
    if error == ErrorCode.NONE:
        return {"error_code": error, "topics": _fetched_topics(fetched)}
    if version < 2:
        # No top-level error before v2: every partition carries it.
        return {"topics": _by_topic(
            (tp, {"committed_offset": -1, "metadata": "", "error_code": error}) for tp in partitions or ()
        )}
    return {"error_code": error, "topics": []}


@handles("OffsetDelete")
async def offset_delete(ctx, request) -> dict:
    broker = ctx.broker
    requested = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    # Kafka's metadataCache.contains: the partition, not just its topic, must exist.
    known = [tp for tp in requested if broker.metadata.has_partition(*tp)]
    error, errors = broker.groups.delete_offsets(request.group_id, known)
    if error != ErrorCode.NONE:
        return {"error_code": error, "topics": []}
    return {"error_code": ErrorCode.NONE, "topics": _by_topic(
        (tp, {"error_code": errors.get(tp, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)}) for tp in requested
    )}
