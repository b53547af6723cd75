"""Transactional offset commits in the group coordinator (Kafka's
GroupMetadata pending transactional offsets, GroupMetadataManager.storeOffsets
with a producer id, handleTxnCompletion and the loading of transactional
batches and markers): pending until the producer's marker, then committed or
gone, and rebuilt the same way from ``__consumer_offsets`` after a restart."""
from __future__ import annotations

import trio

from kafka_compat.group.coordinator import GroupCoordinator
from kafka_compat.group.group import CommitRecord, GroupMetadata, GroupState
from kafka_compat.group.internal_topics import OFFSETS_TOPIC, create_internal_topic
from kafka_compat.group.loader import LoadedPartition
from kafka_compat.group.log_format import OffsetAndMetadata, offset_key, offset_value
from kafka_compat.group.offsets_log import commit_error
from kafka_compat.log import replay
from kafka_compat.protocol.errors import ErrorCode as E
from kafka_compat.protocol.records import NO_PRODUCER_ID, ControlType, build_batch, build_control_batch, iter_batches

from test_group_coordinator import Parts, WallClock, om, parts, stable_group, start, waiting_for_threads  # noqa: F401 (parts: a fixture)

PID, EPOCH = 4000, 0
TP = ("t", 0)


def end_txn(c, group_id: str, producer_id: int, commit: bool) -> None:
    """What a partition leader does once it wrote the producer's marker to the
    group's ``__consumer_offsets`` partition (the marker itself is the log's)."""
    c.complete_txn_offsets(c.manager.partition_for(group_id), producer_id, commit)


def write_marker(parts, c, group_id: str, producer_id: int, commit: bool) -> None:
    """The producer's marker in the group's ``__consumer_offsets`` partition, as
    its leader writes one for WriteTxnMarkers."""
    partition = c.manager.partition_for(group_id)
    parts.replicas.leader_log(OFFSETS_TOPIC, partition).append_marker(producer_id, EPOCH, commit, 0, 0)


async def txn_commit(c, offsets, group="g", producer_id=PID, member="", generation=-1, instance=None, epoch=EPOCH):
    return await c.commit_txn_offsets(group, None, producer_id, epoch, member, instance, generation, offsets)


def fetched(c, partitions, group="g", require_stable=False):
    error, result = c.fetch_offsets(group, partitions, require_stable)
    assert error == E.NONE
    return {tp: (o.offset, o.error) for tp, o in result.items()}


# -- GroupMetadata ----------------------------------------------------------------------


def value(offset: int) -> OffsetAndMetadata:
    return OffsetAndMetadata(offset, -1, "", 0)


def regular_commit(group: GroupMetadata, offsets, batch_offset: int) -> None:
    """An OffsetCommit appended at ``batch_offset`` and replicated."""
    group.prepare_offset_commit(offsets)
    group.on_offset_commit_append(offsets, batch_offset)


def test_pending_offsets_are_committed_or_dropped_with_their_transaction():
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    group.on_txn_offset_commit_append(1, {TP: value(5)}, batch_offset=10)
    group.on_txn_offset_commit_append(2, {TP: value(6), ("t", 1): value(7)}, batch_offset=11)
    assert group.offset(TP) is None and group.has_offsets
    assert group.has_pending_offset_commits_for(TP) and group.has_pending_offset_commits_from_producer(2)
    group.complete_pending_txn_offset_commit(2, committed=False)
    assert group.offsets == {} and not group.has_pending_offset_commits_for(("t", 1))
    group.complete_pending_txn_offset_commit(1, committed=True)
    assert group.offsets == {TP: CommitRecord(10, value(5))}
    assert not group.pending_txn_offsets


def test_a_later_regular_commit_wins_over_a_transaction_committed_after_it():
    """The committed offset is the one whose record comes last in the log,
    whatever order the marker comes in."""
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    group.on_txn_offset_commit_append(1, {TP: value(5), ("t", 1): value(6)}, batch_offset=10)
    regular_commit(group, {TP: value(8)}, batch_offset=12)
    group.complete_pending_txn_offset_commit(1, committed=True)
    assert (group.offset(TP).offset, group.offset(("t", 1)).offset) == (8, 6)
    assert not group.has_consistent_offset_commits


def test_removing_offsets_drops_pending_ones_expiry_does_not():
    group = GroupMetadata("g", GroupState.EMPTY, lambda: 0)
    regular_commit(group, {TP: value(1), ("t", 1): value(1)}, batch_offset=1)
    group.on_txn_offset_commit_append(1, {TP: value(2), ("t", 1): value(2), ("t", 2): value(2)}, batch_offset=2)
    assert set(group.remove_expired_offsets(10**12, 1)) == {TP, ("t", 1)}
    assert set(group.pending_txn_offsets[1]) == {TP, ("t", 1), ("t", 2)}
    assert group.remove_offsets([TP, ("t", 2)]) == {}
    assert set(group.pending_txn_offsets[1]) == {("t", 1)}
    assert group.has_offsets


# -- the coordinator ----------------------------------------------------------------------


async def test_txn_offsets_stay_pending_until_the_commit_marker(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    await c.commit_offsets("g", "", None, -1, {TP: om(1)})
    assert await txn_commit(c, {TP: om(5), ("t", 1): om(6)}) == {TP: E.NONE, ("t", 1): E.NONE}
    assert fetched(c, [TP, ("t", 1)]) == {TP: (1, E.NONE), ("t", 1): (-1, E.NONE)}
    assert fetched(c, [TP, ("t", 1), ("t", 2)], require_stable=True) == {
        TP: (-1, E.UNSTABLE_OFFSET_COMMIT), ("t", 1): (-1, E.UNSTABLE_OFFSET_COMMIT), ("t", 2): (-1, E.NONE)}
    # All of a group's partitions are the committed ones.
    assert fetched(c, None, require_stable=True) == {TP: (-1, E.UNSTABLE_OFFSET_COMMIT)}

    end_txn(c, "g", PID, commit=True)
    assert fetched(c, [TP, ("t", 1)], require_stable=True) == {TP: (5, E.NONE), ("t", 1): (6, E.NONE)}
    assert c.manager.producer_groups == {}


async def test_aborted_txn_offsets_vanish(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    await c.commit_offsets("g", "", None, -1, {TP: om(1)})
    await txn_commit(c, {TP: om(5)})
    end_txn(c, "g", PID, commit=False)
    assert fetched(c, [TP], require_stable=True) == {TP: (1, E.NONE)}


async def test_a_marker_completes_only_its_producer_in_its_partition(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    groups = ["g", "h", "i", "j"]
    elsewhere = next(g for g in groups if c.manager.partition_for(g) != c.manager.partition_for("g"))
    await txn_commit(c, {TP: om(5)})
    await txn_commit(c, {TP: om(6)}, group=elsewhere)
    await txn_commit(c, {("t", 1): om(7)}, producer_id=PID + 1)
    end_txn(c, "g", PID, commit=True)
    assert fetched(c, [TP, ("t", 1)], require_stable=True) == {TP: (5, E.NONE), ("t", 1): (-1, E.UNSTABLE_OFFSET_COMMIT)}
    assert fetched(c, [TP], group=elsewhere, require_stable=True) == {TP: (-1, E.UNSTABLE_OFFSET_COMMIT)}


async def test_member_checks_from_v3(autojump_clock, parts, nursery):
    """KIP-447: a member's generation and id are checked as an OffsetCommit's;
    without them (before v3) any producer may commit for a group with members."""
    c = await start(parts, nursery)
    ids, generation = await stable_group(c, nursery, "a", "b", instances={"b": "inst-b"})
    assert await txn_commit(c, {TP: om(1)}) == {TP: E.NONE}
    assert await txn_commit(c, {TP: om(1)}, member=ids["a"], generation=generation + 1) == {TP: E.ILLEGAL_GENERATION}
    assert await txn_commit(c, {TP: om(1)}, member="other", generation=generation) == {TP: E.UNKNOWN_MEMBER_ID}
    assert await txn_commit(c, {TP: om(1)}, member="", generation=-1, instance="inst-b") == {TP: E.FENCED_INSTANCE_ID}
    assert await txn_commit(c, {TP: om(1)}, member=ids["b"], generation=generation, instance="nobody") == \
        {TP: E.UNKNOWN_MEMBER_ID}
    assert await txn_commit(c, {TP: om(2)}, member=ids["b"], generation=generation, instance="inst-b",
                      producer_id=PID + 1) == {TP: E.NONE}
    # A group this coordinator doesn't know is created, and knows no members.
    assert await txn_commit(c, {TP: om(1)}, group="new", member="m", generation=3) == {TP: E.UNKNOWN_MEMBER_ID}
    assert c.manager.get("new").is_(GroupState.EMPTY)
    # Group id checks come first.
    assert await txn_commit(c, {TP: om(1)}, group="") == {TP: E.INVALID_GROUP_ID}


async def test_group_with_only_pending_offsets(autojump_clock, parts, nursery):
    """It lives (expiry leaves it), DeleteGroups deletes it, and its producer's
    marker then finds nothing to complete."""
    clock = WallClock()
    c = await start(parts, nursery, clock)
    await txn_commit(c, {TP: om(5)})
    clock.now += 10**12
    assert c.manager.expire_offsets() == 0
    assert c.manager.get("g") is not None
    assert c.delete_groups(["g"]) == {"g": E.NONE}
    assert c.manager.get("g") is None
    end_txn(c, "g", PID, commit=True)
    assert fetched(c, [TP], require_stable=True) == {TP: (-1, E.NONE)}


async def test_offset_delete_and_topic_deletion_drop_pending_offsets(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    await txn_commit(c, {TP: om(5), ("u", 0): om(6)})
    assert c.delete_offsets("g", [TP]) == (E.NONE, {TP: E.NONE})
    assert fetched(c, [TP], require_stable=True) == {TP: (-1, E.NONE)}
    c.on_topic_deleted("u")
    assert fetched(c, [("u", 0)], require_stable=True) == {("u", 0): (-1, E.NONE)}
    # As in Kafka, the producer's transaction still counts as the group's
    # offsets (an empty entry) until its marker; then the group can go.
    assert c.manager.get("g") is not None
    end_txn(c, "g", PID, commit=True)
    c.manager.expire_offsets()
    assert c.manager.get("g") is None


# -- loading ------------------------------------------------------------------------------


class Log:
    """Batches of a ``__consumer_offsets`` partition, at consecutive offsets."""

    def __init__(self):
        self.data = bytearray()
        self.next_offset = 0

    def _add(self, batch: bytes, count: int) -> None:
        self.data += batch
        self.next_offset += count

    def commit(self, offsets: dict, group: str = "g", producer_id: int = NO_PRODUCER_ID) -> None:
        records = [(offset_key(group, *tp), None if o is None else offset_value(value(o)), [], 0)
                   for tp, o in offsets.items()]
        transactional = producer_id != NO_PRODUCER_ID
        self._add(build_batch(records, base_offset=self.next_offset, producer_id=producer_id, producer_epoch=0,
                              base_sequence=0 if transactional else -1, transactional=transactional), len(records))

    def marker(self, producer_id: int, commit: bool) -> None:
        self._add(build_control_batch(ControlType.COMMIT if commit else ControlType.ABORT, producer_id=producer_id,
                                      producer_epoch=0, coordinator_epoch=0, timestamp_ms=0,
                                      base_offset=self.next_offset), 1)

    def load(self) -> LoadedPartition:
        loaded = LoadedPartition()
        for batch in iter_batches(self.data):
            loaded.apply(batch)
        return loaded


def committed(loaded: LoadedPartition, group: str = "g") -> dict:
    return {tp: record.value.offset for tp, record in loaded.offsets.get(group, {}).items()}


def test_loading_resolves_transactions_by_their_markers():
    log = Log()
    log.commit({TP: 1, ("t", 1): 1})
    log.commit({TP: 5, ("t", 2): 5}, producer_id=1)
    log.commit({TP: 6, ("t", 1): 6}, producer_id=2)
    log.commit({("t", 3): 7}, group="h", producer_id=1)
    log.marker(2, commit=False)
    log.marker(1, commit=True)
    loaded = log.load()
    assert committed(loaded) == {TP: 5, ("t", 1): 1, ("t", 2): 5}
    assert committed(loaded, "h") == {("t", 3): 7}
    assert loaded.pending_by_group() == {}


def test_a_transaction_open_at_the_end_stays_pending():
    log = Log()
    log.commit({TP: 1})
    log.commit({TP: 5, ("t", 1): 5}, producer_id=1)
    log.commit({("t", 1): None}, producer_id=1)  # a tombstone in the transaction
    log.commit({TP: 9}, group="only-pending", producer_id=1)
    loaded = log.load()
    assert committed(loaded) == {TP: 1}
    pending = loaded.pending_by_group()
    assert {g: {pid: {tp: r.value.offset for tp, r in o.items()} for pid, o in p.items()}
            for g, p in pending.items()} == {"g": {1: {TP: 5}}, "only-pending": {1: {TP: 9}}}


def test_the_later_record_wins_when_a_transaction_commits_after_a_regular_commit():
    log = Log()
    log.commit({TP: 5, ("t", 1): 5}, producer_id=1)
    log.commit({TP: 8})
    log.marker(1, commit=True)
    assert committed(log.load()) == {TP: 8, ("t", 1): 5}


async def test_pending_offsets_survive_a_restart_and_complete_after_it(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    await c.commit_offsets("g", "", None, -1, {TP: om(1)})
    await txn_commit(c, {TP: om(5)})
    await txn_commit(c, {TP: om(9)}, group="only-pending", producer_id=PID + 1)
    c.running.stop()

    reloaded = await start(parts, nursery)
    assert fetched(reloaded, [TP]) == {TP: (1, E.NONE)}
    assert fetched(reloaded, [TP], require_stable=True) == {TP: (-1, E.UNSTABLE_OFFSET_COMMIT)}
    assert fetched(reloaded, [TP], group="only-pending", require_stable=True) == {TP: (-1, E.UNSTABLE_OFFSET_COMMIT)}
    assert reloaded.manager.get("only-pending").is_(GroupState.EMPTY)
    end_txn(reloaded, "g", PID, commit=True)
    end_txn(reloaded, "only-pending", PID + 1, commit=False)
    assert fetched(reloaded, [TP], require_stable=True) == {TP: (5, E.NONE)}
    assert fetched(reloaded, [TP], group="only-pending", require_stable=True) == {TP: (-1, E.NONE)}


async def test_a_producer_commits_offsets_in_transaction_after_transaction(autojump_clock, parts, nursery):
    """Kafka writes every TxnOffsetCommit batch with base sequence 0 and appends
    it as the coordinator (no duplicate or sequence checks), so one producer
    epoch can commit offsets again and again."""
    c = await start(parts, nursery)
    for offset in range(1, 4):
        assert await txn_commit(c, {TP: om(offset)}) == {TP: E.NONE}
        assert await txn_commit(c, {TP: om(offset * 10)}) == {TP: E.NONE}  # twice within one transaction
        write_marker(parts, c, "g", PID, commit=True)
        end_txn(c, "g", PID, commit=True)
        assert fetched(c, [TP], require_stable=True) == {TP: (offset * 10, E.NONE)}


async def test_a_fenced_producer_epoch_cannot_commit_offsets(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    assert await txn_commit(c, {TP: om(1)}, epoch=EPOCH + 1) == {TP: E.NONE}
    assert await txn_commit(c, {TP: om(2)}) == {TP: E.INVALID_PRODUCER_EPOCH}
    end_txn(c, "g", PID, commit=True)
    assert fetched(c, [TP], require_stable=True) == {TP: (1, E.NONE)}


async def test_markers_in_the_log_decide_pending_offsets_after_a_restart(autojump_clock, parts, nursery):
    c = await start(parts, nursery)
    await c.commit_offsets("g", "", None, -1, {TP: om(1), ("t", 1): om(1)})
    await txn_commit(c, {TP: om(5)})
    await txn_commit(c, {("t", 1): om(6)}, producer_id=PID + 1)
    await txn_commit(c, {("t", 2): om(7)}, producer_id=PID + 2)
    write_marker(parts, c, "g", PID, commit=True)
    write_marker(parts, c, "g", PID + 1, commit=False)
    c.running.stop()  # before the coordinator heard of the markers

    reloaded = await start(parts, nursery)
    assert fetched(reloaded, [TP, ("t", 1), ("t", 2)], require_stable=True) == {
        TP: (5, E.NONE), ("t", 1): (1, E.NONE), ("t", 2): (-1, E.UNSTABLE_OFFSET_COMMIT)}
    write_marker(parts, reloaded, "g", PID + 2, commit=True)
    end_txn(reloaded, "g", PID + 2, commit=True)
    assert fetched(reloaded, [("t", 2)], require_stable=True) == {("t", 2): (7, E.NONE)}


def test_append_and_verification_errors_as_a_commit_answers_them():
    """Kafka's maybeConvertOffsetCommitError."""
    assert [commit_error(e) for e in (E.NETWORK_EXCEPTION, E.NOT_ENOUGH_REPLICAS, E.NOT_LEADER_OR_FOLLOWER,
                                      E.RECORD_LIST_TOO_LARGE, E.INVALID_PRODUCER_EPOCH)] == \
        [E.COORDINATOR_LOAD_IN_PROGRESS, E.COORDINATOR_NOT_AVAILABLE, E.NOT_COORDINATOR,
         E.INVALID_COMMIT_OFFSET_SIZE, E.INVALID_PRODUCER_EPOCH]


async def test_unloading_a_partition_forgets_its_groups_pending_offsets(autojump_clock, parts, nursery):
    """Another broker leads the partition now: it loads the outcome from the
    log; a marker reaching this one finds nothing to complete here."""
    c = await start(parts, nursery)
    await txn_commit(c, {TP: om(5)})
    c.on_resignation(c.manager.partition_for("g"))
    assert c.manager.producer_groups == {} and c.manager.get("g") is None
    end_txn(c, "g", PID, commit=True)
    # Leading it again (alone here, this broker never stopped), it loads the
    # partition: no marker in the log, so the offsets are pending again.
    with waiting_for_threads():
        while c.fetch_offsets("g", [TP])[0] == E.COORDINATOR_LOAD_IN_PROGRESS:
            await trio.sleep(0.001)
    assert fetched(c, [TP], require_stable=True) == {TP: (-1, E.UNSTABLE_OFFSET_COMMIT)}
    assert c.manager.producer_groups == {PID: {"g"}}


async def test_a_marker_written_while_the_partition_loads_is_read(autojump_clock, tmp_path, nursery, monkeypatch):
    """Its completion comes before the group is loaded and finds nothing: the
    loader reads on to the log's end as it is then, so the marker decides."""
    monkeypatch.setattr(replay, "INLINE_BYTES", 0)  # a large partition: chunks in worker threads
    parts = Parts(tmp_path / "data", **{"offsets.load.buffer.size": 1})  # one batch a chunk
    await create_internal_topic(parts, OFFSETS_TOPIC)
    c = await start(parts, nursery)
    await c.commit_offsets("g", "", None, -1, {TP: om(1)})
    await txn_commit(c, {TP: om(5)})
    c.running.stop()

    partition_log = parts.replicas.leader_log(OFFSETS_TOPIC, GroupCoordinator(parts).manager.partition_for("g"))
    read = partition_log.read

    def read_then_end_txn(*args, **kwargs):
        chunk = read(*args, **kwargs)
        if partition_log.read is read_then_end_txn:
            del partition_log.read  # once: the marker lands after the first chunk was read
            partition_log.append_marker(PID, EPOCH, True, 0, 0)
            end_txn(loading, "g", PID, commit=True)
        return chunk

    loading = GroupCoordinator(parts, WallClock())
    partition_log.read = read_then_end_txn
    with waiting_for_threads():
        async with trio.open_nursery() as inner:
            inner.start_soon(loading.run)
            while loading.manager.loading:
                await trio.sleep(0.001)
            assert "read" not in vars(partition_log)  # the marker came while loading
            assert fetched(loading, [TP], require_stable=True) == {TP: (5, E.NONE)}
            loading.shutdown()
            inner.cancel_scope.cancel()
    await parts.close()
