"""Idempotent producer state: Kafka 3.x's sequence and epoch rules, snapshots,
and survival of the state across clean and unclean restarts of a log."""
import os

import pytest

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.protocol.records import INT32_MAX, BatchView, ControlType, build_batch, build_control_batch
from kafka_compat.txn.producer_state import (
    CorruptSnapshotError,
    ProducerStateManager,
    snapshot_offsets,
    snapshot_path,
)

PID = 1000


def batch(seq, count=1, epoch=0, pid=PID, ts=1_000):
    data = bytearray(
        build_batch(
            [(None, b"v%d" % i, [], ts) for i in range(count)],
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=seq,
        )
    )
    return data, BatchView(data, 0)


def apply(state, view, first_offset):
    append = state.begin_append()
    dup = append.find_duplicate(view)
    if dup is not None:
        return dup
    append.add(view, first_offset)
    append.commit()
    return None


def error_of(fn):
    with pytest.raises(KafkaError) as info:
        fn()
    return info.value.code


# -- the rules on their own --------------------------------------------------


def test_in_sequence_batches_are_accepted_and_tracked():
    state = ProducerStateManager()
    assert apply(state, batch(0, 3)[1], 0) is None
    assert apply(state, batch(3, 2)[1], 3) is None
    entry = state.producers[PID]
    assert entry.epoch == 0
    assert entry.last_seq == 4
    assert [(m.first_seq, m.last_seq, m.first_offset, m.last_offset) for m in entry.batches] == [
        (0, 2, 0, 2),
        (3, 4, 3, 4),
    ]


def test_each_of_the_last_five_batches_is_a_duplicate_but_not_the_sixth():
    state = ProducerStateManager()
    for i in range(6):
        apply(state, batch(i * 2, 2)[1], 100 + i * 2)
    for i in range(1, 6):
        dup = apply(state, batch(i * 2, 2)[1], 999)
        assert dup is not None and (dup.first_offset, dup.last_offset) == (100 + i * 2, 101 + i * 2)
    # The oldest batch fell out of the window: it is now simply out of order.
    assert error_of(lambda: apply(state, batch(0, 2)[1], 999)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_a_partial_overlap_is_not_a_duplicate():
    state = ProducerStateManager()
    apply(state, batch(0, 3)[1], 0)
    assert error_of(lambda: apply(state, batch(0, 2)[1], 3)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_sequence_gap_is_out_of_order():
    state = ProducerStateManager()
    apply(state, batch(0)[1], 0)
    assert error_of(lambda: apply(state, batch(2)[1], 1)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_older_epoch_is_fenced():
    state = ProducerStateManager()
    apply(state, batch(0, epoch=3)[1], 0)
    assert error_of(lambda: apply(state, batch(1, epoch=2)[1], 1)) == ErrorCode.INVALID_PRODUCER_EPOCH


def test_new_epoch_must_start_at_sequence_zero():
    state = ProducerStateManager()
    apply(state, batch(0, 5)[1], 0)
    assert error_of(lambda: apply(state, batch(5, epoch=1)[1], 5)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert apply(state, batch(0, epoch=1)[1], 5) is None
    entry = state.producers[PID]
    assert entry.epoch == 1 and len(entry.batches) == 1
    # A retry of the old epoch's batch is no longer a duplicate: it is fenced.
    assert error_of(lambda: apply(state, batch(0, 5)[1], 6)) == ErrorCode.INVALID_PRODUCER_EPOCH


def test_unknown_producer_may_start_at_any_sequence():
    state = ProducerStateManager()
    assert apply(state, batch(42, epoch=7)[1], 0) is None
    assert state.producers[PID].last_seq == 42
    assert error_of(lambda: apply(state, batch(44, epoch=7)[1], 1)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_sequence_wraps_after_int32_max():
    state = ProducerStateManager()
    apply(state, batch(INT32_MAX - 1, 2)[1], 0)
    assert state.producers[PID].last_seq == INT32_MAX
    assert apply(state, batch(0)[1], 2) is None
    # A batch crossing the wrap has its last sequence past zero.
    state2 = ProducerStateManager()
    apply(state2, batch(INT32_MAX, 3)[1], 0)
    assert state2.producers[PID].last_seq == 1
    assert apply(state2, batch(2)[1], 3) is None


def test_two_batches_of_one_append_are_checked_against_each_other():
    state = ProducerStateManager()
    apply(state, batch(0)[1], 0)
    append = state.begin_append()
    append.add(batch(1, 2)[1], 1)
    append.add(batch(3, 2)[1], 3)
    with pytest.raises(KafkaError):
        append.add(batch(9)[1], 5)
    assert state.producers[PID].last_seq == 0  # nothing committed yet
    append.commit()
    assert state.producers[PID].last_seq == 4


def test_control_batch_bumps_the_epoch_without_sequences():
    state = ProducerStateManager()
    apply(state, batch(0, 3)[1], 0)
    marker = build_control_batch(
        ControlType.COMMIT, producer_id=PID, producer_epoch=1, coordinator_epoch=0, timestamp_ms=5
    )
    state.replay(BatchView(marker, 0), 3, (ControlType.COMMIT, 0))
    assert state.producers[PID].epoch == 1
    assert not state.producers[PID].batches


def test_expiration_uses_the_last_batch_timestamp():
    state = ProducerStateManager()
    apply(state, batch(0, pid=1, ts=1_000)[1], 0)
    apply(state, batch(0, pid=2, ts=5_000)[1], 1)
    state.remove_expired(now_ms=6_000, expiration_ms=2_000)
    assert set(state.producers) == {2}


def test_snapshot_round_trip_and_corruption():
    state = ProducerStateManager()
    for i in range(7):
        apply(state, batch(i, pid=1)[1], i)
    apply(state, batch(0, 2, epoch=4, pid=2)[1], 7)
    state.end_offset = 9
    data = state.snapshot_bytes()

    loaded = ProducerStateManager()
    loaded.load_snapshot_bytes(data)
    assert loaded.end_offset == 9
    for pid in (1, 2):
        a, b = state.producers[pid], loaded.producers[pid]
        assert (a.epoch, a.last_timestamp, list(a.batches)) == (b.epoch, b.last_timestamp, list(b.batches))

    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(CorruptSnapshotError):
        loaded.load_snapshot_bytes(bytes(damaged))
    with pytest.raises(CorruptSnapshotError):
        loaded.load_snapshot_bytes(data[:-3])


# -- through a partition log ---------------------------------------------------


def open_log(path, clean=False, recovery_point=0, **config):
    return PartitionLog.open(
        path, "t", 0, LogConfig({"segment.bytes": 600, **config}), clean_shutdown=clean, recovery_point=recovery_point
    )


def append(log, data_view):
    data, view = data_view
    return log.append(data, [view], leader_epoch=0)


def crash(log):
    """Drop the log as a killed process would: no flush, no snapshot, no index files."""
    for segment in log.segments:
        segment.close()


def test_retried_batch_gets_its_original_offsets_and_is_not_written_twice(tmp_path):
    log = open_log(tmp_path / "t-0")
    first = append(log, batch(0, 3))
    append(log, batch(3, 1))
    end, size = log.log_end_offset, log.size_in_bytes
    retry = append(log, batch(0, 3))
    assert (retry.base_offset, retry.last_offset) == (first.base_offset, first.last_offset)
    assert (log.log_end_offset, log.size_in_bytes) == (end, size)


def test_rejected_batch_writes_nothing(tmp_path):
    log = open_log(tmp_path / "t-0")
    append(log, batch(0))
    end, size = log.log_end_offset, log.size_in_bytes
    with pytest.raises(KafkaError) as info:
        append(log, batch(5))
    assert info.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert (log.log_end_offset, log.size_in_bytes) == (end, size)
    assert append(log, batch(1)).base_offset == 1


def test_non_idempotent_batches_skip_the_checks(tmp_path):
    log = open_log(tmp_path / "t-0")
    for _ in range(2):
        data = bytearray(build_batch([(None, b"x", [], 1)]))
        log.append(data, [BatchView(data, 0)], leader_epoch=0)
    assert log.log_end_offset == 2
    assert log.producer_state.producers == {}


async def test_state_survives_clean_close_and_reopen(tmp_path):
    log = open_log(tmp_path / "t-0")
    for seq in range(0, 40, 2):
        append(log, batch(seq, 2))
    assert len(log.segments) > 1
    await log.close()
    assert 40 in snapshot_offsets(tmp_path / "t-0")

    log = open_log(tmp_path / "t-0", clean=True, recovery_point=40)
    retry = append(log, batch(38, 2))
    assert (retry.base_offset, retry.last_offset, log.log_end_offset) == (38, 39, 40)
    with pytest.raises(KafkaError):
        append(log, batch(41))
    assert append(log, batch(40)).base_offset == 40


@pytest.mark.parametrize("keep_snapshots", [True, False])
def test_state_is_rebuilt_after_a_crash(tmp_path, keep_snapshots):
    log = open_log(tmp_path / "t-0")
    for seq in range(0, 30, 3):
        append(log, batch(seq, 3, pid=7))
    append(log, batch(0, 1, epoch=2, pid=8))
    crash(log)
    if not keep_snapshots:
        for offset in snapshot_offsets(tmp_path / "t-0"):
            snapshot_path(tmp_path / "t-0", offset).unlink()

    log = open_log(tmp_path / "t-0", recovery_point=0)
    assert log.log_end_offset == 31
    retry = append(log, batch(27, 3, pid=7))
    assert (retry.base_offset, retry.last_offset) == (27, 29)
    with pytest.raises(KafkaError) as info:
        append(log, batch(0, 1, epoch=1, pid=8))
    assert info.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert append(log, batch(30, 1, pid=7)).base_offset == 31


async def test_corrupt_snapshot_is_ignored_and_state_rebuilt_from_the_log(tmp_path):
    log = open_log(tmp_path / "t-0")
    for seq in range(5):
        append(log, batch(seq))
    await log.close()
    path = snapshot_path(tmp_path / "t-0", 5)
    with open(path, "r+b") as f:
        f.seek(10)
        f.write(b"\xff\xff\xff")

    log = open_log(tmp_path / "t-0", clean=True, recovery_point=5)
    assert not path.exists()
    assert append(log, batch(4)).base_offset == 4  # still known as a duplicate


def test_snapshots_beyond_the_recovered_end_are_removed(tmp_path):
    log = open_log(tmp_path / "t-0")
    for seq in range(30):
        append(log, batch(seq))
    last_snapshot = snapshot_offsets(tmp_path / "t-0")[-1]
    crash(log)
    # Lose everything from the last segment on: its snapshot now describes
    # batches that no longer exist and must not be used.
    log_file = log.segments[-2].log_path
    os.truncate(log_file, 100)
    log = open_log(tmp_path / "t-0", recovery_point=0)
    assert all(o <= log.log_end_offset for o in snapshot_offsets(tmp_path / "t-0"))
    assert last_snapshot > log.log_end_offset
