"""Produce: validate each partition's record batch at the batch level, in
Kafka's order of checks, and append it as bytes (offsets patched in place).

acks=0 gets no response, but any partition error closes the connection so the
producer refreshes its metadata. acks=-1 is refused (NOT_ENOUGH_REPLICAS)
while the ISR is smaller than min.insync.replicas, and answered once the high
watermark covers the append (every ISR member has it), checking the ISR's
size again then (NOT_ENOUGH_REPLICAS_AFTER_APPEND), or REQUEST_TIMED_OUT
after the request's timeout. On a single broker, and for a leader alone in
its ISR, the high watermark is the log end: no wait. While an acks=-1
request waits, its connection goes on with the producer's next requests
(AnswerLater; server/connection.py keeps the responses in order).

As in Kafka, a partition's error_message is set only for record errors
(KIP-467); every other error goes out as its code alone.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import trio

from ..cluster.metadata import is_internal
from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.records import (
    ATTRIBUTES_OFFSET,
    CURRENT_MAGIC,
    HEADER_SIZE,
    MAGIC_OFFSET,
    NO_PRODUCER_ID,
    TRANSACTIONAL_MASK,
    iter_batches,
    validate_produce_records,
)
from ..replica.acks_all import AcksAllAppend, await_replication, still_replicating
from ..txn.verification import Verification
from .leader_hints import add_leader_hints
from .produce_checks import RecordErrors, check_batches, needs_decoding
from .registry import AnswerLater, CloseConnection, handles


def _produce_responses_to_drop() -> int:
    """Test-only fault injection, read once as the broker starts: with
    KAFKA_COMPAT_TEST_FAULTS=drop_produce_responses=N the broker appends the
    first N acknowledged produce requests that wrote records, then closes the
    connection instead of answering, so that a test can make a producer retry
    a write that landed. Unset (as outside tests) it does nothing."""
    faults = os.environ.get("KAFKA_COMPAT_TEST_FAULTS")
    if not faults:
        return 0
    name, _, count = faults.partition("=")
    if name != "drop_produce_responses":
        raise ValueError(f"unknown KAFKA_COMPAT_TEST_FAULTS: {faults!r}")
    return int(count)


_drops_left = _produce_responses_to_drop()

# A batch of more records than this that must be decoded (compaction, timestamp
# bounds, recompression) is checked in a worker thread: decoding costs a few
# microseconds a record, and a small compressed batch can hold a million.
RECORDS_CHECKED_INLINE = 4096


# Errors of the log's producer-state checks: Kafka's appendToLocalLog answers
# them (as any error but a few) with the partition's log start offset.
_ERRORS_WITH_LOG_START = frozenset({ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                                    ErrorCode.INVALID_TXN_STATE})


def _partition_response(index: int, error: ErrorCode = ErrorCode.NONE) -> dict:
    return {"index": index, "error_code": error, "base_offset": -1, "log_append_time_ms": -1,
            "log_start_offset": -1, "record_errors": [], "error_message": None}


@dataclass(eq=False)
class AwaitingReplication(AcksAllAppend):
    """An acks=all append waiting for the high watermark (Kafka's DelayedProduce);
    ``out`` is its partition's response entry."""

    out: dict

    def fail(self, error: ErrorCode) -> None:
        self.out.update(_partition_response(self.out["index"], error))


async def _append(broker, topic: str, index: int, records, acks: int, api_version: int,
                  awaiting: list[AwaitingReplication], verification: Verification) -> dict:
    out = _partition_response(index)
    if not broker.metadata.has_partition(topic, index):
        out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return out
    if is_internal(topic):
        out["error_code"] = ErrorCode.INVALID_TOPIC_EXCEPTION
        return out
    try:
        log = broker.replicas.leader_log(topic, index)
    except KafkaError as e:
        out["error_code"] = e.code
        return out
    config = broker.topics.effective_config(topic)
    try:
        if records is None:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Produce request has null records")
        batches = validate_produce_records(records, api_version=api_version,
                                           max_message_bytes=config["max.message.bytes"])
        checks = (records, batches, config, f"{topic}-{index}", int(time.time() * 1000))
        if batches[0].record_count > RECORDS_CHECKED_INLINE and needs_decoding(batches[0], config):
            records, batches, log_append_time = await trio.to_thread.run_sync(check_batches, *checks)
            if broker.logs.get(topic, index) is not log:  # deleted meanwhile
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        else:
            records, batches, log_append_time = check_batches(*checks)
        state = broker.replicas.state(topic, index)
        if state is None or broker.logs.get(topic, index) is not log:  # lost leadership (or deleted) meanwhile
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        isr_size = len(state.isr)
        if acks == -1 and isr_size < config["min.insync.replicas"]:
            raise KafkaError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {isr_size} is insufficient "
                f"to satisfy the min.isr requirement of {config['min.insync.replicas']} for partition {topic}-{index}",
            )
        verification.check_append((topic, index), log)
        result = log.append(records, batches, leader_epoch=state.leader_epoch, log_append_time_ms=log_append_time)
    except RecordErrors as e:
        # With the partition's log start offset, as Kafka's ReplicaManager
        # answers a RecordValidationException (found by the differential suite).
        out.update(error_code=e.code, error_message=e.message, log_start_offset=log.log_start_offset,
                   record_errors=[{"batch_index": i, "batch_index_error_message": m} for i, m in e.records])
        return out
    except KafkaError as e:
        out["error_code"] = e.code
        if e.code in _ERRORS_WITH_LOG_START:
            out["log_start_offset"] = log.log_start_offset
        return out
    broker.waiters.appended(topic, index)
    out.update(base_offset=result.base_offset, log_append_time_ms=result.log_append_time,
               log_start_offset=result.log_start_offset)
    if acks == -1:
        # Up to the appended batch's end, at the epoch it holds (a retried
        # duplicate is answered with the original batch, maybe of an older
        # epoch, as Kafka's DelayedProduce waits for its lastOffset + 1).
        awaiting.append(AwaitingReplication(topic, index, log, log.epoch_for_offset(result.last_offset),
                                            result.last_offset + 1, config["min.insync.replicas"], out))
    return out


def _has_transactional_records(request) -> bool:
    """Kafka's RequestUtils.hasTransactionalRecords: some partition's first
    batch is transactional (two bytes read per partition)."""
    for topic in request.topic_data:
        for pd in topic.partition_data:
            records = pd.records
            if (records is not None and len(records) >= HEADER_SIZE and records[MAGIC_OFFSET] == CURRENT_MAGIC
                    and records[ATTRIBUTES_OFFSET + 1] & TRANSACTIONAL_MASK):
                return True
    return False


@handles("Produce", min_version=3)
async def produce(ctx, request) -> dict | CloseConnection | AnswerLater | None:
    broker = ctx.broker
    acks = request.acks
    if request.transactional_id is None and _has_transactional_records(request):
        # Transactional records need a transactional id the client may write
        # as: the whole request is refused (with acks=0, silently), as Kafka's
        # handleProduceRequest does before anything else.
        if acks == 0:
            return None
        return {"responses": [{"name": t.name, "partition_responses": [
            _partition_response(pd.index, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            for pd in t.partition_data]} for t in request.topic_data], "node_endpoints": []}
    responses = []
    awaiting: list[AwaitingReplication] = []
    verification = await _verify_transaction(ctx, request)
    for topic in request.topic_data:
        partitions = []
        responses.append({"name": topic.name, "partition_responses": partitions})
        for pd in topic.partition_data:
            refused = verification.refused.get((topic.name, pd.index))
            if acks not in (-1, 0, 1):
                partitions.append(_partition_response(pd.index, ErrorCode.INVALID_REQUIRED_ACKS))
            elif refused is not None:
                partitions.append(dict(_partition_response(pd.index, refused[0]), error_message=refused[1]))
            else:
                partitions.append(await _append(broker, topic.name, pd.index, pd.records, acks, ctx.api_version,
                                                awaiting, verification))
    awaiting = still_replicating(broker.replicas, awaiting)  # (a leader alone in its ISR: none)
    if awaiting:
        # The timeout runs from now, though the connection may start waiting
        # only once the responses before this one are made.
        deadline = trio.current_time() + request.timeout_ms / 1000

        async def when_replicated():
            await await_replication(broker, awaiting, deadline - trio.current_time())
            return _answer(ctx, acks, responses)

        return AnswerLater(when_replicated, lambda: not still_replicating(broker.replicas, awaiting))
    return _answer(ctx, acks, responses)


async def _verify_transaction(ctx, request) -> Verification:
    """KIP-890 part 1 (ReplicaManager.handleProduceAppend): the partitions led
    here whose records hold transactional batches are verified with the
    transaction coordinator before anything is appended; transactional
    batches of more than one producer (id and epoch) fail the whole request."""
    broker = ctx.broker
    if request.transactional_id is None or not broker.config.transaction_partition_verification_enable:
        return Verification(NO_PRODUCER_ID)  # (the hot path: nothing to parse)
    producers: set[tuple[int, int]] = set()
    logs = {}
    for topic in request.topic_data:
        for pd in topic.partition_data:
            if pd.records is None or is_internal(topic.name):
                continue
            try:
                batches = [b for b in iter_batches(pd.records) if b.has_producer_id and b.is_transactional]
                if batches:
                    logs[(topic.name, pd.index)] = broker.replicas.leader_log(topic.name, pd.index)
            except KafkaError:
                continue  # the append answers it
            producers.update((b.producer_id, b.producer_epoch) for b in batches)
    if not producers:
        return Verification(NO_PRODUCER_ID)
    if len(producers) > 1:
        verification = Verification(NO_PRODUCER_ID)
        verification.refused = {(t.name, pd.index): (ErrorCode.INVALID_PRODUCER_ID_MAPPING, None)
                                for t in request.topic_data for pd in t.partition_data}
        return verification
    (producer_id, producer_epoch), *_ = producers
    return await broker.transactions.verifier.verify(request.transactional_id, producer_id, producer_epoch, logs,
                                                     ctx.api_version)


def _answer(ctx, acks: int, responses: list[dict]) -> dict | CloseConnection | None:
    global _drops_left
    broker = ctx.broker
    if acks == 0:
        failed = [f"{t['name']}-{p['index']} -> {ErrorCode(p['error_code']).name}"
                  for t in responses for p in t["partition_responses"] if p["error_code"]]
        if not failed:
            return None
        header = ctx.header
        return CloseConnection(f"error during produce request with correlation id {header.correlation_id} "
                               f"from client id {header.client_id} with ack=0: {', '.join(failed)}")
    if _drops_left and any(p["error_code"] == ErrorCode.NONE for t in responses for p in t["partition_responses"]):
        _drops_left -= 1
        return CloseConnection("KAFKA_COMPAT_TEST_FAULTS: produce response dropped after the append")
    node_endpoints = []
    if ctx.api_version >= 10:
        entries = [(t["name"], p["index"], p) for t in responses for p in t["partition_responses"]]
        node_endpoints = add_leader_hints(broker, entries, ctx.listener, (ErrorCode.NOT_LEADER_OR_FOLLOWER,))
    return {"responses": responses, "node_endpoints": node_endpoints}
