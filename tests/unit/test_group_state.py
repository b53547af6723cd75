"""GroupMetadata: state transitions, members, protocol selection, offset expiry."""
import struct

import pytest

from kafka_compat.group.group import CommitRecord, GroupMetadata, GroupState, subscribed_topics
from kafka_compat.group.log_format import OffsetAndMetadata
from kafka_compat.group.member import MemberMetadata
from kafka_compat.protocol import schema


class Clock:
    def __init__(self, now: int = 1_000_000):
        self.now = now

    def __call__(self) -> int:
        return self.now


def subscription(*topics: str, version: int = 1) -> bytes:
    body = schema.codec("ConsumerProtocolSubscription", version, "fields").build({"topics": list(topics)})
    return struct.pack(">h", version) + body


def member(member_id: str, *protocols: str, instance: str | None = None, protocol_type: str = "consumer",
           metadata: bytes = b"") -> MemberMetadata:
    return MemberMetadata(member_id, instance, "client", "/127.0.0.1", 30000, 10000, protocol_type,
                          [(p, metadata) for p in protocols])


def test_transitions_follow_kafkas_state_machine():
    group = GroupMetadata("g", GroupState.EMPTY, Clock())
    with pytest.raises(RuntimeError):
        group.transition_to(GroupState.STABLE)
    group.transition_to(GroupState.PREPARING_REBALANCE)
    group.transition_to(GroupState.COMPLETING_REBALANCE)
    assert group.can_rebalance()  # CompletingRebalance may rebalance again
    group.transition_to(GroupState.STABLE)
    group.transition_to(GroupState.DEAD)
    group.transition_to(GroupState.DEAD)
    with pytest.raises(RuntimeError):
        group.transition_to(GroupState.PREPARING_REBALANCE)


def test_state_timestamp_follows_transitions():
    clock = Clock(5)
    group = GroupMetadata("g", GroupState.EMPTY, clock)
    assert group.state_timestamp == 5
    clock.now = 9
    group.transition_to(GroupState.PREPARING_REBALANCE)
    assert group.state_timestamp == 9


def test_first_member_sets_protocol_type_and_leads_and_leadership_moves_on_removal():
    group = GroupMetadata("g", GroupState.EMPTY, Clock())
    group.add(member("a", "range"))
    group.add(member("b", "range"))
    assert group.protocol_type == "consumer"
    assert group.leader_id == "a"
    group.remove("a")
    assert group.leader_id == "b"
    group.remove("b")
    assert group.leader_id is None


def test_static_members_map_instance_ids():
    group = GroupMetadata("g", GroupState.EMPTY, Clock())
    group.add(member("a-1", "range", instance="a"))
    with pytest.raises(RuntimeError):
        group.add(member("a-2", "range", instance="a"))
    replaced = group.replace_static_member("a", "a-1", "a-2")
    assert replaced.member_id == "a-2"
    assert group.static_member_id("a") == "a-2"
    assert group.leader_id == "a-2"
    assert not group.has("a-1")
    group.remove("a-2")
    assert group.static_member_id("a") is None


def test_protocol_support_and_selection():
    group = GroupMetadata("g", GroupState.EMPTY, Clock())
    assert not group.supports_protocols("", {"range"})
    assert not group.supports_protocols("consumer", set())
    assert group.supports_protocols("consumer", {"range"})
    group.add(member("a", "range", "roundrobin"))
    group.add(member("b", "range", "roundrobin"))
    group.add(member("c", "roundrobin", "range"))
    group.transition_to(GroupState.PREPARING_REBALANCE)
    assert group.supports_protocols("consumer", {"roundrobin"})
    assert not group.supports_protocols("connect", {"range"})
    assert not group.supports_protocols("consumer", {"sticky"})
    assert group.select_protocol() == "range"  # two of three prefer it
    group.remove("a")
    group.add(member("d", "roundrobin"))
    assert group.select_protocol() == "roundrobin"  # the only one all support


def test_next_generation_selects_the_protocol_and_records_subscriptions():
    group = GroupMetadata("g", GroupState.EMPTY, Clock())
    group.add(member("a", "range", metadata=subscription("t1", "t2")))
    group.add(member("b", "range", metadata=subscription("t3", version=0)))
    group.transition_to(GroupState.PREPARING_REBALANCE)
    group.init_next_generation()
    assert (group.generation_id, group.protocol_name, group.state) == (1, "range", GroupState.COMPLETING_REBALANCE)
    assert group.subscribed_topics == {"t1", "t2", "t3"}
    assert group.is_subscribed_to("t3") and not group.is_subscribed_to("t4")


def test_unparsable_subscription_means_every_topic_counts_as_subscribed():
    group = GroupMetadata("g", GroupState.EMPTY, Clock())
    group.add(member("a", "range", metadata=b"\x00"))
    group.transition_to(GroupState.PREPARING_REBALANCE)
    group.init_next_generation()
    assert group.subscribed_topics is None
    assert group.is_subscribed_to("anything")
    with pytest.raises(ValueError):
        subscribed_topics(b"\x00\x00\xff")


def test_generation_without_members_is_empty():
    group = GroupMetadata("g", GroupState.EMPTY, Clock())
    group.add(member("a", "range"))
    group.transition_to(GroupState.PREPARING_REBALANCE)
    group.remove("a")
    group.init_next_generation()
    assert (group.generation_id, group.protocol_name, group.state) == (1, None, GroupState.EMPTY)
    assert group.subscribed_topics == set()


def offset(commit_ts: int, expire: int | None = None) -> CommitRecord:
    return CommitRecord(0, OffsetAndMetadata(1, -1, "", commit_ts, expire))


def test_empty_group_offsets_expire_from_when_the_group_became_empty():
    clock = Clock(1000)
    group = GroupMetadata("g", GroupState.EMPTY, clock)
    group.protocol_type = "consumer"
    group.offsets = {("t", 0): offset(0), ("t", 1): offset(900)}
    assert group.remove_expired_offsets(1000 + 599, 600) == {}
    assert set(group.remove_expired_offsets(1000 + 600, 600)) == {("t", 0), ("t", 1)}
    assert group.offsets == {}


def test_simple_consumer_offsets_expire_from_their_commit():
    group = GroupMetadata("g", GroupState.EMPTY, Clock(0))
    group.offsets = {("t", 0): offset(100), ("t", 1): offset(500)}
    assert set(group.remove_expired_offsets(1100, 1000)) == {("t", 0)}
    assert set(group.offsets) == {("t", 1)}


def test_stable_consumer_group_keeps_offsets_of_subscribed_topics():
    group = GroupMetadata("g", GroupState.EMPTY, Clock(0))
    group.add(member("a", "range", metadata=subscription("kept")))
    group.transition_to(GroupState.PREPARING_REBALANCE)
    group.init_next_generation()
    group.transition_to(GroupState.STABLE)
    group.offsets = {("kept", 0): offset(0), ("gone", 0): offset(0)}
    assert set(group.remove_expired_offsets(10_000, 1000)) == {("gone", 0)}


def test_rebalancing_group_keeps_its_offsets():
    group = GroupMetadata("g", GroupState.EMPTY, Clock(0))
    group.add(member("a", "range"))
    group.transition_to(GroupState.PREPARING_REBALANCE)
    group.offsets = {("t", 0): offset(0)}
    assert group.remove_expired_offsets(10**12, 1) == {}


def test_explicit_expire_timestamp_wins():
    group = GroupMetadata("g", GroupState.EMPTY, Clock(0))
    group.offsets = {("t", 0): offset(0, expire=50), ("t", 1): offset(0, expire=10**9)}
    assert set(group.remove_expired_offsets(50, 10**12)) == {("t", 0)}
