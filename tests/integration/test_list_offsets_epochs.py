"""The leader epoch ListOffsets answers with each offset, as Kafka's
fetchOffsetByTimestamp gives it: the log's latest epoch for LATEST, the epoch
holding the log start for EARLIEST, the found batch's for a timestamp; and a
single broker's empty partition already has epoch 0 (Kafka's makeLeader)."""
from __future__ import annotations

from .test_requests import create_topic, produce, records


async def list_offset(client, topic: str, timestamp: int):
    resp = await client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": timestamp}]}]})
    p = resp.topics[0].partitions[0]
    return p.error_code, p.offset, p.leader_epoch


async def test_an_empty_partition_has_epoch_zero(broker):
    client = await broker.client()
    await create_topic(client, "fresh")
    assert await list_offset(client, "fresh", -1) == (0, 0, 0)
    assert await list_offset(client, "fresh", -2) == (0, 0, 0)
    resp = await client.request("OffsetForLeaderEpoch", 4, {"replica_id": -1, "topics": [
        {"topic": "fresh", "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]})
    answer = resp.topics[0].partitions[0]
    assert (answer.error_code, answer.leader_epoch, answer.end_offset) == (0, 0, 0)


async def test_offsets_come_with_their_batches_epoch(broker):
    client = await broker.client()
    await create_topic(client, "stamped")
    await produce(client, "stamped", records(5))
    assert await list_offset(client, "stamped", 1_700_000_000_003) == (0, 3, 0)
    assert await list_offset(client, "stamped", -3) == (0, 4, 0)
    assert await list_offset(client, "stamped", -1) == (0, 5, 0)
