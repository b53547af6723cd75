"""Produce: validate each partition's record batch at the batch level, in
Kafka's order of checks, and append it as bytes (offsets patched in place).

acks=0 gets no response, but any partition error closes the connection so the
producer refreshes its metadata; acks=-1 on a single broker is acks=1 plus the
min.insync.replicas check.

As in Kafka, a partition's error_message is set only for record errors
(KIP-467); every other error goes out as its code alone.
"""
from __future__ import annotations

import time

from ..cluster.metadata import is_internal
from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.records import validate_produce_records
from .produce_checks import RecordErrors, check_batches
from .registry import handles


def _partition_response(index: int, error: ErrorCode = ErrorCode.NONE) -> dict:
    return {"index": index, "error_code": error, "base_offset": -1, "log_append_time_ms": -1,
            "log_start_offset": -1, "record_errors": [], "error_message": None}


def _append(broker, topic: str, index: int, records, acks: int, api_version: int) -> dict:
    out = _partition_response(index)
    meta = broker.topics.get(topic)
    log = None if meta is None else broker.topics.partition_log(topic, index)
    if log is None:
        out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return out
    if is_internal(topic):
        out["error_code"] = ErrorCode.INVALID_TOPIC_EXCEPTION
        return out
    config = broker.topics.effective_config(topic)
    try:
        if records is None:
            raise KafkaError(ErrorCode.INVALID_RECORD, "Produce request has null records")
        batches = validate_produce_records(records, api_version=api_version,
                                           max_message_bytes=config["max.message.bytes"])
        records, batches, log_append_time = check_batches(records, batches, config, f"{topic}-{index}",
                                                          int(time.time() * 1000))
        isr_size = len(broker.metadata.isr(topic, index))
        if acks == -1 and isr_size < config["min.insync.replicas"]:
            raise KafkaError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {isr_size} is insufficient "
                f"to satisfy the min.isr requirement of {config['min.insync.replicas']} for partition {topic}-{index}",
            )
        result = log.append(records, batches, leader_epoch=broker.metadata.leader_epoch(topic, index),
                            log_append_time_ms=log_append_time)
    except RecordErrors as e:
        out.update(error_code=e.code, error_message=e.message, record_errors=[
            {"batch_index": i, "batch_index_error_message": m} for i, m in e.records])
        return out
    except KafkaError as e:
        out["error_code"] = e.code
        return out
    broker.waiters.notify(topic, index)
    out.update(base_offset=result.base_offset, log_append_time_ms=result.log_append_time,
               log_start_offset=result.log_start_offset)
    return out


@handles("Produce", min_version=3)
async def produce(ctx, request) -> dict | None:
    broker = ctx.broker
    acks = request.acks
    responses = []
    for topic in request.topic_data:
        partitions = []
        responses.append({"name": topic.name, "partition_responses": partitions})
        for pd in topic.partition_data:
            if acks not in (-1, 0, 1):
                partitions.append(_partition_response(pd.index, ErrorCode.INVALID_REQUIRED_ACKS))
            else:
                partitions.append(_append(broker, topic.name, pd.index, pd.records, acks, ctx.api_version))
    if acks == 0:
        return None
    return {"responses": responses}
