"""Consumer groups of two and three members of one real client over a
6-partition topic: every partition owned once, nothing consumed twice across
clean rebalances, and a killed member's partitions taken over by the rest."""
from __future__ import annotations

import pytest

from interop.group_checks import assert_consumed_exactly_once, assert_redelivered_only_after_commit
from interop.group_member import BROKER_OVERRIDES, CLIENTS, ConsumerGroup
from interop.group_producer import TrickleProducer

PARTITIONS = 6


@pytest.fixture(scope="module")
def broker_overrides():
    return BROKER_OVERRIDES


@pytest.mark.parametrize("client", CLIENTS)
def test_members_join_and_leave_without_double_consumption(broker, new_topic, tmp_path, client):
    topic = new_topic(partitions=PARTITIONS)
    with ConsumerGroup(broker.bootstrap, topic, PARTITIONS, tmp_path) as group, \
            TrickleProducer(broker.bootstrap, topic, PARTITIONS) as producer:
        first, second = group.join(client), group.join(client)
        group.wait_balanced([first, second])
        group.wait_consuming([first, second])

        third = group.join(client)
        group.wait_balanced([first, second, third])
        group.wait_consuming([first, second, third])

        third.stop()  # leaves the group
        group.wait_balanced([first, second])
        group.wait_consuming([first, second])

        produced = producer.stop()
        group.wait_consumed(produced)
    assert_consumed_exactly_once(group.members, produced)


@pytest.mark.parametrize("client", CLIENTS)
def test_killed_member_partitions_move_to_the_others(broker, new_topic, tmp_path, client):
    topic = new_topic(partitions=PARTITIONS)
    with ConsumerGroup(broker.bootstrap, topic, PARTITIONS, tmp_path,
                       session_timeout_ms=6000) as group, \
            TrickleProducer(broker.bootstrap, topic, PARTITIONS) as producer:
        members = [group.join(client) for _ in range(3)]
        group.wait_balanced(members)
        group.wait_consuming(members)

        victim = members.pop()
        victim.kill9()  # no LeaveGroup: the broker notices when its session times out
        group.wait_balanced(members)
        group.wait_consuming(members)

        produced = producer.stop()
        group.wait_consumed(produced)
    assert_redelivered_only_after_commit(group.members, produced, killed=victim)
