"""A broker process killed (as kill -9 would) at each step of a topic
deletion: after the restart the deleted topic's data never comes back, a topic
created again under the same name starts empty, and a deletion that never
reached the metadata loses nothing acknowledged.

The crash points are the broker's own (KAFKA_COMPAT_CRASH_AT, see
cluster/topics.py): the process SIGKILLs itself right after that step.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
import trio

from interop.broker_process import BrokerProcess, venv_executable
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch, iter_batches

from .wire import WireClient

TOPIC = "doomed"
PARTITIONS = 3
MESSAGES = 5  # per partition


def value(partition: int, i: int, generation: str = "old") -> bytes:
    return f"{generation}-{partition}-{i}".encode()


async def produce(client: WireClient, partition: int, values: list[bytes]):
    batch = bytearray(build_batch([(None, v, [], 1_700_000_000_000) for v in values]))
    resp = await client.request("Produce", 9, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": TOPIC, "partition_data": [{"index": partition, "records": batch}]}]})
    return resp.responses[0].partition_responses[0]


async def read_all(client: WireClient, partition: int) -> tuple[int, list[bytes]]:
    """(high watermark, every value from offset 0)."""
    resp = await client.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
        "topics": [{"topic": TOPIC, "partitions": [
            {"partition": partition, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    out = resp.responses[0].partitions[0]
    assert out.error_code == ErrorCode.NONE, out
    return out.high_watermark, [r.value for b in iter_batches(bytes(out.records or b"")) for r in b.records()]


async def create(client: WireClient):
    resp = await client.request("CreateTopics", 7, {"topics": [
        {"name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 1}], "timeout_ms": 1000})
    return resp.topics[0]


async def topic_error(client: WireClient) -> int:
    resp = await client.request("Metadata", 12, {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": False})
    return resp.topics[0].error_code


def topic_dirs(data_dir) -> list[str]:
    return sorted(n for n in os.listdir(data_dir) if n.startswith(TOPIC + "-"))


async def wait_exit(broker: BrokerProcess, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while broker.running():
        assert time.monotonic() < deadline, "the broker did not crash at the crash point\n" + broker.log_tail()
        await trio.sleep(0.02)
    return broker._process.returncode


@pytest.mark.parametrize("crash_at", [
    "delete-topic:logs-detached",  # before the metadata is written: the topic stays
    "delete-topic:metadata-written",  # no directory renamed yet
    "delete-topic:first-dir-renamed",  # one of three renamed
    "answered",  # all renamed, the response sent, removal still 10 minutes away
])
async def test_crash_during_topic_deletion(tmp_path, monkeypatch, crash_at):
    data_dir = tmp_path / "data"
    broker = BrokerProcess(venv_executable("kafka-compat"), data_dir, tmp_path / "broker.log",
                           overrides={"log.segment.delete.delay.ms": "600000"})
    if crash_at != "answered":
        monkeypatch.setenv("KAFKA_COMPAT_CRASH_AT", crash_at)
    try:
        await trio.to_thread.run_sync(broker.start)
        client = await WireClient.connect(broker.port)
        assert (await create(client)).error_code == ErrorCode.NONE
        acked: dict[int, list[bytes]] = {}
        for p in range(PARTITIONS):
            for i in range(MESSAGES):
                assert (await produce(client, p, [value(p, i)])).error_code == ErrorCode.NONE
            acked[p] = [value(p, i) for i in range(MESSAGES)]

        await client.send_raw(client.encode("DeleteTopics", 6, {"topics": [{"name": TOPIC}], "timeout_ms": 1000}))
        answer = await client.read_frame()
        if crash_at == "answered":
            assert answer is not None
            assert client.decode("DeleteTopics", 6, answer)[1].responses[0].error_code == ErrorCode.NONE
            broker.kill9()
        else:
            assert answer is None, "the broker answered instead of crashing"
        assert await wait_exit(broker) == -signal.SIGKILL
        await client.aclose()
        left = topic_dirs(data_dir)
        renamed = [n for n in left if n.endswith("-delete")]
        expected_renamed = {"delete-topic:logs-detached": 0, "delete-topic:metadata-written": 0,
                            "delete-topic:first-dir-renamed": 1, "answered": PARTITIONS}[crash_at]
        assert len(left) == PARTITIONS and len(renamed) == expected_renamed, left

        monkeypatch.delenv("KAFKA_COMPAT_CRASH_AT", raising=False)
        broker.overrides["log.segment.delete.delay.ms"] = "0"
        await trio.to_thread.run_sync(broker.start)
        client = await WireClient.connect(broker.port)
        if crash_at == "delete-topic:logs-detached":
            # The deletion never became durable: the topic and all it acknowledged are there.
            assert await topic_error(client) == ErrorCode.NONE
            for p in range(PARTITIONS):
                assert await read_all(client, p) == (MESSAGES, acked[p])
            return
        assert await topic_error(client) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        with trio.fail_after(10):
            while topic_dirs(data_dir):  # renamed *-delete, then removed in the background
                await trio.sleep(0.02)

        # The same name again: a new topic, empty, even across another crash.
        assert (await create(client)).error_code == ErrorCode.NONE
        for p in range(PARTITIONS):
            assert await read_all(client, p) == (0, [])
        assert (await produce(client, 0, [value(0, 0, "new")])).error_code == ErrorCode.NONE
        await client.aclose()
        broker.kill9()
        await trio.to_thread.run_sync(broker.start)
        client = await WireClient.connect(broker.port)
        assert await read_all(client, 0) == (1, [value(0, 0, "new")])
        for p in range(1, PARTITIONS):
            assert await read_all(client, p) == (0, [])
        await client.aclose()
    finally:
        broker.kill9()
