"""Start-up recovery: torn and corrupt tails, broken indexes, and the
clean-shutdown fast path that trusts what a clean close left behind."""
import os
import struct

import pytest

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.protocol.records import BatchView, build_batch, iter_batches

CONFIG = {"segment.bytes": 1200, "index.interval.bytes": 200}


def open_log(path, *, clean=False, recovery_point=0):
    return PartitionLog.open(path, "t", 0, LogConfig(CONFIG), clean_shutdown=clean, recovery_point=recovery_point)


def fill(log, count):
    for i in range(count):
        data = bytearray(build_batch([(None, b"record-%d" % i, [], 1_000 + i)] * 2))
        log.append(data, [BatchView(data, 0)], leader_epoch=0)


def crash(log):
    """What a killed broker leaves: data in the files, no flush, no index files
    for the active segment, no snapshot at the end."""
    for segment in log.segments:
        segment.close()


def all_batches(log):
    out, offset = [], log.log_start_offset
    while offset < log.log_end_offset:
        got = list(iter_batches(log.read(offset, 10**6, True).read_bytes()))
        assert got and all(b.crc_ok() for b in got)
        out += got
        offset = got[-1].next_offset
    return [(b.base_offset, b.last_offset) for b in out]


def expected_batches(count):
    return [(2 * i, 2 * i + 1) for i in range(count)]


@pytest.fixture
def crashed(tmp_path):
    log = open_log(tmp_path / "t-0")
    fill(log, 40)
    assert len(log.segments) >= 4
    crash(log)
    return tmp_path / "t-0", log


def test_unclean_restart_keeps_everything_fully_written(crashed):
    path, before = crashed
    log = open_log(path)
    assert log.log_end_offset == 80
    assert all_batches(log) == expected_batches(40)
    assert [s.base_offset for s in log.segments] == [s.base_offset for s in before.segments]


@pytest.mark.parametrize("cut", [1, 30, 60])
def test_torn_tail_is_cut_at_the_last_whole_batch(crashed, cut):
    path, before = crashed
    last = before.segments[-1]
    os.truncate(last.log_path, last.size - cut)
    log = open_log(path)
    assert log.log_end_offset == 78
    assert all_batches(log) == expected_batches(39)
    assert os.path.getsize(last.log_path) == log.segments[-1].size
    fill(log, 1)  # appends carry on from the recovered end
    assert all_batches(log)[-1] == (78, 79)


def test_partial_write_of_a_new_batch_is_dropped(crashed):
    path, before = crashed
    torn = build_batch([(None, b"half written", [], 5)], base_offset=80)
    with open(before.segments[-1].log_path, "ab") as f:
        f.write(torn[: len(torn) // 2])
    log = open_log(path)
    assert log.log_end_offset == 80
    assert all_batches(log) == expected_batches(40)


def test_corrupt_byte_in_the_last_batch(crashed):
    path, before = crashed
    last = before.segments[-1]
    with open(last.log_path, "r+b") as f:
        f.seek(last.size - 3)
        byte = f.read(1)
        f.seek(last.size - 3)
        f.write(bytes([byte[0] ^ 0x40]))
    log = open_log(path)
    assert log.log_end_offset == 78
    assert all_batches(log) == expected_batches(39)


def test_nonsense_block_after_the_data(crashed):
    path, before = crashed
    with open(before.segments[-1].log_path, "ab") as f:
        f.write(struct.pack(">qi", 80, 80) + os.urandom(80))
    log = open_log(path)
    assert log.log_end_offset == 80
    assert all_batches(log) == expected_batches(40)


def test_corruption_in_an_old_segment_drops_everything_after_it(crashed):
    path, before = crashed
    victim = before.segments[1]
    data = victim.log_path.read_bytes()
    position = next(view.pos for view in iter_batches(data) if view.base_offset >= victim.base_offset + 4)
    with open(victim.log_path, "r+b") as f:
        f.seek(position + 70)
        f.write(b"\x00\xff")
    log = open_log(path)  # no recovery point: everything is checked
    keep = (victim.base_offset + 4) // 2
    assert log.log_end_offset == 2 * keep
    assert all_batches(log) == expected_batches(keep)
    assert len(log.segments) == 2
    assert not before.segments[2].log_path.exists()


async def test_segments_before_the_recovery_point_are_not_scanned(tmp_path):
    path = tmp_path / "t-0"
    before = open_log(path)
    fill(before, 40)
    await before.flush()  # what the recovery point promises: flushed data and indexes
    crash(before)
    # Damage an old segment: a full scan would cut the log there.
    victim = before.segments[0]
    with open(victim.log_path, "r+b") as f:
        f.seek(victim.size - 5)
        f.write(b"\xee")
    log = open_log(path, recovery_point=before.segments[2].base_offset)
    assert log.log_end_offset == 80
    assert log.segments[0].size == victim.size
    assert log.recovery_point == before.segments[2].base_offset


async def test_clean_shutdown_loads_without_scanning(tmp_path):
    log = open_log(tmp_path / "t-0")
    fill(log, 46)
    await log.close()
    names = set(os.listdir(tmp_path / "t-0"))
    for segment in log.segments:
        stem = segment.log_path.stem
        assert {stem + ".log", stem + ".index", stem + ".timeindex"} <= names
    # Corrupt a record body early in the active segment (before its last index
    # entry) and in an old one: only a scan could notice.
    victims = [log.segments[1], log.segments[-1]]
    assert victims[1].offset_index.last_entry()[1] > 100
    for victim in victims:
        with open(victim.log_path, "r+b") as f:
            f.seek(100)
            f.write(b"\xaa\xbb")
    reopened = open_log(tmp_path / "t-0", clean=True, recovery_point=92)
    assert reopened.log_end_offset == 92 and reopened.recovery_point == 92
    assert [reopened.segments[1].size, reopened.segments[-1].size] == [v.size for v in victims]
    assert [s.max_timestamp for s in reopened.segments] == [s.max_timestamp for s in log.segments]


async def test_clean_shutdown_then_appends_then_crash(tmp_path):
    log = open_log(tmp_path / "t-0")
    fill(log, 10)
    await log.close()
    log = open_log(tmp_path / "t-0", clean=True, recovery_point=20)
    fill(log, 30)
    crash(log)
    # The index files saved at the clean close are stale now; recovery rebuilds them.
    log = open_log(tmp_path / "t-0", recovery_point=20)
    assert all_batches(log) == expected_batches(40)


@pytest.mark.parametrize("damage", ["missing", "odd_size", "garbled", "points_past_end"])
async def test_broken_index_after_clean_shutdown_is_rebuilt(tmp_path, damage):
    log = open_log(tmp_path / "t-0")
    fill(log, 40)
    await log.close()
    for segment in (log.segments[1], log.segments[-1]):
        index = segment.offset_index.path
        if damage == "missing":
            index.unlink()
            segment.time_index.path.unlink()
        elif damage == "odd_size":
            index.write_bytes(index.read_bytes() + b"\x01")
        elif damage == "garbled":
            index.write_bytes(struct.pack(">iiii", 50, 9, 3, 1))
        else:
            index.write_bytes(struct.pack(">ii", 1, 10**6))
    reopened = open_log(tmp_path / "t-0", clean=True, recovery_point=80)
    assert reopened.log_end_offset == 80
    assert all_batches(reopened) == expected_batches(40)
    for offset in range(0, 80, 3):
        first = next(iter_batches(reopened.read(offset, 1, True).read_bytes()))
        assert first.base_offset <= offset <= first.last_offset
    await reopened.close()
    assert log.segments[1].offset_index.path.stat().st_size % 8 == 0


async def test_clean_marker_with_a_torn_active_segment_falls_back_to_recovery(tmp_path):
    log = open_log(tmp_path / "t-0")
    fill(log, 40)
    await log.close()
    last = log.segments[-1]
    os.truncate(last.log_path, last.size - 10)
    reopened = open_log(tmp_path / "t-0", clean=True, recovery_point=80)
    assert reopened.log_end_offset == 78
    assert all_batches(reopened) == expected_batches(39)


def test_leftover_files_are_cleaned_up(crashed):
    path, before = crashed
    (path / "00000000000000000000.log.deleted").write_bytes(b"old")
    (path / "00000000000000099999.index").write_bytes(b"")  # index without a log
    log = open_log(path)
    names = os.listdir(path)
    assert "00000000000000000000.log.deleted" not in names
    assert "00000000000000099999.index" not in names
    assert log.log_end_offset == 80
