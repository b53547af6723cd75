"""Client-side assignors through the broker: cooperative-sticky rebalancing
incrementally (confluent-kafka, franz-go, sarama), and groups mixing two
clients' members (kafka-python, confluent-kafka, franz-go, sarama) on the
range assignor."""
from __future__ import annotations

import pytest

from interop.group_checks import assert_consumed_exactly_once
from interop.group_member import BROKER_OVERRIDES, ConsumerGroup, GroupMember
from interop.group_producer import TrickleProducer

PARTITIONS = 6


@pytest.fixture(scope="module")
def broker_overrides():
    return BROKER_OVERRIDES


def callbacks_since(member: GroupMember, mark: int) -> list[dict]:
    return [e for e in member.events[mark:] if e["event"] in ("assigned", "revoked", "lost")]


def assert_incremental_handover(member: GroupMember, mark: int, before: set[int]) -> None:
    """Since event `mark` the member only gave up partitions (cooperative and
    sticky): every callback was incremental, the revoked ones are exactly
    those it no longer owns, and none came back or was lost."""
    callbacks = callbacks_since(member, mark)
    assert callbacks, f"{member} saw no rebalance callback"
    assert all(e["event"] != "lost" and e["incremental"] for e in callbacks), callbacks
    revoked = {p for e in callbacks if e["event"] == "revoked" for p in e["partitions"]}
    assigned = {p for e in callbacks if e["event"] == "assigned" for p in e["partitions"]}
    assert member.partitions <= before, f"{member} gained partitions: {callbacks}"
    assert revoked == before - member.partitions, f"{member} revoked {revoked}: {callbacks}"
    assert not assigned, f"{member} was (re)assigned {assigned} while handing over: {callbacks}"


@pytest.mark.parametrize("client", ["confluent-kafka", "franz-go", "sarama"])
def test_cooperative_sticky_rebalances_incrementally(broker, new_topic, tmp_path, client):
    topic = new_topic(partitions=PARTITIONS)
    with ConsumerGroup(broker.bootstrap, topic, PARTITIONS, tmp_path,
                       assignor="cooperative-sticky") as group, \
            TrickleProducer(broker.bootstrap, topic, PARTITIONS) as producer:
        first = group.join(client)
        group.wait_balanced([first])
        group.wait_consuming([first])
        # Everything, in assignments only (sarama reports each claim on its own).
        callbacks = callbacks_since(first, 0)
        assert {e["event"] for e in callbacks} == {"assigned"}, callbacks
        assert sorted(p for e in callbacks for p in e["partitions"]) == list(range(PARTITIONS))

        owned, mark = set(first.partitions), len(first.events)
        second = group.join(client)
        group.wait_balanced([first, second])
        group.wait_consuming([first, second])
        assert_incremental_handover(first, mark, owned)
        assert len(first.partitions) == len(second.partitions) == 3

        owned = {m.name: set(m.partitions) for m in (first, second)}
        marks = {m.name: len(m.events) for m in (first, second)}
        third = group.join(client)
        group.wait_balanced([first, second, third])
        group.wait_consuming([first, second, third])
        for member in (first, second):
            assert_incremental_handover(member, marks[member.name], owned[member.name])
        assert {len(m.partitions) for m in (first, second, third)} == {2}

        # The one leaving gives its partitions up; the others only gain some.
        owned = {m.name: set(m.partitions) for m in (first, second)}
        marks = {m.name: len(m.events) for m in (first, second)}
        third.stop()
        group.wait_balanced([first, second])
        group.wait_consuming([first, second])
        for member in (first, second):
            callbacks = callbacks_since(member, marks[member.name])
            assert all(e["event"] == "assigned" and e["incremental"] for e in callbacks), callbacks
            assert member.partitions >= owned[member.name], callbacks

        produced = producer.stop()
        group.wait_consumed(produced)
    assert_consumed_exactly_once(group.members, produced)


@pytest.mark.parametrize("one, other", [("kafka-python", "confluent-kafka"), ("franz-go", "sarama"),
                                        ("sarama", "kafka-python")])
def test_mixed_group_with_the_range_assignor(broker, new_topic, tmp_path, one, other):
    """Range gives each member a contiguous block of partitions: the broker
    chose the protocol both clients offered and passed the leader's
    assignment to the member of the other client."""
    topic = new_topic(partitions=PARTITIONS)
    with ConsumerGroup(broker.bootstrap, topic, PARTITIONS, tmp_path, assignor="range") as group, \
            TrickleProducer(broker.bootstrap, topic, PARTITIONS) as producer:
        one_member = group.join(one)
        other_member = group.join(other)
        group.wait_balanced([one_member, other_member])
        group.wait_consuming([one_member, other_member])
        blocks = sorted(sorted(m.partitions) for m in (one_member, other_member))
        assert blocks == [[0, 1, 2], [3, 4, 5]], group.describe()

        other_member.stop()
        group.wait_balanced([one_member])
        group.wait_consuming([one_member])
        other_again = group.join(other)
        group.wait_balanced([one_member, other_again])
        group.wait_consuming([one_member, other_again])

        produced = producer.stop()
        group.wait_consumed(produced)
    assert_consumed_exactly_once(group.members, produced)
