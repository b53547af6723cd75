"""LogManager: log dirs, checkpoints, the clean-shutdown marker, topic
deletion and the background loops."""
import hashlib
import os

import trio
import trio.testing

from kafka_compat.log import LogManager
from kafka_compat.log.config import LogConfig
from kafka_compat.log.checkpoint import write_checkpoint
from kafka_compat.log.manager import (
    CLEAN_SHUTDOWN_FILE,
    HIGH_WATERMARK_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
)
from kafka_compat.protocol.records import BatchView, build_batch, iter_batches

DAY = 24 * 3600 * 1000


def tid(topic):
    """A topic id for ``topic`` (16 bytes, never zero)."""
    return hashlib.md5(topic.encode()).digest()


async def create(manager, topic, partition, config=None):
    [partition_log] = await manager.create(topic, tid(topic), [partition], config)
    return partition_log


def append(log, value=b"v", timestamp=1_000):
    data = bytearray(build_batch([(None, value, [], timestamp)]))
    return log.append(data, [BatchView(data, 0)], leader_epoch=0)


async def wait_for(condition):
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.005)


async def test_create_append_close_and_load_again(tmp_path):
    manager = LogManager([tmp_path / "data"], {"segment.bytes": 400})
    manager.load({})
    orders = await create(manager, "orders", 0)
    assert await create(manager, "orders", 0) is orders
    await create(manager, "orders", 1)
    for i in range(20):
        append(orders, b"o%d" % i)
    append(manager.get("orders", 1))
    assert manager.get("orders", 2) is None
    assert (tmp_path / "data" / "orders-0").is_dir()
    await manager.close()

    assert (tmp_path / "data" / CLEAN_SHUTDOWN_FILE).exists()
    lines = (tmp_path / "data" / RECOVERY_POINT_CHECKPOINT).read_text().splitlines()
    assert lines[:2] == ["0", "2"] and sorted(lines[2:]) == ["orders 0 20", "orders 1 1"]
    assert sorted((tmp_path / "data" / LOG_START_OFFSET_CHECKPOINT).read_text().splitlines()[2:]) == [
        "orders 0 0",
        "orders 1 0",
    ]

    manager = LogManager([tmp_path / "data"], {"segment.bytes": 400})
    manager.load({"orders": (tid("orders"), 2)})
    assert not (tmp_path / "data" / CLEAN_SHUTDOWN_FILE).exists()
    orders = manager.get("orders", 0)
    assert orders.log_end_offset == 20 and len(orders.segments) > 1
    values = [r.value for b in iter_batches(orders.read(0, 10**6, True).read_bytes()) for r in b.records()]
    assert values[0] == b"o0"
    await manager.close()


async def test_unclean_restart_recovers_from_the_checkpointed_recovery_point(tmp_path):
    manager = LogManager([tmp_path / "data"], {"segment.bytes": 400})
    manager.load({})
    log = await create(manager, "t", 0)
    for _ in range(10):
        append(log)
    await log.flush()
    await manager.checkpoint_recovery_points()
    for _ in range(10):
        append(log)
    for segment in log.segments:  # crash: no close
        segment.close()

    assert "t 0 10" in (tmp_path / "data" / RECOVERY_POINT_CHECKPOINT).read_text()
    manager = LogManager([tmp_path / "data"], {"segment.bytes": 400})
    manager.load({"t": (tid("t"), 1)})
    log = manager.get("t", 0)
    assert log.log_end_offset == 20
    assert log.recovery_point == 10
    await manager.close()


async def test_delete_renames_then_removes_the_directory(tmp_path):
    manager = LogManager([tmp_path / "data"], {"file.delete.delay.ms": 0})
    manager.load({})
    append(await create(manager, "gone", 0))
    await create(manager, "kept", 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        doomed = manager.detach("gone")
        assert manager.get("gone", 0) is None
        await manager.delete(doomed)
        assert "gone-0" not in os.listdir(tmp_path / "data")
        await wait_for(lambda: not any(n.startswith("gone-0") for n in os.listdir(tmp_path / "data")))
        nursery.cancel_scope.cancel()
    await manager.close()
    assert "gone 0" not in (tmp_path / "data" / RECOVERY_POINT_CHECKPOINT).read_text()


async def test_pending_topic_deletion_is_finished_at_startup(tmp_path):
    manager = LogManager([tmp_path / "data"])  # file.delete.delay.ms = 60 s
    manager.load({})
    append(await create(manager, "gone", 0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        await manager.delete(manager.detach("gone"))
        leftovers = [n for n in os.listdir(tmp_path / "data") if n.startswith("gone-0.")]
        assert len(leftovers) == 1 and leftovers[0].endswith("-delete")
        nursery.cancel_scope.cancel()
    # A crash now leaves the renamed directory behind; the next start removes it
    # in the background.
    manager = LogManager([tmp_path / "data"], {"file.delete.delay.ms": 0})
    manager.load({})
    assert manager.get("gone", 0) is None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        await wait_for(lambda: not [n for n in os.listdir(tmp_path / "data") if n.startswith("gone-0")])
        nursery.cancel_scope.cancel()
    await manager.close()


async def test_new_partitions_go_to_the_emptiest_log_dir(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager(dirs)
    manager.load({})
    for p in range(4):
        await create(manager, "t", p)
    assert sorted(len(os.listdir(d)) for d in dirs) == [2, 2]
    await manager.close()
    manager = LogManager(dirs)
    manager.load({"t": (tid("t"), 4)})
    assert sorted(manager.logs) == [("t", p) for p in range(4)]
    await manager.close()


async def test_topic_config_overrides_and_updates(tmp_path):
    clock_now = [100 * DAY]
    manager = LogManager([tmp_path / "data"], {"segment.bytes": 300}, clock=lambda: clock_now[0])
    manager.load({})
    log = await create(manager, "t", 0, {"retention.ms": -1})
    for _ in range(10):
        append(log, timestamp=0)
    assert await manager.cleanup_logs() == 0
    manager.update_config("t", {"retention.ms": DAY})
    assert log.config.retention_ms == DAY and log.config.segment_bytes == 300
    assert await manager.cleanup_logs() > 0
    assert log.log_start_offset == log.log_end_offset
    await manager.close()


async def test_background_loops(tmp_path):
    manager = LogManager(
        [tmp_path / "data"],
        {"flush.ms": 0, "retention.ms": DAY, "file.delete.delay.ms": 0, "segment.bytes": 300},
        log_retention_check_interval_ms=5,
        log_flush_scheduler_interval_ms=5,
        log_flush_offset_checkpoint_interval_ms=5,
        log_flush_start_offset_checkpoint_interval_ms=5,
        producer_id_expiration_ms=DAY,
        producer_id_expiration_check_interval_ms=5,
    )
    manager.load({})
    log = await create(manager, "t", 0)
    data = bytearray(build_batch([(None, b"p", [], 0)], producer_id=5, producer_epoch=0, base_sequence=0))
    log.append(data, [BatchView(data, 0)], leader_epoch=0)
    for _ in range(10):
        append(log, timestamp=0)
    append(log, timestamp=10**13)  # far future: this segment is kept
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        await wait_for(lambda: log.recovery_point == log.log_end_offset)  # flush.ms
        await wait_for(lambda: log.log_start_offset > 0)  # retention
        data = tmp_path / "data"
        await wait_for(lambda: f"t 0 {log.log_start_offset}" in _read(data / LOG_START_OFFSET_CHECKPOINT))
        await wait_for(lambda: f"t 0 {log.log_end_offset}" in _read(data / RECOVERY_POINT_CHECKPOINT))
        await wait_for(lambda: not log.producer_state.producers)  # expired: its timestamp is 0
        await wait_for(lambda: not any(n.endswith(".deleted") for n in os.listdir(log.dir)))
        nursery.cancel_scope.cancel()
    await manager.close()


async def test_flush_messages_triggers_a_background_flush(tmp_path):
    manager = LogManager([tmp_path / "data"], {"flush.messages": 3})
    manager.load({})
    log = await create(manager, "t", 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        append(log)
        append(log)
        await trio.testing.wait_all_tasks_blocked()
        assert log.recovery_point == 0
        append(log)
        await wait_for(lambda: log.recovery_point == 3)
        nursery.cancel_scope.cancel()
    await manager.close()


async def test_concurrent_flushes_share_the_work(tmp_path):
    manager = LogManager([tmp_path / "data"])
    manager.load({})
    log = await create(manager, "t", 0)
    async with trio.open_nursery() as nursery:
        for i in range(20):
            append(log)
            nursery.start_soon(log.flush, log.log_end_offset)
    assert log.recovery_point == 20
    await manager.close()


async def test_high_watermarks_are_checkpointed_periodically_and_at_close(tmp_path):
    data = tmp_path / "data"
    manager = LogManager([data], replica_high_watermark_checkpoint_interval_ms=5,
                         high_watermarks_from_checkpoint=True)
    manager.load({})
    t0, t1 = await create(manager, "t", 0), await create(manager, "t", 1)
    for _ in range(5):
        append(t0)
    append(t1)
    t0.high_watermark = 3
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        await wait_for(lambda: "t 0 3" in _read(data / HIGH_WATERMARK_CHECKPOINT))
        lines = _read(data / HIGH_WATERMARK_CHECKPOINT).splitlines()
        assert lines[:2] == ["0", "2"] and sorted(lines[2:]) == ["t 0 3", "t 1 0"]
        t0.high_watermark = 4
        await wait_for(lambda: "t 0 4" in _read(data / HIGH_WATERMARK_CHECKPOINT))
        nursery.cancel_scope.cancel()
    t1.high_watermark = 1
    await manager.close()
    lines = (data / HIGH_WATERMARK_CHECKPOINT).read_text().splitlines()
    assert lines[:2] == ["0", "2"] and sorted(lines[2:]) == ["t 0 4", "t 1 1"]
    assert not (data / (HIGH_WATERMARK_CHECKPOINT + ".tmp")).exists()


async def test_a_single_broker_checkpoints_its_high_watermarks_at_the_log_end(tmp_path):
    manager = LogManager([tmp_path / "data"])
    manager.load({})
    for _ in range(3):
        append(await create(manager, "t", 0))
    await manager.close()
    assert (tmp_path / "data" / HIGH_WATERMARK_CHECKPOINT).read_text() == "0\n1\nt 0 3\n"


async def test_a_failed_high_watermark_checkpoint_takes_its_log_dir_offline(tmp_path):
    failed = []
    manager = LogManager([tmp_path / "a", tmp_path / "b"], on_dir_failure=failed.append)
    manager.load({})
    await create(manager, "t", 0)
    await create(manager, "t", 1)
    (tmp_path / "a" / (HIGH_WATERMARK_CHECKPOINT + ".tmp")).mkdir()  # the write fails: EISDIR
    await manager.checkpoint_high_watermarks()
    assert failed == [tmp_path / "a"] and manager.offline_dirs == {tmp_path / "a"}
    assert _read(tmp_path / "b" / HIGH_WATERMARK_CHECKPOINT).splitlines()[:2] == ["0", "1"]
    await manager.close()


async def _three_logs(data):
    """a-0 (10 records, log start 2), a-1 (4 records), b-0 (6 records, log start
    5), closed cleanly; the topics as ``load`` takes them."""
    manager = LogManager([data], {"segment.bytes": 300})
    manager.load({})
    a0, a1, b0 = await create(manager, "a", 0), await create(manager, "a", 1), await create(manager, "b", 0)
    for log, count in ((a0, 10), (a1, 4), (b0, 6)):
        for _ in range(count):
            append(log)
    a0.increment_log_start_offset(2)
    b0.increment_log_start_offset(5)
    await manager.close()
    return {"a": (tid("a"), 2), "b": (tid("b"), 1)}


async def test_a_cluster_member_restores_its_high_watermarks_from_the_checkpoint(tmp_path):
    data = tmp_path / "data"
    topics = await _three_logs(data)
    # a-0 at 7; a-1 past its log end (clamped to 4); b-0 absent (its log start).
    write_checkpoint(data / HIGH_WATERMARK_CHECKPOINT, {("a", 0): 7, ("a", 1): 99})
    manager = LogManager([data], high_watermarks_from_checkpoint=True)
    manager.load(topics)
    a0, a1, b0 = manager.get("a", 0), manager.get("a", 1), manager.get("b", 0)
    assert (a0.high_watermark, a1.high_watermark, b0.high_watermark) == (7, 4, 5)
    assert not any(log.high_watermark_follows_leo for log in (a0, a1, b0))
    append(a0)
    assert a0.high_watermark == 7 and a0.log_end_offset == 11  # replication moves it, not appends
    # A log created later starts at its log end, not following it either.
    c0 = await create(manager, "c", 0)
    assert c0.high_watermark == 0 and not c0.high_watermark_follows_leo
    append(c0)
    assert c0.high_watermark == 0
    await manager.close()
    lines = (data / HIGH_WATERMARK_CHECKPOINT).read_text().splitlines()
    assert lines[:2] == ["0", "4"] and sorted(lines[2:]) == ["a 0 7", "a 1 4", "b 0 5", "c 0 0"]


async def test_without_a_checkpoint_a_cluster_member_starts_at_the_log_start(tmp_path):
    data = tmp_path / "data"
    topics = await _three_logs(data)
    (data / HIGH_WATERMARK_CHECKPOINT).unlink()
    manager = LogManager([data], high_watermarks_from_checkpoint=True)
    manager.load(topics)
    assert [manager.get(*key).high_watermark for key in (("a", 0), ("a", 1), ("b", 0))] == [2, 0, 5]
    await manager.close()


async def test_a_single_broker_ignores_the_high_watermark_checkpoint(tmp_path):
    data = tmp_path / "data"
    topics = await _three_logs(data)
    write_checkpoint(data / HIGH_WATERMARK_CHECKPOINT, {("a", 0): 7, ("a", 1): 1, ("b", 0): 5})
    manager = LogManager([data])
    manager.load(topics)
    a0 = manager.get("a", 0)
    assert [manager.get(*key).high_watermark for key in (("a", 0), ("a", 1), ("b", 0))] == [10, 4, 6]
    assert a0.high_watermark_follows_leo
    append(a0)
    assert a0.high_watermark == 11
    await manager.close()


def test_log_config_layers_overrides_over_defaults():
    defaults = {"retention.ms": 7, "segment.bytes": 1000, "cleanup.policy": "compact,delete"}
    config = LogConfig({"retention.ms": 5}, defaults)
    assert config.retention_ms == 5 and config.segment_bytes == 1000
    assert config.cleanup_policy == {"compact", "delete"} and config.delete_enabled
    assert LogConfig().retention_bytes == -1 and LogConfig().index_interval_bytes == 4096
    assert not LogConfig().log_append_time
    assert LogConfig({"message.timestamp.type": "LogAppendTime"}).log_append_time


def _read(path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
