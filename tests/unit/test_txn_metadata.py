"""The transaction state machine and the __transaction_state record format, without sockets."""
import struct

import pytest

from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.txn import log_format
from kafka_compat.txn.metadata import (
    COMPLETE_COMMIT,
    EMPTY,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    PREPARE_EPOCH_FENCE,
    IllegalTransition,
    TxnState,
    new_metadata,
)


def initialized(now=1000):
    m = new_metadata("tx", 7, 60000, now)
    m.complete_transition(m.prepare_increment_producer_epoch(60000, None, now))
    return m


def test_first_init_bumps_the_epoch_to_zero():
    m = initialized()
    assert (m.producer_id, m.producer_epoch, m.last_producer_epoch, m.state) == (7, 0, -1, EMPTY)


def test_a_full_commit_cycle():
    m = initialized()
    m.complete_transition(m.prepare_add_partitions({("t", 0)}, 2000))
    assert (m.state, m.partitions, m.start_ms) == (ONGOING, {("t", 0)}, 2000)
    m.complete_transition(m.prepare_add_partitions({("t", 1)}, 2500))
    assert m.start_ms == 2000 and m.partitions == {("t", 0), ("t", 1)}
    m.complete_transition(m.prepare_abort_or_commit(PREPARE_COMMIT, 3000))
    m.remove_partition(("t", 0))
    m.remove_partition(("t", 1))
    m.complete_transition(m.prepare_complete(4000))
    assert (m.state, m.partitions, m.update_ms) == (COMPLETE_COMMIT, set(), 4000)


def test_a_pending_change_blocks_another():
    m = initialized()
    m.prepare_add_partitions({("t", 0)}, 2000)
    with pytest.raises(IllegalTransition):
        m.prepare_add_partitions({("t", 1)}, 2000)


def test_commit_is_not_valid_from_empty():
    with pytest.raises(IllegalTransition):
        initialized().prepare_abort_or_commit(PREPARE_COMMIT, 2000)


def test_kip360_epoch_checks():
    m = initialized()
    # The current epoch: bump, remembering the last one.
    t = m.prepare_increment_producer_epoch(60000, 0, 2000)
    m.complete_transition(t)
    assert (m.producer_epoch, m.last_producer_epoch) == (1, 0)
    # A retry with the last epoch gets the same answer without a bump.
    t = m.prepare_increment_producer_epoch(60000, 0, 2000)
    assert (t.producer_epoch, t.last_producer_epoch) == (1, 0)
    m.pending_state = None
    # Anything else is a zombie.
    assert m.prepare_increment_producer_epoch(60000, 5, 2000) == ErrorCode.PRODUCER_FENCED


def test_fencing_an_ongoing_transaction_bumps_the_epoch():
    m = initialized()
    m.complete_transition(m.prepare_add_partitions({("t", 0)}, 2000))
    t = m.prepare_fence_producer_epoch()
    assert (t.state, t.producer_epoch) == (PREPARE_EPOCH_FENCE, 1)


def test_names():
    assert [s.kafka_name for s in TxnState] == ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort",
                                                 "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"]
    assert TxnState.from_name("PrepareAbort") is PREPARE_ABORT and TxnState.from_name("nope") is None


def test_key_bytes_are_kafkas():
    assert log_format.key_bytes("tx") == b"\x00\x00\x00\x02tx"
    assert log_format.read_key(b"\x00\x00\x00\x02tx") == "tx"


def test_value_bytes_are_kafkas_and_read_back():
    m = initialized()
    t = m.prepare_add_partitions({("b", 1), ("a", 0), ("b", 0)}, 2000)
    data = log_format.value_bytes(t)
    expected = (struct.pack(">hqhib", 0, 7, 0, 60000, 1) + struct.pack(">i", 2)
                + struct.pack(">h", 1) + b"a" + struct.pack(">ii", 1, 0)
                + struct.pack(">h", 1) + b"b" + struct.pack(">iii", 2, 0, 1)
                + struct.pack(">qq", 2000, 2000))
    assert data == expected
    back = log_format.read_value("tx", data)
    assert (back.producer_id, back.producer_epoch, back.state, back.partitions, back.start_ms, back.update_ms) == (
        7, 0, ONGOING, {("a", 0), ("b", 0), ("b", 1)}, 2000, 2000)


def test_an_empty_transaction_has_null_partitions():
    m = new_metadata("tx", 7, 60000, 1000)
    data = log_format.value_bytes(m.prepare_increment_producer_epoch(60000, None, 1000))
    assert data == struct.pack(">hqhibiqq", 0, 7, 0, 60000, 0, -1, 1000, -1)


def test_an_exhausted_epoch_rotates_to_a_new_producer_id():
    m = initialized()
    m.producer_epoch = 32766  # MAX_EPOCH - 1: no client may use more
    assert m.epoch_exhausted
    t = m.prepare_producer_id_rotation(8, 60000, 2000, record_last_epoch=True)
    assert (t.producer_id, t.producer_epoch, t.last_producer_id, t.last_producer_epoch) == (8, 0, 7, 32766)
    m.complete_transition(t)
    assert (m.producer_id, m.producer_epoch, m.last_producer_id) == (8, 0, 7)


def test_a_failed_fence_reuses_its_epoch():
    m = initialized()
    m.complete_transition(m.prepare_add_partitions({("t", 0)}, 2000))
    assert m.prepare_fence_producer_epoch().producer_epoch == 1
    # The abort carrying epoch 1 was not written (the epoch stays, never told to a client).
    m.pending_state, m.producer_epoch, m.has_failed_epoch_fence = None, 1, True
    assert m.prepare_fence_producer_epoch().producer_epoch == 1
