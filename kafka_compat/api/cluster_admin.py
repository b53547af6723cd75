"""ControlledShutdown, ElectLeaders, AlterPartition and the partition
reassignment requests: what the controller answers.

In ZooKeeper mode Kafka 3.9's KafkaApis hands them to the broker's own
KafkaController, whose event queue answers NOT_CONTROLLER unless it is the
active controller (brokers send ControlledShutdown to the controller they
know of; admin clients send ElectLeaders to the controller Metadata names, and
retry elsewhere on NOT_CONTROLLER). So these handlers call this broker's
Controller directly, when it has one, and answer NOT_CONTROLLER otherwise:
no znode in between (/admin/preferred_replica_election only served the
removed ZooKeeper-based tool).

ControlledShutdown is served from v1: v0 used a request header without a
client id, and no broker since 0.9 sends it. ElectLeaders answers once the
controller has written the new leaders and this broker's metadata has them
(the controller waits for every broker's UpdateMetadata answer, itself
included), which is what Kafka's DelayedElectLeader waits for.

A single broker is its own controller: every partition it has is led by its
only (preferred) replica, so ElectLeaders finds no election needed, and there
is no cluster to shut down from (NOT_CONTROLLER).
"""
from __future__ import annotations

from ..cluster.assignment import reassignment_error
from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles


def _active_controller(broker):
    """This broker's Controller while it is the active one; else NOT_CONTROLLER."""
    controller = None if broker.cluster is None else broker.cluster.controller
    if controller is None:
        raise KafkaError(ErrorCode.NOT_CONTROLLER)
    return controller


@handles("ControlledShutdown", min_version=1)
async def controlled_shutdown(ctx, request) -> dict:
    try:
        controller = _active_controller(ctx.broker)
        remaining = await controller.controlled_shutdown(request.broker_id, request.broker_epoch)
    except KafkaError as e:
        return {"error_code": e.code, "remaining_partitions": []}
    return {"error_code": ErrorCode.NONE, "remaining_partitions": [
        {"topic_name": topic, "partition_index": partition} for topic, partition in remaining]}


async def _elect(broker, election_type: int, partitions: list[tuple[str, int]]) -> dict:
    """Each partition's (error, message)."""
    if broker.cluster is None:
        return {tp: (ErrorCode.ELECTION_NOT_NEEDED, None) if broker.metadata.has_partition(*tp)
                else (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.") for tp in partitions}
    try:
        controller = _active_controller(broker)
        return await controller.elect_leaders(election_type, partitions)
    except KafkaError as e:
        return {tp: (e.code, None) for tp in partitions}


@handles("ElectLeaders")
async def elect_leaders(ctx, request) -> dict:
    broker = ctx.broker
    if request.topic_partitions is None:  # every partition this broker's metadata knows
        partitions = [(name, p) for name, meta in broker.metadata.topics().items() for p in range(meta.partitions)]
    else:  # a set in Kafka: each partition once
        partitions = list(dict.fromkeys((t.topic, p) for t in request.topic_partitions for p in t.partitions))
    results = await _elect(broker, request.election_type, partitions)
    if request.topic_partitions is None:
        # Across all partitions only those with an election or an error are listed.
        results = {tp: r for tp, r in results.items() if r[0] != ErrorCode.ELECTION_NOT_NEEDED}
    by_topic: dict[str, list] = {}
    for (topic, partition), (error, message) in results.items():
        by_topic.setdefault(topic, []).append(
            {"partition_id": partition, "error_code": error, "error_message": message})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "replica_election_results": [
        {"topic": topic, "partition_result": results} for topic, results in by_topic.items()]}


@handles("AlterPartition")
async def alter_partition(ctx, request) -> dict:
    """A leader's ISR change (Kafka's KafkaApis.handleAlterPartitionRequest in
    ZooKeeper mode: the controller's, NOT_CONTROLLER elsewhere). Topics come
    by name before v2, by id from v2; an unknown id is UNKNOWN_TOPIC_ID."""
    try:
        controller = _active_controller(ctx.broker)
    except KafkaError as e:
        return {"throttle_time_ms": 0, "error_code": e.code, "topics": []}
    by_id = ctx.api_version >= 2
    changes, unknown_ids = [], []
    for t in request.topics:
        name = controller.topic_name(t.topic_id) if by_id else t.topic_name
        if name is None:
            unknown_ids.append(t)
            continue
        for p in t.partitions:
            isr = [b.broker_id for b in p.new_isr_with_epochs] if ctx.api_version >= 3 else list(p.new_isr)
            changes.append((name, p.partition_index, p.leader_epoch, isr, p.partition_epoch))
    try:
        results = await controller.alter_partition(request.broker_id, request.broker_epoch, changes)
    except KafkaError as e:
        return {"throttle_time_ms": 0, "error_code": e.code, "topics": []}
    by_topic: dict[str, list] = {}
    for (topic, partition), (error, state) in results.items():
        entry = {"partition_index": partition, "error_code": error, "leader_id": -1, "leader_epoch": -1, "isr": [],
                 "leader_recovery_state": 0, "partition_epoch": -1}
        if state is not None:
            entry.update(leader_id=state.leader, leader_epoch=state.leader_epoch, isr=state.isr,
                         partition_epoch=state.zk_version)
        by_topic.setdefault(topic, []).append(entry)
    topics = [{"topic_name": topic, "topic_id": controller.topic_ids.get(topic, bytes(16)), "partitions": partitions}
              for topic, partitions in by_topic.items()]
    topics += [{"topic_name": "", "topic_id": t.topic_id, "partitions": [
        {"partition_index": p.partition_index, "error_code": ErrorCode.UNKNOWN_TOPIC_ID, "leader_id": -1,
         "leader_epoch": -1, "isr": [], "leader_recovery_state": 0, "partition_epoch": -1} for p in t.partitions]}
        for t in unknown_ids]
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "topics": topics}


def _single_broker_reassignment(broker, tp, target: list[int] | None) -> tuple[ErrorCode, str | None]:
    """A single broker is its partitions' only possible replica: moving one
    to itself is done at once, anything else names brokers that don't exist."""
    if target is None:
        return ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None
    me = broker.config.broker_id
    error = reassignment_error(target, [b for b in target if b != me], [me])
    if error is not None:
        return error
    if not broker.metadata.has_partition(*tp):
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."
    return ErrorCode.NONE, None


@handles("AlterPartitionReassignments")
async def alter_partition_reassignments(ctx, request) -> dict:
    """KIP-455, answered by the controller (NOT_CONTROLLER elsewhere, as
    Kafka's ZooKeeper-mode brokers answer): each partition's error once its
    reassignment has started (not finished: ListPartitionReassignments
    follows it)."""
    broker = ctx.broker
    changes = {(t.name, p.partition_index): None if p.replicas is None else list(p.replicas)
               for t in request.topics for p in t.partitions}
    if broker.cluster is None:
        results = {tp: _single_broker_reassignment(broker, tp, target) for tp, target in changes.items()}
    else:
        try:
            controller = _active_controller(broker)
            results = await controller.alter_reassignments(changes)
        except KafkaError as e:
            return {"throttle_time_ms": 0, "error_code": e.code, "error_message": e.message, "responses": []}
    by_topic: dict[str, list] = {}
    for (topic, partition), (error, message) in results.items():
        by_topic.setdefault(topic, []).append(
            {"partition_index": partition, "error_code": error, "error_message": message})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None, "responses": [
        {"name": topic, "partitions": partitions} for topic, partitions in by_topic.items()]}


@handles("ListPartitionReassignments")
async def list_partition_reassignments(ctx, request) -> dict:
    broker = ctx.broker
    partitions = None if request.topics is None else [
        (t.name, p) for t in request.topics for p in t.partition_indexes]
    listed = {}
    if broker.cluster is not None:
        try:
            controller = _active_controller(broker)
            listed = await controller.list_reassignments(partitions)
        except KafkaError as e:
            return {"throttle_time_ms": 0, "error_code": e.code, "error_message": e.message, "topics": []}
    by_topic: dict[str, list] = {}
    for (topic, partition), (replicas, adding, removing) in sorted(listed.items()):
        by_topic.setdefault(topic, []).append({"partition_index": partition, "replicas": replicas,
                                               "adding_replicas": adding, "removing_replicas": removing})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None, "topics": [
        {"name": topic, "partitions": partitions} for topic, partitions in by_topic.items()]}
