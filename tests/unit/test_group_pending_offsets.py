"""Regular offset commits pending until replicated (Kafka's
GroupMetadata.prepareOffsetCommit, onOffsetCommitAppend and
failPendingOffsetWrite, driven by GroupMetadataManager.storeOffsets's
putCacheCallback): an OffsetCommit's offsets are not seen until its records
are replicated as acks=all asks, so nobody reads an offset a coordinator's
death could lose. Meanwhile OffsetFetch answers the offsets committed before
(UNSTABLE_OFFSET_COMMIT when stable ones are required); a commit that is not
replicated in time is dropped.

Replication is held back on a real log: the group's ``__consumer_offsets``
partition keeps its high watermark, as a leader whose followers have not
fetched, until the test moves it to the log end."""
from __future__ import annotations

import trio

from kafka_compat.group.group import CommitRecord, GroupMetadata, GroupState
from kafka_compat.group.internal_topics import OFFSETS_TOPIC, create_internal_topic
from kafka_compat.group.log_format import OffsetAndMetadata
from kafka_compat.protocol.errors import ErrorCode as E

from test_group_coordinator import Parts, Task, om, parts, stable_group, start, waiting_for_threads  # noqa: F401 (parts: a fixture)

TP, TP1 = ("t", 0), ("t", 1)


def value(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, -1, "", 0)


# -- GroupMetadata ----------------------------------------------------------------------


def test_a_prepared_commit_is_pending_until_its_append_completes():
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    committed, pending = {TP: value(1)}, {TP: value(5), TP1: value(6)}
    group.prepare_offset_commit(committed)
    group.on_offset_commit_append(committed, batch_offset=0)
    group.prepare_offset_commit(pending)
    assert group.offset(TP).offset == 1 and group.offset(TP1) is None
    assert group.has_pending_offset_commits_for(TP) and group.has_pending_offset_commits_for(TP1)
    assert group.partitions_with_offsets() == {TP, TP1}
    group.on_offset_commit_append(pending, batch_offset=1)
    assert group.offsets == {TP: CommitRecord(1, value(5)), TP1: CommitRecord(1, value(6))}
    assert not group.pending_offset_commits


def test_a_failed_commit_leaves_the_committed_offsets():
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    committed, failed = {TP: value(1)}, {TP: value(5), TP1: value(6)}
    group.prepare_offset_commit(committed)
    group.on_offset_commit_append(committed, batch_offset=0)
    group.prepare_offset_commit(failed)
    group.fail_pending_offset_write(failed)
    assert group.offsets == {TP: CommitRecord(0, value(1))} and not group.pending_offset_commits


def test_overlapping_commits_each_complete_and_the_later_record_wins():
    """A second commit of a partition replaces the first one's pending entry:
    the first one completing commits its offset but leaves the partition
    pending for the second; whatever order they complete in, the later
    record is the committed one, and the second failing keeps the first."""
    first, second = {TP: value(5)}, {TP: value(6)}
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    group.prepare_offset_commit(first)
    group.prepare_offset_commit(second)
    group.on_offset_commit_append(first, batch_offset=1)
    assert group.offset(TP).offset == 5 and group.has_pending_offset_commits_for(TP)
    group.on_offset_commit_append(second, batch_offset=2)
    assert group.offset(TP).offset == 6 and not group.has_pending_offset_commits_for(TP)

    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    group.prepare_offset_commit(first)
    group.prepare_offset_commit(second)
    group.on_offset_commit_append(second, batch_offset=2)
    group.on_offset_commit_append(first, batch_offset=1)  # the partition no longer pends: nothing to do
    assert group.offset(TP).offset == 6 and not group.pending_offset_commits

    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    group.prepare_offset_commit(first)
    group.prepare_offset_commit(second)
    group.fail_pending_offset_write(first)  # not the staged one: the second still pends
    assert group.has_pending_offset_commits_for(TP)
    group.on_offset_commit_append(first, batch_offset=1)
    group.fail_pending_offset_write(second)
    assert group.offsets == {TP: CommitRecord(1, value(5))} and not group.pending_offset_commits


def test_equal_commits_in_flight_are_told_apart():
    """Two in-flight commits of equal value: the first one failing does not
    take the second's pending entry (Kafka compares values there, so the
    second, replicated, would not be cached)."""
    first, second = {TP: value(5)}, {TP: value(5)}
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    group.prepare_offset_commit(first)
    group.prepare_offset_commit(second)
    group.fail_pending_offset_write(first)
    group.on_offset_commit_append(second, batch_offset=2)
    assert group.offsets == {TP: CommitRecord(2, value(5))}


def test_which_record_wins_when_pending_regular_and_transactional_commits_mix():
    """The committed offset is the one whose record comes later in the log,
    whichever completes first: a regular commit replicated after a
    transaction committed over it, or before."""
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    group.on_txn_offset_commit_append(7, {TP: value(5)}, batch_offset=10)
    regular = {TP: value(8)}
    group.prepare_offset_commit(regular)  # appended at 12, not replicated yet
    group.complete_pending_txn_offset_commit(7, committed=True)
    assert group.offset(TP).offset == 5 and group.has_pending_offset_commits_for(TP)
    group.on_offset_commit_append(regular, batch_offset=12)
    assert group.offset(TP).offset == 8

    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    regular = {TP: value(8)}
    group.prepare_offset_commit(regular)  # appended at 10, not replicated yet
    group.on_txn_offset_commit_append(7, {TP: value(5)}, batch_offset=12)
    group.complete_pending_txn_offset_commit(7, committed=True)
    group.on_offset_commit_append(regular, batch_offset=10)
    assert group.offset(TP).offset == 5 and not group.pending_offset_commits


def test_removed_while_pending_the_commit_is_not_cached():
    """OffsetDelete or a deleted topic drops the pending commit too: once
    replicated, it does not bring the offset back."""
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    pending = {TP: value(5)}
    group.prepare_offset_commit(pending)
    assert group.remove_offsets([TP]) == {}
    group.on_offset_commit_append(pending, batch_offset=1)
    assert group.offsets == {} and not group.has_offsets


def test_a_pending_commit_keeps_its_group_and_its_committed_offset_from_expiring():
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    committed = {TP: value(1), TP1: value(1)}
    group.prepare_offset_commit(committed)
    group.on_offset_commit_append(committed, batch_offset=0)
    group.prepare_offset_commit({TP: value(2), ("t", 2): value(2)})
    assert set(group.remove_expired_offsets(10**12, 1)) == {TP1}
    assert set(group.offsets) == {TP}
    group.remove_offsets([TP])
    assert group.has_offsets  # ("t", 2) still pends: an Empty group with it does not die


# -- the coordinator ------------------------------------------------------------------------


class HeldReplication:
    """The group's ``__consumer_offsets`` partition as a leader whose followers
    have not fetched: appends wait for a high watermark that stays put until
    ``release``."""

    def __init__(self, parts, c, group: str):
        self.parts = parts
        self.partition = c.manager.partition_for(group)
        self.log = parts.replicas.leader_log(OFFSETS_TOPIC, self.partition)
        self.log.high_watermark_follows_leo = False

    def release(self) -> None:
        self.log.high_watermark_follows_leo = True
        self.log.high_watermark = self.log.log_end_offset
        self.parts.waiters.notify(OFFSETS_TOPIC, self.partition)


def fetched(c, partitions, group="g", require_stable=False):
    error, result = c.fetch_offsets(group, partitions, require_stable)
    assert error == E.NONE
    return {tp: (o.offset, o.error) for tp, o in result.items()}


async def until(condition) -> None:
    """Let other tasks run until ``condition`` holds, without virtual time
    passing (a commit waiting for replication would time out)."""
    for _ in range(1000):
        if condition():
            return
        await trio.sleep(0)
    raise AssertionError("never came true")


async def test_offset_fetch_sees_a_commit_only_once_it_is_replicated(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    assert await c.commit_offsets("g", "", None, -1, {TP: om(1)}) == {TP: E.NONE}
    held = HeldReplication(parts, c, "g")
    commit = Task(nursery, c.commit_offsets, "g", "", None, -1, {TP: om(5), TP1: om(6)})
    await until(lambda: c.manager.get("g").has_pending_offset_commits_for(TP))

    assert fetched(c, [TP, TP1, ("t", 2)], require_stable=True) == {
        TP: (-1, E.UNSTABLE_OFFSET_COMMIT), TP1: (-1, E.UNSTABLE_OFFSET_COMMIT), ("t", 2): (-1, E.NONE)}
    assert fetched(c, [TP, TP1]) == {TP: (1, E.NONE), TP1: (-1, E.NONE)}
    assert fetched(c, None) == {TP: (1, E.NONE)}  # all of the group's partitions: the committed ones
    assert not commit.done.is_set()

    held.release()
    assert await commit.wait() == {TP: E.NONE, TP1: E.NONE}
    assert fetched(c, [TP, TP1], require_stable=True) == {TP: (5, E.NONE), TP1: (6, E.NONE)}


async def test_a_commit_not_replicated_in_time_is_dropped(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    assert await c.commit_offsets("g", "", None, -1, {TP: om(1)}) == {TP: E.NONE}
    HeldReplication(parts, c, "g")
    started = trio.current_time()
    assert await c.commit_offsets("g", "", None, -1, {TP: om(5)}) == {TP: E.REQUEST_TIMED_OUT}
    assert trio.current_time() - started >= parts.config.offsets_commit_timeout_ms / 1000
    assert fetched(c, [TP], require_stable=True) == {TP: (1, E.NONE)}
    assert not c.manager.get("g").pending_offset_commits


async def test_commits_of_members_pend_too(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a")
    held = HeldReplication(parts, c, "g")
    commit = Task(nursery, c.commit_offsets, "g", ids["a"], None, generation, {TP: om(7)})
    await until(lambda: c.manager.get("g").has_pending_offset_commits_for(TP))
    assert fetched(c, [TP], require_stable=True) == {TP: (-1, E.UNSTABLE_OFFSET_COMMIT)}
    assert fetched(c, [TP]) == {TP: (-1, E.NONE)}
    held.release()
    assert await commit.wait() == {TP: E.NONE}
    assert fetched(c, [TP]) == {TP: (7, E.NONE)}


async def test_a_group_unloaded_while_its_commit_pends_is_left_alone(autojump_clock, parts, nursery):
    """Its partition moved away (Kafka's removeGroupsForPartition): the dead
    group's cache is not touched when the append completes; the partition's
    next coordinator (this broker again here) loads the offset from the log."""
    c = await start(parts, nursery)
    held = HeldReplication(parts, c, "g")
    commit = Task(nursery, c.commit_offsets, "g", "", None, -1, {TP: om(5)})
    await until(lambda: c.manager.get("g") is not None and c.manager.get("g").has_pending_offset_commits_for(TP))
    unloaded = c.manager.get("g")
    c.on_resignation(held.partition)
    assert unloaded.is_(GroupState.DEAD) and c.manager.get("g") is None
    held.release()
    await commit.wait()
    assert unloaded.offsets == {}
    c.on_election(held.partition)
    with waiting_for_threads():
        while c.fetch_offsets("g", [TP])[0] == E.COORDINATOR_LOAD_IN_PROGRESS:
            await trio.sleep(0.001)
    assert fetched(c, [TP], require_stable=True) == {TP: (5, E.NONE)}


async def test_a_group_deleted_while_its_commit_pends_stays_deleted(autojump_clock, parts, nursery):
    """DeleteGroups of an Empty group with a commit in flight (Kafka's
    handleDeleteGroups): the group dies at once; the commit, replicated
    later, is answered but not cached."""
    c = await start(parts, nursery)
    assert await c.commit_offsets("simple", "", None, -1, {TP: om(1)}) == {TP: E.NONE}
    held = HeldReplication(parts, c, "simple")
    commit = Task(nursery, c.commit_offsets, "simple", "", None, -1, {TP: om(5)})
    await until(lambda: c.manager.get("simple").has_pending_offset_commits_for(TP))
    deleted = c.manager.get("simple")
    assert c.delete_groups(["simple"]) == {"simple": E.NONE}
    held.release()
    assert await commit.wait() == {TP: E.NONE}
    assert deleted.offsets == {} and c.manager.get("simple") is None
    assert fetched(c, [TP], group="simple") == {TP: (-1, E.NONE)}


async def test_a_group_with_only_a_pending_commit_does_not_expire(autojump_clock, tmp_path, nursery):
    parts = Parts(tmp_path / "data", **{"offsets.commit.timeout.ms": 10**9})
    await create_internal_topic(parts, OFFSETS_TOPIC)
    c = await start(parts, nursery)
    held = HeldReplication(parts, c, "simple")
    commit = Task(nursery, c.commit_offsets, "simple", "", None, -1, {TP: om(5)})
    await until(lambda: c.manager.get("simple") is not None)
    assert c.manager.expire_offsets() == 0 and c.manager.get("simple") is not None
    held.release()
    assert await commit.wait() == {TP: E.NONE}
    assert fetched(c, [TP], group="simple") == {TP: (5, E.NONE)}
    await parts.close()


async def test_a_commit_whose_request_is_cancelled_still_completes(autojump_clock, parts, nursery):
    """The client's connection closes while its commit waits: the append
    completes all the same (as Kafka's delayed produce does, whatever became
    of the request), so the partition does not stay pending for good."""
    c = await start(parts, nursery)
    held = HeldReplication(parts, c, "g")
    scope = trio.CancelScope()

    async def request():
        with scope:
            await c.commit_offsets("g", "", None, -1, {TP: om(5)})

    nursery.start_soon(request)
    await until(lambda: c.manager.get("g") is not None and c.manager.get("g").has_pending_offset_commits_for(TP))
    scope.cancel()
    for _ in range(10):
        await trio.sleep(0)
    assert fetched(c, [TP], require_stable=True) == {TP: (-1, E.UNSTABLE_OFFSET_COMMIT)}
    held.release()
    await until(lambda: not c.manager.get("g").has_pending_offset_commits_for(TP))
    assert fetched(c, [TP], require_stable=True) == {TP: (5, E.NONE)}


async def test_a_commit_waiting_at_shutdown_is_answered_at_once(autojump_clock, parts, nursery):
    """The broker shuts down (its append waiters are woken for good): the
    commit stops waiting for followers then, not after
    offsets.commit.timeout.ms, and is dropped."""
    c = await start(parts, nursery)
    HeldReplication(parts, c, "g")
    commit = Task(nursery, c.commit_offsets, "g", "", None, -1, {TP: om(5)})
    await until(lambda: c.manager.get("g") is not None and c.manager.get("g").has_pending_offset_commits_for(TP))
    started = trio.current_time()
    parts.waiters.wake_all()
    assert await commit.wait() == {TP: E.REQUEST_TIMED_OUT}
    assert trio.current_time() == started
    assert fetched(c, [TP], require_stable=True) == {TP: (-1, E.NONE)}
