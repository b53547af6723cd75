"""The log under replication, on real files: leader epochs recorded by appends
and kept in leader-epoch-checkpoint, a follower appending a leader's batches
byte for byte, truncation (across segments, then recovery), the log start
moving, and what a crash leaves behind."""
import os
import time

import pytest

from kafka_compat.log import LogConfig, LogManager, PartitionLog
from kafka_compat.log.leader_epochs import LEADER_EPOCH_CHECKPOINT, read_leader_epoch_checkpoint
from kafka_compat.log.partition_log import OffsetsOutOfOrderError, UnexpectedAppendOffsetError
from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.protocol.records import BatchView, build_batch, iter_batches

CONFIG = {"segment.bytes": 400, "index.interval.bytes": 150}
PID = 4000
NOW = int(time.time() * 1000)  # record timestamps: recent, or retention.ms would take everything


def open_log(path, *, clean=True, recovery_point=0, log_start_offset=0):
    return PartitionLog.open(path, "t", 0, LogConfig(CONFIG), clean_shutdown=clean,
                             recovery_point=recovery_point, log_start_offset=log_start_offset)


def lead(log, epoch, count, *, seq=None):
    """``count`` leader appends of one 2-record batch each, at leader epoch ``epoch``;
    idempotent ones when ``seq`` (the first sequence) is given."""
    for i in range(count):
        kw = {} if seq is None else {"producer_id": PID, "producer_epoch": 0, "base_sequence": seq + 2 * i}
        data = bytearray(build_batch([(None, b"e%d-%d" % (epoch, i), [], NOW + i)] * 2, **kw))
        log.append(data, [BatchView(data, 0)], leader_epoch=epoch)


def fetched(log, offset, max_bytes=700):
    """What a Fetch from ``offset`` would carry: whole batches as stored."""
    return log.read(offset, max_bytes, min_one_batch=True).read_bytes()


def replicate(leader, follower):
    """Fetch from the leader until the follower has everything."""
    while follower.log_end_offset < leader.log_end_offset:
        assert follower.append_as_follower(fetched(leader, follower.log_end_offset)) is not None


def segment_files(log):
    return {s.log_path.name: s.log_path.read_bytes() for s in log.segments}


def offsets(log):
    out, offset = [], log.log_start_offset
    while offset < log.log_end_offset:
        batches = list(iter_batches(fetched(log, offset)))
        out += [(b.base_offset, b.partition_leader_epoch) for b in batches]
        offset = batches[-1].next_offset
    return out


def checkpoint(log):
    return read_leader_epoch_checkpoint(log.dir / LEADER_EPOCH_CHECKPOINT)


def crash(log):
    """A killed broker: no flush, no saved indexes, no snapshot at the end."""
    for segment in log.segments:
        segment.close()


# -- leader epochs from appends ----------------------------------------------------
async def test_leader_appends_record_each_new_epoch_and_the_file_survives_a_restart(tmp_path):
    log = open_log(tmp_path / "t-0")
    lead(log, 0, 3)
    lead(log, 2, 2)
    lead(log, 5, 1)
    assert log.leader_epochs.entries == [(0, 0), (2, 6), (5, 10)]
    assert checkpoint(log) == [(0, 0), (2, 6), (5, 10)]
    assert log.end_offset_for_epoch(1) == (0, 6)
    assert log.end_offset_for_epoch(5) == (5, 12)
    assert log.end_offset_for_epoch(6) is None
    assert log.end_offset_for_epoch(-1) is None
    await log.close()
    reopened = open_log(tmp_path / "t-0")
    assert reopened.leader_epochs.entries == [(0, 0), (2, 6), (5, 10)]
    assert reopened.latest_epoch == 5
    await reopened.close()


async def test_a_new_leaders_epoch_at_its_log_end_goes_when_it_is_truncated_to_there(tmp_path):
    log = open_log(tmp_path / "t-0")
    lead(log, 1, 2)
    log.assign_epoch_start_offset(2, log.log_end_offset)  # became leader, wrote nothing
    assert log.end_offset_for_epoch(1) == (1, 4)
    assert not await log.truncate_to(4)  # nothing to remove but that entry
    assert log.leader_epochs.entries == [(1, 0)]
    assert checkpoint(log) == [(1, 0)]
    await log.close()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
async def test_a_missing_or_corrupt_checkpoint_is_rebuilt_from_the_batches(tmp_path, damage):
    log = open_log(tmp_path / "t-0")
    lead(log, 0, 4)
    lead(log, 3, 6)
    lead(log, 4, 1)
    assert len(log.segments) > 2
    await log.close()
    path = tmp_path / "t-0" / LEADER_EPOCH_CHECKPOINT
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"0\n5\n0 0\n")
    reopened = open_log(tmp_path / "t-0")
    assert reopened.leader_epochs.entries == [(0, 0), (3, 8), (4, 20)]
    assert checkpoint(reopened) == [(0, 0), (3, 8), (4, 20)]
    await reopened.close()


async def test_after_a_crash_entries_past_the_recovery_point_come_from_the_batches(tmp_path):
    log = open_log(tmp_path / "t-0")
    lead(log, 0, 4)
    await log.flush()
    recovery_point = log.recovery_point
    lead(log, 1, 4)
    stale = (tmp_path / "t-0" / LEADER_EPOCH_CHECKPOINT)
    stale.write_bytes(b"0\n2\n0 0\n7 9\n")  # as if a later write were lost and an old one survived
    crash(log)
    reopened = open_log(tmp_path / "t-0", clean=False, recovery_point=recovery_point)
    assert reopened.log_end_offset == 16
    assert reopened.leader_epochs.entries == [(0, 0), (1, 8)]
    assert checkpoint(reopened) == [(0, 0), (1, 8)]
    await reopened.close()


async def test_the_log_start_moving_moves_the_first_epoch(tmp_path):
    log = open_log(tmp_path / "t-0")
    lead(log, 0, 3)
    lead(log, 1, 3)
    lead(log, 2, 6)
    log.increment_log_start_offset(9)  # DeleteRecords
    assert log.leader_epochs.entries == [(1, 9), (2, 12)]
    await log.delete_old_segments()  # and the segments below it go
    assert log.log_start_offset == 9
    assert log.leader_epochs.entries == [(1, 9), (2, 12)]
    log.increment_log_start_offset(20)
    assert log.end_offset_for_epoch(1) == (1, 20)  # older than anything left: the first entry's start
    await log.close()
    reopened = open_log(tmp_path / "t-0", log_start_offset=20)
    assert reopened.leader_epochs.entries == [(2, 20)]
    await reopened.close()


# -- follower appends ----------------------------------------------------------------
async def test_follower_writes_the_leaders_segments_byte_for_byte(tmp_path):
    leader = open_log(tmp_path / "leader" / "t-0")
    follower = open_log(tmp_path / "follower" / "t-0")
    follower.high_watermark_follows_leo = False
    lead(leader, 0, 10, seq=0)
    lead(leader, 3, 10, seq=20)
    lead(leader, 4, 10, seq=40)
    replicate(leader, follower)
    assert len(leader.segments) > 4
    assert segment_files(follower) == segment_files(leader)
    assert follower.leader_epochs.entries == leader.leader_epochs.entries == [(0, 0), (3, 20), (4, 40)]
    assert follower.producer_state.snapshot_bytes() == leader.producer_state.snapshot_bytes()
    assert follower.high_watermark == 0
    follower.high_watermark = leader.high_watermark + 100  # the leader's, capped by our log end
    assert follower.high_watermark == follower.log_end_offset == 60
    await leader.close()
    await follower.close()
    assert sorted(os.listdir(tmp_path / "follower" / "t-0")) == sorted(os.listdir(tmp_path / "leader" / "t-0"))
    for name in os.listdir(tmp_path / "leader" / "t-0"):
        assert (tmp_path / "follower" / "t-0" / name).read_bytes() == (tmp_path / "leader" / "t-0" / name).read_bytes()


async def test_follower_append_checks(tmp_path):
    leader = open_log(tmp_path / "leader" / "t-0")
    follower = open_log(tmp_path / "follower" / "t-0")
    lead(leader, 0, 6)
    data = fetched(leader, 0, 10_000)
    whole = list(iter_batches(data))
    assert follower.append_as_follower(data[: whole[0].size - 1]) is None  # no whole batch yet
    result = follower.append_as_follower(data[: whole[1].end + 5])  # a partial third is left for later
    assert (result.base_offset, result.last_offset, follower.log_end_offset) == (0, 3, 4)
    with pytest.raises(UnexpectedAppendOffsetError) as raised:
        follower.append_as_follower(data)  # starts below our log end
    assert (raised.value.first_offset, raised.value.last_offset) == (0, whole[-1].last_offset)
    rest = bytearray(data[whole[2].pos:])
    with pytest.raises(OffsetsOutOfOrderError):
        follower.append_as_follower(rest[: whole[3].size] + rest[: whole[3].size])
    rest[whole[2].size - 1] ^= 0xFF  # a record byte of the first batch: CRC mismatch
    with pytest.raises(KafkaError) as corrupt:
        follower.append_as_follower(rest)
    assert corrupt.value.code == ErrorCode.CORRUPT_MESSAGE
    assert follower.log_end_offset == 4  # nothing of a refused append was written
    gap = bytearray(build_batch([(None, b"later", [], NOW)], base_offset=40, partition_leader_epoch=2))
    assert follower.append_as_follower(gap).base_offset == 40  # compacted away on the leader: a gap is fine
    assert follower.log_end_offset == 41 and follower.leader_epochs.entries == [(0, 0), (2, 40)]
    await leader.close()
    await follower.close()


# -- truncation ------------------------------------------------------------------------
async def test_truncation_across_segments_then_the_leaders_data(tmp_path):
    leader = open_log(tmp_path / "leader" / "t-0")
    follower = open_log(tmp_path / "follower" / "t-0")
    follower.high_watermark_follows_leo = False
    lead(leader, 0, 8, seq=0)
    replicate(leader, follower)
    lead(follower, 1, 12, seq=16)  # divergent: written while it led at epoch 1
    follower.high_watermark = follower.log_end_offset
    lead(leader, 2, 12, seq=16)
    segments_before = len(follower.segments)
    assert segments_before > 3
    found = leader.end_offset_for_epoch(follower.latest_epoch)  # the follower asks the leader
    assert found == (0, 16)
    assert await follower.truncate_to(found.end_offset)
    assert follower.log_end_offset == follower.high_watermark == 16
    assert len(follower.segments) < segments_before
    assert follower.leader_epochs.entries == [(0, 0)] and checkpoint(follower) == [(0, 0)]
    assert follower.producer_state.producers[PID].last_seq == 15  # as of offset 16
    assert sorted(name for name in os.listdir(follower.dir) if name.endswith(".log")) == \
        [s.log_path.name for s in follower.segments]
    replicate(leader, follower)
    assert segment_files(follower) == segment_files(leader)
    assert follower.leader_epochs.entries == [(0, 0), (2, 16)]
    await leader.close()
    await follower.close()
    reopened = open_log(tmp_path / "follower" / "t-0")
    assert offsets(reopened) == [(2 * i, 0 if i < 8 else 2) for i in range(20)]
    await reopened.close()


async def test_truncating_inside_a_batch_removes_the_whole_batch(tmp_path):
    log = open_log(tmp_path / "t-0")
    lead(log, 0, 5)
    assert await log.truncate_to(7)
    assert log.log_end_offset == 6
    assert offsets(log) == [(0, 0), (2, 0), (4, 0)]
    await log.close()


async def test_truncation_survives_a_crash(tmp_path):
    manager = LogManager([tmp_path], CONFIG)
    manager.load({"t": (b"\x01" * 16, 1)})
    log = manager.get("t", 0)
    lead(log, 0, 6)
    lead(log, 1, 14)
    await log.flush()
    await manager.checkpoint_recovery_points()
    assert await manager.truncate_to("t", 0, 14)
    lead(log, 2, 3)  # new data after the truncation, never flushed
    crash(log)
    recovered = LogManager([tmp_path], CONFIG)
    recovered.load({"t": (b"\x01" * 16, 1)})
    again = recovered.get("t", 0)
    assert again.recovery_point <= 14
    assert offsets(again) == [(2 * i, 0 if i < 6 else 1 if i < 7 else 2) for i in range(10)]
    assert again.leader_epochs.entries == [(0, 0), (1, 12), (2, 14)]
    assert again.producer_state.end_offset == 20
    await recovered.close()


async def test_truncate_fully_and_start_at(tmp_path):
    manager = LogManager([tmp_path], CONFIG)
    manager.load({"t": (b"\x01" * 16, 1)})
    log = manager.get("t", 0)
    lead(log, 0, 20, seq=0)
    old_names = [s.log_path.name for s in log.segments]
    await manager.truncate_fully_and_start_at("t", 0, 500, log_start_offset=480)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark, log.recovery_point) == (480, 500, 500, 500)
    assert log.leader_epochs.entries == [] and checkpoint(log) == []
    assert log.producer_state.producers == {}
    assert [s.base_offset for s in log.segments] == [500]
    assert not any((log.dir / name).exists() for name in old_names)
    batch = bytearray(build_batch([(None, b"x", [], NOW)], base_offset=500, partition_leader_epoch=3))
    log.append_as_follower(batch)
    await manager.close()
    reopened = LogManager([tmp_path], CONFIG)
    reopened.load({"t": (b"\x01" * 16, 1)})
    log = reopened.get("t", 0)
    assert (log.log_start_offset, log.log_end_offset) == (500, 501)
    assert log.leader_epochs.entries == [(3, 500)]
    assert sorted(n for n in os.listdir(log.dir) if n.endswith(".log")) == [f"{500:020d}.log"]
    await reopened.close()
