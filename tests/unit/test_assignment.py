"""Replica assignment: the expected assignments and distribution properties
Kafka's own tests check (AdminRackAwareTest, AddPartitionsTest)."""
from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from kafka_compat.cluster.assignment import (
    BrokerMetadata,
    assign_replicas_to_brokers,
    new_partitions_assignment,
    rack_alternated_broker_list,
)
from kafka_compat.protocol.errors import ErrorCode, KafkaError

SIX_RACKED = {0: "rack1", 1: "rack2", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack1"}


def racked(racks: dict[int, str]) -> list[BrokerMetadata]:
    return [BrokerMetadata(b, rack) for b, rack in sorted(racks.items())]


def plain(*ids: int) -> list[BrokerMetadata]:
    return [BrokerMetadata(b) for b in ids]


def check_distribution(assignment, racks, partitions, rf, rack_aware=True, leaders=True, replicas=True):
    """Kafka's RackAwareTest.checkReplicaDistribution."""
    assert sorted(assignment) == list(assignment)
    for brokers in assignment.values():
        assert len(set(brokers)) == len(brokers) == rf
    if rack_aware:
        assert all(len({racks[b] for b in r}) == rf for r in assignment.values())
    if leaders:
        counts = Counter(r[0] for r in assignment.values())
        assert {b: counts[b] for b in racks} == {b: partitions // len(racks) for b in racks}
    if replicas:
        counts = Counter(b for r in assignment.values() for b in r)
        assert {b: counts[b] for b in racks} == {b: partitions * rf // len(racks) for b in racks}


def test_rack_unaware_five_brokers_ten_partitions():
    expected = {
        0: [0, 1, 2],
        1: [1, 2, 3],
        2: [2, 3, 4],
        3: [3, 4, 0],
        4: [4, 0, 1],
        5: [0, 2, 3],
        6: [1, 3, 4],
        7: [2, 4, 0],
        8: [3, 0, 1],
        9: [4, 1, 2],
    }
    assert assign_replicas_to_brokers(plain(0, 1, 2, 3, 4), 10, 3, 0, -1) == expected


def test_rack_unaware_random_start_is_a_rotation_and_shift():
    """A random start index s and first shift t: partition p's leader is the
    broker at (p + s) mod n, its first follower 1 + (t + p // n) mod (n - 1)
    places after it (the shift grows each time round the brokers)."""
    brokers = plain(10, 20, 30, 40)
    for seed in range(20):
        rng = random.Random(seed)
        assignment = assign_replicas_to_brokers(brokers, 12, 2, rng=rng)
        s = [b.node_id for b in brokers].index(assignment[0][0])
        t = ([b.node_id for b in brokers].index(assignment[0][1]) - s - 1) % 4
        for p, replicas in assignment.items():
            leader = (p + s) % 4
            assert replicas == [brokers[leader].node_id, brokers[(leader + 1 + (t + p // 4) % 3) % 4].node_id]


def test_random_start_comes_from_rng():
    brokers = plain(0, 1, 2, 3, 4)
    a = assign_replicas_to_brokers(brokers, 10, 3, rng=random.Random(7))
    assert a == assign_replicas_to_brokers(brokers, 10, 3, rng=random.Random(7))
    leaders = {assign_replicas_to_brokers(brokers, 1, 1, rng=random.Random(seed))[0][0] for seed in range(50)}
    assert leaders == {0, 1, 2, 3, 4}


def test_start_partition_id():
    """Partitions are numbered from it and their leaders continue the round
    robin, but the shift starts afresh (grows only on crossing a multiple of
    the broker count), as in Kafka: partition 6 here differs from partition 6
    of the ten above."""
    assert assign_replicas_to_brokers(plain(0, 1, 2, 3, 4), 6, 3, 0, 6) == {
        6: [1, 2, 3],
        7: [2, 3, 4],
        8: [3, 4, 0],
        9: [4, 0, 1],
        10: [0, 2, 3],
        11: [1, 3, 4],
    }


def test_rack_alternated_broker_list():
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert rack_alternated_broker_list(racks) == [0, 3, 1, 5, 4, 2]
    del racks[5]
    assert rack_alternated_broker_list(racks) == [0, 3, 1, 4, 2]
    assert rack_alternated_broker_list({0: "a", 1: "a", 2: "a", 3: "b", 4: "b", 5: "b", 6: "c", 7: "c", 8: "c"}) == [
        0, 3, 6, 1, 4, 7, 2, 5, 8,
    ]


def test_rack_aware_fixed_start():
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert assign_replicas_to_brokers(racked(racks), 7, 3, 0, 0) == {
        0: [0, 3, 1],
        1: [3, 1, 5],
        2: [1, 5, 4],
        3: [5, 4, 2],
        4: [4, 2, 0],
        5: [2, 0, 3],
        6: [0, 4, 2],
    }


@pytest.mark.parametrize("seed", range(10))
def test_rack_aware_distribution(seed):
    rng = random.Random(seed)
    check_distribution(assign_replicas_to_brokers(racked(SIX_RACKED), 6, 3, 2, 0), SIX_RACKED, 6, 3)
    check_distribution(assign_replicas_to_brokers(racked(SIX_RACKED), 6, 3, rng=rng), SIX_RACKED, 6, 3)
    check_distribution(assign_replicas_to_brokers(racked(SIX_RACKED), 12, 2, rng=rng), SIX_RACKED, 12, 2)
    check_distribution(assign_replicas_to_brokers(racked(SIX_RACKED), 6, 2, rng=rng), SIX_RACKED, 6, 2)
    three = {0: "rack1", 1: "rack2", 4: "rack3"}
    check_distribution(assign_replicas_to_brokers(racked(three), 3, 2, rng=rng), three, 3, 2)
    twelve = {0: "rack1", 1: "rack2", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack1",
              6: "rack1", 7: "rack2", 8: "rack2", 9: "rack3", 10: "rack1", 11: "rack3"}  # fmt: skip
    check_distribution(assign_replicas_to_brokers(racked(twelve), 96, 3, rng=rng), twelve, 96, 3)


@pytest.mark.parametrize("seed", range(10))
def test_rack_aware_uneven(seed):
    rng = random.Random(seed)
    a = assign_replicas_to_brokers(racked(SIX_RACKED), 13, 3, 0, 0)
    check_distribution(a, SIX_RACKED, 13, 3, leaders=False, replicas=False)
    uneven = {0: "rack1", 1: "rack1", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack1"}
    a = assign_replicas_to_brokers(racked(uneven), 12, 3, rng=rng)
    check_distribution(a, uneven, 12, 3, replicas=False)


@pytest.mark.parametrize("seed", range(10))
def test_rack_aware_expansion_numbers_from_start_partition(seed):
    racks = {6: "rack1", 7: "rack2", 8: "rack2", 9: "rack3", 10: "rack3", 11: "rack1"}
    a = assign_replicas_to_brokers(racked(racks), 12, 2, -1, 12, rng=random.Random(seed))
    assert list(a) == list(range(12, 24))
    check_distribution(a, racks, 12, 2)


@pytest.mark.parametrize("seed", range(10))
def test_more_or_fewer_replicas_than_racks(seed):
    rng = random.Random(seed)
    racks = {0: "rack1", 1: "rack2", 2: "rack2", 3: "rack3", 4: "rack3", 5: "rack2"}
    for replicas in assign_replicas_to_brokers(racked(racks), 6, 5, rng=rng).values():
        assert len(replicas) == 5 and {racks[b] for b in replicas} == {"rack1", "rack2", "rack3"}
    for replicas in assign_replicas_to_brokers(racked(racks), 6, 2, rng=rng).values():
        assert len({racks[b] for b in replicas}) == 2
    one_rack = {b: "rack1" for b in range(6)}
    a = assign_replicas_to_brokers(racked(one_rack), 6, 3, rng=rng)
    assert all(len(r) == 3 for r in a.values())
    assert Counter(r[0] for r in a.values()) == Counter(range(6))


def test_rack_aware_skips_brokers_that_already_have_a_replica():
    racks = {0: "a", 1: "b", 2: "c", 3: "a", 4: "a"}
    a = assign_replicas_to_brokers(racked(racks), 6, 4, 2, -1)
    assert len(a) == 6
    check_distribution(a, racks, 6, 4, rack_aware=False, leaders=False, replicas=False)


def test_any_broker_record_with_node_id_and_rack_is_accepted():
    brokers = [SimpleNamespace(node_id=b, rack=rack, endpoints={}) for b, rack in sorted(SIX_RACKED.items())]
    assert assign_replicas_to_brokers(brokers, 6, 3, 2, 0) == assign_replicas_to_brokers(racked(SIX_RACKED), 6, 3, 2, 0)


@pytest.mark.parametrize(
    "partitions, rf, code, message",
    [
        (0, 1, ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0."),
        (10, 0, ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."),
        (10, 6, ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor: 6 larger than available brokers: 5."),
    ],
)
def test_invalid_parameters(partitions, rf, code, message):
    with pytest.raises(KafkaError) as e:
        assign_replicas_to_brokers(plain(0, 1, 2, 3, 4), partitions, rf)
    assert (e.value.code, e.value.message) == (code, message)


def test_some_brokers_without_rack():
    brokers = [*racked({0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2"}), BrokerMetadata(4)]
    with pytest.raises(KafkaError) as e:
        assign_replicas_to_brokers(brokers, 10, 5)
    assert e.value.code == ErrorCode.UNKNOWN_SERVER_ERROR
    assert e.value.message == "Not all brokers have rack information for replica rack aware assignment."
    with pytest.raises(KafkaError) as e:
        new_partitions_assignment(brokers, [[0, 1]], 3)
    assert e.value.code == ErrorCode.UNKNOWN_SERVER_ERROR
    assert e.value.message.startswith("Not all brokers have rack information. Add --disable-rack-aware")


def test_new_partitions_continue_from_partition_zero_leader():
    """AddPartitionsTest on 4 brokers: [2, 3, 0, 1] grown to 7 partitions, and
    [1, 2] grown to 3."""
    brokers = plain(3, 1, 0, 2)  # sorted by id whatever the order given
    grown = new_partitions_assignment(brokers, [[2, 3, 0, 1]], 7)
    assert list(grown) == [1, 2, 3, 4, 5, 6]
    assert [r[0] for r in grown.values()] == [3, 0, 1, 2, 3, 0]
    assert all(sorted(r) == [0, 1, 2, 3] for r in grown.values())
    assert new_partitions_assignment(brokers, [[1, 2]], 3) == {1: [2, 0], 2: [3, 1]}


def test_new_partitions_start_at_next_broker_when_leader_is_gone():
    """Partition 0's leader (broker 2) is not live: the round robin starts at
    the first broker with a higher id."""
    assert new_partitions_assignment(plain(0, 1, 3), [[2, 0]], 3) == {1: [0, 1], 2: [1, 3]}


def test_new_partitions_replication_factor_above_live_brokers():
    with pytest.raises(KafkaError) as e:
        new_partitions_assignment(plain(0, 1), [[0, 1, 2]], 2)
    assert (e.value.code, e.value.message) == (
        ErrorCode.INVALID_REPLICATION_FACTOR,
        "Replication factor: 3 larger than available brokers: 2.",
    )


def test_new_partitions_manual():
    brokers = plain(0, 1, 2, 3)
    assert new_partitions_assignment(brokers, [[1, 2]], 3, [[0, 1], [2, 3]]) == {1: [0, 1], 2: [2, 3]}
    cases = [
        ([[0, 1], []], "Cannot have replication factor of 0 for partition id 2."),
        ([[0, 0]], "Duplicate brokers not allowed in replica assignment: 0, 0 for partition id 1."),
        (
            [[0, 1, 2], [3], [1, 2]],
            "Inconsistent replication factor between partitions, partition 0 has 2 while partitions [1, 2] "
            "have replication factors [3, 1], respectively.",
        ),
    ]
    for manual, message in cases:
        with pytest.raises(KafkaError) as e:
            new_partitions_assignment(brokers, [[1, 2]], 1 + len(manual), manual)
        assert (e.value.code, e.value.message) == (ErrorCode.INVALID_REPLICA_ASSIGNMENT, message)
