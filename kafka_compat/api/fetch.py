"""Fetch: long poll (max_wait_ms/min_bytes, woken by appends), response and
partition byte limits with at least one whole batch (KIP-74), fetch sessions
(KIP-227), records sent from the segment files as file regions.

A fetch with a replica id is a follower's (Kafka's Partition.fetchRecords
for a follower): it reads up to the log end rather than the high watermark,
must come from one of the partition's replicas, is told where its log
diverges from ours (diverging_epoch, KIP-320) and, when it is not, has its
fetch offset recorded as its log end offset (which moves the ISR and the
high watermark: see replica/manager.py). Consumers read up to the high
watermark and are woken when it moves; READ_COMMITTED ones up to the last
stable offset, with the aborted transactions in what they read (Kafka's
rules: PartitionLog.read). Every answer carries the last stable offset."""
from __future__ import annotations

import trio

from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.primitives import DeferredRecords, FileRegion
from .fetch_sessions import SessionPartition, replica_id
from .leader_hints import add_leader_hints
from .registry import handles

READ_COMMITTED = 1


def _partition_error(broker, sp: SessionPartition, by_id: bool):
    """(error, partition log) for one wanted partition; fills in its topic name."""
    if by_id:
        meta = broker.metadata.topic_by_id(sp.topic_id)
        if meta is None:
            return ErrorCode.UNKNOWN_TOPIC_ID, None
        sp.topic = meta.name
    try:
        return ErrorCode.NONE, broker.replicas.leader_log(sp.topic, sp.partition, sp.current_leader_epoch)
    except KafkaError as e:
        return e.code, None


def _read_for_follower(broker, sp: SessionPartition, replica: int, log, max_bytes: int, min_one_batch: bool,
                       update_state: bool):
    """(read result, None), or (None, the diverging epoch's EpochEndOffset)
    when the follower's last fetched epoch ends below its fetch offset here
    (or is newer than any we have). The follower's fetch offset is recorded
    (``update_state``) on the fetch's first read only, not when it is read
    again after waiting, as Kafka's readFromLog (updateFetchState =
    !readFromPurgatory): the follower told nothing new. Raises KafkaError."""
    state = broker.replicas.follower_state(sp.topic, sp.partition, replica, sp.current_leader_epoch)
    if sp.last_fetched_epoch >= 0:
        found = log.end_offset_for_epoch(sp.last_fetched_epoch)
        if found is None:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
        if found.epoch < sp.last_fetched_epoch or found.end_offset < sp.fetch_offset:
            return None, found
    result = log.read(sp.fetch_offset, max_bytes, min_one_batch=min_one_batch)
    if update_state:
        broker.replicas.follower_fetched(sp.topic, sp.partition, state, replica, sp.fetch_offset, log)
    return result, None


def _read(broker, wanted: list[SessionPartition], request, max_bytes: int, by_id: bool,
          replica: int, first_read: bool) -> tuple[list[tuple], int, bool]:
    """Read every wanted partition, ``max_bytes`` in all: [(session partition,
    response entry)], the record bytes gathered, and whether to answer at
    once (a partition had an error or a diverging epoch)."""
    results = []
    total = 0
    answer_now = False
    committed = request.isolation_level == READ_COMMITTED
    for sp in wanted:
        error, log = _partition_error(broker, sp, by_id)
        # An errored partition has unknown offsets and empty (never null)
        # records, as Kafka's ReplicaManager answers: librdkafka rejects a null
        # record set as a malformed response. Its aborted transactions are null
        # when the read failed, but an empty list when the partition is unknown
        # to the metadata (Kafka's FetchResponse.partitionResponse, answered
        # before any read; found by the differential suite).
        unknown = error in (ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) and (
            by_id and error == ErrorCode.UNKNOWN_TOPIC_ID or not broker.metadata.has_partition(sp.topic, sp.partition))
        out = {"partition_index": sp.partition, "error_code": error, "high_watermark": -1,
               "last_stable_offset": -1, "log_start_offset": -1, "records": b"",
               "aborted_transactions": [] if unknown else None}
        if error == ErrorCode.NONE:
            limit = max(min(sp.partition_max_bytes, max_bytes - total), 0)
            diverging = None
            try:
                if replica < 0:
                    result = log.read(sp.fetch_offset, limit, min_one_batch=(total == 0),
                                      max_offset=log.last_stable_offset if committed else log.high_watermark,
                                      aborted=committed)
                else:
                    result, diverging = _read_for_follower(broker, sp, replica, log, limit, total == 0, first_read)
            except KafkaError as e:
                out["error_code"] = e.code
            else:
                aborted = result and result.aborted_transactions
                out.update(high_watermark=log.high_watermark, last_stable_offset=log.last_stable_offset,
                           log_start_offset=log.log_start_offset,
                           aborted_transactions=None if aborted is None else [
                               {"producer_id": t.producer_id, "first_offset": t.first_offset} for t in aborted])
                if diverging is not None:
                    out["diverging_epoch"] = {"epoch": diverging.epoch, "end_offset": diverging.end_offset}
                    answer_now = True
                elif result.size:
                    out["records"] = DeferredRecords([FileRegion(*r) for r in result.regions], result.size)
                    total += result.size
        answer_now = answer_now or out["error_code"] != ErrorCode.NONE
        results.append((sp, out))
    return results, total, answer_now


def _response_topics(results: list[tuple], incremental: bool) -> list[dict]:
    """Group partition entries by topic; an incremental response carries only
    partitions with records, an error, or offsets the client hasn't seen."""
    topics: dict = {}
    for sp, out in results:
        hw, lso, lss = out["high_watermark"], out["last_stable_offset"], out["log_start_offset"]
        news = out["records"] or out["error_code"] or sp.changed(hw, lso, lss) or "diverging_epoch" in out
        sp.high_watermark, sp.last_stable_offset, sp.log_start_offset = hw, lso, lss
        if incremental and not news:
            continue
        key = (sp.topic, sp.topic_id)
        entry = topics.get(key)
        if entry is None:
            # An empty name asked for (before v13) is a session's None: answer "" (never null).
            entry = topics[key] = {"topic": sp.topic or "", "topic_id": sp.topic_id, "partitions": []}
        entry["partitions"].append(out)
    return list(topics.values())


@handles("Fetch", min_version=4)
async def fetch(ctx, request) -> dict:
    broker = ctx.broker
    by_id = ctx.api_version >= 13
    try:
        session, wanted, incremental = broker.fetch_sessions.resolve(request, by_id)
    except KafkaError as e:
        return {"error_code": e.code, "session_id": 0, "responses": []}
    # The broker's fetch.max.bytes caps what a request may ask for, as in Kafka.
    max_bytes = min(request.max_bytes, broker.config.fetch_max_bytes)
    min_bytes = min(request.min_bytes, max_bytes)
    deadline = trio.current_time() + request.max_wait_ms / 1000
    replica = replica_id(request)
    first_read = True
    while True:
        results, total, answer_now = _read(broker, wanted, request, max_bytes, by_id, replica, first_read)
        first_read = False
        remaining = deadline - trio.current_time()
        if total >= min_bytes or answer_now or remaining <= 0 or broker.shutting_down.is_set():
            break
        watched = [(sp.topic, sp.partition) for sp in wanted]
        await broker.waiters.wait_any(watched, remaining, high_watermark=replica < 0)
    node_endpoints = []
    if ctx.api_version >= 16:
        node_endpoints = add_leader_hints(broker, [(sp.topic, sp.partition, out) for sp, out in results], ctx.listener,
                                          (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH))
    return {
        "error_code": ErrorCode.NONE,
        "session_id": session.session_id if session else 0,
        "responses": _response_topics(results, incremental),
        "node_endpoints": node_endpoints,
    }
