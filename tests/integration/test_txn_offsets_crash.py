"""Transactional offsets across kill -9: the restarted broker rebuilds the
pending offsets from the transactional batches of ``__consumer_offsets`` and
resolves them by the markers that follow (Kafka's doLoadGroupsAndOffsets): a
transaction still open stays pending (UNSTABLE_OFFSET_COMMIT for
require_stable) and can still be committed; a committed one's offsets and an
aborted one's absence survive the next crash."""
from __future__ import annotations

import trio

from interop.broker_process import BrokerProcess, venv_executable
from kafka_compat.group.internal_topics import OFFSETS_TOPIC
from kafka_compat.group.partitioner import partition_for
from kafka_compat.protocol.errors import ErrorCode as E

from .wire import WireClient

OFFSETS_PARTITIONS = 3
GROUP = "g"
TOPIC = "t"


async def request_until(client: WireClient, api: str, version: int, body: dict, error_of, timeout: float = 20.0):
    """Send until the answer is not a coordinator still loading or being found."""
    with trio.fail_after(timeout):
        while True:
            resp = await client.request(api, version, body)
            if error_of(resp) not in (E.COORDINATOR_LOAD_IN_PROGRESS, E.COORDINATOR_NOT_AVAILABLE,
                                      E.NOT_COORDINATOR):
                return resp
            await trio.sleep(0.02)


async def txn_commit(client: WireClient, producer_id: int, offset: int) -> int:
    resp = await request_until(client, "TxnOffsetCommit", 3, {
        "transactional_id": f"txn-{producer_id}", "group_id": GROUP, "producer_id": producer_id,
        "producer_epoch": 0, "generation_id": -1, "member_id": "", "group_instance_id": None,
        "topics": [{"name": TOPIC, "partitions": [{"partition_index": producer_id % 3, "committed_offset": offset,
                                                   "committed_leader_epoch": -1, "committed_metadata": ""}]}]},
        lambda r: r.topics[0].partitions[0].error_code)
    return resp.topics[0].partitions[0].error_code


async def write_marker(client: WireClient, producer_id: int, commit: bool) -> int:
    resp = await client.request("WriteTxnMarkers", 1, {"markers": [{
        "producer_id": producer_id, "producer_epoch": 0, "transaction_result": commit, "coordinator_epoch": 0,
        "topics": [{"name": OFFSETS_TOPIC, "partition_indexes": [partition_for(GROUP, OFFSETS_PARTITIONS)]}]}]})
    return resp.markers[0].topics[0].partitions[0].error_code


async def committed(client: WireClient, require_stable: bool) -> dict[int, tuple[int, int]]:
    resp = await request_until(client, "OffsetFetch", 7, {
        "group_id": GROUP, "topics": [{"name": TOPIC, "partition_indexes": [0, 1, 2]}],
        "require_stable": require_stable}, lambda r: r.error_code)
    assert resp.error_code == E.NONE
    return {p.partition_index: (p.committed_offset, p.error_code) for p in resp.topics[0].partitions}


async def test_pending_offsets_across_kill9_before_and_after_their_markers(tmp_path):
    broker = BrokerProcess(venv_executable("kafka-compat"), tmp_path / "data", tmp_path / "broker.log",
                           overrides={"offsets.topic.num.partitions": str(OFFSETS_PARTITIONS),
                                      # raw requests with made-up producer ids: nothing to verify them against
                                      "transaction.partition.verification.enable": "false"})

    async def restart() -> WireClient:
        broker.kill9()
        await trio.to_thread.run_sync(broker.start)
        return await WireClient.connect(broker.port)

    try:
        await trio.to_thread.run_sync(broker.start)
        client = await WireClient.connect(broker.port)
        resp = await client.request("CreateTopics", 7, {"topics": [
            {"name": TOPIC, "num_partitions": 3, "replication_factor": 1}], "timeout_ms": 1000})
        assert resp.topics[0].error_code == E.NONE
        # FindCoordinator creates __consumer_offsets.
        await request_until(client, "FindCoordinator", 3, {"key": GROUP, "key_type": 0}, lambda r: r.error_code)
        # Producers 30, 31 and 32 commit offsets of partitions 0, 1 and 2.
        for producer_id in (30, 31, 32):
            assert await txn_commit(client, producer_id, producer_id * 10) == E.NONE
        assert await write_marker(client, 31, commit=True) == E.NONE
        await client.aclose()

        # Killed with 30's and 32's transactions open: they stay pending.
        client = await restart()
        assert await committed(client, require_stable=False) == {0: (-1, E.NONE), 1: (310, E.NONE), 2: (-1, E.NONE)}
        assert await committed(client, require_stable=True) == {
            0: (-1, E.UNSTABLE_OFFSET_COMMIT), 1: (310, E.NONE), 2: (-1, E.UNSTABLE_OFFSET_COMMIT)}
        assert await write_marker(client, 30, commit=True) == E.NONE
        assert await write_marker(client, 32, commit=False) == E.NONE
        assert await committed(client, require_stable=True) == {0: (300, E.NONE), 1: (310, E.NONE), 2: (-1, E.NONE)}
        await client.aclose()

        # Killed after the markers: the log says the same.
        client = await restart()
        assert await committed(client, require_stable=True) == {0: (300, E.NONE), 1: (310, E.NONE), 2: (-1, E.NONE)}
        await client.aclose()
    finally:
        broker.stop()
