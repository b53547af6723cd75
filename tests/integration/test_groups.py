"""Consumer groups and committed offsets over the wire, every version's shape."""
from __future__ import annotations

import struct

import pytest
import trio

from kafka_compat.group.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from kafka_compat.group.log_format import OffsetKey, read_key, read_offset_value
from kafka_compat.group.partitioner import partition_for
from kafka_compat.protocol import schema
from kafka_compat.protocol.errors import ErrorCode as E
from kafka_compat.protocol.records import iter_batches

from .conftest import make_config, start_broker

OFFSETS_PARTITIONS = 4
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)  # READ, DELETE, DESCRIBE
NOT_REQUESTED = -(2**31)


def group_config(data_dir, **overrides):
    return make_config(data_dir, group_initial_rebalance_delay_ms=0,
                       offsets_topic_num_partitions=OFFSETS_PARTITIONS, **overrides)


@pytest.fixture
def broker_config(tmp_path):
    return group_config(tmp_path / "data")


async def create_topic(client, name: str, partitions: int = 1):
    resp = await client.request("CreateTopics", 7, {"topics": [{"name": name, "num_partitions": partitions,
                                                                "replication_factor": 1, "configs": []}],
                                                    "timeout_ms": 1000})
    assert resp.topics[0].error_code == E.NONE


def subscription(*topics: str) -> bytes:
    return struct.pack(">h", 1) + schema.codec("ConsumerProtocolSubscription", 1, "fields").build({"topics": list(topics)})


def assignment(topic: str, *partitions: int) -> bytes:
    return struct.pack(">h", 1) + schema.codec("ConsumerProtocolAssignment", 1, "fields").build(
        {"assigned_partitions": [{"topic": topic, "partitions": list(partitions)}]})


async def find_coordinator(client, key: str, key_type: int = 0, version: int = 3):
    """FindCoordinator until it answers (the first call creates the topic)."""
    with trio.fail_after(10):
        while True:
            resp = await client.request("FindCoordinator", version, {"key": key, "key_type": key_type,
                                                                     "coordinator_keys": [key]})
            error = resp.error_code if version < 4 else resp.coordinators[0].error_code
            if error != E.COORDINATOR_NOT_AVAILABLE:
                return resp
            await trio.sleep(0.01)


async def ready(client, group: str = "g"):
    """Wait until the group's coordinator answers (topic created and loaded)."""
    await find_coordinator(client, group)
    with trio.fail_after(10):
        while (await fetch_offsets(client, group, None)).error_code == E.COORDINATOR_LOAD_IN_PROGRESS:
            await trio.sleep(0.01)


def join_body(member_id="", group="g", protocols=None, instance=None, session=10_000):
    return {"group_id": group, "session_timeout_ms": session, "rebalance_timeout_ms": 20_000, "member_id": member_id,
            "group_instance_id": instance, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": subscription("t")}] if protocols is None else protocols}


async def join(client, version=9, **kw):
    return await client.request("JoinGroup", version, join_body(**kw))


async def join_v5(client, **kw):
    """KIP-394: ask for a member id, then join with it."""
    first = await join(client, 5, **kw)
    if first.error_code != E.MEMBER_ID_REQUIRED:
        return first
    return await join(client, 5, **{**kw, "member_id": first.member_id})


async def sync(client, generation, member_id, assignments=None, group="g", version=5, instance=None):
    return await client.request("SyncGroup", version, {
        "group_id": group, "generation_id": generation, "member_id": member_id, "group_instance_id": instance,
        "protocol_type": "consumer", "protocol_name": "range",
        "assignments": [{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()]})


async def commit(client, offsets: dict, group="g", generation=-1, member_id="", version=8, retention_time_ms=-1):
    """Commit {(topic, partition): offset or (offset, metadata)}; the errors by partition."""
    topics = {}
    for (topic, partition), value in offsets.items():
        offset, metadata = value if isinstance(value, tuple) else (value, "")
        topics.setdefault(topic, []).append({"partition_index": partition, "committed_offset": offset,
                                             "committed_leader_epoch": 4, "committed_metadata": metadata})
    resp = await client.request("OffsetCommit", version, {
        "group_id": group, "generation_id_or_member_epoch": generation, "member_id": member_id,
        "retention_time_ms": retention_time_ms,
        "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]})
    return {(t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions}


async def fetch_offsets(client, group, partitions, version=7):
    topics = None
    if partitions is not None:
        by_topic = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        topics = [{"name": t, "partition_indexes": ps} for t, ps in by_topic.items()]
    return await client.request("OffsetFetch", version, {"group_id": group, "topics": topics, "require_stable": True})


def offsets_of(resp) -> dict:
    return {(t.name, p.partition_index): (p.committed_offset, p.metadata, p.error_code)
            for t in resp.topics for p in t.partitions}


# -- FindCoordinator --------------------------------------------------------------------


async def test_find_coordinator_creates_the_offsets_topic(broker):
    client = await broker.client()
    first = await client.request("FindCoordinator", 2, {"key": "g", "key_type": 0})
    assert first.error_code == E.COORDINATOR_NOT_AVAILABLE
    assert first.error_message == "The coordinator is not available."
    assert (first.node_id, first.host, first.port) == (-1, "", -1)

    meta = broker.broker.topics.get(OFFSETS_TOPIC)
    assert meta.partitions == OFFSETS_PARTITIONS
    assert meta.configs == {"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}
    assert len(meta.replicas[0]) == 1  # clamped from Kafka's default 3 to the one live broker

    for version in range(4):
        resp = await find_coordinator(client, "g", version=version)
        assert (resp.error_code, resp.node_id, resp.host, resp.port) == (E.NONE, 0, "127.0.0.1", broker.port)
        if version >= 1:
            assert resp.error_message == "NONE"

    resp = await client.request("Metadata", 12, {"topics": None})
    internal = {t.name: t.is_internal for t in resp.topics}
    assert internal == {OFFSETS_TOPIC: True}


async def test_find_coordinator_batched_and_for_transactions(broker):
    client = await broker.client()
    for version in (4, 5, 6):
        resp = await find_coordinator(client, "a", version=version)
        resp = await client.request("FindCoordinator", version, {"key_type": 0, "coordinator_keys": ["a", "b", ""]})
        assert [(c.key, c.error_code, c.node_id, c.port, c.error_message) for c in resp.coordinators] == \
            [(k, E.NONE, 0, broker.port, "") for k in ("a", "b", "")]

    resp = await client.request("FindCoordinator", 4, {"key_type": 1, "coordinator_keys": ["txn"]})
    assert resp.coordinators[0].error_code == E.COORDINATOR_NOT_AVAILABLE
    meta = broker.broker.topics.get(TRANSACTION_STATE_TOPIC)
    assert meta.partitions == 50
    assert meta.configs["min.insync.replicas"] == "1"  # clamped with the replication factor
    assert meta.configs["cleanup.policy"] == "compact"
    resp = await find_coordinator(client, "txn", key_type=1, version=1)
    assert (resp.error_code, resp.node_id) == (E.NONE, 0)

    resp = await client.request("FindCoordinator", 4, {"key_type": 7, "coordinator_keys": ["x", "y"]})
    assert [c.error_code for c in resp.coordinators] == [E.INVALID_REQUEST] * 2
    resp = await client.request("FindCoordinator", 3, {"key": "x", "key_type": 7})
    assert resp.error_code == E.INVALID_REQUEST


async def test_group_requests_before_the_offsets_topic_exists(broker):
    client = await broker.client()
    resp = await fetch_offsets(client, "g", [("t", 0)], version=1)
    assert offsets_of(resp) == {("t", 0): (-1, "", E.NOT_COORDINATOR)}
    resp = await fetch_offsets(client, "g", [("t", 0)], version=2)
    assert (resp.error_code, resp.topics) == (E.NOT_COORDINATOR, [])
    assert (await join(client)).error_code == E.NOT_COORDINATOR


# -- membership ---------------------------------------------------------------------------


async def test_join_sync_heartbeat_leave_with_two_members(broker):
    a, b = await broker.client(), await broker.client()
    await ready(a)
    ja = await join_v5(a)
    assert (ja.error_code, ja.generation_id, ja.leader, ja.protocol_name) == (E.NONE, 1, ja.member_id, "range")
    assert [(m.member_id, bytes(m.metadata)) for m in ja.members] == [(ja.member_id, subscription("t"))]
    sa = await sync(a, 1, ja.member_id, {ja.member_id: assignment("t", 0, 1)})
    assert (sa.error_code, bytes(sa.assignment), sa.protocol_type, sa.protocol_name) == \
        (E.NONE, assignment("t", 0, 1), "consumer", "range")

    async with trio.open_nursery() as nursery:
        joined_b = {}

        async def join_b():
            joined_b["resp"] = await join_v5(b)

        nursery.start_soon(join_b)
        with trio.fail_after(10):
            while True:
                hb = await a.request("Heartbeat", 4, {"group_id": "g", "generation_id": 1, "member_id": ja.member_id})
                if hb.error_code == E.REBALANCE_IN_PROGRESS:
                    break
                await trio.sleep(0.01)
        ja2 = await join(a, 5, member_id=ja.member_id)
    jb = joined_b["resp"]
    assert ja2.generation_id == jb.generation_id == 2
    assert ja2.leader == jb.leader == ja.member_id
    assert sorted(m.member_id for m in ja2.members) == sorted([ja.member_id, jb.member_id])
    assert jb.members == []

    async with trio.open_nursery() as nursery:
        synced_b = {}

        async def sync_b():
            synced_b["resp"] = await sync(b, 2, jb.member_id)

        nursery.start_soon(sync_b)
        sa = await sync(a, 2, ja.member_id, {ja.member_id: assignment("t", 0), jb.member_id: assignment("t", 1)})
    assert bytes(sa.assignment) == assignment("t", 0)
    assert bytes(synced_b["resp"].assignment) == assignment("t", 1)

    leave = await b.request("LeaveGroup", 5, {"group_id": "g", "members": [
        {"member_id": jb.member_id, "reason": "done"}, {"member_id": "nobody"}]})
    assert leave.error_code == E.NONE
    assert [(m.member_id, m.error_code) for m in leave.members] == [(jb.member_id, E.NONE), ("nobody", E.UNKNOWN_MEMBER_ID)]
    hb = await a.request("Heartbeat", 0, {"group_id": "g", "generation_id": 2, "member_id": ja.member_id})
    assert hb.error_code == E.REBALANCE_IN_PROGRESS
    ja3 = await join(a, 5, member_id=ja.member_id)
    assert (ja3.generation_id, [m.member_id for m in ja3.members]) == (3, [ja.member_id])
    leave = await a.request("LeaveGroup", 0, {"group_id": "g", "member_id": "nobody"})
    assert leave.error_code == E.UNKNOWN_MEMBER_ID


@pytest.mark.parametrize("version", range(10))
async def test_join_group_versions(broker, version):
    client = await broker.client()
    await ready(client)
    resp = await join(client, version)
    if version >= 4:
        assert (resp.error_code, resp.generation_id) == (E.MEMBER_ID_REQUIRED, -1)
        assert resp.member_id.startswith("wire-test-")
        # An error carries no protocol name: "" before v7, null from v7.
        assert resp.protocol_name == ("" if version < 7 else None)
        resp = await join(client, version, member_id=resp.member_id)
    assert (resp.error_code, resp.generation_id, resp.protocol_name) == (E.NONE, 1, "range")
    if version >= 7:
        assert resp.protocol_type == "consumer"
    assert resp.leader == resp.member_id


async def test_error_codes(broker):
    client = await broker.client()
    await ready(client)
    assert (await join(client, group="")).error_code == E.INVALID_GROUP_ID
    assert (await join(client, session=1)).error_code == E.INVALID_SESSION_TIMEOUT
    assert (await join(client, member_id="unknown")).error_code == E.UNKNOWN_MEMBER_ID
    joined = await join_v5(client)
    assert (await join(client, 5, protocols=[{"name": "other", "metadata": b""}])).error_code == \
        E.INCONSISTENT_GROUP_PROTOCOL
    resp = await client.request("SyncGroup", 5, {"group_id": "g", "generation_id": 1, "member_id": joined.member_id,
                                                 "assignments": []})
    assert resp.error_code == E.INCONSISTENT_GROUP_PROTOCOL  # v5 needs the protocol type and name
    assert (await sync(client, 7, joined.member_id)).error_code == E.ILLEGAL_GENERATION
    hb = await client.request("Heartbeat", 4, {"group_id": "g", "generation_id": 1, "member_id": "who"})
    assert hb.error_code == E.UNKNOWN_MEMBER_ID
    hb = await client.request("Heartbeat", 4, {"group_id": "g", "generation_id": 1, "member_id": joined.member_id})
    assert hb.error_code == E.NONE  # CompletingRebalance: heartbeats are fine


async def test_static_membership_over_the_wire(broker):
    client = await broker.client()
    await ready(client)
    first = await join(client, 9, instance="inst-1")
    assert first.error_code == E.NONE and first.member_id.startswith("inst-1-")
    await sync(client, 1, first.member_id, {first.member_id: b"asg"}, instance="inst-1")
    again = await join(client, 9, instance="inst-1")
    assert (again.error_code, again.generation_id, again.skip_assignment) == (E.NONE, 1, True)
    assert again.member_id != first.member_id
    resp = await sync(client, 1, again.member_id, instance="inst-1")
    assert bytes(resp.assignment) == b"asg"
    hb = await client.request("Heartbeat", 4, {"group_id": "g", "generation_id": 1, "member_id": first.member_id,
                                               "group_instance_id": "inst-1"})
    assert hb.error_code == E.FENCED_INSTANCE_ID
    leave = await client.request("LeaveGroup", 4, {"group_id": "g", "members": [{"member_id": "",
                                                                               "group_instance_id": "inst-1"}]})
    assert [(m.group_instance_id, m.error_code) for m in leave.members] == [("inst-1", E.NONE)]


# -- offsets --------------------------------------------------------------------------------


async def test_commit_and_fetch_every_version(broker):
    client = await broker.client()
    await create_topic(client, "t", partitions=3)
    await ready(client)
    for version in range(10):
        group = f"v{version}"
        errors = await commit(client, {("t", 0): (10 + version, "meta"), ("t", 2): 20, ("missing", 0): 1,
                                       ("t", 9): 1}, group=group, version=version)
        assert errors == {("t", 0): E.NONE, ("t", 2): E.NONE, ("missing", 0): E.UNKNOWN_TOPIC_OR_PARTITION,
                          ("t", 9): E.UNKNOWN_TOPIC_OR_PARTITION}
        fetch_version = min(version, 7)
        resp = await fetch_offsets(client, group, [("t", 0), ("t", 1)], version=fetch_version)
        assert offsets_of(resp) == {("t", 0): (10 + version, "meta", E.NONE), ("t", 1): (-1, "", E.NONE)}
        if fetch_version >= 5:
            epochs = {p.partition_index: p.committed_leader_epoch for p in resp.topics[0].partitions}
            assert epochs == {0: 4 if version >= 6 else -1, 1: -1}
        if fetch_version >= 2:
            resp = await fetch_offsets(client, group, None, version=fetch_version)
            assert offsets_of(resp) == {("t", 0): (10 + version, "meta", E.NONE), ("t", 2): (20, "", E.NONE)}

    resp = await client.request("OffsetFetch", 8, {"groups": [
        {"group_id": "v1", "topics": None},
        {"group_id": "v2", "topics": [{"name": "t", "partition_indexes": [0]}]},
        {"group_id": "nobody", "topics": None},
    ], "require_stable": True})
    assert [(g.group_id, g.error_code, {(t.name, p.partition_index): p.committed_offset
                                        for t in g.topics for p in t.partitions}) for g in resp.groups] == [
        ("v1", E.NONE, {("t", 0): 11, ("t", 2): 20}),
        ("v2", E.NONE, {("t", 0): 12}),
        ("nobody", E.NONE, {}),
    ]
    resp = await client.request("OffsetFetch", 9, {"groups": [{"group_id": "v9", "member_id": None, "member_epoch": -1,
                                                               "topics": None}]})
    assert resp.groups[0].topics[0].partitions[0].committed_offset == 19


async def test_commits_are_records_of_the_offsets_topic(broker):
    client = await broker.client()
    await create_topic(client, "t")
    await ready(client, "grp")
    assert await commit(client, {("t", 0): (42, "hello")}, group="grp") == {("t", 0): E.NONE}
    partition = partition_for("grp", OFFSETS_PARTITIONS)
    resp = await client.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
        "topics": [{"topic": OFFSETS_TOPIC, "partitions": [{"partition": partition, "fetch_offset": 0,
                                                            "partition_max_bytes": 1 << 20}]}]})
    data = bytes(resp.responses[0].partitions[0].records)
    records = [r for batch in iter_batches(data) for r in batch.records()]
    assert [(read_key(r.key), read_offset_value(r.value).offset, read_offset_value(r.value).metadata)
            for r in records] == [(OffsetKey("grp", "t", 0), 42, "hello")]
    value = read_offset_value(records[0].value)
    assert (value.leader_epoch, value.expire_timestamp, struct.unpack_from(">h", records[0].value)) == (4, None, (3,))

    # OffsetCommit v2-v4 may set a retention time: Kafka then writes value v1.
    assert await commit(client, {("t", 0): 43}, group="grp", version=2, retention_time_ms=60_000) == {("t", 0): E.NONE}
    resp = await client.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
        "topics": [{"topic": OFFSETS_TOPIC, "partitions": [{"partition": partition, "fetch_offset": 1,
                                                            "partition_max_bytes": 1 << 20}]}]})
    [record] = [r for batch in iter_batches(bytes(resp.responses[0].partitions[0].records)) for r in batch.records()]
    value = read_offset_value(record.value)
    assert struct.unpack_from(">h", record.value) == (1,)
    assert value.expire_timestamp == value.commit_timestamp + 60_000
    # Clients can't write there themselves.
    resp = await client.request("Produce", 9, {"acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": OFFSETS_TOPIC, "partition_data": [{"index": 0, "records": bytearray(data)}]}]})
    assert resp.responses[0].partition_responses[0].error_code == E.INVALID_TOPIC_EXCEPTION


async def test_member_commits(broker):
    client = await broker.client()
    await create_topic(client, "t")
    await ready(client)
    joined = await join_v5(client)
    tp = ("t", 0)
    assert await commit(client, {tp: 1}, generation=1, member_id=joined.member_id) == {tp: E.REBALANCE_IN_PROGRESS}
    await sync(client, 1, joined.member_id, {joined.member_id: b""})
    assert await commit(client, {tp: 1}) == {tp: E.UNKNOWN_MEMBER_ID}
    assert await commit(client, {tp: 1}, generation=2, member_id=joined.member_id) == {tp: E.ILLEGAL_GENERATION}
    assert await commit(client, {tp: 5}, generation=1, member_id=joined.member_id) == {tp: E.NONE}
    assert await commit(client, {tp: 5}, group="new", generation=3, member_id="m") == {tp: E.ILLEGAL_GENERATION}
    assert await commit(client, {tp: (5, "x" * 4097)}, group="new") == {tp: E.OFFSET_METADATA_TOO_LARGE}


async def test_offsets_and_groups_survive_a_restart(tmp_path):
    config = group_config(tmp_path / "data")
    async with trio.open_nursery() as nursery:
        first, client = await start_broker(config, nursery)
        await create_topic(client, "t", partitions=2)
        await ready(client)
        joined = await join_v5(client)
        await sync(client, 1, joined.member_id, {joined.member_id: assignment("t", 0, 1)})
        await commit(client, {("t", 0): (7, "m0"), ("t", 1): 8}, generation=1, member_id=joined.member_id)
        await commit(client, {("t", 0): 3}, group="simple")
        await client.aclose()
        first.shutdown()

    async with trio.open_nursery() as nursery:
        second, client = await start_broker(config, nursery)
        await ready(client)
        resp = await fetch_offsets(client, "g", None)
        assert offsets_of(resp) == {("t", 0): (7, "m0", E.NONE), ("t", 1): (8, "", E.NONE)}
        resp = await fetch_offsets(client, "simple", [("t", 0)])
        assert offsets_of(resp) == {("t", 0): (3, "", E.NONE)}
        described = (await client.request("DescribeGroups", 5, {"groups": ["g"]})).groups[0]
        assert (described.group_state, described.protocol_data) == ("Stable", "range")
        assert [bytes(m.member_assignment) for m in described.members] == [assignment("t", 0, 1)]
        # The member carries on with its generation.
        hb = await client.request("Heartbeat", 4, {"group_id": "g", "generation_id": 1, "member_id": joined.member_id})
        assert hb.error_code == E.NONE
        await client.aclose()
        second.shutdown()


# -- administration -------------------------------------------------------------------------


async def test_list_describe_and_delete_groups(broker):
    client = await broker.client()
    await create_topic(client, "t")
    await ready(client)
    joined = await join_v5(client, instance="inst")
    await sync(client, 1, joined.member_id, {joined.member_id: b"asg"}, instance="inst")
    await commit(client, {("t", 0): 1}, group="idle")

    resp = await client.request("ListGroups", 0, {})
    assert sorted((g.group_id, g.protocol_type) for g in resp.groups) == [("g", "consumer"), ("idle", "")]
    resp = await client.request("ListGroups", 4, {"states_filter": ["STABLE"]})
    assert [(g.group_id, g.group_state) for g in resp.groups] == [("g", "Stable")]
    resp = await client.request("ListGroups", 5, {"states_filter": [], "types_filter": ["classic"]})
    assert sorted((g.group_id, g.group_type) for g in resp.groups) == [("g", "classic"), ("idle", "classic")]
    resp = await client.request("ListGroups", 5, {"types_filter": ["consumer"]})
    assert (resp.error_code, resp.groups) == (E.NONE, [])

    resp = await client.request("DescribeGroups", 5, {"groups": ["g", "idle", "missing"],
                                                      "include_authorized_operations": True})
    g, idle, missing = resp.groups
    assert (g.error_code, g.group_state, g.protocol_type, g.protocol_data, g.authorized_operations) == \
        (E.NONE, "Stable", "consumer", "range", GROUP_OPERATIONS)
    [member] = g.members
    assert (member.member_id, member.group_instance_id, member.client_id, member.client_host) == \
        (joined.member_id, "inst", "wire-test", "/127.0.0.1")
    assert (bytes(member.member_metadata), bytes(member.member_assignment)) == (subscription("t"), b"asg")
    assert (idle.group_state, idle.members) == ("Empty", [])
    assert (missing.error_code, missing.group_state, missing.protocol_type) == (E.NONE, "Dead", "")
    resp = await client.request("DescribeGroups", 0, {"groups": ["g"]})
    assert resp.groups[0].authorized_operations == NOT_REQUESTED  # not in v0; the default
    resp = await client.request("DescribeGroups", 3, {"groups": ["g"], "include_authorized_operations": False})
    assert resp.groups[0].authorized_operations == NOT_REQUESTED

    resp = await client.request("DeleteGroups", 2, {"groups_names": ["idle", "g", "missing"]})
    assert [(r.group_id, r.error_code) for r in resp.results] == \
        [("idle", E.NONE), ("g", E.NON_EMPTY_GROUP), ("missing", E.GROUP_ID_NOT_FOUND)]
    assert offsets_of(await fetch_offsets(client, "idle", [("t", 0)])) == {("t", 0): (-1, "", E.NONE)}


async def test_offset_delete(broker):
    client = await broker.client()
    await create_topic(client, "t")
    await create_topic(client, "u")
    await ready(client)
    joined = await join_v5(client)  # subscribes to "t"
    await sync(client, 1, joined.member_id, {joined.member_id: b""})
    await commit(client, {("t", 0): 1, ("u", 0): 2}, generation=1, member_id=joined.member_id)
    resp = await client.request("OffsetDelete", 0, {"group_id": "g", "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]},
        {"name": "u", "partitions": [{"partition_index": 0}]},
        {"name": "missing", "partitions": [{"partition_index": 0}]}]})
    assert resp.error_code == E.NONE
    assert {(t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions} == {
        ("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("u", 0): E.NONE, ("missing", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    assert offsets_of(await fetch_offsets(client, "g", None)) == {("t", 0): (1, "", E.NONE)}
    resp = await client.request("OffsetDelete", 0, {"group_id": "nobody", "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]}]})
    assert (resp.error_code, resp.topics) == (E.GROUP_ID_NOT_FOUND, [])


async def test_deleting_a_topic_drops_its_committed_offsets(broker):
    client = await broker.client()
    created = await client.request("CreateTopics", 7, {"topics": [
        {"name": "doomed", "num_partitions": 1, "replication_factor": 1}], "timeout_ms": 1000})
    assert created.topics[0].error_code == 0
    deadline = trio.current_time() + 10
    while True:
        found = await client.request("FindCoordinator", 3, {"key": "g-doomed", "key_type": 0})
        if found.error_code == 0:
            break
        assert trio.current_time() < deadline, found
        await trio.sleep(0.05)
    commit = await client.request("OffsetCommit", 8, {"group_id": "g-doomed", "generation_id_or_member_epoch": -1,
                                                      "member_id": "", "topics": [
        {"name": "doomed", "partitions": [{"partition_index": 0, "committed_offset": 0}]}]})
    assert commit.topics[0].partitions[0].error_code == 0

    async def committed():
        resp = await client.request("OffsetFetch", 7, {"group_id": "g-doomed", "topics": None})
        return [(t.name, p.committed_offset) for t in resp.topics for p in t.partitions]

    assert await committed() == [("doomed", 0)]
    deleted = await client.request("DeleteTopics", 6, {"topics": [{"name": "doomed"}], "timeout_ms": 1000})
    assert deleted.responses[0].error_code == 0
    assert await committed() == []
