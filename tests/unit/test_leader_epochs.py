"""The leader epoch cache (Kafka's LeaderEpochFileCacheTest facts) and its
``leader-epoch-checkpoint`` file, byte for byte."""
import pytest

from kafka_compat.log.leader_epochs import (
    UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
    CorruptCheckpointError,
    EpochEntry,
    LeaderEpochCache,
    read_leader_epoch_checkpoint,
    write_leader_epoch_checkpoint,
)

UNDEFINED = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)


def cache_of(*entries):
    cache = LeaderEpochCache()
    for epoch, offset in entries:
        cache.assign(epoch, offset)
    return cache


def test_latest_epoch_ends_at_the_log_end():
    cache = cache_of((2, 10))
    assert cache.entries == [EpochEntry(2, 10)]
    assert cache.end_offset_for(2, 11) == (2, 11)
    assert cache.latest_epoch == 2


def test_undefined_or_unknown_epochs():
    assert LeaderEpochCache().end_offset_for(0, 0) == UNDEFINED
    assert LeaderEpochCache().end_offset_for(UNDEFINED_EPOCH, 73) == UNDEFINED
    assert cache_of((2, 100)).end_offset_for(3, 100) == UNDEFINED  # newer than any we know
    assert cache_of((2, 100)).end_offset_for(UNDEFINED_EPOCH, 100) == UNDEFINED


def test_an_epoch_keeps_its_first_start_offset():
    cache = cache_of((2, 9))
    assert not cache.assign(2, 10)
    assert cache.entries == [(2, 9)]


def test_start_offsets_and_epochs_only_increase():
    assert cache_of((2, 9), (3, 9)).entries == [(3, 9)]
    assert cache_of((2, 6), (3, 5)).entries == [(3, 5)]
    cache = cache_of((1, 5), (2, 6), (1, 7))  # an older epoch after a newer one wins, as in Kafka
    assert cache.entries == [(1, 7)]
    assert cache.end_offset_for(1, 8) == (1, 8)
    assert cache.end_offset_for(2, 8) == UNDEFINED


def test_an_epoch_older_than_all_ends_where_the_first_starts():
    assert cache_of((5, 11), (6, 12), (7, 13)).end_offset_for(4, 0) == (4, 11)


def test_the_same_epoch_at_an_earlier_offset_truncates():
    cache = cache_of((5, 11), (6, 12), (7, 13), (7, 12))
    assert cache.entries == [(5, 11), (7, 12)]
    assert cache.end_offset_for(5, 0) == (5, 12)
    assert cache.end_offset_for(6, 0) == (5, 12)


def test_an_epoch_ends_where_the_next_one_starts():
    cache = cache_of((1, 11), (1, 12), (2, 13), (2, 14), (3, 15), (3, 16))
    assert cache.entries == [(1, 11), (2, 13), (3, 15)]
    assert cache.end_offset_for(2, 17) == (2, 15)
    gaps = cache_of((0, 10), (2, 13), (4, 17))
    assert gaps.end_offset_for(1, 0) == (0, 13)  # the largest epoch below, with its end
    assert gaps.end_offset_for(2, 0) == (2, 17)
    assert gaps.end_offset_for(3, 0) == (2, 17)


def test_truncate_from_end():
    cache = cache_of((2, 6), (3, 8), (4, 11))
    assert cache.truncate_from_end(11)  # on an epoch boundary: that epoch goes
    assert cache.entries == [(2, 6), (3, 8)]
    assert cache.truncate_from_end(7)  # between boundaries: the later epoch goes
    assert cache.entries == [(2, 6)]
    assert not cache.truncate_from_end(7)
    assert not cache.truncate_from_end(UNDEFINED_EPOCH_OFFSET)
    assert cache.entries == [(2, 6)]


def test_truncate_from_start():
    entries = [(2, 6), (3, 8), (4, 11)]
    cache = cache_of(*entries)
    assert not cache.truncate_from_start(5)  # before everything: nothing changes
    assert not cache.truncate_from_start(6)  # the first entry's own offset
    assert cache.entries == entries
    assert cache.truncate_from_start(9)  # inside epoch 3: it now starts at 9
    assert cache.entries == [(3, 9), (4, 11)]
    assert cache.truncate_from_start(11)  # on a boundary
    assert cache.entries == [(4, 11)]
    assert cache.truncate_from_start(15)  # past the latest epoch's start: it moves there
    assert cache.entries == [(4, 15)]
    assert LeaderEpochCache().truncate_from_start(3) is False


def test_clear_and_invalid_entries():
    cache = cache_of((2, 6))
    assert cache.clear() and cache.entries == [] and cache.latest_epoch is None
    assert not cache.clear()
    with pytest.raises(ValueError):
        cache.assign(-1, 0)
    with pytest.raises(ValueError):
        cache.assign(0, -1)


def test_leaders_changing_many_times():
    cache = LeaderEpochCache()
    cache.assign(0, 0)
    cache.assign(1, 5)
    cache.assign(2, 5)  # a leader that wrote nothing before the next one came
    cache.assign(3, 9)
    assert cache.entries == [(0, 0), (2, 5), (3, 9)]
    assert cache.end_offset_for(0, 12) == (0, 5)
    assert cache.end_offset_for(1, 12) == (0, 5)
    assert cache.end_offset_for(2, 12) == (2, 9)
    assert cache.end_offset_for(3, 12) == (3, 12)


# -- the checkpoint file --------------------------------------------------------
def test_checkpoint_is_kafkas_format(tmp_path):
    path = tmp_path / "leader-epoch-checkpoint"
    write_leader_epoch_checkpoint(path, [EpochEntry(0, 0), EpochEntry(3, 1500), EpochEntry(12, 2**40)], sync=True)
    assert path.read_bytes() == b"0\n3\n0 0\n3 1500\n12 1099511627776\n"
    assert read_leader_epoch_checkpoint(path) == [(0, 0), (3, 1500), (12, 2**40)]
    assert not (tmp_path / "leader-epoch-checkpoint.tmp").exists()
    write_leader_epoch_checkpoint(path, [], sync=False)
    assert path.read_bytes() == b"0\n0\n"
    assert read_leader_epoch_checkpoint(path) == []


def test_checkpoint_written_by_kafka_is_read(tmp_path):
    path = tmp_path / "leader-epoch-checkpoint"
    path.write_bytes(b"0\n2\n0  1\n1 2\n")  # Kafka splits on any run of whitespace
    assert read_leader_epoch_checkpoint(path) == [(0, 1), (1, 2)]
    path.write_bytes(b"")  # Kafka creates the file empty
    assert read_leader_epoch_checkpoint(path) == []


@pytest.mark.parametrize("content", [
    b"1\n0\n",  # unknown version
    b"0\n2\n0 1\n",  # fewer entries than counted
    b"0\n1\n0 1 2\n",  # a malformed line
    b"0\nx\n",
    b"0\n1\n0 \xff\n",
])
def test_corrupt_checkpoint(tmp_path, content):
    path = tmp_path / "leader-epoch-checkpoint"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError):
        read_leader_epoch_checkpoint(path)
