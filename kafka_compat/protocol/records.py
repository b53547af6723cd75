"""Record batches (magic v2): header views, CRC32C, record iteration, building.

A batch stays bytes on the hot path. `BatchView` reads header fields straight
from the buffer; the broker checks a produce request's batch with
`validate_produce_records`, patches base offset and leader epoch in place (they
sit outside the CRC) and appends the bytes. Records are decoded only when a
caller iterates `BatchView.records()`.

Every message format keeps the batch length at byte 8 and the magic at byte 16,
so `iter_batches` walks logs holding older formats too: a caller looks at
`view.magic` before reading anything else (the other properties are v2-only).
"""
import struct
from collections.abc import Iterable, Iterator
from enum import IntEnum
from typing import NamedTuple

from crc32c import crc32c

from .compression import Codec, compress, decompress
from .errors import ErrorCode, KafkaError

# Byte offsets of the v2 batch header fields.
BASE_OFFSET_OFFSET = 0
BATCH_LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
PRODUCER_EPOCH_OFFSET = 51
BASE_SEQUENCE_OFFSET = 53
RECORD_COUNT_OFFSET = 57
RECORDS_OFFSET = 61
HEADER_SIZE = 61

# base offset + batch length: the bytes not counted in batch_length.
LOG_OVERHEAD = 12
# Smallest batch_length of a v2 batch (a header and no records).
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
# Smallest size field any message format can have (a v0 message with no key or
# value); anything smaller is corrupt whatever the magic.
MIN_LEGACY_MESSAGE_SIZE = 14
CURRENT_MAGIC = 2

# Attribute bits.
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

CREATE_TIME = 0
LOG_APPEND_TIME = 1

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
NO_TIMESTAMP = -1

INT32_MAX = 2**31 - 1

_HEADER = struct.Struct(">qiibIhiqqqhii")
_INT8 = struct.Struct(">b")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")
_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_VALUE = struct.Struct(">hi")


class ControlType(IntEnum):
    """The type in a control record's key. Only transaction markers so far."""

    ABORT = 0
    COMMIT = 1


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


# ---------------------------------------------------------------- varints


def write_varint(out: bytearray, value: int) -> None:
    """Append a zigzag varint/varlong (same bytes for both) to `out`."""
    z = (value << 1) ^ (value >> 63)
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    write_varint(out, value)
    return bytes(out)


def decode_varint(data, pos: int, max_bytes: int = 5) -> tuple[int, int]:
    """Read a zigzag varint (at most `max_bytes` long) at `pos`: (value, next
    position). IndexError if the data ends first, ValueError if it is too long."""
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    z = b & 0x7F
    shift = 7
    end = pos + max_bytes
    pos += 1
    while True:
        if pos >= end:
            raise ValueError("varint is too long")
        b = data[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7


def decode_varlong(data, pos: int) -> tuple[int, int]:
    """Read a zigzag varlong (at most 10 bytes) at `pos`: (value, next position)."""
    return decode_varint(data, pos, 10)


# ---------------------------------------------------------------- views


class BatchView:
    """A record batch at `pos` in `buf` (bytes, bytearray or memoryview).

    Nothing is copied or checked on construction: properties read the header
    on demand, so only the fields used cost anything.
    """

    __slots__ = ("buf", "pos")

    def __init__(self, buf, pos: int = 0):
        self.buf = buf
        self.pos = pos

    def __repr__(self) -> str:
        return (
            f"BatchView(pos={self.pos}, magic={self.magic}, base_offset={self.base_offset}, "
            f"size={self.size})"
        )

    @property
    def base_offset(self) -> int:
        return _INT64.unpack_from(self.buf, self.pos)[0]

    @property
    def batch_length(self) -> int:
        return _INT32.unpack_from(self.buf, self.pos + BATCH_LENGTH_OFFSET)[0]

    @property
    def partition_leader_epoch(self) -> int:
        return _INT32.unpack_from(self.buf, self.pos + PARTITION_LEADER_EPOCH_OFFSET)[0]

    @property
    def magic(self) -> int:
        return _INT8.unpack_from(self.buf, self.pos + MAGIC_OFFSET)[0]

    @property
    def crc(self) -> int:
        return _UINT32.unpack_from(self.buf, self.pos + CRC_OFFSET)[0]

    @property
    def attributes(self) -> int:
        return _INT16.unpack_from(self.buf, self.pos + ATTRIBUTES_OFFSET)[0]

    @property
    def last_offset_delta(self) -> int:
        return _INT32.unpack_from(self.buf, self.pos + LAST_OFFSET_DELTA_OFFSET)[0]

    @property
    def base_timestamp(self) -> int:
        return _INT64.unpack_from(self.buf, self.pos + BASE_TIMESTAMP_OFFSET)[0]

    @property
    def max_timestamp(self) -> int:
        return _INT64.unpack_from(self.buf, self.pos + MAX_TIMESTAMP_OFFSET)[0]

    @property
    def producer_id(self) -> int:
        return _INT64.unpack_from(self.buf, self.pos + PRODUCER_ID_OFFSET)[0]

    @property
    def producer_epoch(self) -> int:
        return _INT16.unpack_from(self.buf, self.pos + PRODUCER_EPOCH_OFFSET)[0]

    @property
    def base_sequence(self) -> int:
        return _INT32.unpack_from(self.buf, self.pos + BASE_SEQUENCE_OFFSET)[0]

    @property
    def record_count(self) -> int:
        return _INT32.unpack_from(self.buf, self.pos + RECORD_COUNT_OFFSET)[0]

    @property
    def size(self) -> int:
        """Bytes the whole batch takes, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def end(self) -> int:
        """Position in `buf` just past this batch."""
        return self.pos + self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        """The codec id (compare with `Codec`); 5..7 are invalid but possible."""
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        """CREATE_TIME (0) or LOG_APPEND_TIME (1)."""
        return 1 if self.attributes & TIMESTAMP_TYPE_MASK else 0

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_delete_horizon(self) -> bool:
        """Whether base_timestamp holds the compaction delete horizon."""
        return bool(self.attributes & DELETE_HORIZON_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record; sequences wrap from INT32_MAX to 0."""
        base = self.base_sequence
        if base == NO_SEQUENCE:
            return NO_SEQUENCE
        return increment_sequence(base, self.last_offset_delta)

    def crc_ok(self) -> bool:
        """Whether the stored CRC32C matches attributes..end (and the batch is at
        least a header long, without which there is nothing to check)."""
        if self.batch_length < MIN_BATCH_LENGTH:
            return False
        return self.crc == _compute_crc(self.buf, self.pos, self.end)

    def records(self) -> Iterator[Record]:
        """Decode the records, decompressing if needed.

        Malformed records raise KafkaError(INVALID_RECORD), as Kafka's record
        iterator does; undecodable compressed data raises what
        `compression.decompress` raises.
        """
        count = self.record_count
        if count < 0:
            raise KafkaError(ErrorCode.INVALID_RECORD, f"Found invalid record count {count} in magic v2 batch")
        start = self.pos + RECORDS_OFFSET
        body = memoryview(self.buf)[start : self.end]
        data = decompress(self.compression, body)
        base_offset = self.base_offset
        if self.timestamp_type == LOG_APPEND_TIME:
            fixed_timestamp = self.max_timestamp
        else:
            fixed_timestamp = None
        return _iter_records(data, count, base_offset, self.base_timestamp, fixed_timestamp)


def increment_sequence(sequence: int, increment: int) -> int:
    """Producer sequence arithmetic: wraps past INT32_MAX to 0."""
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def _compute_crc(buf, pos: int, end: int) -> int:
    return crc32c(memoryview(buf)[pos + ATTRIBUTES_OFFSET : end])


def _read_nullable(data: bytes, pos: int) -> tuple[bytes | None, int]:
    """A varint-length-prefixed field of a record; length -1 is null."""
    length, pos = decode_varint(data, pos)
    if length < 0:
        return None, pos
    return data[pos : pos + length], pos + length


def _iter_records(data: bytes, count: int, base_offset: int, base_timestamp: int, fixed_timestamp):
    pos = 0
    size = len(data)
    read_varint = decode_varint
    try:
        for _ in range(count):
            length, pos = read_varint(data, pos)
            record_start = pos
            if length < 0 or pos + length > size:
                raise KafkaError(
                    ErrorCode.INVALID_RECORD,
                    f"Invalid record size: expected {length} bytes in record payload, "
                    f"but only {size - pos} bytes remain",
                )
            pos += 1  # record attributes: unused
            timestamp_delta, pos = decode_varlong(data, pos)
            offset_delta, pos = read_varint(data, pos)
            key, pos = _read_nullable(data, pos)
            value, pos = _read_nullable(data, pos)
            header_count, pos = read_varint(data, pos)
            if header_count < 0:
                raise KafkaError(ErrorCode.INVALID_RECORD, f"Found invalid number of record headers {header_count}")
            headers = []
            for _ in range(header_count):
                header_key_length, pos = read_varint(data, pos)
                if header_key_length < 0:
                    raise KafkaError(
                        ErrorCode.INVALID_RECORD, f"Invalid negative header key size {header_key_length}"
                    )
                # Java decodes header keys leniently (malformed UTF-8 becomes U+FFFD).
                header_key = data[pos : pos + header_key_length].decode(errors="replace")
                pos += header_key_length
                header_value, pos = _read_nullable(data, pos)
                headers.append((header_key, header_value))
            if pos - record_start != length:
                raise KafkaError(
                    ErrorCode.INVALID_RECORD,
                    f"Invalid record size: expected to read {length} bytes in record payload, "
                    f"but instead read {pos - record_start}",
                )
            timestamp = fixed_timestamp if fixed_timestamp is not None else base_timestamp + timestamp_delta
            yield Record(base_offset + offset_delta, timestamp, key, value, headers)
    except (IndexError, ValueError) as e:  # ran off the end, or an overlong varint
        raise KafkaError(ErrorCode.INVALID_RECORD, f"Found invalid record structure: {e}") from None
    if pos != size:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Incorrect declared batch size, records still remaining in file")


# ---------------------------------------------------------------- walking buffers


def _next_batch_end(buf, pos: int, end: int) -> int | None:
    """End of the complete batch at `pos`, or None if the data stops first.

    Like Kafka's batch iterator: a size field no message format allows, or a magic
    other than 0..2, is CORRUPT_MESSAGE; nothing else is checked.
    """
    remaining = end - pos
    if remaining < LOG_OVERHEAD:
        return None
    (length,) = _INT32.unpack_from(buf, pos + BATCH_LENGTH_OFFSET)
    if length < MIN_LEGACY_MESSAGE_SIZE:
        raise KafkaError(
            ErrorCode.CORRUPT_MESSAGE,
            f"Record size {length} is less than the minimum record overhead ({MIN_LEGACY_MESSAGE_SIZE})",
        )
    if remaining < MAGIC_OFFSET + 1:
        return None
    (magic,) = _INT8.unpack_from(buf, pos + MAGIC_OFFSET)
    if not 0 <= magic <= CURRENT_MAGIC:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"Invalid magic found in record: {magic}")
    if remaining < length + LOG_OVERHEAD:
        return None
    return pos + length + LOG_OVERHEAD


def iter_batches(buf, pos: int = 0) -> Iterator[BatchView]:
    """Yield a view of each complete batch from `pos` on.

    Stops quietly at an incomplete tail: the valid data ends at the last view's
    `end` (or at `pos` if nothing was yielded). Raises KafkaError(CORRUPT_MESSAGE)
    at a batch whose length or magic is impossible (for v2: shorter than a header),
    which is where a recovering log truncates. CRCs are not checked here.
    """
    end = len(buf)
    while True:
        batch_end = _next_batch_end(buf, pos, end)
        if batch_end is None:
            return
        view = BatchView(buf, pos)
        if batch_end - pos < HEADER_SIZE and view.magic == CURRENT_MAGIC:
            raise KafkaError(
                ErrorCode.CORRUPT_MESSAGE,
                f"Record batch is corrupt (the size {batch_end - pos} is smaller than "
                f"the minimum allowed overhead {HEADER_SIZE})",
            )
        yield view
        pos = batch_end


# ---------------------------------------------------------------- produce validation


def validate_produce_records(
    buf, *, api_version: int | None = None, max_message_bytes: int | None = None
) -> list[BatchView]:
    """Check a produce request's records for one partition as Kafka's broker does,
    in its order; return the views of the batches to append.

    `api_version` is the Produce request's version (None: a current client's,
    which is all the version-dependent checks need); `max_message_bytes` the
    topic's max.message.bytes (None: the caller checks the size itself). Checks
    (KafkaError code on failure):

    1. the batch framing: sizes and magic byte (CORRUPT_MESSAGE); one complete
       batch at least (INVALID_RECORD); magic 2 (v3+: INVALID_RECORD; magic 0/1
       from v0-v2 requests: UNSUPPORTED_FOR_MESSAGE_FORMAT, message conversion is
       not implemented yet); no zstd before v7 (UNSUPPORTED_COMPRESSION_TYPE; an
       unknown codec there is UNKNOWN_SERVER_ERROR already); exactly one batch
       (INVALID_RECORD). Bytes after it that do not make up a whole batch are
       ignored, as Kafka trims them.
    2. base offset 0 (INVALID_RECORD); size within max_message_bytes
       (MESSAGE_TOO_LARGE); CRC and minimum size (CORRUPT_MESSAGE); a known
       codec (UNKNOWN_SERVER_ERROR, Kafka's answer to codec ids 5..7).
    3. offsets delta and record count agree and are positive, not a control
       batch, a sequence number when there is a producer id (INVALID_RECORD).

    Not checked here, because Kafka learns them by decoding the records: the
    record structure and count (iterate `records()` for those INVALID_RECORD
    errors), keys on compacted topics, timestamps against
    message.timestamp.*.max.ms, a producer claiming LogAppendTime, and whether a
    compressed batch's inner offsets run 0..n-1 (Kafka rewrites the batch if not).
    """
    version_text = "" if api_version is None else f" with version {api_version}"
    end = len(buf)
    first_end = _next_batch_end(buf, 0, end)
    if first_end is None:
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Produce requests{version_text} must have at least one record batch per partition",
        )
    view = BatchView(buf, 0)
    magic = view.magic
    if magic != CURRENT_MAGIC:
        if api_version is None or api_version >= 3:
            raise KafkaError(
                ErrorCode.INVALID_RECORD,
                f"Produce requests{version_text} are only allowed to contain record batches with magic version 2",
            )
        raise KafkaError(
            ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, f"Message format v{magic} is not supported yet"
        )
    (attributes,) = _INT16.unpack_from(buf, ATTRIBUTES_OFFSET)
    codec = attributes & COMPRESSION_MASK
    if api_version is not None and api_version < 7 and codec >= Codec.ZSTD:
        if codec > Codec.ZSTD:
            raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, f"Unknown compression type id: {codec}")
        raise KafkaError(
            ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
            f"Produce requests with version {api_version} are not allowed to use ZStandard compression",
        )
    if _next_batch_end(buf, first_end, end) is not None:
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Produce requests{version_text} are only allowed to contain exactly one record batch per partition",
        )

    size = first_end
    (base_offset,) = _INT64.unpack_from(buf, 0)
    if base_offset != 0:
        raise KafkaError(
            ErrorCode.INVALID_RECORD, f"The baseOffset of the record batch should be 0, but it is {base_offset}"
        )
    if max_message_bytes is not None and size > max_message_bytes:
        raise KafkaError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"The record batch size is {size} bytes which exceeds the maximum configured value "
            f"of {max_message_bytes}",
        )
    if size < HEADER_SIZE:
        raise KafkaError(
            ErrorCode.CORRUPT_MESSAGE,
            f"Record batch is corrupt (the size {size} is smaller than the minimum allowed overhead {HEADER_SIZE})",
        )
    (_, _, _, _, crc, _, last_offset_delta, _, _, producer_id, _, base_sequence, count) = _HEADER.unpack_from(buf, 0)
    if crc != _compute_crc(buf, 0, size):
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"Record is corrupt (stored crc = {crc})")
    if codec > Codec.ZSTD:
        raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, f"Unknown compression type id: {codec}")

    count_from_offsets = last_offset_delta + 1
    if count_from_offsets <= 0:
        raise KafkaError(
            ErrorCode.INVALID_RECORD, f"Batch has an invalid offset range: [0, {last_offset_delta}]"
        )
    if count <= 0:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"Invalid reported count for record batch: {count}")
    if count_from_offsets != count:
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Inconsistent batch offset range [0, {last_offset_delta}] and count of records {count}",
        )
    if attributes & CONTROL_MASK:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Clients are not allowed to write control records")
    if producer_id > NO_PRODUCER_ID and base_sequence < 0:
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Invalid sequence number {base_sequence} in record batch with producerId {producer_id}",
        )
    return [view]


# ---------------------------------------------------------------- in-place patches


def set_base_offset(buf, pos: int, offset: int) -> None:
    """Assign the batch's base offset (outside the CRC, so nothing else changes)."""
    _INT64.pack_into(buf, pos + BASE_OFFSET_OFFSET, offset)


def set_partition_leader_epoch(buf, pos: int, epoch: int) -> None:
    """Stamp the leader epoch (outside the CRC)."""
    _INT32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf, pos: int, timestamp: int) -> None:
    """Mark the batch LogAppendTime with `timestamp` as max_timestamp, and fix the CRC.

    Like Kafka's DefaultRecordBatch.setMaxTimestamp, base_timestamp is left as
    the producer wrote it: readers give every record of a LogAppendTime batch
    the max_timestamp. Other attribute bits are kept.
    """
    (attributes,) = _INT16.unpack_from(buf, pos + ATTRIBUTES_OFFSET)
    (current,) = _INT64.unpack_from(buf, pos + MAX_TIMESTAMP_OFFSET)
    if attributes & TIMESTAMP_TYPE_MASK and current == timestamp:
        return
    _INT16.pack_into(buf, pos + ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_MASK)
    _INT64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, timestamp)
    _fix_crc(buf, pos)


def set_create_time(buf, pos: int) -> None:
    """Mark a LogAppendTime batch CreateTime, its max_timestamp kept, and fix the
    CRC: what Kafka makes of a producer's LogAppendTime batch on a CreateTime topic."""
    (attributes,) = _INT16.unpack_from(buf, pos + ATTRIBUTES_OFFSET)
    _INT16.pack_into(buf, pos + ATTRIBUTES_OFFSET, attributes & ~TIMESTAMP_TYPE_MASK)
    _fix_crc(buf, pos)


def fix_crc(buf, pos: int = 0) -> None:
    """Recompute the CRC of the batch at ``pos`` after changing fields it covers."""
    _fix_crc(buf, pos)


def _fix_crc(buf, pos: int) -> None:
    (length,) = _INT32.unpack_from(buf, pos + BATCH_LENGTH_OFFSET)
    _UINT32.pack_into(buf, pos + CRC_OFFSET, _compute_crc(buf, pos, pos + length + LOG_OVERHEAD))


# ---------------------------------------------------------------- building


def build_batch(
    records: Iterable[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    *,
    base_offset: int = 0,
    codec: int = Codec.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    transactional: bool = False,
    control: bool = False,
    timestamp_type: int = CREATE_TIME,
    base_timestamp: int | None = None,
) -> bytes:
    """Encode a v2 batch of (key, value, headers, timestamp_ms) records, with
    offset deltas 0..n-1. base_timestamp defaults to the first record's timestamp
    and max_timestamp is the largest record timestamp. ``records`` may be an
    iterator: each record is encoded as it comes (re-encoding a batch holds
    only its bytes, not millions of record objects)."""
    body = bytearray()
    record = bytearray()
    max_timestamp = NO_TIMESTAMP
    count = 0
    for key, value, headers, timestamp in records:
        if base_timestamp is None:
            base_timestamp = timestamp
        if timestamp > max_timestamp:
            max_timestamp = timestamp
        record.clear()
        record.append(0)  # attributes
        write_varint(record, timestamp - base_timestamp)
        write_varint(record, count)  # offset delta
        _write_nullable_bytes(record, key)
        _write_nullable_bytes(record, value)
        write_varint(record, len(headers))
        for header_key, header_value in headers:
            encoded_key = header_key.encode()
            write_varint(record, len(encoded_key))
            record += encoded_key
            _write_nullable_bytes(record, header_value)
        write_varint(body, len(record))
        body += record
        count += 1
    if not count:
        raise ValueError("a record batch needs at least one record")

    attributes = codec | (timestamp_type << 3)
    if transactional:
        attributes |= TRANSACTIONAL_MASK
    if control:
        attributes |= CONTROL_MASK
    if codec != Codec.NONE:
        body = compress(codec, body)
    out = bytearray(HEADER_SIZE)
    _HEADER.pack_into(
        out,
        0,
        base_offset,
        HEADER_SIZE - LOG_OVERHEAD + len(body),
        partition_leader_epoch,
        CURRENT_MAGIC,
        0,  # crc, computed below
        attributes,
        count - 1,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    out += body
    _UINT32.pack_into(out, CRC_OFFSET, _compute_crc(out, 0, len(out)))
    return bytes(out)


def _write_nullable_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        out.append(1)  # zigzag(-1)
    else:
        write_varint(out, len(data))
        out += data


def build_control_batch(
    control_type: ControlType,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp_ms: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """A transaction marker: a transactional control batch with one control record
    (key: version 0, type; value: version 0, coordinator epoch)."""
    key = _CONTROL_KEY.pack(0, control_type)
    value = _END_TXN_VALUE.pack(0, coordinator_epoch)
    return build_batch(
        [(key, value, [], timestamp_ms)],
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        partition_leader_epoch=partition_leader_epoch,
        transactional=True,
        control=True,
    )


def parse_end_txn_marker(record: Record) -> tuple[ControlType, int]:
    """(type, coordinator epoch) of a transaction marker's control record."""
    key, value = record.key, record.value
    if key is None or len(key) < _CONTROL_KEY.size or value is None or len(value) < _END_TXN_VALUE.size:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Control record too short for a transaction marker")
    key_version, control_type = _CONTROL_KEY.unpack_from(key)
    value_version, coordinator_epoch = _END_TXN_VALUE.unpack_from(value)
    if key_version < 0 or value_version < 0 or control_type not in (ControlType.ABORT, ControlType.COMMIT):
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Not a transaction marker: key version {key_version}, type {control_type}, "
            f"value version {value_version}",
        )
    return ControlType(control_type), coordinator_epoch
