"""DescribeProducers: the producers a partition's log remembers, with their
epoch, last sequence and timestamp, coordinator epoch and the first offset
of their open transaction (Kafka's handleDescribeProducersRequest).

As in Kafka, any replica hosting the partition answers from its own log
(leader or follower). A topic with an invalid name is INVALID_TOPIC_EXCEPTION
with Kafka's message and one the cluster doesn't have
UNKNOWN_TOPIC_OR_PARTITION with Kafka's default message, for every partition
asked; a partition not hosted here is NOT_LEADER_OR_FOLLOWER (or
UNKNOWN_TOPIC_OR_PARTITION if the cluster lacks it), one in a failed log dir
KAFKA_STORAGE_ERROR."""
from __future__ import annotations

from ..cluster.metadata import validate_topic_name
from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles

_UNKNOWN_TOPIC_MESSAGE = "This server does not host this topic-partition."


def _topic_error(broker, name: str) -> tuple[ErrorCode, str | None] | None:
    try:
        validate_topic_name(name)
    except KafkaError as e:
        return e.code, e.message
    if name not in broker.metadata.topics():
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, _UNKNOWN_TOPIC_MESSAGE
    return None


def _partition(broker, topic: str, partition: int) -> dict:
    out = {"partition_index": partition, "error_code": ErrorCode.NONE, "error_message": None,
           "active_producers": []}
    log = broker.logs.get(topic, partition)
    if log is None:
        out["error_code"] = (ErrorCode.NOT_LEADER_OR_FOLLOWER if broker.metadata.has_partition(topic, partition)
                             else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    elif log.offline:
        out["error_code"] = ErrorCode.KAFKA_STORAGE_ERROR
    else:
        out["active_producers"] = [
            {"producer_id": pid, "producer_epoch": e.epoch, "last_sequence": e.last_seq,
             "last_timestamp": e.last_timestamp, "coordinator_epoch": e.coordinator_epoch,
             "current_txn_start_offset": e.current_txn_first_offset}
            for pid, e in log.producer_state.producers.items()]
    return out


@handles("DescribeProducers")
async def describe_producers(ctx, request) -> dict:
    broker = ctx.broker
    topics = []
    for t in request.topics:
        error = _topic_error(broker, t.name)
        if error is None:
            partitions = [_partition(broker, t.name, p) for p in t.partition_indexes]
        else:
            partitions = [{"partition_index": p, "error_code": error[0], "error_message": error[1],
                           "active_producers": []} for p in t.partition_indexes]
        topics.append({"name": t.name, "partitions": partitions})
    return {"topics": topics}
