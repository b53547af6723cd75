"""The group coordinator on real logs, driven directly; timers run on trio's
autojump clock, so rebalance and session timeouts pass in virtual time."""
from __future__ import annotations

import math
import struct
from contextlib import contextmanager

import pytest
import trio

from kafka_compat.api.waiters import AppendWaiters
from kafka_compat.cluster.metadata import BrokerInfo, LocalMetadataStore
from kafka_compat.cluster.topics import TopicManager
from kafka_compat.config import BrokerConfig
from kafka_compat.group.coordinator import NEW_MEMBER_JOIN_TIMEOUT_MS, GroupCoordinator
from kafka_compat.group.group import GroupState
from kafka_compat.group.internal_topics import OFFSETS_TOPIC, create_internal_topic
from kafka_compat.group.log_format import OffsetAndMetadata
from kafka_compat.log import replay
from kafka_compat.log.manager import LogManager
from kafka_compat.replica.manager import ReplicaManager
from kafka_compat.protocol import schema
from kafka_compat.protocol.errors import ErrorCode as E

SESSION_MS = 10_000
REBALANCE_MS = 30_000


class Parts:
    """What the coordinator uses of a broker: config, logs, metadata, topics
    and append waiters, all real and on disk."""

    def __init__(self, data_dir, **overrides):
        props = {"log.dirs": str(data_dir), "offsets.topic.num.partitions": "3",
                 "group.initial.rebalance.delay.ms": "0"}
        props.update({k: str(v) for k, v in overrides.items()})
        self.config = BrokerConfig.from_properties(props)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.logs = LogManager([data_dir], self.config.topic_defaults())
        self.metadata = LocalMetadataStore(data_dir, BrokerInfo(0, "127.0.0.1", 9))
        self.topics = TopicManager(self.config, self.metadata, self.logs)
        self.waiters = AppendWaiters()
        self.replicas = ReplicaManager(0, self.logs, self.metadata, single_broker=True)
        self.running: list[Running] = []

    async def close(self) -> None:
        for running in self.running:
            running.stop()
        with waiting_for_threads():
            await self.logs.close()


@contextmanager
def waiting_for_threads():
    """Disk work runs in worker threads; meanwhile the autojump clock would spin
    the run loop (and starve the threads of the GIL), so time runs at its real
    pace instead."""
    clock = trio.lowlevel.current_clock()
    saved = clock.autojump_threshold, clock.rate
    clock.autojump_threshold, clock.rate = math.inf, 1.0
    try:
        yield
    finally:
        clock.autojump_threshold, clock.rate = saved


class WallClock:
    def __init__(self, now: int = 1_700_000_000_000):
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def parts(tmp_path):
    p = Parts(tmp_path / "data")
    await create_internal_topic(p, OFFSETS_TOPIC)
    yield p
    await p.close()


class Running:
    def __init__(self, coordinator: GroupCoordinator, scope: trio.CancelScope):
        self.c = coordinator
        self.scope = scope

    def stop(self) -> None:
        self.c.shutdown()
        self.scope.cancel()


async def start(parts, nursery, clock=None) -> GroupCoordinator:
    coordinator = GroupCoordinator(parts, clock or WallClock())
    scope = trio.CancelScope()

    async def run():
        with scope:
            await coordinator.run()

    nursery.start_soon(run)
    with waiting_for_threads():
        while coordinator.manager.loading:
            await trio.sleep(0.001)
    coordinator.running = Running(coordinator, scope)
    parts.running.append(coordinator.running)
    return coordinator


class Task:
    """A request running in the background (JoinGroup and SyncGroup may park)."""

    def __init__(self, nursery, fn, *args, **kwargs):
        self.result = None
        self.done = trio.Event()

        async def run():
            self.result = await fn(*args, **kwargs)
            self.done.set()

        nursery.start_soon(run)

    async def wait(self):
        await self.done.wait()
        return self.result


def subscription(*topics: str) -> bytes:
    return struct.pack(">h", 1) + schema.codec("ConsumerProtocolSubscription", 1, "fields").build({"topics": list(topics)})


def join(c, member_id="", group="g", instance=None, protocols=None, protocol_type="consumer", session=SESSION_MS,
         rebalance=REBALANCE_MS, require_known=False, skip=False, client_id="client"):
    return c.join_group(group, member_id, instance, require_known, skip, client_id, "/127.0.0.1", rebalance,
                        session, protocol_type, [("range", subscription("t"))] if protocols is None else protocols)


async def settle():
    """Let every runnable task run (virtual time does not move while any can)."""
    await trio.testing.wait_all_tasks_blocked()


async def stable_group(c, nursery, *names, group="g", instances=None):
    """Members join together and the first syncs an assignment; returns
    {name: member id} and the generation."""
    tasks = {n: Task(nursery, join, c, group=group, client_id=n, instance=(instances or {}).get(n)) for n in names}
    results = {n: await t.wait() for n, t in tasks.items()}
    assert {r.error for r in results.values()} == {E.NONE}
    ids = {n: r.member_id for n, r in results.items()}
    generation = results[names[0]].generation_id
    leader = next(n for n, r in results.items() if r.members)
    syncs = {n: Task(nursery, c.sync_group, group, generation, ids[n], "consumer", "range", (instances or {}).get(n),
                     {ids[m]: m.encode() for m in names} if n == leader else {}) for n in names}
    for n, t in syncs.items():
        r = await t.wait()
        assert (r.error, r.assignment) == (E.NONE, n.encode())
    assert c.manager.get(group).state is GroupState.STABLE
    return ids, generation


# -- joining ------------------------------------------------------------------------


async def test_member_id_required_then_join_and_sync(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    first = await join(c, require_known=True)
    assert first.error == E.MEMBER_ID_REQUIRED
    assert first.member_id.startswith("client-")
    assert c.manager.get("g").pending_members == {first.member_id}

    result = await join(c, first.member_id, require_known=True)
    assert result.error == E.NONE
    assert (result.member_id, result.generation_id, result.leader_id) == (first.member_id, 1, first.member_id)
    assert (result.protocol_type, result.protocol_name) == ("consumer", "range")
    assert result.members == [(first.member_id, None, subscription("t"))]

    sync = await c.sync_group("g", 1, first.member_id, "consumer", "range", None, {first.member_id: b"mine"})
    assert (sync.error, sync.assignment, sync.protocol_name) == (E.NONE, b"mine", "range")
    assert c.manager.get("g").state is GroupState.STABLE
    assert c.heartbeat("g", first.member_id, None, 1) == E.NONE


async def test_second_member_triggers_rebalance_and_only_the_leader_gets_metadata(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a")
    b = Task(nursery, join, c, client_id="b")
    await settle()
    assert c.manager.get("g").state is GroupState.PREPARING_REBALANCE
    assert c.heartbeat("g", ids["a"], None, generation) == E.REBALANCE_IN_PROGRESS
    # Commits from the old generation are still accepted while preparing.
    assert await c.commit_offsets("g", ids["a"], None, generation, {("t", 0): OffsetAndMetadata(5, -1, "", 1)}) == {("t", 0): E.NONE}
    a = await join(c, ids["a"], client_id="a")
    b = await b.wait()
    assert a.generation_id == b.generation_id == generation + 1
    assert a.leader_id == b.leader_id == ids["a"]
    assert sorted(m[0] for m in a.members) == sorted([ids["a"], b.member_id])
    assert b.members == []
    # The follower's SyncGroup waits for the leader's.
    follower = Task(nursery, c.sync_group, "g", b.generation_id, b.member_id, None, None, None, {})
    await settle()
    assert not follower.done.is_set()
    assert await c.commit_offsets("g", b.member_id, None, b.generation_id, {("t", 0): OffsetAndMetadata(1, -1, "", 1)}) \
        == {("t", 0): E.REBALANCE_IN_PROGRESS}
    leader = await c.sync_group("g", a.generation_id, ids["a"], None, None, None, {ids["a"]: b"A", b.member_id: b"B"})
    assert leader.assignment == b"A"
    assert (await follower.wait()).assignment == b"B"


async def test_joining_with_unchanged_metadata_while_stable_returns_the_current_generation(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b")
    leader = c.manager.get("g").leader_id
    follower = next(m for m in ids.values() if m != leader)
    result = await join(c, follower)
    assert (result.error, result.generation_id, result.members) == (E.NONE, generation, [])
    assert c.manager.get("g").state is GroupState.STABLE
    # Changed metadata forces a rebalance.
    task = Task(nursery, join, c, follower, protocols=[("range", subscription("t", "u"))])
    await settle()
    assert c.manager.get("g").state is GroupState.PREPARING_REBALANCE
    await join(c, leader)
    assert (await task.wait()).generation_id == generation + 1


async def test_protocol_checks(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, _ = await stable_group(c, nursery, "a")
    assert (await join(c, protocol_type="connect")).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert (await join(c, protocols=[("roundrobin", b"")])).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert (await join(c, group="other", protocol_type="")).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert (await join(c, group="other", protocols=[])).error == E.INCONSISTENT_GROUP_PROTOCOL
    sync = await c.sync_group("g", 1, ids["a"], "consumer", "roundrobin", None, {})
    assert sync.error == E.INCONSISTENT_GROUP_PROTOCOL


async def test_request_checks(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    assert (await join(c, group="")).error == E.INVALID_GROUP_ID
    assert (await join(c, session=5999)).error == E.INVALID_SESSION_TIMEOUT
    assert (await join(c, session=1_800_001)).error == E.INVALID_SESSION_TIMEOUT
    assert (await join(c, "who")).error == E.UNKNOWN_MEMBER_ID
    assert c.heartbeat("nobody", "m", None, 1) == E.UNKNOWN_MEMBER_ID
    assert (await c.sync_group("nobody", 1, "m", None, None, None, {})).error == E.UNKNOWN_MEMBER_ID
    ids, generation = await stable_group(c, nursery, "a")
    assert c.heartbeat("g", ids["a"], None, generation + 1) == E.ILLEGAL_GENERATION
    assert c.heartbeat("g", "stranger", None, generation) == E.UNKNOWN_MEMBER_ID
    assert (await c.sync_group("g", generation - 1, ids["a"], None, None, None, {})).error == E.ILLEGAL_GENERATION


async def test_group_max_size(autojump_clock, tmp_path, nursery):
    parts = Parts(tmp_path / "data", **{"group.max.size": 1})
    await create_internal_topic(parts, OFFSETS_TOPIC)
    c = await start(parts, nursery)
    await stable_group(c, nursery, "a")
    result = await join(c)
    assert (result.error, result.member_id) == (E.GROUP_MAX_SIZE_REACHED, "")
    await parts.close()


# -- timers ---------------------------------------------------------------------------


async def test_session_timeout_removes_a_silent_member(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b")
    start_time = trio.current_time()
    # Only a heartbeats; b's session runs out.
    while c.manager.get("g").state is GroupState.STABLE:
        assert c.heartbeat("g", ids["a"], None, generation) == E.NONE
        await trio.sleep(1)
    assert SESSION_MS / 1000 - 1 <= trio.current_time() - start_time <= SESSION_MS / 1000 + 1
    assert not c.manager.get("g").has(ids["b"])
    assert c.heartbeat("g", ids["a"], None, generation) == E.REBALANCE_IN_PROGRESS
    assert c.heartbeat("g", ids["b"], None, generation) == E.UNKNOWN_MEMBER_ID
    result = await join(c, ids["a"])
    assert (result.generation_id, [m[0] for m in result.members]) == (generation + 1, [ids["a"]])


async def test_members_that_do_not_rejoin_in_the_rebalance_timeout_are_removed(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b")
    leader = c.manager.get("g").leader_id
    other = next(m for m in ids.values() if m != leader)
    began = trio.current_time()
    rejoin = Task(nursery, join, c, leader)
    await settle()
    # The other member stays alive (heartbeats) but never rejoins.
    while not rejoin.done.is_set():
        assert c.heartbeat("g", other, None, generation) in (E.REBALANCE_IN_PROGRESS, E.UNKNOWN_MEMBER_ID)
        await trio.sleep(1)
    assert trio.current_time() - began == pytest.approx(REBALANCE_MS / 1000, abs=1)
    assert [m[0] for m in rejoin.result.members] == [leader]
    assert not c.manager.get("g").has(other)


async def test_leader_that_does_not_rejoin_is_replaced(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b")
    leader = c.manager.get("g").leader_id
    other = next(m for m in ids.values() if m != leader)
    # A follower with new metadata starts a rebalance; the leader never rejoins.
    result = await join(c, other, protocols=[("range", subscription("t", "u"))])
    assert (result.leader_id, [m[0] for m in result.members]) == (other, [other])


async def test_initial_rebalance_delay_grows_while_members_keep_joining(autojump_clock, tmp_path, nursery):
    parts = Parts(tmp_path / "data", **{"group.initial.rebalance.delay.ms": 3000})
    await create_internal_topic(parts, OFFSETS_TOPIC)
    c = await start(parts, nursery)
    began = trio.current_time()
    first = Task(nursery, join, c, rebalance=10_000)
    await trio.sleep(1)
    second = Task(nursery, join, c, rebalance=10_000)
    a, b = await first.wait(), await second.wait()
    # 3 s, then (a member came) 3 s more; the rebalance timeout (10 s) bounds it.
    assert trio.current_time() - began == pytest.approx(6)
    assert a.generation_id == b.generation_id == 1
    await parts.close()


async def test_initial_rebalance_delay_alone(autojump_clock, tmp_path, nursery):
    parts = Parts(tmp_path / "data", **{"group.initial.rebalance.delay.ms": 3000})
    await create_internal_topic(parts, OFFSETS_TOPIC)
    c = await start(parts, nursery)
    began = trio.current_time()
    assert (await join(c)).error == E.NONE
    assert trio.current_time() - began == pytest.approx(3)
    await parts.close()


async def test_pending_member_expires_and_stops_holding_up_the_join(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, _ = await stable_group(c, nursery, "a")
    pending = await join(c, require_known=True)
    assert pending.error == E.MEMBER_ID_REQUIRED
    began = trio.current_time()
    result = await join(c, ids["a"])  # the leader rejoins; the pending member never comes
    assert trio.current_time() - began == pytest.approx(SESSION_MS / 1000)
    assert result.error == E.NONE
    assert not c.manager.get("g").pending_members
    # Its id is no longer accepted.
    assert (await join(c, pending.member_id)).error == E.UNKNOWN_MEMBER_ID


async def test_new_member_join_times_out(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, _ = await stable_group(c, nursery, "a")
    # b joins; the leader never rejoins and keeps heartbeating, so the rebalance
    # can only end when b's join times out... which it does first only if the
    # rebalance timeout is longer.
    began = trio.current_time()
    b = Task(nursery, join, c, rebalance=NEW_MEMBER_JOIN_TIMEOUT_MS * 2)
    while not b.done.is_set():
        c.heartbeat("g", ids["a"], None, 1)
        await trio.sleep(1)
    assert (b.result.error, b.result.member_id) == (E.UNKNOWN_MEMBER_ID, "")
    assert trio.current_time() - began == pytest.approx(NEW_MEMBER_JOIN_TIMEOUT_MS / 1000, abs=1)


async def test_members_that_never_sync_are_removed(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    a = Task(nursery, join, c, client_id="a")
    b = Task(nursery, join, c, client_id="b")
    a, b = await a.wait(), await b.wait()
    leader = a if a.members else b
    follower = b if leader is a else a
    began = trio.current_time()
    sync = await c.sync_group("g", leader.generation_id, leader.member_id, None, None, None, {})
    assert sync.error == E.NONE
    group = c.manager.get("g")
    # Both heartbeat, but the follower never sends SyncGroup.
    while group.has(follower.member_id):
        c.heartbeat("g", leader.member_id, None, leader.generation_id)
        c.heartbeat("g", follower.member_id, None, follower.generation_id)
        await trio.sleep(1)
    assert trio.current_time() - began == pytest.approx(REBALANCE_MS / 1000, abs=1)
    assert group.state is GroupState.PREPARING_REBALANCE


# -- static membership -----------------------------------------------------------------


async def test_restarted_static_member_gets_its_assignment_back_without_rebalance(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b", instances={"a": "inst-a", "b": "inst-b"})
    leader = c.manager.get("g").leader_id
    restarted = await join(c, instance="inst-a", client_id="a")
    assert restarted.error == E.NONE
    assert restarted.member_id != ids["a"] and restarted.member_id.startswith("inst-a-")
    assert restarted.generation_id == generation
    assert restarted.members == []
    # The old leader id, so a restarted leader does not run a pointless assignment.
    assert restarted.leader_id == leader
    group = c.manager.get("g")
    assert group.state is GroupState.STABLE and group.generation_id == generation
    sync = await c.sync_group("g", generation, restarted.member_id, None, None, "inst-a", {})
    assert sync.assignment == b"a"
    # The old incarnation is fenced.
    assert c.heartbeat("g", ids["a"], "inst-a", generation) == E.FENCED_INSTANCE_ID
    assert (await join(c, ids["a"], instance="inst-a")).error == E.FENCED_INSTANCE_ID
    assert await c.commit_offsets("g", ids["a"], "inst-a", generation, {("t", 0): OffsetAndMetadata(1, -1, "", 1)}) \
        == {("t", 0): E.FENCED_INSTANCE_ID}


async def test_restarted_static_leader_skips_assignment_from_v9(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b", instances={"a": "inst-a", "b": "inst-b"})
    leader_name = "a" if c.manager.get("g").leader_id == ids["a"] else "b"
    restarted = await join(c, instance=f"inst-{leader_name}", skip=True)
    assert (restarted.skip_assignment, restarted.leader_id) == (True, restarted.member_id)
    assert len(restarted.members) == 2


async def test_static_member_stays_through_a_rebalance_it_misses(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b", instances={"b": "inst-b"})
    rejoin = Task(nursery, join, c, ids["a"], protocols=[("range", subscription("t", "new"))])
    while not rejoin.done.is_set():  # b is alive but does not rejoin
        c.heartbeat("g", ids["b"], "inst-b", generation)
        await trio.sleep(1)
    assert rejoin.result.generation_id == generation + 1
    assert sorted(m[0] for m in rejoin.result.members) == sorted(ids.values())


async def test_leave_group(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b", instances={"b": "inst-b"})
    error, errors = c.leave_group("g", [(ids["a"], None, "bye"), ("", "inst-b", None), ("", "inst-x", None),
                                        ("unknown", None, None)])
    assert error == E.NONE
    assert errors == [E.NONE, E.NONE, E.UNKNOWN_MEMBER_ID, E.UNKNOWN_MEMBER_ID]
    group = c.manager.get("g")
    assert group.members == {}
    # Nobody is left to wait for: the rebalance ends at once, empty.
    assert group.state is GroupState.EMPTY and group.generation_id == generation + 1
    assert c.leave_group("nobody", [("m", None, None)]) == (E.NONE, [E.UNKNOWN_MEMBER_ID])
    assert c.leave_group("", []) == (E.INVALID_GROUP_ID, [])


async def test_last_member_leaving_empties_the_group_at_once(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a")
    c.leave_group("g", [(ids["a"], None, None)])
    group = c.manager.get("g")
    assert (group.state, group.generation_id) == (GroupState.EMPTY, generation + 1)


# -- offsets -----------------------------------------------------------------------------


def om(offset: int, metadata: str = "", epoch: int = -1) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, epoch, metadata, 1_700_000_000_000)


async def test_simple_commits(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    assert await c.commit_offsets("simple", "", None, 5, {("t", 0): om(1)}) == {("t", 0): E.ILLEGAL_GENERATION}
    assert c.manager.get("simple") is None
    assert await c.commit_offsets("simple", "", None, -1, {("t", 0): om(10, "m", 3), ("t", 1): om(20)}) == \
        {("t", 0): E.NONE, ("t", 1): E.NONE}
    error, fetched = c.fetch_offsets("simple", [("t", 0), ("t", 1), ("t", 2), ("u", 0)])
    assert error == E.NONE
    assert [(o.offset, o.leader_epoch, o.metadata, o.error) for o in fetched.values()] == \
        [(10, 3, "m", E.NONE), (20, -1, "", E.NONE), (-1, -1, "", E.NONE), (-1, -1, "", E.NONE)]
    assert list(c.fetch_offsets("simple", None)[1]) == [("t", 0), ("t", 1)]
    assert c.fetch_offsets("nobody", None) == (E.NONE, {})
    # An empty group id is allowed for offsets.
    assert await c.commit_offsets("", "", None, -1, {("t", 0): om(1)}) == {("t", 0): E.NONE}


async def test_commit_checks_for_groups_with_members(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a")
    tp = ("t", 0)
    assert await c.commit_offsets("g", "", None, -1, {tp: om(1)}) == {tp: E.UNKNOWN_MEMBER_ID}
    assert await c.commit_offsets("g", ids["a"], None, generation + 1, {tp: om(1)}) == {tp: E.ILLEGAL_GENERATION}
    assert await c.commit_offsets("g", "other", None, generation, {tp: om(1)}) == {tp: E.UNKNOWN_MEMBER_ID}
    assert await c.commit_offsets("g", ids["a"], None, generation, {tp: om(7)}) == {tp: E.NONE}
    assert c.fetch_offsets("g", [tp])[1][tp].offset == 7


async def test_metadata_over_the_limit_is_rejected_per_partition(autojump_clock, tmp_path, nursery):
    parts = Parts(tmp_path / "data", **{"offset.metadata.max.bytes": 4})
    await create_internal_topic(parts, OFFSETS_TOPIC)
    c = await start(parts, nursery)
    result = await c.commit_offsets("g", "", None, -1, {("t", 0): om(1, "12345"), ("t", 1): om(2, "1234")})
    assert result == {("t", 0): E.OFFSET_METADATA_TOO_LARGE, ("t", 1): E.NONE}
    assert await c.commit_offsets("g", "", None, -1, {("t", 0): om(1, "\U0001F600" * 3)}) == \
        {("t", 0): E.OFFSET_METADATA_TOO_LARGE}  # 6 UTF-16 units, as Java counts
    fetched = c.fetch_offsets("g", [("t", 0), ("t", 1)])[1]
    assert (fetched[("t", 0)].offset, fetched[("t", 1)].offset) == (-1, 2)
    await parts.close()


async def test_commit_over_the_offsets_topic_message_limit(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    # 300 offsets with 4000 bytes of metadata each: one batch over max.message.bytes.
    offsets = {("t", p): om(1, "x" * 4000) for p in range(300)}
    assert set((await c.commit_offsets("g", "", None, -1, offsets)).values()) == {E.INVALID_COMMIT_OFFSET_SIZE}
    assert c.fetch_offsets("g", [("t", 0)])[1][("t", 0)].offset == -1


async def test_delete_offsets(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a")  # subscribed to "t"
    await c.commit_offsets("g", ids["a"], None, generation, {("t", 0): om(1), ("u", 0): om(2)})
    error, errors = c.delete_offsets("g", [("t", 0), ("u", 0)])
    assert (error, errors) == (E.NONE, {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("u", 0): E.NONE})
    assert set(c.manager.get("g").offsets) == {("t", 0)}
    assert c.delete_offsets("missing", [("t", 0)]) == (E.GROUP_ID_NOT_FOUND, {})
    assert c.delete_offsets("", [("t", 0)]) == (E.INVALID_GROUP_ID, {})

    await c.commit_offsets("simple", "", None, -1, {("t", 0): om(1)})
    assert c.delete_offsets("simple", [("t", 0)]) == (E.NONE, {("t", 0): E.NONE})
    assert c.manager.get("simple") is None  # no offsets left: the empty group is gone


async def test_non_consumer_group_with_members_cannot_delete_offsets(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    result = await join(c, protocol_type="connect", protocols=[("v1", b"")])
    await c.sync_group("g", result.generation_id, result.member_id, None, None, None, {})
    assert c.delete_offsets("g", [("t", 0)]) == (E.NON_EMPTY_GROUP, {})


async def test_delete_groups(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    await stable_group(c, nursery, "a", group="busy")
    await c.commit_offsets("idle", "", None, -1, {("t", 0): om(1)})
    errors = c.delete_groups(["idle", "busy", "missing", "idle"])
    assert errors == {"idle": E.NONE, "busy": E.NON_EMPTY_GROUP, "missing": E.GROUP_ID_NOT_FOUND}
    assert c.manager.get("idle") is None
    assert c.fetch_offsets("idle", [("t", 0)])[1][("t", 0)].offset == -1


async def test_offsets_of_a_deleted_topic_are_dropped(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a")
    await c.commit_offsets("g", ids["a"], None, generation, {("t", 0): om(1), ("gone", 0): om(2), ("gone", 1): om(3)})
    await c.commit_offsets("simple", "", None, -1, {("gone", 0): om(4)})
    assert c.on_topic_deleted("gone") == 3
    assert set(c.manager.get("g").offsets) == {("t", 0)}
    assert c.manager.get("simple") is None
    c.running.stop()
    reloaded = await start(parts, nursery)
    assert set(reloaded.fetch_offsets("g", None)[1]) == {("t", 0)}
    assert reloaded.manager.get("simple") is None


async def test_expired_offsets_of_empty_groups_are_removed(autojump_clock, parts, nursery):
    clock = WallClock()
    c = await start(parts, nursery, clock)
    ids, generation = await stable_group(c, nursery, "a")
    await c.commit_offsets("g", ids["a"], None, generation, {("t", 0): om(1)})
    await c.commit_offsets("simple", "", None, -1, {("t", 0): OffsetAndMetadata(1, -1, "", clock.now)})
    c.leave_group("g", [(ids["a"], None, None)])
    retention = parts.config.offsets_retention_minutes * 60_000
    clock.now += retention - 1
    assert c.manager.expire_offsets() == 0
    clock.now += 1
    assert c.manager.expire_offsets() == 2
    assert c.manager.get("g") is None and c.manager.get("simple") is None
    c.running.stop()
    # The tombstones keep them gone after a reload.
    reloaded = await start(parts, nursery, clock)
    assert reloaded.manager.get("g") is None and reloaded.manager.get("simple") is None


# -- persistence and loading -------------------------------------------------------------


@pytest.mark.parametrize("in_threads", [False, True], ids=["inline", "threads"])
async def test_groups_and_offsets_are_loaded_back(autojump_clock, tmp_path, nursery, monkeypatch, in_threads):
    if in_threads:  # as a large partition would be: in worker threads, one batch per read
        monkeypatch.setattr(replay, "INLINE_BYTES", 0)
    parts = Parts(tmp_path / "data", **({"offsets.load.buffer.size": 1} if in_threads else {}))
    await create_internal_topic(parts, OFFSETS_TOPIC)
    clock = WallClock()
    c = await start(parts, nursery, clock)
    ids, generation = await stable_group(c, nursery, "a", "b", instances={"b": "inst-b"})
    await c.commit_offsets("g", ids["a"], None, generation, {("t", 0): om(5, "meta", 2), ("t", 1): om(6)})
    await c.commit_offsets("g", ids["a"], None, generation, {("t", 0): om(8, "later", 3)})
    await c.commit_offsets("simple", "", None, -1, {("t", 0): om(3)})
    await c.commit_offsets("gone", "", None, -1, {("t", 0): om(3)})
    c.delete_groups(["gone"])
    assignments = {m.member_id: m.assignment for m in c.manager.get("g").members.values()}
    c.running.stop()

    reloaded = await start(parts, nursery, clock)
    group = reloaded.manager.get("g")
    assert (group.state, group.generation_id, group.protocol_type, group.protocol_name) == \
        (GroupState.STABLE, generation, "consumer", "range")
    assert {m.member_id: m.assignment for m in group.members.values()} == assignments
    assert group.static_member_id("inst-b") == ids["b"]
    assert group.subscribed_topics == {"t"}
    fetched = reloaded.fetch_offsets("g", None)[1]
    assert {tp: (o.offset, o.metadata, o.leader_epoch) for tp, o in fetched.items()} == \
        {("t", 0): (8, "later", 3), ("t", 1): (6, "", -1)}
    assert reloaded.fetch_offsets("simple", [("t", 0)])[1][("t", 0)].offset == 3
    assert reloaded.manager.get("gone") is None
    # The members carry on without rejoining.
    assert reloaded.heartbeat("g", ids["a"], None, generation) == E.NONE
    sync = await reloaded.sync_group("g", generation, ids["b"], None, None, "inst-b", {})
    assert sync.assignment == assignments[ids["b"]]
    await parts.close()


async def test_loaded_members_expire_without_heartbeats(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    await stable_group(c, nursery, "a")
    c.running.stop()
    reloaded = await start(parts, nursery)
    group = reloaded.manager.get("g")
    await trio.sleep(SESSION_MS / 1000 + 1)
    assert group.members == {}
    assert group.state is GroupState.EMPTY


async def test_requests_while_loading(autojump_clock, parts, nursery):
    c = GroupCoordinator(parts, WallClock())  # not running: its partitions stay loading
    assert (await join(c)).error == E.COORDINATOR_LOAD_IN_PROGRESS
    assert c.heartbeat("g", "m", None, 1) == E.NONE  # answered blindly
    assert (await c.sync_group("g", 1, "m", None, None, None, {})).error == E.REBALANCE_IN_PROGRESS
    assert await c.commit_offsets("g", "", None, -1, {("t", 0): om(1)}) == {("t", 0): E.COORDINATOR_LOAD_IN_PROGRESS}
    assert c.fetch_offsets("g", None) == (E.COORDINATOR_LOAD_IN_PROGRESS, {})
    assert c.list_groups([], [])[0] == E.COORDINATOR_LOAD_IN_PROGRESS
    assert c.delete_groups(["g"]) == {"g": E.COORDINATOR_LOAD_IN_PROGRESS}


async def test_without_the_offsets_topic_nothing_is_coordinated(autojump_clock, tmp_path, nursery):
    parts = Parts(tmp_path / "data")
    c = await start(parts, nursery)
    assert (await join(c)).error == E.NOT_COORDINATOR
    assert c.delete_groups(["g"]) == {"g": E.NOT_COORDINATOR}
    await create_internal_topic(parts, OFFSETS_TOPIC)
    c.start_loading()
    with waiting_for_threads():
        while c.manager.loading:
            await trio.sleep(0.001)
    assert (await join(c)).error == E.NONE
    await parts.close()


async def test_shutdown_answers_parked_requests(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b")
    leader = c.manager.get("g").leader_id
    parked = Task(nursery, join, c, leader)  # waits for the other member
    await settle()
    c.running.stop()
    assert (await parked.wait()).error == E.NOT_COORDINATOR
    assert (await join(c)).error == E.COORDINATOR_NOT_AVAILABLE
    assert c.list_groups([], []) == (E.COORDINATOR_NOT_AVAILABLE, [])


# -- administration ------------------------------------------------------------------------


async def test_list_and_describe(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, _ = await stable_group(c, nursery, "a", instances={"a": "inst-a"})
    await c.commit_offsets("simple", "", None, -1, {("t", 0): om(1)})
    error, groups = c.list_groups([], [])
    assert error == E.NONE
    assert sorted((g.group_id, g.protocol_type, g.state, g.group_type) for g in groups) == \
        [("g", "consumer", "Stable", "classic"), ("simple", "", "Empty", "classic")]
    assert [g.group_id for g in c.list_groups(["stable"], [])[1]] == ["g"]
    assert [g.group_id for g in c.list_groups(["Empty", "Dead"], ["Classic"])[1]] == ["simple"]
    assert c.list_groups([], ["consumer"]) == (E.NONE, [])

    error, summary = c.describe_group("g")
    assert (error, summary.state, summary.protocol_type, summary.protocol) == (E.NONE, "Stable", "consumer", "range")
    [member] = summary.members
    assert (member.member_id, member.group_instance_id, member.client_id, member.client_host) == \
        (ids["a"], "inst-a", "a", "/127.0.0.1")
    assert (member.metadata, member.assignment) == (subscription("t"), b"a")
    assert c.describe_group("missing") == (E.NONE, type(summary)("Dead", "", ""))
    assert c.describe_group("simple")[1].state == "Empty"

    task = Task(nursery, join, c, client_id="b")
    await settle()
    summary = c.describe_group("g")[1]
    assert summary.state == "PreparingRebalance" and summary.protocol == ""
    assert {(m.metadata, m.assignment) for m in summary.members} == {(b"", b"")}
    c.leave_group("g", [("", "inst-a", None)])
    await task.wait()
