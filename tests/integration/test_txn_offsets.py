"""TxnOffsetCommit over the wire, every version, and what OffsetFetch answers
for offsets pending in a transaction (require_stable, v7+); with KIP-890
verification, only a transaction that added the group (AddOffsetsToTxn) may
write its offsets."""
from __future__ import annotations

import pytest
import trio

from kafka_compat.group.internal_topics import OFFSETS_TOPIC
from kafka_compat.group.partitioner import partition_for
from kafka_compat.protocol.errors import ErrorCode as E

from .conftest import start_broker
from .test_groups import (OFFSETS_PARTITIONS, assignment, create_topic, fetch_offsets, group_config, join_v5,
                          offsets_of, ready, sync)

EPOCH = 0


@pytest.fixture
def broker_config(tmp_path):
    """Raw requests with made-up producer ids: no transaction coordinator
    verifies them (KIP-890) unless a test turns verification on."""
    return group_config(tmp_path / "data", transaction_partition_verification_enable="false")


async def txn_commit(client, offsets: dict, producer_id: int, group="g", version=4, generation=-1, member_id="",
                     instance=None, transactional_id="txn") -> dict:
    """TxnOffsetCommit {(topic, partition): offset}; the errors by partition."""
    topics = {}
    for (topic, partition), offset in offsets.items():
        topics.setdefault(topic, []).append({"partition_index": partition, "committed_offset": offset,
                                             "committed_leader_epoch": 3, "committed_metadata": f"m{offset}"})
    resp = await client.request("TxnOffsetCommit", version, {
        "transactional_id": transactional_id, "group_id": group, "producer_id": producer_id,
        "producer_epoch": EPOCH, "generation_id": generation, "member_id": member_id,
        "group_instance_id": instance, "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]})
    return {(t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions}


async def fetch(client, group, partitions, version=7, require_stable=True) -> dict:
    by_topic = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    topics = [{"name": t, "partition_indexes": ps} for t, ps in by_topic.items()]
    if version >= 8:
        resp = await client.request("OffsetFetch", version, {"groups": [{"group_id": group, "topics": topics}],
                                                             "require_stable": require_stable})
        (answer,) = resp.groups
        assert answer.error_code == E.NONE
        return offsets_of(answer)
    resp = await client.request("OffsetFetch", version, {"group_id": group, "topics": topics,
                                                         "require_stable": require_stable})
    return offsets_of(resp)


def end_txn(broker, group: str, producer_id: int, commit: bool) -> None:
    """What the partition leader does once the producer's marker is written to
    the group's ``__consumer_offsets`` partition."""
    groups = broker.broker.groups
    groups.complete_txn_offsets(groups.manager.partition_for(group), producer_id, commit)


async def write_marker(client, group: str, producer_id: int, commit: bool) -> int:
    """WriteTxnMarkers, as the transaction coordinator sends it, to the
    group's ``__consumer_offsets`` partition; its error."""
    partition = partition_for(group, OFFSETS_PARTITIONS)
    resp = await client.request("WriteTxnMarkers", 1, {"markers": [{
        "producer_id": producer_id, "producer_epoch": EPOCH, "transaction_result": commit, "coordinator_epoch": 0,
        "topics": [{"name": OFFSETS_TOPIC, "partition_indexes": [partition]}]}]})
    return resp.markers[0].topics[0].partitions[0].error_code


async def test_write_txn_markers_commit_or_drop_pending_offsets(broker):
    client = await broker.client()
    await create_topic(client, "t", partitions=2)
    await ready(client)
    await txn_commit(client, {("t", 0): 5, ("t", 1): 6}, 50)
    await txn_commit(client, {("t", 0): 7}, 51)
    assert await write_marker(client, "g", 51, commit=False) == E.NONE
    assert await fetch(client, "g", [("t", 0), ("t", 1)]) == {("t", 0): (-1, "", E.UNSTABLE_OFFSET_COMMIT),
                                                               ("t", 1): (-1, "", E.UNSTABLE_OFFSET_COMMIT)}
    assert await write_marker(client, "g", 50, commit=True) == E.NONE
    assert await fetch(client, "g", [("t", 0), ("t", 1)]) == {("t", 0): (5, "m5", E.NONE), ("t", 1): (6, "m6", E.NONE)}


async def test_every_version_commits_pending_offsets(broker):
    client = await broker.client()
    await create_topic(client, "t", partitions=2)
    await ready(client)
    for version in range(5):
        group, producer_id = f"g{version}", 100 + version
        errors = await txn_commit(client, {("t", 0): 5, ("t", 1): 6, ("t", 2): 7, ("nope", 0): 8}, producer_id,
                                  group=group, version=version)
        assert errors == {("t", 0): E.NONE, ("t", 1): E.NONE, ("t", 2): E.UNKNOWN_TOPIC_OR_PARTITION,
                          ("nope", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
        assert await fetch(client, group, [("t", 0)]) == {("t", 0): (-1, "", E.UNSTABLE_OFFSET_COMMIT)}
        end_txn(broker, group, producer_id, commit=True)
        assert await fetch(client, group, [("t", 0), ("t", 1)]) == {("t", 0): (5, "m5", E.NONE),
                                                                     ("t", 1): (6, "m6", E.NONE)}
    resp = await fetch_offsets(client, "g2", [("t", 0)], version=7)
    assert resp.topics[0].partitions[0].committed_leader_epoch == 3


async def test_offset_fetch_versions_and_require_stable(broker):
    client = await broker.client()
    await create_topic(client, "t")
    await ready(client)
    await txn_commit(client, {("t", 0): 5}, 200)
    end_txn(broker, "g", 200, commit=True)
    await txn_commit(client, {("t", 0): 9}, 201)
    # Without require_stable (and before v7, which can't ask) the committed offset.
    for version in range(1, 10):
        assert await fetch(client, "g", [("t", 0)], version, require_stable=False) == {("t", 0): (5, "m5", E.NONE)}
    for version in (7, 8, 9):
        assert await fetch(client, "g", [("t", 0)], version) == {("t", 0): (-1, "", E.UNSTABLE_OFFSET_COMMIT)}
    end_txn(broker, "g", 201, commit=False)
    assert await fetch(client, "g", [("t", 0)], 8) == {("t", 0): (5, "m5", E.NONE)}


async def test_member_checks_from_v3(broker):
    """KIP-447: a consumer group's generation and member travel with the
    transaction's offsets and are checked as an OffsetCommit's."""
    client = await broker.client()
    await create_topic(client, "t")
    await ready(client)
    joined = await join_v5(client, instance="inst")
    await sync(client, 1, joined.member_id, {joined.member_id: assignment("t", 0)}, instance="inst")
    tp = ("t", 0)
    assert await txn_commit(client, {tp: 1}, 300, generation=2, member_id=joined.member_id) == \
        {tp: E.ILLEGAL_GENERATION}
    assert await txn_commit(client, {tp: 1}, 300, generation=1, member_id="other") == {tp: E.UNKNOWN_MEMBER_ID}
    assert await txn_commit(client, {tp: 1}, 300, generation=1, member_id="other", instance="inst") == \
        {tp: E.FENCED_INSTANCE_ID}
    assert await txn_commit(client, {tp: 1}, 300, version=2) == {tp: E.NONE}  # no member before v3
    assert await txn_commit(client, {tp: 2}, 301, generation=1, member_id=joined.member_id, instance="inst") == \
        {tp: E.NONE}
    assert await txn_commit(client, {tp: 1}, 302, group="") == {tp: E.INVALID_GROUP_ID}


async def test_clients_before_v2_are_told_coordinator_not_available_while_loading(broker):
    """Kafka's KAFKA-7296 workaround: 0.11-2.0 producers don't expect
    COORDINATOR_LOAD_IN_PROGRESS from TxnOffsetCommit."""
    client = await broker.client()
    await create_topic(client, "t")
    await ready(client)
    manager = broker.broker.groups.manager
    partition = manager.partition_for("g")
    manager.owned.discard(partition)
    manager.loading.add(partition)  # as while the partition is read back
    try:
        for version in range(5):
            expected = E.COORDINATOR_NOT_AVAILABLE if version < 2 else E.COORDINATOR_LOAD_IN_PROGRESS
            assert await txn_commit(client, {("t", 0): 1}, 400, version=version) == {("t", 0): expected}
    finally:
        manager.loading.discard(partition)
        manager.owned.add(partition)


async def until_answered(client, api: str, version: int, body: dict):
    with trio.fail_after(10):
        while True:
            resp = await client.request(api, version, body)
            if resp.error_code not in (E.COORDINATOR_NOT_AVAILABLE, E.COORDINATOR_LOAD_IN_PROGRESS,
                                       E.NOT_COORDINATOR, E.CONCURRENT_TRANSACTIONS):
                return resp
            await trio.sleep(0.01)


async def test_verified_transactions_only(tmp_path, nursery):
    """KIP-890 part 1 (transaction.partition.verification.enable, Kafka's
    default): the group's partition must be in the producer's transaction,
    checked before the member checks, as handleTxnCommitOffsets does."""
    broker, client = await start_broker(group_config(tmp_path / "data"), nursery)
    try:
        await create_topic(client, "t")
        await ready(client)
        await until_answered(client, "FindCoordinator", 3, {"key": "tx", "key_type": 1})
        init = await until_answered(client, "InitProducerId", 4, {
            "transactional_id": "tx", "transaction_timeout_ms": 60_000, "producer_id": -1, "producer_epoch": -1})
        pid, epoch = init.producer_id, init.producer_epoch
        assert epoch == EPOCH
        tp = ("t", 0)
        # Not in a transaction with the group: TRANSACTION_ABORTABLE from v4, INVALID_TXN_STATE before.
        assert await txn_commit(client, {tp: 1}, pid, transactional_id="tx") == {tp: E.TRANSACTION_ABORTABLE}
        assert await txn_commit(client, {tp: 1}, pid, transactional_id="tx", version=3) == \
            {tp: E.INVALID_TXN_STATE}
        # Verification comes before the member checks.
        assert await txn_commit(client, {tp: 1}, pid, transactional_id="tx", member_id="nobody", generation=3) == \
            {tp: E.TRANSACTION_ABORTABLE}

        added = await until_answered(client, "AddOffsetsToTxn", 3, {
            "transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "group_id": "g"})
        assert added.error_code == E.NONE
        assert await txn_commit(client, {tp: 1}, pid, transactional_id="tx", member_id="nobody", generation=3) == \
            {tp: E.UNKNOWN_MEMBER_ID}
        assert await txn_commit(client, {tp: 7}, pid, transactional_id="tx") == {tp: E.NONE}
        # Once the transaction is open in the partition, later commits need no verification.
        assert await txn_commit(client, {tp: 8}, pid, transactional_id="tx") == {tp: E.NONE}
        assert await fetch(client, "g", [tp]) == {tp: (-1, "", E.UNSTABLE_OFFSET_COMMIT)}
        ended = await until_answered(client, "EndTxn", 3, {
            "transactional_id": "tx", "producer_id": pid, "producer_epoch": epoch, "committed": True})
        assert ended.error_code == E.NONE
        with trio.fail_after(10):  # the markers are written after EndTxn answers
            while (found := await fetch(client, "g", [tp])) != {tp: (8, "m8", E.NONE)}:
                assert found == {tp: (-1, "", E.UNSTABLE_OFFSET_COMMIT)}
                await trio.sleep(0.01)
        # The transaction is over: a commit outside one is refused again.
        assert await txn_commit(client, {tp: 9}, pid, transactional_id="tx") == {tp: E.TRANSACTION_ABORTABLE}
    finally:
        await client.aclose()
        broker.shutdown()


async def test_a_group_with_only_pending_offsets(tmp_path):
    """Listed and described as an Empty group; DeleteGroups deletes it (as
    Kafka: an Empty group goes whatever is pending), so its producer's marker
    finds nothing to complete. Nothing was written for the deletion (no
    committed offset, no generation), so after a restart the log's committed
    transaction brings the offset back, as Kafka's loading does."""
    config = group_config(tmp_path / "data", transaction_partition_verification_enable="false")
    async with trio.open_nursery() as nursery:
        first, client = await start_broker(config, nursery)
        await create_topic(client, "t")
        await ready(client, "p")
        assert await txn_commit(client, {("t", 0): 4}, 600, group="p") == {("t", 0): E.NONE}
        listed = await client.request("ListGroups", 4, {"states_filter": []})
        assert [(g.group_id, g.protocol_type, g.group_state) for g in listed.groups] == [("p", "", "Empty")]
        described = (await client.request("DescribeGroups", 5, {"groups": ["p"]})).groups[0]
        assert (described.error_code, described.group_state, described.members) == (E.NONE, "Empty", [])
        deleted = await client.request("DeleteGroups", 2, {"groups_names": ["p"]})
        assert deleted.results[0].error_code == E.NONE
        assert await write_marker(client, "p", 600, commit=True) == E.NONE
        assert await fetch(client, "p", [("t", 0)]) == {("t", 0): (-1, "", E.NONE)}
        await client.aclose()
        first.shutdown()

    async with trio.open_nursery() as nursery:
        second, client = await start_broker(config, nursery)
        await ready(client, "p")
        assert await fetch(client, "p", [("t", 0)]) == {("t", 0): (4, "m4", E.NONE)}
        await client.aclose()
        second.shutdown()
