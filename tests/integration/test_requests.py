"""Exact wire behaviour of the broker's APIs, seen through our own minimal client."""
from __future__ import annotations

import struct

import trio

from kafka_compat.api.registry import REGISTRY
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch

from .conftest import make_config, start_broker


def records(n: int, start: int = 0, **kw) -> bytearray:
    return bytearray(build_batch([(f"k{i}".encode(), f"v{i}".encode(), [], 1_700_000_000_000 + i)
                                  for i in range(start, start + n)], **kw))


async def create_topic(client, name: str, partitions: int = 1, configs: dict | None = None, **kw):
    resp = await client.request("CreateTopics", 7, {
        "topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1,
                    "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}],
        "timeout_ms": 1000, **kw})
    return resp.topics[0]


async def produce(client, topic: str, data, partition: int = 0, acks: int = 1, version: int = 9):
    resp = await client.request("Produce", version, {
        "acks": acks, "timeout_ms": 1000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": data}]}]})
    return resp.responses[0].partition_responses[0]


async def fetch(client, topic: str, offset: int, version: int = 12, max_wait_ms: int = 0, **kw):
    resp = await client.request("Fetch", version, {
        "replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": kw.pop("min_bytes", 1),
        "max_bytes": kw.pop("max_bytes", 1 << 20), "isolation_level": 0,
        "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": offset,
                                                    "partition_max_bytes": kw.pop("partition_max_bytes", 1 << 20)}]}]})
    return resp.responses[0].partitions[0]


async def test_api_versions_lists_registry_and_answers_too_new_with_v0(broker):
    client = await broker.client()
    resp = await client.request("ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})
    assert resp.error_code == 0
    keys = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert keys == {e.api_key: (e.min_version, e.max_version) for e in REGISTRY.values()}
    assert keys[0] == (3, 11) and keys[1][0] == 4

    # KIP-511: a version we don't know gets a v0 response with UNSUPPORTED_VERSION.
    payload = struct.pack(">hhih", 18, 99, 7, 1) + b"x" + b"\x00\x00\x00"
    await client.send_raw(struct.pack(">i", len(payload)) + payload)
    frame = await client.read_frame()
    corr, resp = client.decode("ApiVersions", 0, frame)
    assert corr == 7 and resp.error_code == ErrorCode.UNSUPPORTED_VERSION
    # Only ApiVersions' own versions, as Kafka's ApiVersionsRequest.getErrorResponse.
    assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [(18, *keys[18])]


async def test_metadata_auto_creates_then_reports_topic(broker):
    client = await broker.client()
    resp = await client.request("Metadata", 12, {"topics": [{"name": "auto-topic"}], "allow_auto_topic_creation": True})
    assert resp.topics[0].error_code == ErrorCode.LEADER_NOT_AVAILABLE
    resp = await client.request("Metadata", 12, {"topics": [{"name": "auto-topic"}]})
    topic = resp.topics[0]
    assert topic.error_code == 0 and len(topic.partitions) == 1 and topic.topic_id != bytes(16)
    assert resp.cluster_id and resp.controller_id == broker.broker.config.broker_id
    assert resp.brokers[0].port == broker.port

    resp = await client.request("Metadata", 12, {"topics": [{"name": "no-auto"}], "allow_auto_topic_creation": False})
    assert resp.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    resp = await client.request("Metadata", 12, {"topics": [{"name": "bad name!"}]})
    assert resp.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    resp = await client.request("Metadata", 12, {"topics": [{"topic_id": b"\x01" * 16, "name": None}]})
    assert resp.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID


async def test_create_topics_errors_in_kafka_order(broker):
    client = await broker.client()
    ok = await create_topic(client, "t1", 3, {"retention.ms": "1000"})
    assert ok.error_code == 0 and ok.num_partitions == 3
    assert any(c.name == "retention.ms" and c.value == "1000" for c in ok.configs)
    again = await create_topic(client, "t1", 3)
    assert again.error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    bad_name = await create_topic(client, "bad/name")
    assert bad_name.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    # Topic.validate's words since Kafka 3.4.
    assert bad_name.error_message == ("Topic name is invalid: 'bad/name' contains one or more "
                                      "characters other than ASCII alphanumerics, '.', '_' and '-'")
    for name, reason in (("", "the empty string is not allowed"), ("..", "'..' is not allowed"),
                         ("x" * 250, f"the length of '{'x' * 250}' is longer than the max "
                                     "allowed length 249"),
                         ("newline\n", "'newline\n' contains one or more characters other "
                                       "than ASCII alphanumerics, '.', '_' and '-'")):
        invalid = await create_topic(client, name)
        assert invalid.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION, name
        assert invalid.error_message == f"Topic name is invalid: {reason}"
    rf = await client.request("CreateTopics", 7, {"topics": [{"name": "rf3", "num_partitions": 1, "replication_factor": 3}]})
    assert rf.topics[0].error_code == ErrorCode.INVALID_REPLICATION_FACTOR
    bad = await create_topic(client, "badcfg", 1, {"retention.ms": "soon"})
    assert bad.error_code == ErrorCode.INVALID_CONFIG and "retention.ms" in bad.error_message
    zero = await client.request("CreateTopics", 7, {"topics": [{"name": "z", "num_partitions": 0, "replication_factor": 1}]})
    assert zero.topics[0].error_code == ErrorCode.INVALID_PARTITIONS
    dflt = await client.request("CreateTopics", 7, {"topics": [{"name": "dflt", "num_partitions": -1, "replication_factor": -1}]})
    assert dflt.topics[0].error_code == 0 and dflt.topics[0].num_partitions == 1
    only = await create_topic(client, "validate-only", 2, validate_only=True)
    assert only.error_code == 0
    meta = await client.request("Metadata", 12, {"topics": [{"name": "validate-only"}], "allow_auto_topic_creation": False})
    assert meta.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


async def test_topic_name_collision(broker):
    client = await broker.client()
    assert (await create_topic(client, "a_b")).error_code == 0
    collide = await create_topic(client, "a.b")
    assert collide.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION and "collides" in collide.error_message


async def test_concurrent_creates_of_one_topic_make_it_once(broker):
    """The metadata file is written in a worker thread: a create waiting for it
    must already be visible to the next one."""
    clients = [await broker.client() for _ in range(4)]
    results = []

    async def create(client):
        results.append((await create_topic(client, "raced", 2)).error_code)

    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(create, client)
    assert sorted(results) == [ErrorCode.NONE] + [ErrorCode.TOPIC_ALREADY_EXISTS] * 3
    assert broker.broker.topics.get("raced").partitions == 2


async def test_a_topic_deleted_while_its_partitions_are_created_leaves_no_logs(broker):
    """Creating many partitions lets other requests run in between; a delete
    arriving then must not leave logs behind for partitions created after it."""
    creator, deleter = await broker.client(), await broker.client()
    deleted = []

    async def delete_once_visible():
        while True:
            meta = await deleter.request("Metadata", 12, {"topics": [{"name": "doomed"}],
                                                          "allow_auto_topic_creation": False})
            if meta.topics[0].error_code == ErrorCode.NONE:
                break
        resp = await deleter.request("DeleteTopics", 5, {"topic_names": ["doomed"], "timeout_ms": 1000})
        deleted.append(resp.responses[0].error_code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(delete_once_visible)
        assert (await create_topic(creator, "doomed", 1000)).error_code == ErrorCode.NONE
    assert deleted == [ErrorCode.NONE]
    assert [key for key in broker.broker.logs.logs if key[0] == "doomed"] == []


async def test_concurrent_init_producer_ids_across_blocks_are_distinct(broker):
    clients = [await broker.client() for _ in range(5)]
    ids = []

    async def init(client):
        for _ in range(300):  # 1,500 in all: crosses the 1,000-id block boundary
            resp = await client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 1000})
            assert resp.error_code == ErrorCode.NONE
            ids.append(resp.producer_id)

    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(init, client)
    assert len(set(ids)) == 1500


async def test_delete_topics_and_create_partitions(broker):
    client = await broker.client()
    created = await create_topic(client, "gone", 2)
    resp = await client.request("CreatePartitions", 3, {"topics": [{"name": "gone", "count": 4, "assignments": None}],
                                                       "timeout_ms": 1000})
    assert resp.results[0].error_code == 0
    resp = await client.request("CreatePartitions", 3, {"topics": [{"name": "gone", "count": 3, "assignments": None}],
                                                       "timeout_ms": 1000})
    assert resp.results[0].error_code == ErrorCode.INVALID_PARTITIONS
    meta = await client.request("Metadata", 12, {"topics": [{"name": "gone"}]})
    assert len(meta.topics[0].partitions) == 4
    resp = await client.request("DeleteTopics", 6, {"topics": [{"name": None, "topic_id": created.topic_id}], "timeout_ms": 1000})
    assert resp.responses[0].error_code == 0 and resp.responses[0].name == "gone"
    resp = await client.request("DeleteTopics", 5, {"topic_names": ["gone"], "timeout_ms": 1000})
    assert resp.responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    resp = await client.request("DeleteTopics", 6, {"topics": [{"name": None, "topic_id": created.topic_id}], "timeout_ms": 1000})
    assert resp.responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID


async def test_produce_fetch_round_trip_and_offsets(broker):
    client = await broker.client()
    await create_topic(client, "pf")
    first = await produce(client, "pf", records(5))
    second = await produce(client, "pf", records(3, 5))
    assert (first.error_code, first.base_offset) == (0, 0)
    assert (second.error_code, second.base_offset) == (0, 5)
    part = await fetch(client, "pf", 0)
    assert part.error_code == 0 and part.high_watermark == 8 and part.log_start_offset == 0
    from kafka_compat.protocol.records import iter_batches
    values = [r.value for b in iter_batches(memoryview(part.records)) for r in b.records()]
    assert values == [f"v{i}".encode() for i in range(8)]
    part = await fetch(client, "pf", 6)  # mid-batch: the whole batch comes back
    assert [b.base_offset for b in iter_batches(memoryview(part.records))] == [5]
    assert (await fetch(client, "pf", 8)).records == b""
    assert (await fetch(client, "pf", 9)).error_code == ErrorCode.OFFSET_OUT_OF_RANGE

    lo = await client.request("ListOffsets", 7, {"replica_id": -1, "topics": [{"name": "pf", "partitions": [
        {"partition_index": 0, "timestamp": -2}]}]})
    assert lo.topics[0].partitions[0].offset == 0
    for ts, want in [(-1, 8), (1_700_000_000_006, 6), (1_700_000_000_000, 0), (1_800_000_000_000, -1), (-3, 7)]:
        lo = await client.request("ListOffsets", 7, {"replica_id": -1, "topics": [{"name": "pf", "partitions": [
            {"partition_index": 0, "timestamp": ts}]}]})
        assert lo.topics[0].partitions[0].offset == want, ts


async def test_fetch_kip74_returns_a_whole_oversized_batch(broker):
    client = await broker.client()
    await create_topic(client, "big")
    await produce(client, "big", records(100))
    part = await fetch(client, "big", 0, max_bytes=10, partition_max_bytes=10)
    assert part.error_code == 0 and len(part.records) > 10


async def test_fetch_max_bytes_caps_what_a_fetch_asks_for(tmp_path, nursery):
    broker, client = await start_broker(make_config(tmp_path, fetch_max_bytes=1024), nursery)
    await create_topic(client, "capped")
    batch = records(10)  # ~200 bytes a batch
    for i in range(20):
        await produce(client, "capped", records(10, 10 * i))
    part = await fetch(client, "capped", 0, max_bytes=1 << 20)
    assert len(batch) * 4 <= len(part.records) <= 1024
    broker.shutdown()


async def test_long_poll_fetch_wakes_on_append(broker):
    client = await broker.client()
    producer = await broker.client()
    await create_topic(client, "lp")
    result = {}

    async def poll():
        result["part"] = await fetch(client, "lp", 0, max_wait_ms=30000)
        result["at"] = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await trio.sleep(0.2)
        assert "part" not in result
        sent_at = trio.current_time()
        await produce(producer, "lp", records(1))
    assert result["part"].records and result["at"] - sent_at < 5


async def test_produce_errors(broker):
    client = await broker.client()
    await create_topic(client, "pe", 1, {"max.message.bytes": "200"})
    unknown = await produce(client, "nope", records(1))
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    big = await produce(client, "pe", records(50))
    assert big.error_code == ErrorCode.MESSAGE_TOO_LARGE
    corrupt = records(1)
    corrupt[-1] ^= 0xFF
    assert (await produce(client, "pe", corrupt)).error_code == ErrorCode.CORRUPT_MESSAGE
    resp = await client.request("Produce", 9, {"acks": 2, "timeout_ms": 1000, "topic_data": [
        {"name": "pe", "partition_data": [{"index": 0, "records": records(1)}]}]})
    assert resp.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_REQUIRED_ACKS
    await create_topic(client, "isr", 1, {"min.insync.replicas": "2"})
    assert (await produce(client, "isr", records(1), acks=-1)).error_code == ErrorCode.NOT_ENOUGH_REPLICAS
    assert (await produce(client, "isr", records(1), acks=1)).error_code == 0


async def test_acks_zero_gets_no_response(broker):
    client = await broker.client()
    await create_topic(client, "a0")
    await client.send_raw(client.encode("Produce", 9, {"acks": 0, "timeout_ms": 1000, "topic_data": [
        {"name": "a0", "partition_data": [{"index": 0, "records": records(2)}]}]}))
    # The next response on the connection answers the next request, not the produce.
    resp = await client.request("Metadata", 12, {"topics": [{"name": "a0"}]})
    assert resp.topics[0].error_code == 0
    assert (await fetch(client, "a0", 0)).high_watermark == 2


async def test_log_append_time(broker):
    client = await broker.client()
    await create_topic(client, "lat", 1, {"message.timestamp.type": "LogAppendTime"})
    resp = await produce(client, "lat", records(2))
    assert resp.error_code == 0 and resp.log_append_time_ms > 1_700_000_000_000
    from kafka_compat.protocol.records import iter_batches
    part = await fetch(client, "lat", 0)
    assert [r.timestamp for b in iter_batches(memoryview(part.records)) for r in b.records()] == [resp.log_append_time_ms] * 2


async def test_idempotent_producer_dedupes_retries(broker):
    client = await broker.client()
    await create_topic(client, "idem")
    init = await client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 1000})
    assert init.error_code == 0 and init.producer_id >= 0
    pid = init.producer_id
    batch = records(3, producer_id=pid, producer_epoch=0, base_sequence=0)
    first = await produce(client, "idem", bytearray(batch))
    retry = await produce(client, "idem", bytearray(batch))
    assert first.error_code == 0 and (retry.error_code, retry.base_offset) == (0, first.base_offset)
    gap = await produce(client, "idem", records(1, producer_id=pid, producer_epoch=0, base_sequence=10))
    assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert (await fetch(client, "idem", 0)).high_watermark == 3
    second = await client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 1000})
    assert second.producer_id != pid


async def test_malformed_frames_close_only_that_connection(broker):
    good = await broker.client()
    bad = await broker.client()
    await bad.send_raw(struct.pack(">i", 2) + b"\x00\x00")  # a complete frame too short for a header
    assert await bad.read_frame() is None
    bad2 = await broker.client()
    await bad2.send_raw(struct.pack(">ihhih", 10, 9999, 0, 1, -1))  # unknown API key
    assert await bad2.read_frame() is None
    bad3 = await broker.client()
    await bad3.send_raw(struct.pack(">i", 2**31 - 1))  # larger than socket.request.max.bytes
    assert await bad3.read_frame() is None
    resp = await good.request("Metadata", 12, {"topics": None})
    assert resp.brokers


async def test_describe_configs_and_cluster(broker):
    client = await broker.client()
    await create_topic(client, "dc", 1, {"retention.ms": "12345"})
    resp = await client.request("DescribeConfigs", 4, {"resources": [
        {"resource_type": 2, "resource_name": "dc", "configuration_keys": None},
        {"resource_type": 4, "resource_name": str(broker.broker.config.broker_id), "configuration_keys": ["num.partitions"]},
        {"resource_type": 2, "resource_name": "missing", "configuration_keys": None}], "include_synonyms": True})
    topic, brk, missing = resp.results
    by_name = {c.name: c for c in topic.configs}
    assert by_name["retention.ms"].value == "12345" and by_name["retention.ms"].config_source == 1
    assert by_name["segment.bytes"].config_source == 5 and by_name["segment.bytes"].value == "1073741824"
    assert [c.name for c in brk.configs] == ["num.partitions"] and brk.configs[0].value == "1"
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    cluster = await client.request("DescribeCluster", 1, {"include_cluster_authorized_operations": False})
    assert cluster.error_code == 0 and cluster.brokers[0].port == broker.port and cluster.cluster_id


async def test_fetch_sessions_send_only_changes(broker):
    client = await broker.client()
    for name in ("s1", "s2"):
        await create_topic(client, name)
    await produce(client, "s1", records(2))

    def body(session_id, epoch, partitions, forgotten=()):
        return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                "session_id": session_id, "session_epoch": epoch,
                "topics": [{"topic": t, "partitions": [{"partition": 0, "fetch_offset": o, "partition_max_bytes": 1 << 20}]}
                           for t, o in partitions],
                "forgotten_topics_data": [{"topic": t, "partitions": [0]} for t in forgotten]}

    full = await client.request("Fetch", 12, body(0, 0, [("s1", 0), ("s2", 0)]))
    assert full.error_code == 0 and full.session_id != 0
    assert sorted(t.topic for t in full.responses) == ["s1", "s2"]
    sid = full.session_id
    # Nothing new: an incremental fetch answers with no partitions.
    inc = await client.request("Fetch", 12, body(sid, 1, [("s1", 2)]))
    assert inc.error_code == 0 and inc.session_id == sid and inc.responses == []
    # New data on s2 only: only s2 comes back, though the request names no partition.
    await produce(client, "s2", records(1))
    inc = await client.request("Fetch", 12, body(sid, 2, []))
    assert [t.topic for t in inc.responses] == ["s2"] and inc.responses[0].partitions[0].records
    # Forgotten partitions leave the session.
    await produce(client, "s2", records(1, 1))
    inc = await client.request("Fetch", 12, body(sid, 3, [], forgotten=["s2"]))
    assert inc.responses == []
    stale = await client.request("Fetch", 12, body(sid, 3, []))
    assert stale.error_code == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    unknown = await client.request("Fetch", 12, body(sid + 1, 1, []))
    assert unknown.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    # Epoch -1 closes the session and fetches without one.
    closing = await client.request("Fetch", 12, body(sid, -1, [("s1", 0)]))
    assert closing.session_id == 0 and closing.responses[0].partitions[0].records
    assert (await client.request("Fetch", 12, body(sid, 4, []))).error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
