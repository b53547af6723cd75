"""PartitionLog: appends, reads with KIP-74 batch boundaries, indexes, rolls,
and timestamp lookups, all against real files."""
import os
import socket

import pytest

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.protocol.records import LOG_APPEND_TIME, BatchView, Codec, build_batch, iter_batches


def make_batch(values, timestamps=None, codec=Codec.NONE):
    timestamps = timestamps or [1_000] * len(values)
    return bytearray(build_batch([(None, v, [], t) for v, t in zip(values, timestamps)], codec=codec))


def append(log, values, timestamps=None, *, leader_epoch=0, codec=Codec.NONE, **kw):
    data = make_batch(values, timestamps, codec)
    return log.append(data, [BatchView(data, 0)], leader_epoch, **kw)


def open_log(path, **config):
    return PartitionLog.open(path, "t", 0, LogConfig(config))


def batches(result):
    return list(iter_batches(result.read_bytes()))


def records(result):
    return [(r.offset, r.value) for b in batches(result) for r in b.records()]


def read_all(log):
    """Every record, reading fetch after fetch as a consumer does."""
    out, offset = [], log.log_start_offset
    while offset < log.log_end_offset:
        result = log.read(offset, 700, min_one_batch=True)
        got = records(result)
        assert got, f"no progress at offset {offset}"
        out += [(o, v) for o, v in got if o >= offset]
        offset = batches(result)[-1].next_offset
    return out


def test_round_trip_across_many_segments(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.bytes": 1000, "index.interval.bytes": 200})
    expected = []
    for i in range(120):
        values = [b"value-%d-%d" % (i, j) for j in range(1 + i % 4)]
        result = append(log, values)
        assert result.base_offset == len(expected)
        assert result.last_offset == len(expected) + len(values) - 1
        assert result.log_append_time == -1 and result.log_start_offset == 0
        expected += [(result.base_offset + j, v) for j, v in enumerate(values)]
    assert log.log_end_offset == len(expected) == log.high_watermark
    assert len(log.segments) > 10
    assert read_all(log) == expected

    names = sorted(os.listdir(tmp_path / "t-0"))
    assert "00000000000000000000.log" in names
    for segment in log.segments:
        assert segment.log_path.name == f"{segment.base_offset:020d}.log"
        assert segment.size <= 1000
        first = next(iter_batches(os.pread(segment.fd, segment.size, 0)))
        assert first.base_offset == segment.base_offset


def test_every_offset_reads_from_the_batch_holding_it(tmp_path):
    log = open_log(tmp_path / "t-0", **{"index.interval.bytes": 150})
    for i in range(60):
        append(log, [b"x" * 20] * 3)
    assert len(log.segments[0].offset_index) > 5
    for offset in range(log.log_end_offset):
        first = batches(log.read(offset, 1, min_one_batch=True))[0]
        assert first.base_offset <= offset <= first.last_offset


def test_reads_return_whole_batches_within_max_bytes(tmp_path):
    log = open_log(tmp_path / "t-0")
    for i in range(20):
        append(log, [b"y" * (10 + 7 * i)])
    for max_bytes in (100, 333, 1000, 2500):
        result = log.read(0, max_bytes, min_one_batch=False)
        assert 0 < result.size <= max_bytes
        views = batches(result)
        assert sum(v.size for v in views) == result.size  # no partial batch at the end
        assert all(v.crc_ok() for v in views)
        # One more batch would not have fitted.
        next_batch = batches(log.read(views[-1].next_offset, 10**6, True))[0]
        assert result.size + next_batch.size > max_bytes


def test_first_batch_larger_than_max_bytes(tmp_path):
    log = open_log(tmp_path / "t-0")
    append(log, [b"z" * 500])
    append(log, [b"z"])
    assert log.read(0, 100, min_one_batch=False).regions == []
    result = log.read(0, 100, min_one_batch=True)
    assert [b.base_offset for b in batches(result)] == [0]


def test_out_of_range_and_end_of_log(tmp_path):
    log = open_log(tmp_path / "t-0")
    assert log.read(0, 1000, True).regions == []
    append(log, [b"a", b"b"])
    assert log.read(2, 1000, True).regions == []
    result = log.read(1, 1000, True)
    assert (result.high_watermark, result.log_start_offset, result.log_end_offset) == (2, 0, 2)
    for bad in (3, -1):
        with pytest.raises(KafkaError) as info:
            log.read(bad, 1000, True)
        assert info.value.code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_max_offset_limits_reads_to_batches_below_it(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.bytes": 300})
    for i in range(10):
        append(log, [b"m" * 30, b"n" * 30])  # offsets 2i, 2i+1
    assert len(log.segments) > 2
    result = log.read(0, 10**6, True, max_offset=7)
    assert [b.base_offset for b in batches(result)][-1] <= 4
    assert all(b.last_offset < 7 for b in batches(result))
    assert log.read(6, 10**6, True, max_offset=7).regions == []
    assert log.read(6, 10**6, True, max_offset=8).size > 0


def test_a_read_stays_within_one_segment(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.bytes": 400})
    for i in range(12):
        append(log, [b"s" * 50])
    second = log.segments[1]
    result = log.read(second.base_offset - 1, 10**6, True)
    assert len(result.regions) == 1
    assert batches(result)[-1].next_offset == second.base_offset
    assert batches(log.read(second.base_offset, 10**6, True))[0].base_offset == second.base_offset


def test_append_patches_offsets_epoch_and_log_append_time(tmp_path):
    log = open_log(tmp_path / "t-0")
    append(log, [b"first"])
    data = bytes(make_batch([b"a", b"b"], [5, 7]))  # read-only input is copied
    result = log.append(data, [BatchView(data, 0)], leader_epoch=9, log_append_time_ms=123_456)
    assert (result.base_offset, result.last_offset, result.log_append_time) == (1, 2, 123_456)
    stored = batches(log.read(1, 1000, True))[0]
    assert stored.base_offset == 1 and stored.partition_leader_epoch == 9
    assert stored.timestamp_type == LOG_APPEND_TIME and stored.max_timestamp == 123_456
    assert stored.crc_ok()
    assert [r.timestamp for r in stored.records()] == [123_456, 123_456]


def test_batch_larger_than_a_segment_is_refused(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.bytes": 200})
    with pytest.raises(KafkaError) as info:
        append(log, [b"q" * 300])
    assert info.value.code == ErrorCode.RECORD_LIST_TOO_LARGE
    assert log.log_end_offset == 0 and log.size_in_bytes == 0


def test_roll_on_segment_ms_measured_by_record_timestamps(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.ms": 10_000})
    append(log, [b"a"], [1_000])
    append(log, [b"b"], [11_000])  # exactly segment.ms later: not yet
    assert len(log.segments) == 1
    append(log, [b"c"], [11_001])
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_when_the_index_is_full(tmp_path):
    log = open_log(tmp_path / "t-0", **{"index.interval.bytes": 1, "segment.index.bytes": 32})
    for i in range(12):
        append(log, [b"i"])
    assert len(log.segments) > 1
    assert all(len(s.offset_index) <= 4 for s in log.segments)
    assert [o for o, _ in read_all(log)] == list(range(12))


def test_offset_for_timestamp(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.bytes": 400, "index.interval.bytes": 100})
    # Timestamps not monotonic inside batches; the max of batch k is 100k + 50.
    for k in range(30):
        append(log, [b"r" * 20] * 3, [100 * k + 20, 100 * k + 50, 100 * k + 10])
    assert len(log.segments) > 3
    assert log.offset_for_timestamp(0)[:2] == (0, 20)
    assert log.offset_for_timestamp(25)[:2] == (1, 50)  # first record with ts >= 25
    assert log.offset_for_timestamp(1_540)[:2] == (46, 1_550)
    assert log.offset_for_timestamp(1_551)[:2] == (48, 1_620)
    assert log.offset_for_timestamp(2_950) == (88, 2_950, 0)
    assert log.offset_for_timestamp(2_951) is None


def test_offset_for_timestamp_compressed_and_log_append_time(tmp_path):
    log = open_log(tmp_path / "t-0")
    append(log, [b"a", b"b", b"c"], [10, 30, 20], codec=Codec.GZIP)
    append(log, [b"d", b"e"], [1, 2], log_append_time_ms=500)
    assert log.offset_for_timestamp(25)[:2] == (1, 30)
    assert log.offset_for_timestamp(31)[:2] == (3, 500)


def test_max_timestamp_offset(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.bytes": 300})
    assert log.max_timestamp_offset() is None
    for k in range(10):
        timestamps = [k, 900, k] if k in (4, 7) else [k, k + 1, k]
        append(log, [b"t" * 20] * 3, timestamps, leader_epoch=3)
    assert len(log.segments) > 2
    # The first record holding the largest timestamp, not the batch's last offset.
    assert log.max_timestamp_offset() == (13, 900, 3)


def test_high_watermark_is_clamped_and_can_stop_following_the_log_end(tmp_path):
    log = open_log(tmp_path / "t-0")
    append(log, [b"a", b"b"])
    assert log.high_watermark == 2
    log.high_watermark_follows_leo = False
    append(log, [b"c"])
    assert log.high_watermark == 2
    log.high_watermark = 10  # clamped to the log end
    assert log.high_watermark == 3


def test_regions_can_be_sent_with_sendfile(tmp_path):
    log = open_log(tmp_path / "t-0", **{"segment.bytes": 400})
    for i in range(10):
        append(log, [b"f%d" % i * 20])
    result = log.read(3, 250, True)
    expected = result.read_bytes()
    left, right = socket.socketpair()
    with left, right:
        for fd, position, length in result.regions:
            while length:
                sent = os.sendfile(left.fileno(), fd, position, length)
                position, length = position + sent, length - sent
        received = b""
        while len(received) < len(expected):
            received += right.recv(65536)
    assert received == expected
    assert batches(result)[0].base_offset == 3
