"""The transaction coordinator's APIs (KafkaApis' handlers of 3.9):
InitProducerId (idempotent and transactional producers), AddPartitionsToTxn
(v0-3 from clients, v4+ batched from brokers, with verify-only), AddOffsetsToTxn,
EndTxn, DescribeTransactions and ListTransactions. Versions that predate
PRODUCER_FENCED get INVALID_PRODUCER_EPOCH instead, as Kafka answers them.
"""
from __future__ import annotations

from ..group.internal_topics import OFFSETS_TOPIC
from ..protocol.errors import ErrorCode
from ..txn.metadata import NO_PRODUCER_EPOCH, NO_PRODUCER_ID
from .registry import handles


def _fenced_for_old(error: ErrorCode, version: int, first_with_fenced: int) -> ErrorCode:
    if version < first_with_fenced and error == ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return error


@handles("InitProducerId")
async def init_producer_id(ctx, request) -> dict:
    producer_id = getattr(request, "producer_id", NO_PRODUCER_ID)
    producer_epoch = getattr(request, "producer_epoch", NO_PRODUCER_EPOCH)
    if producer_id == NO_PRODUCER_ID and producer_epoch == NO_PRODUCER_EPOCH:
        expected = None
    elif producer_id == NO_PRODUCER_ID or producer_epoch == NO_PRODUCER_EPOCH:
        return {"error_code": ErrorCode.INVALID_REQUEST, "producer_id": NO_PRODUCER_ID,
                "producer_epoch": NO_PRODUCER_EPOCH}
    else:
        expected = (producer_id, producer_epoch)
    error, pid, epoch = await ctx.broker.transactions.init_producer_id(
        request.transactional_id, request.transaction_timeout_ms, expected)
    return {"error_code": _fenced_for_old(error, ctx.api_version, 4), "producer_id": pid, "producer_epoch": epoch}


def _partitions(topics) -> list[tuple[str, int]]:
    return [(t.name, p) for t in topics for p in t.partitions]


def _topic_results(errors: dict[tuple[str, int], ErrorCode]) -> list[dict]:
    by_topic: dict[str, list[dict]] = {}
    for (topic, partition), error in errors.items():
        by_topic.setdefault(topic, []).append({"partition_index": partition, "partition_error_code": error})
    return [{"name": name, "results_by_partition": results} for name, results in by_topic.items()]


@handles("AddPartitionsToTxn")
async def add_partitions_to_txn(ctx, request) -> dict:
    version = ctx.api_version
    if version < 4:
        transactions = [(request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
                         request.v3_and_below_producer_epoch, False, _partitions(request.v3_and_below_topics))]
    else:
        transactions = [(t.transactional_id, t.producer_id, t.producer_epoch, t.verify_only, _partitions(t.topics))
                        for t in request.transactions]
    results = []
    for transactional_id, producer_id, producer_epoch, verify_only, partitions in transactions:
        results.append((transactional_id, await _add_partitions(ctx, version, transactional_id, producer_id,
                                                                producer_epoch, verify_only, partitions)))
    if version < 4:
        return {"results_by_topic_v3_and_below": _topic_results(results[0][1])}
    return {"error_code": ErrorCode.NONE, "results_by_transaction": [
        {"transactional_id": transactional_id, "topic_results": _topic_results(errors)}
        for transactional_id, errors in results]}


async def _add_partitions(ctx, version: int, transactional_id: str, producer_id: int, producer_epoch: int,
                          verify_only: bool, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], ErrorCode]:
    metadata = ctx.broker.metadata
    missing = {tp for tp in partitions if not metadata.has_partition(*tp)}
    if missing:
        # One unknown partition fails the whole transaction's request.
        return {tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in missing else ErrorCode.OPERATION_NOT_ATTEMPTED
                for tp in partitions}
    coordinator = ctx.broker.transactions
    if verify_only:
        return coordinator.verify_partitions(transactional_id, producer_id, producer_epoch, set(partitions))
    error = await coordinator.add_partitions(transactional_id, producer_id, producer_epoch, set(partitions))
    return dict.fromkeys(partitions, _fenced_for_old(error, version, 2))


@handles("AddOffsetsToTxn")
async def add_offsets_to_txn(ctx, request) -> dict:
    broker = ctx.broker
    offsets_partition = (OFFSETS_TOPIC, broker.groups.manager.partition_for(request.group_id))
    error = await broker.transactions.add_partitions(request.transactional_id, request.producer_id,
                                                     request.producer_epoch, {offsets_partition})
    return {"error_code": _fenced_for_old(error, ctx.api_version, 2)}


@handles("EndTxn")
async def end_txn(ctx, request) -> dict:
    error = await ctx.broker.transactions.end_transaction(request.transactional_id, request.producer_id,
                                                          request.producer_epoch, request.committed)
    return {"error_code": _fenced_for_old(error, ctx.api_version, 2)}


@handles("DescribeTransactions")
async def describe_transactions(ctx, request) -> dict:
    coordinator = ctx.broker.transactions
    states = []
    for transactional_id in request.transactional_ids:
        d = coordinator.describe(transactional_id)
        states.append({
            "error_code": d.error, "transactional_id": d.transactional_id, "transaction_state": d.state,
            "transaction_timeout_ms": d.timeout_ms, "transaction_start_time_ms": d.start_ms,
            "producer_id": d.producer_id, "producer_epoch": d.producer_epoch,
            "topics": [{"topic": topic, "partitions": partitions} for topic, partitions in d.partitions.items()],
        })
    return {"transaction_states": states}


@handles("ListTransactions")
async def list_transactions(ctx, request) -> dict:
    duration = getattr(request, "duration_filter", -1)
    error, unknown, listed = ctx.broker.transactions.list_transactions(
        request.producer_id_filters, request.state_filters, duration)
    return {"error_code": error, "unknown_state_filters": unknown, "transaction_states": [
        {"transactional_id": t.transactional_id, "producer_id": t.producer_id,
         "transaction_state": t.state.kafka_name} for t in listed]}
