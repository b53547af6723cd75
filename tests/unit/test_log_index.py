"""Offset and time indexes (Kafka's file layout) and offset checkpoint files."""
import struct

import pytest

from kafka_compat.log.checkpoint import read_checkpoint, write_checkpoint
from kafka_compat.log.index import NO_TIMESTAMP, CorruptIndexError, OffsetIndex, TimeIndex


def test_offset_index_lookup_and_kafka_layout(tmp_path):
    index = OffsetIndex(tmp_path / "a.index", 100, 1024, exists=False)
    assert index.lookup(150) == (100, 0)  # empty: the segment start
    for offset, position in [(105, 4200), (112, 8400), (130, 12700)]:
        index.append(offset, position)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(104) == (100, 0)
    assert index.lookup(105) == (105, 4200)
    assert index.lookup(129) == (112, 8400)
    assert index.lookup(10**9) == (130, 12700)
    assert index.lookup_position(8399) == 4200
    assert index.lookup_position(8400) == 8400
    assert index.lookup_position(10) == 0
    with pytest.raises(ValueError):
        index.append(130, 13000)

    index.save(sync=False)
    data = (tmp_path / "a.index").read_bytes()
    assert data == struct.pack(">iiiiii", 5, 4200, 12, 8400, 30, 12700)
    reloaded = OffsetIndex(tmp_path / "a.index", 100, 1024, exists=True)
    assert reloaded.last_entry() == (130, 12700)
    assert reloaded.lookup(115) == (112, 8400)


def test_offset_index_is_full_at_segment_index_bytes(tmp_path):
    index = OffsetIndex(tmp_path / "a.index", 0, 24, exists=False)
    for i in range(3):
        assert not index.is_full
        index.append(i + 1, (i + 1) * 10)
    assert index.is_full


@pytest.mark.parametrize(
    "content",
    [
        b"\x00" * 7,  # not a whole entry
        struct.pack(">iiii", 9, 100, 3, 200),  # offsets going backwards
        struct.pack(">ii", -4, 100),  # before the base offset
    ],
)
def test_offset_index_rejects_garbage(tmp_path, content):
    (tmp_path / "a.index").write_bytes(content)
    index = OffsetIndex(tmp_path / "a.index", 0, 1024, exists=True)
    with pytest.raises(CorruptIndexError):
        index.check(log_size=10_000)


def test_offset_index_check_against_its_segment(tmp_path):
    (tmp_path / "a.index").write_bytes(struct.pack(">ii", 5, 5000))
    with pytest.raises(CorruptIndexError):
        OffsetIndex(tmp_path / "a.index", 0, 1024, exists=True).check(log_size=5000)
    OffsetIndex(tmp_path / "a.index", 0, 1024, exists=True).check(log_size=5001)
    with pytest.raises(CorruptIndexError):
        OffsetIndex(tmp_path / "missing.index", 0, 1024, exists=True).check(9000)


def test_time_index_appends_only_larger_timestamps(tmp_path):
    index = TimeIndex(tmp_path / "a.timeindex", 50, 1200, exists=False)
    assert index.last_entry() == (NO_TIMESTAMP, 50)
    index.maybe_append(1000, 52)
    index.maybe_append(1000, 55)  # same timestamp: no entry
    index.maybe_append(900, 56)  # smaller: no entry
    index.maybe_append(2000, 60)
    assert len(index) == 2
    assert index.lookup(999) == (NO_TIMESTAMP, 50)
    assert index.lookup(1500) == (1000, 52)
    assert index.lookup(2000) == (2000, 60)
    with pytest.raises(ValueError):
        index.maybe_append(3000, 59)  # offset going backwards

    index.save(sync=False)
    assert (tmp_path / "a.timeindex").read_bytes() == struct.pack(">qiqi", 1000, 2, 2000, 10)
    # The last entry (the segment's max timestamp) is read without loading it all.
    assert TimeIndex(tmp_path / "a.timeindex", 50, 1200, exists=True).last_entry() == (2000, 60)
    assert TimeIndex(tmp_path / "a.timeindex", 50, 1200, exists=True).lookup(1999) == (1000, 52)


def test_time_index_keeps_a_slot_for_the_roll_entry(tmp_path):
    index = TimeIndex(tmp_path / "a.timeindex", 0, 36, exists=False)
    index.maybe_append(1, 1)
    index.maybe_append(2, 2)
    assert index.is_full
    with pytest.raises(ValueError):
        index.maybe_append(3, 3)
    index.maybe_append(3, 3, skip_full_check=True)
    assert index.last_entry() == (3, 3)


def test_time_index_rejects_garbage(tmp_path):
    (tmp_path / "a.timeindex").write_bytes(struct.pack(">qiqi", 500, 3, 400, 2))
    with pytest.raises(CorruptIndexError):
        TimeIndex(tmp_path / "a.timeindex", 0, 1200, exists=True).check()
    (tmp_path / "b.timeindex").write_bytes(b"\x01" * 13)
    with pytest.raises(CorruptIndexError):
        TimeIndex(tmp_path / "b.timeindex", 0, 1200, exists=True).last_entry()


def test_checkpoint_file_format(tmp_path):
    path = tmp_path / "recovery-point-offset-checkpoint"
    write_checkpoint(path, {("orders", 0): 42, ("my-topic.v2", 11): 0})
    assert path.read_text() == "0\n2\norders 0 42\nmy-topic.v2 11 0\n"
    assert read_checkpoint(path) == {("orders", 0): 42, ("my-topic.v2", 11): 0}
    assert not path.with_name(path.name + ".tmp").exists()


@pytest.mark.parametrize("text", ["", "1\n0\n", "0\n2\nt 0 5\n", "0\n1\nt zero 5\n"])
def test_malformed_or_missing_checkpoint_reads_as_empty(tmp_path, text):
    path = tmp_path / "cp"
    assert read_checkpoint(path) == {}
    path.write_text(text)
    assert read_checkpoint(path) == {}
