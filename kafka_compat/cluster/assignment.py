"""Replica assignment for new topics and new partitions, as Kafka 3.9 does it
in ZooKeeper mode (AdminUtils.assignReplicasToBrokers and
AdminZkClient.createNewPartitionsAssignment).

Rack-unaware: the first replica of each partition goes round robin over the
broker list from a random start index; the other replicas follow it at an
offset (the "shift") that grows by one each time the partitions have gone once
round the brokers, so partitions led by one broker spread their followers over
the others.

Rack-aware (every broker has a rack): the same round robin over a broker list
that alternates racks, and followers skip brokers on a rack that already holds
a replica until every rack has one (and brokers that already hold one until
every broker has one).

The order of the broker list matters (it is the round robin's order). Kafka
gives AdminUtils its brokers sorted by id for CreatePartitions; for
CreateTopics it gives its metadata cache's live brokers in that cache's map
order. Pass brokers sorted by id.

All functions are pure; the random start comes from ``rng`` (Kafka's static
Random otherwise), so tests can fix it.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..protocol.errors import ErrorCode, KafkaError

_RAND = random.Random()


class BrokerMetadata(NamedTuple):
    """A broker as assignment sees it. ``cluster.metadata.BrokerInfo`` has the
    same two attributes and may be passed wherever this is."""

    node_id: int
    rack: str | None = None


def assign_replicas_to_brokers(
    brokers: Sequence[BrokerMetadata],
    num_partitions: int,
    replication_factor: int,
    fixed_start_index: int = -1,
    start_partition_id: int = -1,
    rng: random.Random | None = None,
) -> dict[int, list[int]]:
    """Kafka's AdminUtils.assignReplicasToBrokers: partition id -> broker ids,
    preferred leader first, for ``num_partitions`` partitions numbered from
    ``max(0, start_partition_id)``. A ``fixed_start_index`` >= 0 replaces both
    random draws (the start index and the first shift).

    Raises KafkaError with Kafka's codes and messages: INVALID_PARTITIONS,
    INVALID_REPLICATION_FACTOR, and UNKNOWN_SERVER_ERROR (Kafka's
    AdminOperationException) when some brokers have a rack and others don't.
    """
    if num_partitions <= 0:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise KafkaError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"Replication factor: {replication_factor} larger than available brokers: {len(brokers)}.",
        )
    rng = rng or _RAND
    if all(b.rack is None for b in brokers):
        return _assign_rack_unaware(
            num_partitions, replication_factor, [b.node_id for b in brokers], fixed_start_index, start_partition_id, rng
        )
    if any(b.rack is None for b in brokers):
        raise KafkaError(
            ErrorCode.UNKNOWN_SERVER_ERROR, "Not all brokers have rack information for replica rack aware assignment."
        )
    racks = {b.node_id: b.rack for b in brokers}
    return _assign_rack_aware(num_partitions, replication_factor, racks, fixed_start_index, start_partition_id, rng)


def _start(fixed_start_index: int, n: int, rng: random.Random) -> int:
    return fixed_start_index if fixed_start_index >= 0 else rng.randrange(n)


def _replica_index(first_replica_index: int, shift: int, replica_index: int, n: int) -> int:
    """Where a follower goes: never on the first replica's broker (the offset
    is 1..n-1)."""
    return (first_replica_index + 1 + (shift + replica_index) % (n - 1)) % n


def _assign_rack_unaware(
    num_partitions: int,
    replication_factor: int,
    broker_ids: list[int],
    fixed_start_index: int,
    start_partition_id: int,
    rng: random.Random,
) -> dict[int, list[int]]:
    n = len(broker_ids)
    start_index = _start(fixed_start_index, n, rng)
    shift = _start(fixed_start_index, n, rng)
    result = {}
    for partition in range(max(0, start_partition_id), max(0, start_partition_id) + num_partitions):
        if partition > 0 and partition % n == 0:
            shift += 1
        first = (partition + start_index) % n
        replicas = [broker_ids[first]]
        replicas += [broker_ids[_replica_index(first, shift, j, n)] for j in range(replication_factor - 1)]
        result[partition] = replicas
    return result


def _assign_rack_aware(
    num_partitions: int,
    replication_factor: int,
    racks: dict[int, str],
    fixed_start_index: int,
    start_partition_id: int,
    rng: random.Random,
) -> dict[int, list[int]]:
    num_racks = len(set(racks.values()))
    arranged = rack_alternated_broker_list(racks)
    n = len(arranged)
    start_index = _start(fixed_start_index, n, rng)
    shift = _start(fixed_start_index, n, rng)
    result = {}
    for partition in range(max(0, start_partition_id), max(0, start_partition_id) + num_partitions):
        if partition > 0 and partition % n == 0:
            shift += 1
        first = (partition + start_index) % n
        leader = arranged[first]
        replicas = [leader]
        racks_used = {racks[leader]}
        brokers_used = {leader}
        k = 0
        for _ in range(replication_factor - 1):
            while True:
                broker = arranged[_replica_index(first, shift * num_racks, k, n)]
                rack = racks[broker]
                k += 1
                # Skip a broker whose rack already has a replica while some rack
                # has none, and a broker that has one while some broker has none.
                if (rack not in racks_used or len(racks_used) == num_racks) and (
                    broker not in brokers_used or len(brokers_used) == n
                ):
                    replicas.append(broker)
                    racks_used.add(rack)
                    brokers_used.add(broker)
                    break
        result[partition] = replicas
    return result


def rack_alternated_broker_list(racks: Mapping[int, str]) -> list[int]:
    """Kafka's getRackAlternatedBrokerList: the first broker (lowest id) of each
    rack in rack name order, then the second of each, and so on; a rack that
    runs out is skipped. {0: r1, 1: r3, 2: r3, 3: r2, 4: r2, 5: r1} ->
    [0, 3, 1, 5, 4, 2]."""
    by_rack: dict[str, list[int]] = {}
    for broker, rack in racks.items():
        by_rack.setdefault(rack, []).append(broker)
    columns = [sorted(by_rack[rack]) for rack in sorted(by_rack)]
    return [col[i] for i in range(max(map(len, columns))) for col in columns if i < len(col)]


def broker_metadatas(brokers: Sequence[BrokerMetadata]) -> list[BrokerMetadata]:
    """Kafka's AdminZkClient.getBrokerMetadatas (rack-aware mode Enforced): the
    brokers sorted by id; UNKNOWN_SERVER_ERROR (an AdminOperationException)
    when some have a rack and others don't."""
    with_rack = sum(b.rack is not None for b in brokers)
    if 0 < with_rack < len(brokers):
        raise KafkaError(
            ErrorCode.UNKNOWN_SERVER_ERROR,
            "Not all brokers have rack information. Add --disable-rack-aware in command line"
            " to make replica assignment without rack information.",
        )
    return sorted(brokers, key=lambda b: b.node_id)


def new_partitions_assignment(
    brokers: Sequence[BrokerMetadata],
    existing: Sequence[Sequence[int]],
    new_total: int,
    manual: Sequence[Sequence[int]] | None = None,
) -> dict[int, list[int]]:
    """Kafka's AdminZkClient.createNewPartitionsAssignment, what CreatePartitions
    does in ZooKeeper mode: the replicas of partitions ``len(existing)`` ..
    ``new_total - 1``. ``existing[p]`` is partition p's replicas. ``manual``,
    the request's assignments for the new partitions, is validated (empty,
    duplicates, a replication factor other than partition 0's) and used as
    given; without it the new partitions get partition 0's replication factor
    and continue the round robin from where partition 0's leader sits in the
    broker list (no randomness: Kafka fixes the start index to that position,
    an index into the id-sorted list even when the round robin goes over the
    rack-alternated one).

    The checks ZkAdminManager makes first are the caller's: the topic exists
    (so ``existing`` is not empty), ``new_total`` is more than it has, the
    manual assignments name known brokers and are as many as the new
    partitions.
    """
    brokers = broker_metadatas(brokers)
    partition0 = existing[0]
    if manual is not None:
        proposed = {len(existing) + i: list(replicas) for i, replicas in enumerate(manual)}
        _validate_manual(proposed, len(partition0))
        return proposed
    start_index = next((i for i, b in enumerate(brokers) if b.node_id >= partition0[0]), 0)
    return assign_replicas_to_brokers(brokers, new_total - len(existing), len(partition0), start_index, len(existing))


def _validate_manual(proposed: dict[int, list[int]], replication_factor: int) -> None:
    """AdminZkClient.validateReplicaAssignment, less its unknown-broker check
    (ZkAdminManager's own check of the same brokers always fails first)."""
    for partition, replicas in proposed.items():
        if not replicas:
            raise KafkaError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Cannot have replication factor of 0 for partition id {partition}."
            )
        if len(set(replicas)) != len(replicas):
            raise KafkaError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "Duplicate brokers not allowed in replica assignment: "
                f"{', '.join(map(str, replicas))} for partition id {partition}.",
            )
    bad = [(p, len(r)) for p, r in proposed.items() if len(r) != replication_factor]
    if bad:
        raise KafkaError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"Inconsistent replication factor between partitions, partition 0 has {replication_factor} while "
            f"partitions [{', '.join(str(p) for p, _ in bad)}] have replication factors "
            f"[{', '.join(str(n) for _, n in bad)}], respectively.",
        )


def reassignment_error(target: list[int], adding: list[int], live: list[int]) -> tuple[ErrorCode, str] | None:
    """Kafka's controller validateReplicas for a partition reassignment's
    target replicas (``adding``: those not already replicas, which must be
    among the ``live`` brokers): the error and message, or None."""
    if not target:
        return ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Empty replica list specified in partition reassignment."
    if len(set(target)) != len(target):
        return (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"Duplicate replica ids in partition reassignment replica list: {target}")
    if any(b < 0 for b in target):
        return ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Invalid broker id in replica list: {target}"
    if not set(adding) <= set(live):
        return (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"Replica assignment has brokers that are not alive. Replica list: {adding}, "
                f"live broker list: {sorted(live)}")
    return None
