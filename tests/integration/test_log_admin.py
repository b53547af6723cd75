"""DeleteRecords and DescribeLogDirs on the wire."""
from __future__ import annotations

import trio

from kafka_compat.protocol.errors import ErrorCode

from .conftest import make_config, start_broker
from .test_requests import create_topic, fetch, produce, records


async def delete_records(client, topic: str, *offsets: tuple[int, int]):
    resp = await client.request("DeleteRecords", 2, {"timeout_ms": 1000, "topics": [
        {"name": topic, "partitions": [{"partition_index": p, "offset": o} for p, o in offsets]}]})
    return resp.topics[0].partitions


async def earliest(client, topic: str) -> int:
    resp = await client.request("ListOffsets", 7, {"replica_id": -1, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -2}]}]})
    return resp.topics[0].partitions[0].offset


async def test_delete_records_moves_the_log_start(broker):
    client = await broker.client()
    await create_topic(client, "t", 2)
    for start in (0, 4, 8):
        await produce(client, "t", records(4, start))
    [p] = await delete_records(client, "t", (0, 6))
    assert (p.partition_index, p.error_code, p.low_watermark) == (0, ErrorCode.NONE, 6)
    assert await earliest(client, "t") == 6
    assert (await fetch(client, "t", 0)).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert (await fetch(client, "t", 6)).error_code == ErrorCode.NONE
    lower, hw, past_hw, negative, missing = await delete_records(client, "t", (0, 2), (1, -1), (0, 13), (1, -5), (7, 1))
    assert (lower.error_code, lower.low_watermark) == (ErrorCode.NONE, 6)  # never backwards
    assert (hw.error_code, hw.low_watermark) == (ErrorCode.NONE, 0)  # partition 1 is empty
    assert past_hw.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert negative.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    [everything] = await delete_records(client, "t", (0, -1))
    assert everything.low_watermark == 12
    [unknown] = await delete_records(client, "nope", (0, 1))
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    await create_topic(client, "compacted", 1, {"cleanup.policy": "compact"})
    [compacted] = await delete_records(client, "compacted", (0, -1))
    assert compacted.error_code == ErrorCode.POLICY_VIOLATION


async def test_the_log_start_survives_a_restart(tmp_path):
    config = make_config(tmp_path / "data")
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await create_topic(client, "t")
        await produce(client, "t", records(10))
        [p] = await delete_records(client, "t", (0, 7))
        assert p.low_watermark == 7
        await client.aclose()
        broker.shutdown()
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        assert await earliest(client, "t") == 7
        await client.aclose()
        broker.shutdown()


async def test_describe_log_dirs(broker):
    client = await broker.client()
    await create_topic(client, "t", 2)
    batch = records(5)
    await produce(client, "t", batch)
    resp = await client.request("DescribeLogDirs", 4, {"topics": None})
    assert resp.error_code == ErrorCode.NONE
    [result] = resp.results
    log_dir = broker.broker.config.log_dirs[0]
    assert result.error_code == ErrorCode.NONE and result.log_dir == str(log_dir)
    assert result.total_bytes >= result.usable_bytes > 0
    sizes = {(t.name, p.partition_index): (p.partition_size, p.offset_lag, p.is_future_key)
             for t in result.topics for p in t.partitions}
    assert sizes[("t", 0)] == (len(batch), 0, False) and sizes[("t", 1)] == (0, 0, False)

    old = await client.request("DescribeLogDirs", 0, {"topics": [{"topic": "t", "partitions": [1, 9]},
                                                                  {"topic": "nope", "partitions": [0]}]})
    [result] = old.results
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in result.topics] == [("t", [1])]


async def test_acl_apis_say_no_authorizer_is_configured(broker):
    client = await broker.client()
    acl = {"resource_type": 2, "resource_name": "t", "principal": "User:alice", "host": "*",
           "operation": 3, "permission_type": 3}
    for version in (0, 3):
        described = await client.request("DescribeAcls", version, {
            "resource_type_filter": 1, "resource_name_filter": None, "principal_filter": None,
            "host_filter": None, "operation": 1, "permission_type": 1})
        assert (described.error_code, described.error_message, described.resources) == (
            ErrorCode.SECURITY_DISABLED, "No Authorizer is configured on the broker", [])
        created = await client.request("CreateAcls", version, {"creations": [acl, {**acl, "principal": "User:bob"}]})
        assert [(r.error_code, r.error_message) for r in created.results] == [
            (ErrorCode.SECURITY_DISABLED, "No Authorizer is configured.")] * 2
        deleted = await client.request("DeleteAcls", version, {"filters": [{
            "resource_type_filter": 1, "resource_name_filter": None, "principal_filter": None,
            "host_filter": None, "operation": 1, "permission_type": 1}]})
        [result] = deleted.filter_results
        assert (result.error_code, result.error_message, result.matching_acls) == (
            ErrorCode.SECURITY_DISABLED, "No Authorizer is configured.", [])
