"""OffsetForLeaderEpoch on the wire, every version: answers from the leader
epoch cache, and Kafka's errors in Kafka's order."""
from __future__ import annotations

import pytest

from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch

from .test_requests import create_topic, produce, records


async def offsets_for(client, version: int, topic: str, *partitions, replica_id: int = -1):
    """``partitions``: (partition, leader_epoch, current_leader_epoch) each."""
    resp = await client.request("OffsetForLeaderEpoch", version, {
        "replica_id": replica_id,
        "topics": [{"topic": topic, "partitions": [
            {"partition": p, "leader_epoch": epoch, "current_leader_epoch": current}
            for p, epoch, current in partitions]}]})
    assert [t.topic for t in resp.topics] == [topic]
    return [(p.partition, p.error_code, p.leader_epoch, p.end_offset) for p in resp.topics[0].partitions]


def epoch_batch(base_offset: int, epoch: int, count: int = 2) -> bytearray:
    return bytearray(build_batch([(None, b"v", [], 1_700_000_000_000)] * count,
                                 base_offset=base_offset, partition_leader_epoch=epoch))


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
async def test_end_offsets_of_each_epoch(broker, version):
    client = await broker.client()
    await create_topic(client, "ofle", partitions=2)
    await produce(client, "ofle", records(4))  # leader epoch 0: offsets 0-3
    log = broker.broker.logs.get("ofle", 0)
    # Later epochs as a follower would have written them (this broker stays at epoch 0).
    log.append_as_follower(epoch_batch(4, 2) + epoch_batch(6, 2) + epoch_batch(8, 5))
    assert log.leader_epochs.entries == [(0, 0), (2, 4), (5, 8)]
    current = -1 if version < 2 else 0
    got = await offsets_for(client, version, "ofle", (0, 0, current), (0, 1, current), (0, 2, current),
                            (0, 4, current), (0, 5, current), (0, 6, current), (0, -1, current), (1, 0, current))
    expected = [
        (0, ErrorCode.NONE, 0, 4),  # ends where epoch 2 starts
        (0, ErrorCode.NONE, 0, 4),  # unknown epoch between: the one below, and its end
        (0, ErrorCode.NONE, 2, 8),
        (0, ErrorCode.NONE, 2, 8),
        (0, ErrorCode.NONE, 5, 10),  # the latest epoch ends at the log end
        (0, ErrorCode.NONE, -1, -1),  # newer than any
        (0, ErrorCode.NONE, -1, -1),  # undefined
        (1, ErrorCode.NONE, 0, 0),  # an empty partition: its leader's epoch 0 starts at 0 (Kafka's makeLeader)
    ]
    if version == 0:  # no leader epoch in the v0 response
        expected = [(p, e, -1, o) for p, e, _, o in expected]
    assert got == expected


@pytest.mark.parametrize("version", [2, 3, 4])
async def test_errors(broker, version):
    client = await broker.client()
    await create_topic(client, "ofle-err")
    await produce(client, "ofle-err", records(3))
    got = await offsets_for(client, version, "ofle-err", (0, 0, 1), (0, 0, -2), (0, 0, 0), (7, 0, 0))
    assert got == [
        (0, ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1),  # newer than ours
        (0, ErrorCode.FENCED_LEADER_EPOCH, -1, -1),  # older
        (0, ErrorCode.NONE, 0, 3),
        (7, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
    ]
    assert await offsets_for(client, version, "no-such-topic", (0, 0, 0)) == [
        (0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1)]
    # A follower's id changes nothing: only the leader answers, as in Kafka.
    assert await offsets_for(client, version, "ofle-err", (0, 0, 0), replica_id=3) == [(0, ErrorCode.NONE, 0, 3)]

