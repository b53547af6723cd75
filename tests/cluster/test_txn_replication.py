"""Transaction markers in a three-broker cluster, driven by raw requests to
the partition's leader (transactional batches, WriteTxnMarkers as the
coordinator sends it): the markers are answered once the whole ISR has them
(acks=-1), the followers' .log and .txnindex files come out equal to the
leader's, and after the leader's controlled shutdown the new leader answers
READ_COMMITTED reads with the same last stable offset and aborted
transactions, its open transaction included, to raw fetches and to
confluent-kafka's read_committed consumer."""
from __future__ import annotations

import json
import time

import pytest
import trio
from confluent_kafka import Consumer

from interop.cluster import wait_for
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch

from ..integration.wire import WireClient

TOPIC = "txn-replicated"


@pytest.fixture
def cluster_overrides():
    # The test writes transactional batches itself, standing in for a producer
    # whose transaction the coordinator knows: no KIP-890 verification.
    return {"transaction.partition.verification.enable": "false"}


def partition_state(zk) -> dict:
    data, _ = zk.get(f"/brokers/topics/{TOPIC}/partitions/0/state")
    return json.loads(data)


def txn_batch(values, pid, seq):
    return bytearray(build_batch([(None, v, [], int(time.time() * 1000)) for v in values],
                                 producer_id=pid, producer_epoch=0, base_sequence=seq, transactional=True))


async def produce(client, data):
    resp = await client.request("Produce", 9, {"acks": -1, "timeout_ms": 10000, "transactional_id": "raw-txn",
                                               "topic_data": [{"name": TOPIC, "partition_data": [
                                                   {"index": 0, "records": data}]}]})
    part = resp.responses[0].partition_responses[0]
    assert part.error_code == ErrorCode.NONE, part
    return part.base_offset


async def marker(client, pid, commit):
    resp = await client.request("WriteTxnMarkers", 1, {"markers": [
        {"producer_id": pid, "producer_epoch": 0, "transaction_result": commit, "coordinator_epoch": 0,
         "topics": [{"name": TOPIC, "partition_indexes": [0]}]}]})
    return resp.markers[0].topics[0].partitions[0].error_code


async def read_committed(client):
    resp = await client.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 1,
        "topics": [{"topic": TOPIC, "partitions": [{"partition": 0, "fetch_offset": 0,
                                                     "partition_max_bytes": 1 << 20}]}]})
    part = resp.responses[0].partitions[0]
    return part.error_code, part.last_stable_offset, [(a.producer_id, a.first_offset)
                                                      for a in part.aborted_transactions or []]


def files(cluster, broker_id: int) -> dict[str, bytes]:
    directory = cluster.brokers[broker_id].data_dir / f"{TOPIC}-0"
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix in (".log", ".txnindex")}


async def test_markers_replicate_and_a_new_leader_keeps_the_transactions(cluster, zk):
    brokers = cluster.brokers
    any_client = await WireClient.connect(brokers[1].port)
    created = await any_client.request("CreateTopics", 7, {"topics": [
        {"name": TOPIC, "num_partitions": 1, "replication_factor": 3,
         "configs": [{"name": "min.insync.replicas", "value": "2"}]}], "timeout_ms": 30000})
    assert created.topics[0].error_code == ErrorCode.NONE
    state = wait_for(lambda: zk.exists(f"/brokers/topics/{TOPIC}/partitions/0/state") and partition_state(zk)
                     and len(partition_state(zk)["isr"]) == 3 and partition_state(zk), 30, "the partition's ISR")
    leader = state["leader"]
    client = await WireClient.connect(brokers[leader].port)
    pids = []
    for _ in range(3):
        init = await client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000})
        assert init.error_code == ErrorCode.NONE
        pids.append(init.producer_id)
    aborter, committer, opener = pids

    # Until the new leader has the partition's metadata, produce may answer NOT_LEADER: retry briefly.
    with trio.fail_after(30):
        while True:
            resp = await client.request("Produce", 9, {
                "acks": -1, "timeout_ms": 10000, "transactional_id": "raw-txn",
                "topic_data": [{"name": TOPIC, "partition_data": [
                    {"index": 0, "records": txn_batch([b"a-0"], aborter, 0)}]}]})
            if resp.responses[0].partition_responses[0].error_code == ErrorCode.NONE:
                break
            await trio.sleep(0.2)
    aborted = [(aborter, 0)]
    await produce(client, txn_batch([b"c-0"], committer, 0))
    assert await marker(client, aborter, False) == ErrorCode.NONE
    assert await marker(client, committer, True) == ErrorCode.NONE
    for r in range(1, 4):
        aborted.append((aborter, await produce(client, txn_batch([b"a-%d" % r] * 2, aborter, 2 * r - 1))))
        await produce(client, txn_batch([b"c-%d" % r] * 2, committer, 2 * r - 1))
        assert await marker(client, aborter, False) == ErrorCode.NONE
        assert await marker(client, committer, True) == ErrorCode.NONE
    open_at = await produce(client, txn_batch([b"open"], opener, 0))
    error, lso, seen = await read_committed(client)
    assert (error, lso, seen) == (ErrorCode.NONE, open_at, aborted)
    wait_for(lambda: all(files(cluster, b) == files(cluster, leader) for b in brokers), 30,
             "every follower's .log and .txnindex files to equal the leader's")
    assert any(name.endswith(".txnindex") for name in files(cluster, leader))
    await client.aclose()
    await any_client.aclose()

    assert brokers[leader].stop() == 0  # controlled shutdown: a follower leads
    new_leader = wait_for(lambda: (s := partition_state(zk))["leader"] not in (leader, -1) and s["leader"], 30,
                          "a new leader")
    client = await WireClient.connect(brokers[new_leader].port)
    with trio.fail_after(30):
        while (answer := await read_committed(client))[0] != ErrorCode.NONE or answer[1] != open_at:
            await trio.sleep(0.2)
    assert answer == (ErrorCode.NONE, open_at, aborted)
    assert await marker(client, opener, True) == ErrorCode.NONE
    await client.aclose()

    def consume() -> list[bytes]:
        survivors = ",".join(b.bootstrap for i, b in brokers.items() if i != leader)
        consumer = Consumer({"bootstrap.servers": survivors, "group.id": "txn-reader", "auto.offset.reset": "earliest",
                             "isolation.level": "read_committed", "enable.partition.eof": True})
        consumer.subscribe([TOPIC])
        values, deadline = [], time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() == message.error()._PARTITION_EOF:
                        return values
                    raise AssertionError(message.error())
                values.append(message.value())
        finally:
            consumer.close()
        raise AssertionError(f"no end of partition within 30 s: {values}")

    values = await trio.to_thread.run_sync(consume)
    assert values == [b"c-0"] + [b"c-%d" % r for r in range(1, 4) for _ in range(2)] + [b"open"]
