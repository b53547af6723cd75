"""The leader's side of a follower's Fetch (replica id set) on the wire: it
reads up to the log end, not the high watermark; it must come from one of the
partition's replicas; a last fetched epoch that ends below the fetch offset
here (or that is unknown, the one below it taken) is answered with the diverging epoch (KIP-320)
and no records."""
from __future__ import annotations

from kafka_compat.protocol.errors import ErrorCode

from .test_offset_for_leader_epoch import epoch_batch
from .test_requests import create_topic, produce, records


async def follower_fetch(client, replica_id: int, fetch_offset: int, last_fetched_epoch: int,
                         current_leader_epoch: int = -1):
    resp = await client.request("Fetch", 12, {
        "replica_id": replica_id, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "topics": [{"topic": "ff", "partitions": [{
            "partition": 0, "current_leader_epoch": current_leader_epoch, "fetch_offset": fetch_offset,
            "last_fetched_epoch": last_fetched_epoch, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": ""})
    p = resp.responses[0].partitions[0]
    return p.error_code, (p.diverging_epoch.epoch, p.diverging_epoch.end_offset), bytes(p.records or b"")


async def test_follower_fetch(broker):
    client = await broker.client()
    await create_topic(client, "ff")
    await produce(client, "ff", records(4))  # leader epoch 0: offsets 0-3
    log = broker.broker.logs.get("ff", 0)
    log.append_as_follower(epoch_batch(4, 2) + epoch_batch(6, 2) + epoch_batch(8, 5))  # epochs (2, 4), (5, 8)
    log.high_watermark_follows_leo = False
    log.high_watermark = 8
    me = broker.broker.config.broker_id

    # Up to the log end (a consumer stops at the high watermark).
    error, diverging, data = await follower_fetch(client, me, 8, 2)
    assert (error, diverging) == (ErrorCode.NONE, (-1, -1)) and data == bytes(epoch_batch(8, 5))
    assert (await follower_fetch(client, -1, 8, -1))[2] == b""

    # Diverging: epoch 2 ends at 8, below the fetch offset; epoch 3 is unknown (2 is below it).
    assert await follower_fetch(client, me, 9, 2) == (ErrorCode.NONE, (2, 8), b"")
    assert await follower_fetch(client, me, 8, 3) == (ErrorCode.NONE, (2, 8), b"")
    assert (await follower_fetch(client, me, 10, 5))[:2] == (ErrorCode.NONE, (-1, -1))
    # An epoch newer than any has no end offset here: Kafka's leader answers OFFSET_OUT_OF_RANGE.
    assert (await follower_fetch(client, me, 10, 6))[0] == ErrorCode.OFFSET_OUT_OF_RANGE

    # Not one of the partition's replicas; fenced and unknown leader epochs.
    assert (await follower_fetch(client, me + 7, 0, -1))[0] == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert (await follower_fetch(client, me + 7, 0, -1, current_leader_epoch=0))[0] == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert (await follower_fetch(client, me, 0, -1, current_leader_epoch=1))[0] == ErrorCode.UNKNOWN_LEADER_EPOCH
