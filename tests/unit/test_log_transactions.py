"""Transactions in a partition's log, on real files: producer state for open
and decided transactions (Kafka's ProducerAppendInfo checks), the first
unstable and last stable offsets, markers, the .txnindex (Kafka's 34-byte
entries) and what READ_COMMITTED reads collect from it, and all of that
through snapshots, crashes, truncation, followers and retention."""
import struct
import time

import pytest

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.log.txn_index import ENTRY_SIZE, AbortedTxn, TransactionIndex
from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.protocol.records import BatchView, ControlType, build_batch, iter_batches
from kafka_compat.txn.producer_state import NO_TXN, CompletedTxn, ProducerStateManager

NOW = int(time.time() * 1000)
CONFIG = {"segment.bytes": 600, "index.interval.bytes": 100}


def open_log(path, *, clean=False, recovery_point=0, config=CONFIG):
    return PartitionLog.open(path, "t", 0, LogConfig(config), clean_shutdown=clean, recovery_point=recovery_point)


def txn_batch(pid, seq, count=1, epoch=0, transactional=True):
    data = bytearray(build_batch([(None, b"p%d-%d" % (pid, seq + i), [], NOW) for i in range(count)],
                                 producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                                 transactional=transactional))
    return data, BatchView(data, 0)


def plain_batch(count=1):
    data = bytearray(build_batch([(None, b"plain", [], NOW)] * count))
    return data, BatchView(data, 0)


def append(log, batch):
    data, view = batch
    return log.append(data, [view], leader_epoch=0)


def crash(log):
    for segment in log.segments:
        segment.close()


# -- producer state on its own ---------------------------------------------------------


def apply(state, view, offset):
    a = state.begin_append()
    a.add(view, offset)
    a.commit()


def marker(state, pid, commit, offset, epoch=0, coordinator_epoch=0):
    a = state.begin_append()
    done = a.add_marker(pid, epoch, ControlType.COMMIT if commit else ControlType.ABORT, coordinator_epoch, offset, NOW)
    a.commit()
    return done


def test_a_transaction_opens_with_its_first_batch_and_a_marker_completes_it():
    state = ProducerStateManager()
    apply(state, txn_batch(1, 0, 2)[1], 10)
    apply(state, txn_batch(1, 2)[1], 12)
    assert state.producers[1].current_txn_first_offset == 10
    assert state.first_unstable_offset == 10
    done = marker(state, 1, commit=False, offset=13)
    assert done == CompletedTxn(1, 10, 13, True)
    assert state.last_stable_offset(done) == 14
    state.complete_txn(done)
    assert state.producers[1].current_txn_first_offset == NO_TXN
    # Decided, but unstable until the high watermark passes the marker.
    assert state.first_unstable_offset == 10
    state.on_high_watermark_updated(13)
    assert state.first_unstable_offset == 10
    state.on_high_watermark_updated(14)
    assert state.first_unstable_offset is None


def test_the_last_stable_offset_of_a_completed_txn_stops_at_another_producers_open_one():
    state = ProducerStateManager()
    apply(state, txn_batch(1, 0)[1], 0)
    apply(state, txn_batch(2, 0)[1], 1)
    done = marker(state, 1, commit=False, offset=2)
    assert state.last_stable_offset(done) == 1
    state.complete_txn(done)
    state.on_high_watermark_updated(3)
    assert state.first_unstable_offset == 1


def test_an_empty_transaction_completes_nothing_but_takes_the_coordinator_epoch():
    state = ProducerStateManager()
    assert marker(state, 7, commit=True, offset=0, coordinator_epoch=3) is None
    assert state.producers[7].coordinator_epoch == 3
    assert state.first_unstable_offset is None


def test_kafkas_checks_for_transactional_appends_and_markers():
    state = ProducerStateManager()
    apply(state, txn_batch(1, 0, epoch=2)[1], 0)

    def code(fn):
        with pytest.raises(KafkaError) as info:
            fn()
        return info.value.code

    # A plain batch of a producer with an open transaction.
    assert code(lambda: state.begin_append().add(txn_batch(1, 1, epoch=2, transactional=False)[1], 1)) \
        == ErrorCode.INVALID_TXN_STATE
    # A batch or a marker of an older producer epoch.
    assert code(lambda: state.begin_append().add(txn_batch(1, 0, epoch=1)[1], 1)) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert code(lambda: state.begin_append().add_marker(1, 1, ControlType.COMMIT, 0, 1, NOW)) \
        == ErrorCode.INVALID_PRODUCER_EPOCH
    marker(state, 1, commit=True, offset=1, epoch=2, coordinator_epoch=5)
    # A marker from an older coordinator.
    assert code(lambda: state.begin_append().add_marker(1, 2, ControlType.COMMIT, 4, 2, NOW)) \
        == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    # A marker of a newer epoch (the coordinator fenced the producer) bumps it.
    marker(state, 1, commit=False, offset=2, epoch=3, coordinator_epoch=5)
    assert state.producers[1].epoch == 3


def test_snapshots_carry_open_transactions_and_coordinator_epochs_and_read_version_1():
    state = ProducerStateManager()
    apply(state, txn_batch(1, 0)[1], 0)
    marker(state, 2, commit=True, offset=1, coordinator_epoch=9)
    state.end_offset = 2
    again = ProducerStateManager()
    again.load_snapshot_bytes(state.snapshot_bytes())
    assert again.producers[1].current_txn_first_offset == 0
    assert again.producers[2].coordinator_epoch == 9
    assert again.ongoing == {0: 1} and again.first_unstable_offset == 0
    # A version 1 snapshot (idempotence only) still loads.
    import crc32c
    body = struct.pack(">qi", 5, 1) + struct.pack(">qhqb", 3, 0, NOW, 1) + struct.pack(">iiqqq", 0, 0, 4, 4, NOW)
    v1 = struct.pack(">4shI", b"KCPS", 1, crc32c.crc32c(body)) + body
    old = ProducerStateManager()
    old.load_snapshot_bytes(v1)
    assert old.producers[3].last_seq == 0 and old.producers[3].current_txn_first_offset == NO_TXN
    assert old.end_offset == 5


def test_expiration_spares_producers_with_an_open_transaction():
    state = ProducerStateManager()
    apply(state, txn_batch(1, 0)[1], 0)
    apply(state, txn_batch(2, 0, transactional=False)[1], 1)
    state.remove_expired(NOW + 10**9, 1000)
    assert list(state.producers) == [1]


# -- the .txnindex file ---------------------------------------------------------------


def test_txn_index_is_kafkas_format_and_truncates_as_kafka(tmp_path):
    index = TransactionIndex(tmp_path / "00000000000000000000.txnindex", 0)
    assert not index.path.exists()  # created by the first entry
    index.append(AbortedTxn(5, 0, 10, 11))
    index.append(AbortedTxn(6, 3, 20, 21))
    with pytest.raises(ValueError):
        index.append(AbortedTxn(7, 15, 20, 21))
    index.flush()
    data = index.path.read_bytes()
    assert len(data) == 2 * ENTRY_SIZE == 68
    assert struct.unpack(">hqqqq", data[:34]) == (0, 5, 0, 10, 11)
    out = []
    assert index.collect(11, 30, out) is False and out == [AbortedTxn(6, 3, 20, 21)]
    out = []
    assert index.collect(0, 5, out) is True and out == [AbortedTxn(5, 0, 10, 11)]
    index.truncate_to(20)
    index.close()
    reread = TransactionIndex(index.path, 0)
    assert reread.entries == [AbortedTxn(5, 0, 10, 11)]
    reread.close()


# -- in the log ------------------------------------------------------------------------


def test_lso_markers_txnindex_and_read_committed(tmp_path):
    log = open_log(tmp_path / "t-0")
    append(log, plain_batch())                       # 0
    append(log, txn_batch(1, 0, 2))                  # 1-2 (aborted)
    assert log.last_stable_offset == 1 and log.high_watermark == 3
    append(log, txn_batch(2, 0))                     # 3 (committed)
    append(log, plain_batch())                       # 4
    result = log.append_marker(1, 0, commit=False, coordinator_epoch=0, leader_epoch=0)  # 5
    assert result.base_offset == 5
    assert log.last_stable_offset == 3  # producer 2's transaction is still open
    log.append_marker(2, 0, commit=True, coordinator_epoch=0, leader_epoch=0)  # 6
    assert log.last_stable_offset == 7 == log.log_end_offset
    entries = [e for s in log.segments for e in s.txn_index.entries]
    assert entries == [AbortedTxn(1, 1, 5, 3)]
    read = log.read(0, 10**6, True, max_offset=log.last_stable_offset, aborted=True)
    assert read.aborted_transactions == [AbortedTxn(1, 1, 5, 3)]
    assert log.read(6, 10**6, True, aborted=True).aborted_transactions == []
    assert log.read(0, 10**6, True).aborted_transactions is None
    batches = list(iter_batches(read.read_bytes()))
    control = [b for b in batches if b.is_control]
    assert [(b.base_offset, b.producer_id, b.is_transactional) for b in control] == [(5, 1, True), (6, 2, True)]
    assert [r.key for r in control[0].records()] == [struct.pack(">hh", 0, 0)]
    assert [r.value for r in control[1].records()] == [struct.pack(">hi", 0, 0)]


def test_lso_under_replication_waits_for_the_marker_to_be_replicated(tmp_path):
    log = open_log(tmp_path / "t-0")
    log.high_watermark_follows_leo = False
    append(log, txn_batch(1, 0))
    log.append_marker(1, 0, commit=True, coordinator_epoch=0, leader_epoch=0)
    assert log.high_watermark == 0 and log.last_stable_offset == 0
    log.high_watermark = 1
    assert log.last_stable_offset == 0  # the marker at 1 isn't replicated yet
    log.high_watermark = 2
    assert log.last_stable_offset == 2


def many_aborted(log, rounds):
    """Each round: producer 1 and 2 transactional batches, 1 aborted, 2 committed."""
    for r in range(rounds):
        append(log, txn_batch(1, 2 * r, 2))
        append(log, txn_batch(2, 2 * r, 2))
        append(log, plain_batch(2))
        log.append_marker(1, 0, commit=False, coordinator_epoch=0, leader_epoch=0)
        log.append_marker(2, 0, commit=True, coordinator_epoch=0, leader_epoch=0)


def snapshot_of(log):
    return [(s.base_offset, list(s.txn_index.entries)) for s in log.segments]


def test_crash_recovery_rebuilds_txnindex_producer_state_and_lso(tmp_path):
    log = open_log(tmp_path / "t-0")
    many_aborted(log, 6)
    append(log, txn_batch(3, 0))  # left open
    assert len(log.segments) > 3
    expected = snapshot_of(log)
    lso = log.last_stable_offset
    assert lso == log.log_end_offset - 1
    crash(log)
    # A torn active .txnindex must not matter: recovery rebuilds it.
    active_index = log.segments[-1].txn_index.path
    if active_index.exists():
        active_index.write_bytes(b"\x00" * 5)
    again = open_log(tmp_path / "t-0", recovery_point=log.segments[1].base_offset)
    assert snapshot_of(again) == expected
    assert again.last_stable_offset == lso
    assert again.producer_state.producers[3].current_txn_first_offset == lso
    again.append_marker(3, 0, commit=False, coordinator_epoch=0, leader_epoch=0)
    assert again.last_stable_offset == again.log_end_offset


async def test_clean_restart_keeps_open_transactions_and_the_index(tmp_path):
    log = open_log(tmp_path / "t-0")
    many_aborted(log, 3)
    append(log, txn_batch(3, 0))
    expected, lso = snapshot_of(log), log.last_stable_offset
    await log.close()
    again = open_log(tmp_path / "t-0", clean=True)
    assert snapshot_of(again) == expected and again.last_stable_offset == lso
    await again.close()


async def test_truncation_cuts_the_txnindex_and_reopens_the_transaction(tmp_path):
    log = open_log(tmp_path / "t-0")
    many_aborted(log, 4)
    # Cut just before the last abort marker: the transaction is open again.
    target = max(e.last_offset for s in log.segments for e in s.txn_index.entries)
    await log.truncate_to(target)
    assert all(e.last_offset < target for s in log.segments for e in s.txn_index.entries)
    first = log.producer_state.producers[1].current_txn_first_offset
    assert first != NO_TXN and log.last_stable_offset == first
    await log.close()


async def test_a_follower_keeps_producer_state_lso_and_txnindex(tmp_path):
    leader = open_log(tmp_path / "l-0")
    follower = open_log(tmp_path / "f-0")
    many_aborted(leader, 4)
    append(leader, txn_batch(3, 0))
    while follower.log_end_offset < leader.log_end_offset:
        follower.append_as_follower(leader.read(follower.log_end_offset, 300, True).read_bytes())
    assert snapshot_of(follower) == snapshot_of(leader)
    assert follower.last_stable_offset == leader.last_stable_offset
    assert follower.producer_state.snapshot_bytes() == leader.producer_state.snapshot_bytes()
    await leader.close()
    await follower.close()


async def test_retention_and_delete_records_past_an_aborted_txn(tmp_path):
    log = open_log(tmp_path / "t-0", config={**CONFIG, "retention.ms": -1})
    many_aborted(log, 6)
    first_segment_index = log.segments[0].txn_index.path
    assert first_segment_index.exists()
    cut = log.segments[2].base_offset
    log.increment_log_start_offset(cut)
    assert await log.delete_old_segments() == 2
    files = [p.name for p in (tmp_path / "t-0").iterdir()]
    assert f"{0:020d}.txnindex" not in files
    read = log.read(log.log_start_offset, 10**6, True, max_offset=log.last_stable_offset, aborted=True)
    assert all(t.last_offset >= log.log_start_offset for t in read.aborted_transactions)
    assert log.last_stable_offset == log.log_end_offset
    await log.close()


def test_every_read_committed_read_lists_the_aborted_transactions_its_batches_belong_to(tmp_path):
    """What a consumer relies on, from any offset, whatever the size, across
    segments: each aborted transaction with a batch in the read is listed."""
    log = open_log(tmp_path / "t-0")
    many_aborted(log, 8)
    assert len(log.segments) > 3
    aborted = [e for s in log.segments for e in s.txn_index.entries]
    for offset in range(log.log_end_offset):
        for max_bytes in (1, 200, 10**6):
            read = log.read(offset, max_bytes, True, max_offset=log.last_stable_offset, aborted=True)
            listed = set(read.aborted_transactions)
            for batch in iter_batches(read.read_bytes()):
                for txn in aborted:
                    inside = txn.first_offset <= batch.base_offset <= txn.last_offset
                    if batch.producer_id == txn.producer_id and inside:
                        assert txn in listed, (offset, max_bytes, batch.base_offset, txn)


async def test_a_torn_txnindex_after_a_clean_shutdown_is_rebuilt(tmp_path):
    log = open_log(tmp_path / "t-0")
    many_aborted(log, 6)
    expected = snapshot_of(log)
    await log.close()
    first_index = next(s.txn_index.path for s in log.segments if s.txn_index.entries)
    first_index.write_bytes(first_index.read_bytes() + b"\x00\x01")
    again = open_log(tmp_path / "t-0", clean=True, recovery_point=log.log_end_offset)
    assert snapshot_of(again) == expected
    await again.close()
