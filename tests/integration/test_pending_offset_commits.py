"""An OffsetCommit's offsets on the wire while its records wait for
replication (Kafka's pending offset commits, GroupMetadataManager.storeOffsets
and getOffsets): OffsetFetch with require_stable answers
UNSTABLE_OFFSET_COMMIT for its partitions, without it the offsets committed
before; once replicated, the commit is answered and its offsets are the
committed ones. Replication is held back on the broker's own log: the group's
``__consumer_offsets`` partition keeps its high watermark, as a leader whose
followers have not fetched, until the test moves it to the log end."""
from __future__ import annotations

import pytest
import trio

from kafka_compat.group.internal_topics import OFFSETS_TOPIC
from kafka_compat.group.partitioner import partition_for
from kafka_compat.protocol.errors import ErrorCode as E

from .test_groups import OFFSETS_PARTITIONS, commit, create_topic, group_config, offsets_of, ready

T0, T1 = ("t", 0), ("t", 1)


@pytest.fixture
def broker_config(tmp_path):
    return group_config(tmp_path / "data", offsets_commit_timeout_ms=60_000)


async def fetch(client, group: str, partitions, require_stable: bool, version: int = 7):
    topics = [{"name": "t", "partition_indexes": [p for _, p in partitions]}]
    resp = await client.request("OffsetFetch", version, {"group_id": group, "topics": topics,
                                                         "require_stable": require_stable})
    assert resp.error_code == E.NONE
    return {tp: (offset, error) for tp, (offset, _, error) in offsets_of(resp).items()}


async def fetch_v8(client, group: str, partitions, require_stable: bool):
    resp = await client.request("OffsetFetch", 8, {"groups": [
        {"group_id": group, "topics": [{"name": "t", "partition_indexes": [p for _, p in partitions]}]}],
        "require_stable": require_stable})
    (g,) = resp.groups
    assert g.error_code == E.NONE
    return {(t.name, p.partition_index): (p.committed_offset, p.error_code) for t in g.topics for p in t.partitions}


async def test_a_commit_waiting_for_replication_is_unstable_then_committed(broker):
    client, other = await broker.client(), await broker.client()
    await create_topic(client, "t", partitions=3)
    await ready(client, "pending")
    assert await commit(client, {T0: 1}, group="pending") == {T0: E.NONE}

    offsets_log = broker.broker.logs.get(OFFSETS_TOPIC, partition_for("pending", OFFSETS_PARTITIONS))
    offsets_log.high_watermark_follows_leo = False
    answer = {}

    async def commit_in_background():
        answer.update(await commit(client, {T0: 5, T1: 6}, group="pending"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(commit_in_background)
        with trio.fail_after(10):
            while (await fetch(other, "pending", [T0], True))[T0][1] != E.UNSTABLE_OFFSET_COMMIT:
                await trio.sleep(0.01)
        assert await fetch(other, "pending", [T0, T1, ("t", 2)], True) == {
            T0: (-1, E.UNSTABLE_OFFSET_COMMIT), T1: (-1, E.UNSTABLE_OFFSET_COMMIT), ("t", 2): (-1, E.NONE)}
        assert await fetch(other, "pending", [T0, T1], False) == {T0: (1, E.NONE), T1: (-1, E.NONE)}
        assert await fetch_v8(other, "pending", [T0, T1], True) == {
            T0: (-1, E.UNSTABLE_OFFSET_COMMIT), T1: (-1, E.UNSTABLE_OFFSET_COMMIT)}
        assert await fetch_v8(other, "pending", [T0, T1], False) == {T0: (1, E.NONE), T1: (-1, E.NONE)}
        # Before require_stable existed (v6 and older) the committed offsets are all there is.
        assert await fetch(other, "pending", [T0, T1], False, version=6) == {T0: (1, E.NONE), T1: (-1, E.NONE)}
        assert answer == {}

        offsets_log.high_watermark_follows_leo = True
        offsets_log.high_watermark = offsets_log.log_end_offset
        broker.broker.waiters.notify(OFFSETS_TOPIC, offsets_log.partition)
    assert answer == {T0: E.NONE, T1: E.NONE}
    assert await fetch(other, "pending", [T0, T1], True) == {T0: (5, E.NONE), T1: (6, E.NONE)}


async def test_a_commit_with_too_few_in_sync_replicas_is_refused_before_it_is_written(tmp_path, nursery):
    """min.insync.replicas above the ISR of the group's __consumer_offsets
    partition (here 2, on a single broker): the commit is answered
    COORDINATOR_NOT_AVAILABLE (Kafka's NOT_ENOUGH_REPLICAS for a coordinator
    append) and nothing reaches the log, so no reload can bring it back."""
    from .conftest import start_broker

    broker, client = await start_broker(group_config(tmp_path / "data", min_insync_replicas=2), nursery)
    await create_topic(client, "t", partitions=1)
    await ready(client, "too-few")
    offsets_log = broker.logs.get(OFFSETS_TOPIC, partition_for("too-few", OFFSETS_PARTITIONS))
    end = offsets_log.log_end_offset
    assert await commit(client, {T0: 5}, group="too-few") == {T0: E.COORDINATOR_NOT_AVAILABLE}
    assert offsets_log.log_end_offset == end
    assert await fetch(client, "too-few", [T0], True) == {T0: (-1, E.NONE)}
    await client.aclose()
    broker.shutdown()
