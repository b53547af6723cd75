"""Transactions at the partition leader, over the wire: transactional batches
from raw produce requests, WriteTxnMarkers commit/abort, Fetch and
ListOffsets at both isolation levels, DescribeProducers, what a kill -9 of
the broker process leaves (producer state, open transactions, LSO and the
.txnindex come back), DeleteRecords past an aborted transaction, and a real
client (confluent-kafka, isolation.level=read_committed) reading it all."""
from __future__ import annotations

import struct
import time

import pytest
import trio

from interop.broker_process import BrokerProcess, venv_executable
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch, iter_batches

from .conftest import make_config, start_broker
from .test_requests import create_topic
from .wire import WireClient

TOPIC = "txn"
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
# The tests write transactional batches themselves, standing in for a
# producer whose transaction the coordinator knows: no KIP-890 verification.
NO_VERIFICATION = {"transaction.partition.verification.enable": "false"}


@pytest.fixture
def broker_config(tmp_path):
    return make_config(tmp_path / "data", **{k.replace(".", "_"): v for k, v in NO_VERIFICATION.items()})


def batch(values: list[bytes], pid: int = -1, seq: int = -1, epoch: int = 0, transactional: bool = False) -> bytearray:
    return bytearray(build_batch([(None, v, [], int(time.time() * 1000)) for v in values],
                                 producer_id=pid, producer_epoch=epoch if pid >= 0 else -1, base_sequence=seq,
                                 transactional=transactional))


async def produce(client, data, topic=TOPIC, acks=-1, transactional_id="raw-txn"):
    resp = await client.request("Produce", 9, {"acks": acks, "timeout_ms": 5000, "transactional_id": transactional_id,
                                               "topic_data": [{"name": topic, "partition_data": [
                                                   {"index": 0, "records": data}]}]})
    return resp.responses[0].partition_responses[0]


async def producer_id(client) -> int:
    resp = await client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000})
    assert resp.error_code == ErrorCode.NONE
    return resp.producer_id


async def markers(client, *entries, version: int = 1):
    """WriteTxnMarkers with (pid, epoch, commit, coordinator epoch[, topic, partitions]) entries;
    {(pid, topic, partition): error}."""
    body = {"markers": [{"producer_id": e[0], "producer_epoch": e[1], "transaction_result": e[2],
                         "coordinator_epoch": e[3],
                         "topics": [{"name": e[4] if len(e) > 4 else TOPIC,
                                     "partition_indexes": e[5] if len(e) > 5 else [0]}]} for e in entries]}
    resp = await client.request("WriteTxnMarkers", version, body)
    return {(m.producer_id, t.name, p.partition_index): p.error_code
            for m in resp.markers for t in m.topics for p in t.partitions}


async def fetch(client, offset: int, isolation: int, topic: str = TOPIC, version: int = 12):
    resp = await client.request("Fetch", version, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": isolation,
        "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": offset,
                                                     "partition_max_bytes": 1 << 20}]}]})
    return resp.responses[0].partitions[0]


def batches_of(partition):
    return list(iter_batches(bytes(partition.records or b"")))


def aborted_of(partition):
    if partition.aborted_transactions is None:
        return None
    return [(a.producer_id, a.first_offset) for a in partition.aborted_transactions]


async def list_offset(client, isolation: int, timestamp: int = -1) -> int:
    resp = await client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": isolation, "topics": [
        {"name": TOPIC, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": timestamp}]}]})
    part = resp.topics[0].partitions[0]
    assert part.error_code == ErrorCode.NONE
    return part.offset


async def describe_producers(client, topic=TOPIC, partitions=(0,)):
    resp = await client.request("DescribeProducers", 0, {"topics": [
        {"name": topic, "partition_indexes": list(partitions)}]})
    return resp.topics[0].partitions


async def test_transactions_at_the_partition_leader(broker):
    client = await broker.client()
    assert (await create_topic(client, TOPIC)).error_code == ErrorCode.NONE
    p1, p2 = await producer_id(client), await producer_id(client)
    assert (await produce(client, batch([b"plain-0"]))).base_offset == 0
    assert (await produce(client, batch([b"a1", b"a2"], p1, 0, transactional=True))).base_offset == 1
    assert (await produce(client, batch([b"c1"], p2, 0, transactional=True))).base_offset == 3
    assert (await produce(client, batch([b"plain-4"]))).base_offset == 4

    # Transactional records without a transactional id: the request is refused.
    assert (await produce(client, batch([b"a3"], p1, 2, transactional=True), transactional_id=None)).error_code \
        == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    # A plain batch from a producer with a transaction open: Kafka's INVALID_TXN_STATE.
    assert (await produce(client, batch([b"x"], p1, 2))).error_code == ErrorCode.INVALID_TXN_STATE

    assert await list_offset(client, READ_UNCOMMITTED) == 5
    assert await list_offset(client, READ_COMMITTED) == 1
    # By time: only records below the last fetchable offset count.
    assert await list_offset(client, READ_COMMITTED, timestamp=0) == 0
    open_ = await fetch(client, 0, READ_COMMITTED)
    assert (open_.high_watermark, open_.last_stable_offset, aborted_of(open_)) == (5, 1, [])
    assert [b.base_offset for b in batches_of(open_)] == [0]
    uncommitted = await fetch(client, 0, READ_UNCOMMITTED)
    assert uncommitted.last_stable_offset == 1 and aborted_of(uncommitted) is None
    assert [b.base_offset for b in batches_of(uncommitted)] == [0, 1, 3, 4]
    (described,) = await describe_producers(client)
    by_pid = {p.producer_id: p for p in described.active_producers}
    assert (by_pid[p1].current_txn_start_offset, by_pid[p1].last_sequence) == (1, 1)
    assert by_pid[p2].current_txn_start_offset == 3

    # The coordinator aborts p1's transaction and commits p2's.
    assert await markers(client, (p1, 0, False, 0), (p2, 0, True, 0)) == {
        (p1, TOPIC, 0): ErrorCode.NONE, (p2, TOPIC, 0): ErrorCode.NONE}
    done = await fetch(client, 0, READ_COMMITTED)
    assert (done.high_watermark, done.last_stable_offset) == (7, 7)
    assert aborted_of(done) == [(p1, 1)]
    got = batches_of(done)
    assert [(b.base_offset, b.is_control) for b in got] == [(0, False), (1, False), (3, False), (4, False),
                                                           (5, True), (6, True)]
    assert [r.key for r in got[4].records()] == [struct.pack(">hh", 0, 0)]  # ABORT
    assert [r.key for r in got[5].records()] == [struct.pack(">hh", 0, 1)]  # COMMIT
    assert aborted_of(await fetch(client, 6, READ_COMMITTED)) == []
    assert aborted_of(await fetch(client, 0, READ_COMMITTED, version=4)) == [(p1, 1)]
    assert await list_offset(client, READ_COMMITTED) == 7
    (described,) = await describe_producers(client)
    assert {p.producer_id: (p.current_txn_start_offset, p.coordinator_epoch) for p in described.active_producers} \
        == {p1: (-1, 0), p2: (-1, 0)}

    # Kafka's errors: an unknown partition, an older producer epoch, an older coordinator epoch.
    assert (await markers(client, (p1, 0, True, 0, "nope", [0]), (p1, 0, True, 0, TOPIC, [7])))  == {
        (p1, "nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, (p1, TOPIC, 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert await markers(client, (p2, 1, False, 3)) == {(p2, TOPIC, 0): ErrorCode.NONE}
    assert await markers(client, (p2, 0, False, 3)) == {(p2, TOPIC, 0): ErrorCode.INVALID_PRODUCER_EPOCH}
    assert await markers(client, (p2, 1, False, 2), version=0) == {
        (p2, TOPIC, 0): ErrorCode.TRANSACTION_COORDINATOR_FENCED}
    assert (await produce(client, batch([b"old"], p2, 1, epoch=0, transactional=True))).error_code \
        == ErrorCode.INVALID_PRODUCER_EPOCH

    # DescribeProducers errors.
    (unknown,) = await describe_producers(client, "nope")
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    (invalid,) = await describe_producers(client, "bad name")
    assert invalid.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION and invalid.error_message.startswith(
        "Topic name is invalid")
    (missing,) = await describe_producers(client, TOPIC, [3])
    assert missing.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    # DeleteRecords past the aborted transaction: it no longer shows.
    resp = await client.request("DeleteRecords", 2, {"topics": [
        {"name": TOPIC, "partitions": [{"partition_index": 0, "offset": 6}]}], "timeout_ms": 1000})
    assert resp.topics[0].partitions[0].error_code == ErrorCode.NONE
    after = await fetch(client, 6, READ_COMMITTED)
    assert aborted_of(after) == [] and after.log_start_offset == 6
    await client.aclose()


# -- kill -9 of a broker process --------------------------------------------------------


@pytest.fixture
def broker_process(tmp_path):
    executable = venv_executable("kafka-compat")
    process = BrokerProcess(executable, data_dir=tmp_path / "data", log_path=tmp_path / "broker.log",
                            overrides={"log.segment.bytes": "2000", "log.index.interval.bytes": "200",
                                       **NO_VERIFICATION})
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def write_transactions(client, rounds: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Rounds of (p1 aborted, p2 committed, plain) then p3's transaction left
    open: (p3, its first offset, the aborted (pid, first offset) pairs)."""
    p1, p2, p3 = await producer_id(client), await producer_id(client), await producer_id(client)
    aborted = []
    for r in range(rounds):
        first = (await produce(client, batch([b"abort-%d" % r] * 3, p1, 3 * r, transactional=True))).base_offset
        aborted.append((p1, first))
        await produce(client, batch([b"commit-%d" % r] * 3, p2, 3 * r, transactional=True))
        await produce(client, batch([b"plain-%d" % r] * 3))
        assert await markers(client, (p1, 0, False, 0), (p2, 0, True, 0)) == {
            (p1, TOPIC, 0): ErrorCode.NONE, (p2, TOPIC, 0): ErrorCode.NONE}
    open_at = (await produce(client, batch([b"open"], p3, 0, transactional=True))).base_offset
    return p3, open_at, aborted


async def read_committed_all(client, end: int):
    """Every batch and aborted transaction a READ_COMMITTED reader sees from 0."""
    offset, seen, aborted = 0, [], []
    while offset < end:
        part = await fetch(client, offset, READ_COMMITTED)
        assert part.error_code == ErrorCode.NONE
        got = batches_of(part)
        if not got:
            break
        seen += [b.base_offset for b in got]
        aborted += [a for a in aborted_of(part) if a not in aborted]
        offset = got[-1].next_offset
    return seen, aborted


async def test_kill_9_recovers_producer_state_lso_and_txnindex(broker_process, tmp_path):
    client = await WireClient.connect(broker_process.port)
    assert (await create_topic(client, TOPIC)).error_code == ErrorCode.NONE
    p3, open_at, aborted = await write_transactions(client, 12)
    before = await fetch(client, 0, READ_COMMITTED)
    assert before.last_stable_offset == open_at
    seen_before, aborted_before = await read_committed_all(client, open_at)
    assert aborted_before == aborted
    index_files = sorted(p.name for p in (tmp_path / "data" / f"{TOPIC}-0").glob("*.txnindex"))
    assert len(index_files) > 1  # the test spans segments
    await client.aclose()

    broker_process.kill9()
    broker_process.start()
    client = await WireClient.connect(broker_process.port)
    after = await fetch(client, 0, READ_COMMITTED)
    assert (after.last_stable_offset, after.high_watermark) == (before.last_stable_offset, before.high_watermark)
    assert await read_committed_all(client, open_at) == (seen_before, aborted_before)
    (described,) = await describe_producers(client)
    assert {p.producer_id: p.current_txn_start_offset for p in described.active_producers}[p3] == open_at
    # The open transaction goes on and is aborted after the restart.
    assert await markers(client, (p3, 0, False, 0)) == {(p3, TOPIC, 0): ErrorCode.NONE}
    end = (await fetch(client, 0, READ_COMMITTED)).last_stable_offset
    assert end == after.high_watermark + 1
    _, aborted_after = await read_committed_all(client, end)
    assert aborted_after == aborted + [(p3, open_at)]
    await client.aclose()


async def test_confluent_kafka_read_committed_skips_aborted_records(broker_process):
    confluent_kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka is needed for this test")
    client = await WireClient.connect(broker_process.port)
    assert (await create_topic(client, TOPIC)).error_code == ErrorCode.NONE
    p3, open_at, _ = await write_transactions(client, 5)
    assert await markers(client, (p3, 0, True, 0)) == {(p3, TOPIC, 0): ErrorCode.NONE}
    await client.aclose()

    def consume(isolation: str) -> list[bytes]:
        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": broker_process.bootstrap, "group.id": f"g-{isolation}",
            "auto.offset.reset": "earliest", "isolation.level": isolation, "enable.partition.eof": True})
        consumer.subscribe([TOPIC])
        values, deadline = [], time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        return values
                    raise AssertionError(msg.error())
                values.append(msg.value())
        finally:
            consumer.close()
        raise AssertionError(f"no end of partition within 30 s ({len(values)} records)")

    committed = await trio.to_thread.run_sync(consume, "read_committed")
    expected = []
    for r in range(5):
        expected += [b"commit-%d" % r] * 3 + [b"plain-%d" % r] * 3
    assert committed == expected + [b"open"]
    uncommitted = await trio.to_thread.run_sync(consume, "read_uncommitted")
    assert len(uncommitted) == len(expected) + 5 * 3 + 1


async def test_idle_producer_ids_expire_at_the_configured_check_interval(tmp_path, nursery):
    """producer.id.expiration.check.interval.ms (internal in Kafka, which its
    own tests set) decides how soon an idle producer id is forgotten; with the
    default of 10 minutes this test would time out."""
    config = make_config(tmp_path / "data", producer_id_expiration_ms=1000,
                         producer_id_expiration_check_interval_ms=50)
    broker, client = await start_broker(config, nursery)
    try:
        assert (await create_topic(client, TOPIC)).error_code == ErrorCode.NONE
        pid = await producer_id(client)
        assert (await produce(client, batch([b"v"], pid, 0), transactional_id=None)).error_code == ErrorCode.NONE
        (described,) = await describe_producers(client)
        assert [p.producer_id for p in described.active_producers] == [pid]
        with trio.fail_after(10):
            while (await describe_producers(client))[0].active_producers:
                await trio.sleep(0.05)
    finally:
        broker.shutdown()
