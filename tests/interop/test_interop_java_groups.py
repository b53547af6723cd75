"""Java consumer groups (kafka-clients' classic group protocol) over a steady
stream of records, each member a JVM (interop/java GroupWorker.java) that
commits only synchronously in onPartitionsRevoked and before close:

- a static member (group.instance.id) restarted within its session timeout
  gets its partitions back without a rebalance;
- a group growing to three members, losing one, gaining another and
  shrinking again, with the eager (range) and the cooperative-sticky
  assignors: every record consumed exactly once. Each step waits until every
  member consumed under its new assignment before the next one, so each
  rebalance takes records that were consumed but committed only by the
  revocation: were any revoke commit lost or read late, the next owner would
  consume them again.
"""
from __future__ import annotations

import uuid
from typing import Callable

import pytest

from interop import java_client
from interop.group_checks import assert_consumed_exactly_once
from interop.group_member import BROKER_OVERRIDES, ConsumerGroup, GroupMember
from interop.group_producer import TrickleProducer

PARTITIONS = 6


@pytest.fixture(scope="module")
def broker_overrides():
    return BROKER_OVERRIDES


def callbacks_since(member: GroupMember, mark: int) -> list[dict]:
    return [e for e in member.events[mark:] if e["event"] in ("assigned", "revoked", "lost")]


def test_static_member_restart_keeps_its_assignment_without_rebalance(broker, new_topic, tmp_path):
    topic = new_topic(partitions=PARTITIONS)
    # Long enough for a JVM's restart, short enough that a lingering
    # rebalance would still show within the test.
    with ConsumerGroup(broker.bootstrap, topic, PARTITIONS, tmp_path,
                       session_timeout_ms=15_000) as group, \
            TrickleProducer(broker.bootstrap, topic, PARTITIONS) as producer:
        restarting = group.join("java", name="static-a", instance_id="instance-a")
        steady = group.join("java", name="static-b", instance_id="instance-b")
        group.wait_balanced([restarting, steady])
        group.wait_consuming([restarting, steady])
        owned, mark = set(restarting.partitions), len(steady.events)

        restarting.stop()  # a static member's close() sends no LeaveGroup
        restarted = group.join("java", name="static-a-again", instance_id="instance-a")
        group.wait_balanced([restarted, steady])
        group.wait_consuming([restarted, steady])
        assert restarted.partitions == owned, group.describe()
        # One assignment, straight away: no revocation before it.
        assert [e["event"] for e in callbacks_since(restarted, 0)] == ["assigned"]

        produced = producer.stop()
        group.wait_consumed(produced)
        callbacks = callbacks_since(steady, mark)
        assert not callbacks, f"the other member went through a rebalance: {callbacks}"
    # The restarted member resumed at the offsets committed before the close.
    assert_consumed_exactly_once(group.members, produced)


def check_rebalance(members: list[GroupMember], marks: dict[str, int], before: dict[str, set[int]],
                    cooperative: bool) -> None:
    """Each member's callbacks since `marks` follow the protocol: eager
    revokes everything and assigns afresh; cooperative only revokes what
    moves away and only adds what moves in."""
    for member in members:
        callbacks = callbacks_since(member, marks.get(member.name, 0))
        assert all(e["event"] != "lost" for e in callbacks), (member.name, callbacks)
        assert all(e["incremental"] == cooperative for e in callbacks), (member.name, callbacks)
        if member.name not in before:
            continue
        revoked = {p for e in callbacks if e["event"] == "revoked" for p in e["partitions"]}
        if cooperative:
            assigned = {p for e in callbacks if e["event"] == "assigned" for p in e["partitions"]}
            kept = before[member.name] & member.partitions
            assert revoked == before[member.name] - member.partitions, (member.name, callbacks)
            assert not assigned & kept, (member.name, callbacks)
        elif callbacks:
            assert revoked >= before[member.name], (member.name, callbacks)


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_three_members_rebalancing_while_consuming(broker, new_topic, tmp_path, assignor):
    topic = new_topic(partitions=PARTITIONS)
    cooperative = assignor == "cooperative-sticky"
    with ConsumerGroup(broker.bootstrap, topic, PARTITIONS, tmp_path, assignor=assignor) as group, \
            TrickleProducer(broker.bootstrap, topic, PARTITIONS) as producer:

        def rebalance(change: Callable[[], GroupMember | None],
                      staying: list[GroupMember]) -> GroupMember | None:
            """Make a change (a member joins or leaves), wait until the group
            settled and every member consumed under its new assignment, and
            check each member's callbacks."""
            with group.condition:
                before = {m.name: set(m.partitions) for m in staying}
                marks = {m.name: len(m.events) for m in staying}
            joined = change()
            members = staying + ([joined] if joined else [])
            group.wait_balanced(members)
            group.wait_consuming(members)
            check_rebalance(members, marks, before, cooperative)
            return joined

        a = rebalance(lambda: group.join("java", name="a"), [])
        b = rebalance(lambda: group.join("java", name="b"), [a])
        c = rebalance(lambda: group.join("java", name="c"), [a, b])
        assert sorted(len(m.partitions) for m in (a, b, c)) == [2, 2, 2]
        rebalance(a.stop, [b, c])
        d = rebalance(lambda: group.join("java", name="d"), [b, c])
        rebalance(c.stop, [b, d])

        produced = producer.stop()
        group.wait_consumed(produced)
    assert_consumed_exactly_once(group.members, produced)
    # The handovers went through the revocation commits (the only commits a
    # live member makes): every member that gave partitions up committed.
    for member in (a, b, c):
        assert any(e["event"] == "committed" for e in member.events), member.summary()
    failures = [(m.name, e["error"]) for m in group.members for e in m.events
                if e["event"] == "commit_failed"]
    assert not failures, group.describe()


def test_second_consumer_with_the_same_instance_id_fences_the_first(broker, new_topic):
    """Two live consumers with one group.instance.id: the newer one takes the
    member's place and its assignment, the older one's next heartbeat or poll
    fails with FencedInstanceIdException (Kafka's FENCED_INSTANCE_ID)."""
    topic = new_topic(partitions=2)
    group = f"java-fenced-{uuid.uuid4().hex[:8]}"
    with java_client.consumer_session(broker.bootstrap, topic, group=group,
                                      instance_id="twin") as first, \
            java_client.consumer_session(broker.bootstrap, topic, group=group,
                                         instance_id="twin") as second:
        first.call("subscribe")
        assert first.call("wait-assignment", timeout_ms=30_000) == [0, 1]
        second.call("subscribe")
        assert second.call("wait-assignment", timeout_ms=30_000) == [0, 1]
        answer = first.answer("poll", count=0, timeout_ms=15_000)
        assert answer.get("error") == "FencedInstanceIdException", answer
        # The newer one carries on: it commits as the group's member.
        second.call("commit-sync", offsets=[[0, 0, "still here"]])
        first.kill()  # fenced, its close() would fail too
