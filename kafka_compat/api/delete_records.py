"""DeleteRecords: move a partition's log start offset forward (Kafka's
Partition.deleteRecordsOnLeader). Readers lose the records before it at once;
the segments wholly below it are deleted by the next retention pass, and the
new start is checkpointed like any other."""
from __future__ import annotations

from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles

HIGH_WATERMARK = -1  # "delete everything below the high watermark"


def _delete(broker, topic: str, partition: int, offset: int) -> dict:
    result = {"partition_index": partition, "low_watermark": -1, "error_code": ErrorCode.NONE}
    try:
        log = broker.replicas.leader_log(topic, partition)
        if not log.config.delete_enabled:
            raise KafkaError(ErrorCode.POLICY_VIOLATION)
        target = log.high_watermark if offset == HIGH_WATERMARK else offset
        if target < 0:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE)
        log.increment_log_start_offset(target)
    except KafkaError as e:  # the response has no room for the message
        result["error_code"] = e.code
        return result
    result["low_watermark"] = log.log_start_offset
    return result


@handles("DeleteRecords")
async def delete_records(ctx, request) -> dict:
    return {"topics": [
        {"name": t.name, "partitions": [_delete(ctx.broker, t.name, p.partition_index, p.offset) for p in t.partitions]}
        for t in request.topics
    ]}
