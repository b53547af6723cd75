"""The requests the controller sends to brokers in ZooKeeper mode:
LeaderAndIsr (which partitions a broker leads or follows), UpdateMetadata
(the cluster view every broker answers Metadata from) and StopReplica.

Each is fenced as Kafka fences it: an older controller's request gets
STALE_CONTROLLER_EPOCH, one meant for an earlier registration of this broker
STALE_BROKER_EPOCH. A single broker has no controller but itself, so any
such request is stale. Only the versions with topic ids are served: the
controller is always ours.
"""
from __future__ import annotations

from ..protocol.errors import ErrorCode, KafkaError
from ..replica.manager import PartitionState
from .registry import handles

UNKNOWN_BROKER_EPOCH = -1


def _fence(broker, controller_epoch: int, broker_epoch: int) -> ErrorCode | None:
    """Kafka's order: the broker epoch, then the controller epoch."""
    cluster = broker.cluster
    if cluster is None:
        return ErrorCode.STALE_CONTROLLER_EPOCH
    # A newer broker epoch than ours is possible: the controller can learn of
    # our new registration before we do (Kafka's isBrokerEpochStale).
    if broker_epoch != UNKNOWN_BROKER_EPOCH and broker_epoch < cluster.broker_epoch:
        return ErrorCode.STALE_BROKER_EPOCH
    try:
        broker.replicas.check_controller_epoch(controller_epoch)
    except KafkaError as e:
        return e.code
    return None


@handles("LeaderAndIsr", min_version=5)
async def leader_and_isr(ctx, request) -> dict:
    broker = ctx.broker
    error = _fence(broker, request.controller_epoch, request.broker_epoch)
    if error is not None:
        return {"error_code": error, "topics": []}
    changes = [
        (t.topic_name, t.topic_id, p.partition_index,
         PartitionState(p.leader, p.leader_epoch, list(p.isr), list(p.replicas), p.partition_epoch))
        for t in request.topic_states for p in t.partition_states
    ]
    errors = await broker.replicas.apply_leadership(changes, broker.cluster.topic_config)
    broker.cluster.leadership_changed(changes, errors)
    return {"error_code": ErrorCode.NONE, "topics": [
        {"topic_id": t.topic_id, "partition_errors": [
            {"partition_index": p.partition_index, "error_code": errors[(t.topic_name, p.partition_index)]}
            for p in t.partition_states]}
        for t in request.topic_states]}


@handles("UpdateMetadata", min_version=7)
async def update_metadata(ctx, request) -> dict:
    broker = ctx.broker
    error = _fence(broker, request.controller_epoch, request.broker_epoch)
    if error is not None:
        return {"error_code": error}
    broker.cluster.cache.update(request)
    return {"error_code": ErrorCode.NONE}


@handles("StopReplica", min_version=3)
async def stop_replica(ctx, request) -> dict:
    broker = ctx.broker
    error = _fence(broker, request.controller_epoch, request.broker_epoch)
    if error is not None:
        return {"error_code": error, "partition_errors": []}
    stops = [(t.topic_name, p.partition_index, p.leader_epoch, p.delete_partition)
             for t in request.topic_states for p in t.partition_states]
    errors = await broker.replicas.stop_replicas(stops)
    broker.cluster.replicas_stopped(stops, errors)
    return {"error_code": ErrorCode.NONE, "partition_errors": [
        {"topic_name": topic, "partition_index": partition, "error_code": code}
        for (topic, partition), code in errors.items()]}
