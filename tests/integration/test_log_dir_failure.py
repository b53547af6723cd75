"""A log dir that fills up (a real, small tmpfs mounted by the test) goes
offline as in Kafka: its partitions answer KAFKA_STORAGE_ERROR, Metadata and
DescribeLogDirs say so, the other log dir keeps working, and the broker stays
up unless no dir (or the metadata's) is left. After space is freed, a restart
reads back every acknowledged message exactly, and appends carry on after the
last of them (the torn write was cut off). Needs root (mount)."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from interop.broker_process import free_port, venv_executable
from kafka_compat.log.partition_metadata import FILE as PARTITION_METADATA
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch, iter_batches

from .conftest import make_config, start_broker
from .wire import WireClient

TOPIC = "fill"
SMALL_FS = "1m"
VALUE_SIZE = 700
PER_REQUEST = 5  # messages per produce request (one batch)
MAX_REQUESTS = 5_000  # far more than SMALL_FS can hold


@contextmanager
def tmpfs(mount_point: Path, options: str):
    """A tmpfs mounted at ``mount_point``, unmounted afterwards even if the test
    fails; a test that can't mount it fails with the reason."""
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs ({options}) for this test: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture
def small_dir(tmp_path):
    with tmpfs(tmp_path / "small", f"size={SMALL_FS}") as mount_point:
        yield mount_point


def grow(mount_point: Path) -> None:
    """Free space: the tmpfs keeps its files and gets 64 MiB."""
    subprocess.run(["mount", "-o", "remount,size=64m", str(mount_point)], check=True)


def values(partition: int, start: int) -> list[bytes]:
    return [f"{partition}-{i:06d}-".encode().ljust(VALUE_SIZE, b"x") for i in range(start, start + PER_REQUEST)]


async def produce(client: WireClient, partition: int, batch_values: list[bytes], acks: int, topic: str = TOPIC):
    batch = bytearray(build_batch([(None, v, [], 1_700_000_000_000) for v in batch_values]))
    resp = await client.request("Produce", 9, {"acks": acks, "timeout_ms": 1000, "topic_data": [
        {"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    return resp.responses[0].partition_responses[0]


async def fetch(client: WireClient, partition: int, offset: int):
    resp = await client.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 8 << 20, "isolation_level": 0,
        "topics": [{"topic": TOPIC, "partitions": [
            {"partition": partition, "fetch_offset": offset, "partition_max_bytes": 8 << 20}]}]})
    return resp.responses[0].partitions[0]


async def read_all(client: WireClient, partition: int) -> list[bytes]:
    """Every value of the partition, from offset 0 to its high watermark."""
    out, offset = [], 0
    while True:
        part = await fetch(client, partition, offset)
        assert part.error_code == ErrorCode.NONE, part
        for batch in iter_batches(bytes(part.records or b"")):
            out += [r.value for r in batch.records() if r.offset >= offset]
            offset = batch.next_offset
        if offset >= part.high_watermark:
            return out


async def list_offset_error(client: WireClient, partition: int) -> int:
    resp = await client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": TOPIC, "partitions": [{"partition_index": partition, "current_leader_epoch": -1, "timestamp": -1}]}]})
    return resp.topics[0].partitions[0].error_code


async def describe_log_dirs(client: WireClient) -> dict[str, tuple[int, list[int]]]:
    """log dir -> (error, partitions of TOPIC in it)."""
    resp = await client.request("DescribeLogDirs", 4, {"topics": None})
    return {r.log_dir: (r.error_code, [p.partition_index for t in r.topics if t.name == TOPIC for p in t.partitions])
            for r in resp.results}


async def fill(client: WireClient, partition: int, acked: list[bytes], other: int | None, other_acked: list[bytes]):
    """Produce to ``partition`` (acks=1 and acks=all in turn) until its dir is
    full; the other partition gets a batch now and then. Returns the error."""
    for request in range(MAX_REQUESTS):
        batch_values = values(partition, len(acked))
        answer = await produce(client, partition, batch_values, acks=(1, -1)[request % 2])
        if answer.error_code != ErrorCode.NONE:
            return answer.error_code
        assert answer.base_offset == len(acked)
        acked += batch_values
        if other is not None and request % 10 == 0:
            batch_values = values(other, len(other_acked))
            assert (await produce(client, other, batch_values, acks=-1)).error_code == ErrorCode.NONE
            other_acked += batch_values
    raise AssertionError(f"the {SMALL_FS} log dir never filled up")


async def test_a_full_log_dir_goes_offline_and_everything_acknowledged_survives(tmp_path, small_dir):
    big = tmp_path / "big"
    # The metadata lives in the first log dir: the small one comes second.
    config = make_config(big, log_dirs=f"{big},{small_dir}")
    acked: dict[int, list[bytes]] = {0: [], 1: []}
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        created = await client.request("CreateTopics", 7, {"topics": [
            {"name": TOPIC, "num_partitions": 2, "replication_factor": 1}], "timeout_ms": 1000})
        assert created.topics[0].error_code == ErrorCode.NONE
        dirs = await describe_log_dirs(client)
        [full] = dirs[str(small_dir)][1]
        [ok] = dirs[str(big)][1]

        assert await fill(client, full, acked[full], ok, acked[ok]) == ErrorCode.KAFKA_STORAGE_ERROR

        # Its partitions are offline: every request says so, nothing more is written.
        assert (await produce(client, full, values(full, 0), acks=1)).error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert (await fetch(client, full, 0)).error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert await list_offset_error(client, full) == ErrorCode.KAFKA_STORAGE_ERROR
        meta = await client.request("Metadata", 12, {"topics": [{"name": TOPIC}]})
        parts = {p.partition_index: p for p in meta.topics[0].partitions}
        assert (parts[full].error_code, parts[full].leader_id, parts[full].offline_replicas) == (
            ErrorCode.LEADER_NOT_AVAILABLE, -1, [0])
        assert (parts[ok].error_code, parts[ok].leader_id, parts[ok].offline_replicas) == (ErrorCode.NONE, 0, [])
        dirs = await describe_log_dirs(client)
        assert dirs[str(small_dir)] == (ErrorCode.KAFKA_STORAGE_ERROR, [])
        assert dirs[str(big)] == (ErrorCode.NONE, [ok])

        # The other dir carries on, new partitions go there, the broker stays up.
        more = values(ok, len(acked[ok]))
        assert (await produce(client, ok, more, acks=-1)).base_offset == len(acked[ok])
        acked[ok] += more
        assert await read_all(client, ok) == acked[ok]
        again = await client.request("CreateTopics", 7, {"topics": [
            {"name": "after", "num_partitions": 2, "replication_factor": 1}], "timeout_ms": 1000})
        assert again.topics[0].error_code == ErrorCode.NONE
        assert {p.dir.parent for p in broker.logs.logs.values() if p.topic == "after"} == {big}
        assert (await produce(client, 1, values(1, 0), acks=1, topic="after")).error_code == ErrorCode.NONE
        assert broker.exit_status == 0 and not broker.shutting_down.is_set()
        await client.aclose()
        broker.shutdown()

    grow(small_dir)
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        for partition in (full, ok):
            assert await read_all(client, partition) == acked[partition]
        # Appends go on right after the last acknowledged message.
        answer = await produce(client, full, values(full, len(acked[full])), acks=-1)
        assert (answer.error_code, answer.base_offset) == (ErrorCode.NONE, len(acked[full]))
        await client.aclose()
        broker.shutdown()


async def test_the_broker_stops_when_its_last_log_dir_fails(tmp_path, small_dir):
    config = make_config(small_dir)
    acked: list[bytes] = []
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        created = await client.request("CreateTopics", 7, {"topics": [
            {"name": TOPIC, "num_partitions": 1, "replication_factor": 1}], "timeout_ms": 1000})
        assert created.topics[0].error_code == ErrorCode.NONE
        assert await fill(client, 0, acked, None, []) == ErrorCode.KAFKA_STORAGE_ERROR
        with trio.fail_after(10):
            await broker.shutting_down.wait()
        await client.aclose()
    assert broker.exit_status == 1

    grow(small_dir)
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        assert await read_all(client, 0) == acked
        await client.aclose()
        broker.shutdown()


def start_up_error(*log_dirs: Path) -> str:
    """Start a broker process on ``log_dirs``; it must fail: its one line of stderr."""
    result = subprocess.run(
        [str(venv_executable("kafka-compat")), "broker", "--listeners", f"PLAINTEXT://127.0.0.1:{free_port()}",
         "--log-dirs", ",".join(map(str, log_dirs))],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_start_up_refuses_an_unusable_log_dir(tmp_path):
    good = tmp_path / "good"
    with tmpfs(tmp_path / "ro", "ro,size=1m") as read_only:
        assert start_up_error(good, read_only) == (
            f"kafka-compat: error: cannot use log dir {read_only}: not a writable directory")

    corrupt = tmp_path / "corrupt"
    (corrupt / "t-0").mkdir(parents=True)
    (corrupt / "t-0" / PARTITION_METADATA).write_text("version: 0\ntopic_id: ???")
    assert start_up_error(good, corrupt).startswith(
        f"kafka-compat: error: cannot use log dir {corrupt}: {corrupt / 't-0' / PARTITION_METADATA}: ")
