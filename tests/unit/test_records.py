"""Record batch v2: build/parse round trips, interoperation with kafka-python's
record builder and reader, CRCs, torn tails, in-place patches, and the broker's
produce-time checks."""
import struct

import pytest
from crc32c import crc32c
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.record.util import decode_varint as kp_decode_varint
from kafka.record.util import encode_varint as kp_encode_varint

from kafka_compat.protocol.compression import Codec
from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.protocol.records import (
    ATTRIBUTES_OFFSET,
    BASE_OFFSET_OFFSET,
    BATCH_LENGTH_OFFSET,
    CRC_OFFSET,
    HEADER_SIZE,
    LAST_OFFSET_DELTA_OFFSET,
    LOG_APPEND_TIME,
    MAGIC_OFFSET,
    PRODUCER_ID_OFFSET,
    RECORD_COUNT_OFFSET,
    BatchView,
    ControlType,
    Record,
    build_batch,
    build_control_batch,
    decode_varint,
    decode_varlong,
    encode_varint,
    iter_batches,
    parse_end_txn_marker,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    validate_produce_records,
)

CODECS = list(Codec)
T0 = 1_700_000_000_000
MAX_BYTES = 1048588  # Kafka's default message.max.bytes


def sample_records(n=3):
    """Keys None/empty/present, values None/empty/present, headers of every shape,
    timestamps that go backwards as well as forwards."""
    shapes = [
        (None, b"v0", []),
        (b"", b"", [("h", b"x")]),
        (b"key", None, [("", b""), ("null", None), ("ünï", b"\x00\xff")]),
        (b"k" * 300, b"v" * 5000, [("big", b"h" * 200)]),
    ]
    out = []
    for i in range(n):
        key, value, headers = shapes[i % len(shapes)]
        out.append((key, value, headers, T0 + (i * 37) % 11 - 5))
    return out


def expected(records, base_offset=0):
    return [Record(base_offset + i, ts, k, v, h) for i, (k, v, h, ts) in enumerate(records)]


def with_header(batch, fmt, offset, value, fix_crc=True):
    """A copy of `batch` with one header field rewritten (and the CRC redone)."""
    buf = bytearray(batch)
    struct.pack_into(fmt, buf, offset, value)
    if fix_crc:
        struct.pack_into(">I", buf, CRC_OFFSET, crc32c(bytes(buf[ATTRIBUTES_OFFSET:])))
    return bytes(buf)


# --- varints ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,encoded",
    [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (63, b"\x7e"), (-64, b"\x7f"), (64, b"\x80\x01"),
     (2**31 - 1, b"\xfe\xff\xff\xff\x0f"), (-(2**31), b"\xff\xff\xff\xff\x0f")],
)
def test_varint_encoding(value, encoded):
    assert encode_varint(value) == encoded
    assert decode_varint(encoded + b"tail", 0) == (value, len(encoded))


@pytest.mark.parametrize("value", [0, -1, 300, -300, 2**31 - 1, -(2**31), 2**40, 2**63 - 1, -(2**63)])
def test_varlong_matches_kafka_python(value):
    theirs = bytearray()
    kp_encode_varint(value, theirs.append)
    assert encode_varint(value) == bytes(theirs)
    assert decode_varlong(bytes(theirs), 0) == kp_decode_varint(bytes(theirs), 0)


def test_overlong_varints_are_rejected():
    with pytest.raises(ValueError):
        decode_varint(b"\x80\x80\x80\x80\x80\x01", 0)
    assert decode_varlong(b"\x80\x80\x80\x80\x80\x01", 0) == (1 << 34, 6)
    with pytest.raises(ValueError):
        decode_varlong(b"\x80" * 10 + b"\x01", 0)
    with pytest.raises(IndexError):
        decode_varint(b"\x80", 0)


# --- build and parse ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("n", [1, 4, 1000])
def test_round_trip(codec, n):
    records = sample_records(n)
    batch = build_batch(records, base_offset=42, codec=codec)
    view = BatchView(batch)
    assert view.crc_ok()
    assert (view.magic, view.compression, view.record_count, view.last_offset_delta) == (2, codec, n, n - 1)
    assert (view.base_offset, view.last_offset, view.next_offset) == (42, 41 + n, 42 + n)
    assert view.size == len(batch) and view.end == len(batch)
    assert view.base_timestamp == records[0][3]
    assert view.max_timestamp == max(r[3] for r in records)
    assert list(view.records()) == expected(records, 42)


def test_header_fields_round_trip():
    batch = build_batch(
        sample_records(2),
        base_offset=2**40,
        producer_id=123456789,
        producer_epoch=7,
        base_sequence=2**31 - 1,
        partition_leader_epoch=12,
        transactional=True,
        base_timestamp=T0 - 1000,
    )
    view = BatchView(memoryview(batch))
    assert view.crc_ok()
    assert view.base_offset == 2**40
    assert view.partition_leader_epoch == 12
    assert (view.producer_id, view.producer_epoch, view.base_sequence) == (123456789, 7, 2**31 - 1)
    assert view.has_producer_id and view.is_transactional and not view.is_control
    assert not view.has_delete_horizon
    assert view.timestamp_type == 0
    assert view.base_timestamp == T0 - 1000
    assert view.last_sequence == 0  # wraps past INT32_MAX like Kafka
    assert [r.timestamp for r in view.records()] == [r[3] for r in sample_records(2)]


def test_batch_at_an_offset_in_a_larger_buffer():
    first, second = build_batch(sample_records(2)), build_batch(sample_records(3), base_offset=2)
    buf = b"junk" + first + second
    view = BatchView(buf, 4 + len(first))
    assert view.crc_ok() and view.base_offset == 2
    assert list(view.records()) == expected(sample_records(3), 2)


def test_no_sequence_means_no_last_sequence():
    assert BatchView(build_batch(sample_records(3))).last_sequence == -1
    assert BatchView(build_batch(sample_records(3), producer_id=1, producer_epoch=0, base_sequence=5)).last_sequence == 7


def test_empty_batch_is_refused():
    with pytest.raises(ValueError):
        build_batch([])


# --- interop with kafka-python ------------------------------------------------------------------


def kafka_python_batch(codec, records, **producer_state):
    builder = MemoryRecordsBuilder(magic=2, compression_type=codec, batch_size=10**7, **producer_state)
    for key, value, headers, ts in records:
        assert builder.append(ts, key, value, headers) is not None
    builder.close()
    return bytes(builder.buffer())


@pytest.mark.parametrize("codec", CODECS)
def test_parses_kafka_python_batches(codec):
    records = sample_records(50)  # compressible: kafka-python only compresses when it pays
    batch = kafka_python_batch(codec, records, transactional=True, producer_id=99, producer_epoch=3, base_sequence=10)
    views = list(iter_batches(batch))
    assert len(views) == 1
    view = views[0]
    assert view.crc_ok()
    assert view.compression == codec
    assert (view.producer_id, view.producer_epoch, view.base_sequence, view.last_sequence) == (99, 3, 10, 59)
    assert view.is_transactional
    assert list(view.records()) == expected(records)
    (checked,) = validate_produce_records(batch, api_version=9, max_message_bytes=MAX_BYTES)
    assert (checked.pos, checked.end) == (0, len(batch))


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_our_batches(codec):
    records = sample_records(50)
    batches = build_batch(records, codec=codec) + build_batch(records[:2], base_offset=50, codec=codec)
    read = MemoryRecords(batches)
    first = read.next_batch()
    assert first.validate_crc()
    assert first.compression_type == codec
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in first] == [tuple(r) for r in expected(records)]
    second = read.next_batch()
    assert [r.offset for r in second] == [50, 51]
    assert read.next_batch() is None


def test_kafka_python_reads_our_control_batches():
    for control_type in ControlType:
        batch = build_control_batch(
            control_type, producer_id=5, producer_epoch=2, coordinator_epoch=9, timestamp_ms=T0, base_offset=17
        )
        theirs = DefaultRecordBatch(batch)
        assert theirs.validate_crc() and theirs.is_control_batch and theirs.is_transactional
        (record,) = list(theirs)
        assert (record.offset, record.commit, record.abort) == (17, control_type == 1, control_type == 0)


# --- control batches ----------------------------------------------------------------------------


def test_control_batch_layout():
    batch = build_control_batch(ControlType.COMMIT, producer_id=5, producer_epoch=2, coordinator_epoch=9, timestamp_ms=T0)
    view = BatchView(batch)
    assert view.is_control and view.is_transactional and view.crc_ok()
    assert (view.producer_id, view.producer_epoch, view.base_sequence, view.record_count) == (5, 2, -1, 1)
    (record,) = view.records()
    assert record.key == b"\x00\x00\x00\x01"
    assert record.value == b"\x00\x00\x00\x00\x00\x09"
    assert parse_end_txn_marker(record) == (ControlType.COMMIT, 9)


def test_parse_end_txn_marker_rejects_other_records():
    for key, value in [(b"\x00", b"\x00" * 6), (b"\x00\x00\x00\x07", b"\x00" * 6), (b"\x00\x00\x00\x00", None)]:
        with pytest.raises(KafkaError) as e:
            parse_end_txn_marker(Record(0, 0, key, value, []))
        assert e.value.code == ErrorCode.INVALID_RECORD


# --- CRC and framing ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_crc_catches_any_damaged_byte_after_the_crc(codec):
    batch = build_batch(sample_records(4), codec=codec)
    for pos in range(ATTRIBUTES_OFFSET, len(batch), 7):
        damaged = bytearray(batch)
        damaged[pos] ^= 0x40
        assert not BatchView(damaged).crc_ok(), pos


def test_fields_before_the_crc_are_not_covered():
    batch = bytearray(build_batch(sample_records(2)))
    set_base_offset(batch, 0, 1000)
    set_partition_leader_epoch(batch, 0, 77)
    view = BatchView(batch)
    assert view.crc_ok()
    assert (view.base_offset, view.partition_leader_epoch) == (1000, 77)
    assert [r.offset for r in view.records()] == [1000, 1001]
    assert DefaultRecordBatch(bytes(batch)).validate_crc()


def test_torn_tail_at_every_length():
    one, two = build_batch(sample_records(2)), build_batch(sample_records(3), base_offset=2, codec=Codec.GZIP)
    buf = one + two
    for cut in range(len(buf) + 1):
        views = list(iter_batches(memoryview(buf)[:cut]))
        valid_end = views[-1].end if views else 0
        assert valid_end == (len(buf) if cut == len(buf) else len(one) if cut >= len(one) else 0), cut
        assert valid_end == MemoryRecords(buf[:cut]).valid_bytes(), cut


def test_iter_batches_from_a_position():
    one, two = build_batch(sample_records(2)), build_batch(sample_records(3), base_offset=2)
    views = list(iter_batches(one + two, len(one)))
    assert [v.base_offset for v in views] == [2]


@pytest.mark.parametrize(
    "length,magic",
    [(13, 2), (-5, 2), (30, 2), (48, 2), (100, 3), (100, -1)],
    ids=["below-v0-minimum", "negative", "v2-too-short", "v2-one-short", "magic-3", "magic-negative"],
)
def test_impossible_batch_headers_are_corrupt(length, magic):
    buf = bytearray(build_batch(sample_records(1)) + bytes(200))
    struct.pack_into(">i", buf, BATCH_LENGTH_OFFSET, length)
    struct.pack_into(">b", buf, MAGIC_OFFSET, magic)
    with pytest.raises(KafkaError) as e:
        list(iter_batches(buf))
    assert e.value.code == ErrorCode.CORRUPT_MESSAGE


def test_older_message_formats_are_walked_for_routing():
    builder = MemoryRecordsBuilder(magic=1, compression_type=0, batch_size=10**6)
    builder.append(T0, b"k", b"v")
    builder.append(T0, b"k2", b"v2")
    builder.close()
    legacy = bytes(builder.buffer())
    views = list(iter_batches(legacy + build_batch(sample_records(1), base_offset=2)))
    assert [v.magic for v in views] == [1, 1, 2]
    assert views[-1].end == len(legacy) + views[-1].size


# --- records() errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.LZ4])
@pytest.mark.parametrize("count", [2, 4, -1])
def test_declared_count_must_match_the_records(codec, count):
    batch = with_header(build_batch(sample_records(3), codec=codec), ">i", RECORD_COUNT_OFFSET, count)
    with pytest.raises(KafkaError) as e:
        list(BatchView(batch).records())
    assert e.value.code == ErrorCode.INVALID_RECORD


def test_malformed_record_is_invalid_record():
    batch = bytearray(build_batch([(b"key", b"value", [], T0)]))
    # Record: length, attributes, ts delta, offset delta, key length ...: claim a longer key.
    key_length_pos = HEADER_SIZE + 4
    assert batch[key_length_pos] == 6  # zigzag(3)
    batch[key_length_pos] = 40
    with pytest.raises(KafkaError) as e:
        list(BatchView(batch).records())
    assert e.value.code == ErrorCode.INVALID_RECORD


def test_negative_header_count_is_invalid_record():
    batch = bytearray(build_batch([(b"k", b"v", [], T0)]))
    assert batch[-1] == 0  # header count
    batch[-1] = 1  # zigzag(-1)
    with pytest.raises(KafkaError) as e:
        list(BatchView(batch).records())
    assert e.value.code == ErrorCode.INVALID_RECORD


# --- LogAppendTime ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_set_log_append_time(codec):
    records = sample_records(4)
    batch = bytearray(build_batch(records, codec=codec, transactional=True, producer_id=1, producer_epoch=0, base_sequence=0))
    set_log_append_time(batch, 0, T0 + 99_999)
    view = BatchView(batch)
    assert view.crc_ok()
    assert view.timestamp_type == LOG_APPEND_TIME
    assert (view.compression, view.is_transactional) == (codec, True)
    assert view.max_timestamp == T0 + 99_999
    assert view.base_timestamp == records[0][3]  # left alone, as Kafka does
    assert {r.timestamp for r in view.records()} == {T0 + 99_999}
    theirs = DefaultRecordBatch(bytes(batch))
    assert theirs.validate_crc()
    assert [(r.timestamp, r.timestamp_type) for r in theirs] == [(T0 + 99_999, 1)] * 4


def test_set_log_append_time_in_a_memoryview_at_a_position():
    first, second = build_batch(sample_records(1)), build_batch(sample_records(2), base_offset=1)
    buf = bytearray(first + second)
    set_log_append_time(memoryview(buf), len(first), T0)
    views = list(iter_batches(buf))
    assert [v.crc_ok() for v in views] == [True, True]
    assert [v.timestamp_type for v in views] == [0, 1]
    assert bytes(buf[: len(first)]) == first


# --- produce validation -------------------------------------------------------------------------


def validate(buf, api_version=9, max_message_bytes=MAX_BYTES):
    return validate_produce_records(buf, api_version=api_version, max_message_bytes=max_message_bytes)


def rejected(buf, **kwargs) -> KafkaError:
    with pytest.raises(KafkaError) as e:
        validate(buf, **kwargs)
    return e.value


IDEMPOTENT = dict(producer_id=1000, producer_epoch=0, base_sequence=0)


@pytest.mark.parametrize("codec", CODECS)
def test_valid_produce_batches(codec):
    batch = build_batch(sample_records(5), codec=codec, **IDEMPOTENT)
    (view,) = validate(batch)
    assert (view.pos, view.end) == (0, len(batch))


def test_torn_tail_after_the_batch_is_ignored():
    batch = build_batch(sample_records(2))
    (view,) = validate(batch + build_batch(sample_records(2))[:30])
    assert view.end == len(batch)


def test_validation_order_and_codes():
    good = build_batch(sample_records(3), **IDEMPOTENT)
    cases = {
        "empty": (b"", ErrorCode.INVALID_RECORD),
        "only a partial batch": (good[:-1], ErrorCode.INVALID_RECORD),
        "garbage length": (with_header(good, ">i", BATCH_LENGTH_OFFSET, 3, False), ErrorCode.CORRUPT_MESSAGE),
        "magic 3": (with_header(good, ">b", MAGIC_OFFSET, 3, False), ErrorCode.CORRUPT_MESSAGE),
        "two batches": (good + good, ErrorCode.INVALID_RECORD),
        "garbage after the batch": (good + struct.pack(">qi", 0, 5), ErrorCode.CORRUPT_MESSAGE),
        "base offset": (with_header(good, ">q", BASE_OFFSET_OFFSET, 5, False), ErrorCode.INVALID_RECORD),
        "crc": (good[:-1] + bytes([good[-1] ^ 1]), ErrorCode.CORRUPT_MESSAGE),
        "v2 shorter than a header": (
            with_header(good[:40], ">i", BATCH_LENGTH_OFFSET, 28, False), ErrorCode.CORRUPT_MESSAGE),
        "codec 6": (with_header(good, ">h", ATTRIBUTES_OFFSET, 6), ErrorCode.UNKNOWN_SERVER_ERROR),
        "offset delta -1": (with_header(good, ">i", LAST_OFFSET_DELTA_OFFSET, -1), ErrorCode.INVALID_RECORD),
        "count 0": (with_header(good, ">i", RECORD_COUNT_OFFSET, 0), ErrorCode.INVALID_RECORD),
        "count vs offsets": (with_header(good, ">i", RECORD_COUNT_OFFSET, 2), ErrorCode.INVALID_RECORD),
        "control batch": (build_batch(sample_records(1), control=True), ErrorCode.INVALID_RECORD),
        "producer id without sequence": (
            build_batch(sample_records(2), producer_id=7, producer_epoch=0), ErrorCode.INVALID_RECORD),
    }
    for name, (buf, code) in cases.items():
        assert rejected(buf).code == code, name


def test_base_offset_is_checked_before_the_crc():
    # Kafka rejects a non-zero base offset before looking at the CRC.
    damaged = bytearray(build_batch(sample_records(2)))
    damaged[-1] ^= 1
    struct.pack_into(">q", damaged, BASE_OFFSET_OFFSET, 3)
    assert rejected(bytes(damaged)).code == ErrorCode.INVALID_RECORD


def test_size_limit():
    batch = build_batch(sample_records(4))
    assert validate(batch, max_message_bytes=len(batch))
    assert rejected(batch, max_message_bytes=len(batch) - 1).code == ErrorCode.MESSAGE_TOO_LARGE


def test_zstd_needs_produce_v7():
    batch = build_batch(sample_records(2), codec=Codec.ZSTD)
    assert rejected(batch, api_version=6).code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert validate(batch, api_version=7)


def test_older_message_formats():
    builder = MemoryRecordsBuilder(magic=1, compression_type=0, batch_size=10**6)
    builder.append(T0, b"k", b"v")
    builder.close()
    legacy = bytes(builder.buffer())
    assert rejected(legacy, api_version=3).code == ErrorCode.INVALID_RECORD
    assert rejected(legacy, api_version=2).code == ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
    assert validate(build_batch(sample_records(1)), api_version=2)


def test_producer_id_without_sequence_is_fine_without_producer_id():
    assert validate(build_batch(sample_records(2), base_sequence=-1))
    assert rejected(with_header(build_batch(sample_records(2)), ">q", PRODUCER_ID_OFFSET, 0)).code == (
        ErrorCode.INVALID_RECORD
    )


def test_defaults_apply_a_current_clients_rules_and_no_size_limit():
    big = build_batch([(b"k", b"v" * (2 * MAX_BYTES), [], T0)], codec=Codec.ZSTD)
    (view,) = validate_produce_records(big)
    assert view.end == len(big)
    builder = MemoryRecordsBuilder(magic=0, compression_type=0, batch_size=10**6)
    builder.append(None, b"k", b"v")
    builder.close()
    with pytest.raises(KafkaError) as e:
        validate_produce_records(bytes(builder.buffer()))
    assert e.value.code == ErrorCode.INVALID_RECORD
