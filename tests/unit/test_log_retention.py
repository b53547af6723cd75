"""Retention (retention.ms, retention.bytes, log start offset) as Kafka applies
it: whole segments, oldest first, renamed *.deleted and removed later."""
import os

import trio

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.log.background import DiskWork
from kafka_compat.protocol.records import BatchView, build_batch
from kafka_compat.txn.producer_state import snapshot_offsets

DAY = 24 * 3600 * 1000


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def open_log(path, clock, work=None, **config):
    return PartitionLog.open(path, "t", 0, LogConfig({"segment.bytes": 500, **config}), clock=clock, work=work)


def append(log, timestamp, size=100):
    data = bytearray(build_batch([(None, b"x" * size, [], timestamp)]))
    log.append(data, [BatchView(data, 0)], leader_epoch=0)


def files(path):
    return sorted(os.listdir(path))


async def test_segments_past_retention_ms_are_deleted(tmp_path):
    clock = Clock(100 * DAY)
    log = open_log(tmp_path / "t-0", clock, **{"retention.ms": 7 * DAY})
    for day in range(90, 100):  # ~3 batches per segment, one batch per "day"
        append(log, day * DAY)
    bases = [s.base_offset for s in log.segments]
    assert len(bases) >= 4

    deleted = await log.delete_old_segments()
    # A segment goes when its newest record is more than 7 days old.
    survivors = [s.base_offset for s in log.segments]
    assert deleted == len(bases) - len(survivors)
    assert log.log_start_offset == survivors[0]
    for offset in range(survivors[0]):
        assert 90 + offset < 93  # every deleted record was older than 7 days
    assert all(s.max_timestamp >= 93 * DAY for s in log.segments[:-1])
    old = f"{bases[0]:020d}"
    assert old + ".log.deleted" in files(tmp_path / "t-0")
    assert old + ".log" not in files(tmp_path / "t-0")

    await log.close()  # a standalone log finishes its pending deletions
    assert not [n for n in files(tmp_path / "t-0") if n.endswith(".deleted")]


async def test_an_expired_active_segment_is_rolled_and_deleted_too(tmp_path):
    clock = Clock(100 * DAY)
    log = open_log(tmp_path / "t-0", clock, **{"retention.ms": DAY})
    for _ in range(5):
        append(log, 10 * DAY)
    assert await log.delete_old_segments() >= 2
    assert log.log_start_offset == log.log_end_offset == 5
    assert len(log.segments) == 1 and log.segments[0].base_offset == 5
    assert log.read(5, 1000, True).regions == []
    append(log, 100 * DAY)
    assert log.log_end_offset == 6
    assert await log.delete_old_segments() == 0


async def test_retention_bytes_keeps_the_newest_segments_within_the_limit(tmp_path):
    clock = Clock(0)
    log = open_log(tmp_path / "t-0", clock, **{"retention.bytes": 1000, "retention.ms": -1})
    for i in range(20):
        append(log, i)
    assert log.size_in_bytes > 2000
    await log.delete_old_segments()
    # Kafka deletes the oldest segment while what remains stays at or above the limit.
    assert 1000 <= log.size_in_bytes < 1000 + log.segments[0].size
    assert log.log_start_offset == log.segments[0].base_offset > 0


async def test_no_deletion_without_delete_policy_or_with_infinite_retention(tmp_path):
    clock = Clock(100 * DAY)
    compacted = open_log(tmp_path / "a-0", clock, **{"retention.ms": 1, "cleanup.policy": ["compact"]})
    forever = open_log(tmp_path / "b-0", clock, **{"retention.ms": -1, "retention.bytes": -1})
    for log in (compacted, forever):
        for _ in range(10):
            append(log, 0)
        assert await log.delete_old_segments() == 0
        assert log.log_start_offset == 0


async def test_retention_never_passes_the_high_watermark(tmp_path):
    clock = Clock(100 * DAY)
    log = open_log(tmp_path / "t-0", clock, **{"retention.ms": DAY})
    log.high_watermark_follows_leo = False
    for _ in range(10):
        append(log, 0)
    third = log.segments[2].base_offset
    log.high_watermark = third
    await log.delete_old_segments()
    assert log.log_start_offset == third
    assert log.segments[0].base_offset == third


async def test_deleted_segments_take_their_producer_snapshots_along(tmp_path):
    clock = Clock(100 * DAY)
    log = open_log(tmp_path / "t-0", clock, **{"retention.ms": DAY})
    for i in range(10):
        append(log, 0 if i < 6 else 100 * DAY)
    snapshots = snapshot_offsets(tmp_path / "t-0")
    assert snapshots
    await log.delete_old_segments()
    assert all(o >= log.log_start_offset for o in snapshot_offsets(tmp_path / "t-0"))


async def test_files_are_removed_after_file_delete_delay(tmp_path):
    clock = Clock(100 * DAY)
    work = DiskWork()
    log = open_log(tmp_path / "t-0", clock, work, **{"retention.ms": DAY, "file.delete.delay.ms": 0})
    for i in range(8):
        append(log, 0 if i < 4 else 100 * DAY)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(work.run)
        assert await log.delete_old_segments() > 0
        with trio.fail_after(10):
            while any(n.endswith(".deleted") for n in files(tmp_path / "t-0")):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    await log.close()
    assert f"{log.segments[0].base_offset:020d}.log" in files(tmp_path / "t-0")


async def test_regions_read_before_a_deletion_stay_readable_until_the_files_go(tmp_path):
    clock = Clock(100 * DAY)
    log = open_log(tmp_path / "t-0", clock, **{"retention.ms": DAY})
    for i in range(8):
        append(log, 0 if i < 4 else 100 * DAY)
    result = log.read(0, 10**6, True)
    expected = result.read_bytes()
    assert await log.delete_old_segments() > 0
    assert log.log_start_offset > 0
    # Renamed to *.deleted, but the descriptor a fetch holds still works.
    assert result.read_bytes() == expected
    await log.close()
