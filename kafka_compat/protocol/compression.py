"""Record batch compression codecs, with the framings Kafka clients actually use.

- gzip: plain gzip members (several concatenated members are read too).
- snappy: Java clients write snappy-java's "xerial" stream framing; librdkafka and
  others may write one raw snappy block. We read both and write xerial, which
  every client reads.
- lz4: the LZ4 *frame* format with independent blocks (Java's reader cannot
  follow linked blocks).
- zstd: standard zstd frames, with or without a content size.

Errors follow Apache Kafka's broker. A codec id outside 0..4 makes Kafka's
CompressionType.forId throw IllegalArgumentException, and compressed bytes that
cannot be decoded surface as a KafkaException ("Failed to decompress record
stream"). The broker maps both to UNKNOWN_SERVER_ERROR, which clients treat as
fatal for the batch, so we raise that too. A batch damaged in transit never gets
this far: its CRC check answers CORRUPT_MESSAGE first.

Decompression is bounded (MAX_DECOMPRESSED_BYTES), unlike Kafka's. Kafka reads
a compressed batch as a stream, one record at a time; we decode a batch whole,
so a few hundred kilobytes of zstd or gzip that inflate to gigabytes (a
"decompression bomb") would otherwise take that much memory, and parsing it
would hold the event loop for minutes. Output goes into a lazily mapped buffer
one byte larger than the limit, so only the bytes written cost memory and the
decoder stops as soon as it overflows.
"""
import mmap
import struct
from enum import IntEnum

import cramjam

from .errors import ErrorCode, KafkaError


class Codec(IntEnum):
    """Compression codec ids, as in bits 0-2 of a record batch's attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


XERIAL_MAGIC = b"\x82SNAPPY\x00"
# Magic, then format version 1 and minimum compatible version 1, as snappy-java writes.
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
# snappy-java's default block size: each block holds at most this much input.
XERIAL_BLOCK_SIZE = 32 * 1024

_INT32 = struct.Struct(">i")

_MODULES = {Codec.GZIP: cramjam.gzip, Codec.LZ4: cramjam.lz4, Codec.ZSTD: cramjam.zstd}

# Topic/broker config compression.type -> codec; "producer" keeps the producer's codec.
_COMPRESSION_TYPES = {
    "uncompressed": Codec.NONE,
    "gzip": Codec.GZIP,
    "snappy": Codec.SNAPPY,
    "lz4": Codec.LZ4,
    "zstd": Codec.ZSTD,
    "producer": None,
}


def compression_type_codec(name: str) -> Codec | None:
    """The codec a compression.type config value names; None for "producer"."""
    try:
        return _COMPRESSION_TYPES[name]
    except KeyError:
        raise KafkaError(
            ErrorCode.INVALID_CONFIG,
            f"Invalid value {name} for configuration compression.type: "
            f"String must be one of: {', '.join(_COMPRESSION_TYPES)}",
        ) from None


def compress(codec: int, data) -> bytes:
    """Compress `data` (any bytes-like object) the way Kafka clients expect."""
    codec = Codec(codec)
    if codec is Codec.NONE:
        return bytes(data)
    if codec is Codec.SNAPPY:
        return _xerial_compress(data)
    if codec is Codec.LZ4:
        return _lz4_compress(data)
    return bytes(_MODULES[codec].compress(data))


# The most one batch may decompress to. Legitimate batches are far smaller
# (librdkafka caps a batch at 1 MB before compression, Java producers at 16 KiB
# after it); a Java producer told MESSAGE_TOO_LARGE splits the batch and retries.
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024

# What cramjam's *_into decoders say when the output buffer is full.
_OUTPUT_FULL = "failed to write whole buffer"


class _TooLarge(Exception):
    pass


def decompress(codec: int, data, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress `data` to at most `limit` bytes. KafkaError(UNKNOWN_SERVER_ERROR)
    if the codec id is unknown or the bytes do not decode; KafkaError(MESSAGE_TOO_LARGE)
    if they decode to more than `limit` bytes (decoding stops there)."""
    if codec == Codec.NONE:
        return bytes(data)
    if codec not in _MODULES and codec != Codec.SNAPPY:
        raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, f"Unknown compression type id: {codec}")
    try:
        if codec == Codec.SNAPPY:
            return _snappy_decompress(data, limit)
        return _decompress_into(_MODULES[codec], data, limit)
    except _TooLarge:
        raise KafkaError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"The record batch decompresses ({Codec(codec).name.lower()}) to more than {limit} bytes",
        ) from None
    except (cramjam.DecompressionError, struct.error, ValueError) as e:
        raise KafkaError(
            ErrorCode.UNKNOWN_SERVER_ERROR,
            f"Failed to decompress record stream ({Codec(codec).name.lower()}): {e}",
        ) from None


def _decompress_into(module, data, limit: int) -> bytes:
    with mmap.mmap(-1, limit + 1) as out:
        try:
            size = module.decompress_into(data, out)
        except cramjam.DecompressionError as e:
            if _OUTPUT_FULL in str(e):
                raise _TooLarge from None
            raise
        if size > limit:
            raise _TooLarge
        return out[:size]


def _lz4_compress(data) -> bytes:
    # cramjam.lz4.compress links blocks, which Java's reader rejects ("Dependent
    # block stream is unsupported"); the streaming compressor can be told not to,
    # but takes nothing but bytes.
    compressor = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
    compressor.compress(data if type(data) is bytes else bytes(data))
    return bytes(compressor.finish())


def _xerial_compress(data) -> bytes:
    view = memoryview(data)
    out = bytearray(XERIAL_HEADER)
    for start in range(0, len(view), XERIAL_BLOCK_SIZE):
        block = cramjam.snappy.compress_raw(view[start : start + XERIAL_BLOCK_SIZE])
        out += _INT32.pack(len(block))
        out += block
    return bytes(out)


def _snappy_decompress(data, limit: int) -> bytes:
    """Raw snappy blocks state their decompressed length up front: the total is
    checked against `limit` before anything is decoded."""
    view = memoryview(data)
    if view[: len(XERIAL_MAGIC)] != XERIAL_MAGIC:
        blocks = [view]
    else:
        # The version/compat ints are not checked: only one framing version exists
        # and some writers get their byte order wrong.
        blocks = []
        pos = len(XERIAL_HEADER)
        end = len(view)
        while pos < end:
            (length,) = _INT32.unpack_from(view, pos)
            pos += 4
            if length < 0 or pos + length > end:
                raise ValueError(f"xerial block of {length} bytes at {pos - 4} overruns the {end}-byte stream")
            blocks.append(view[pos : pos + length])
            pos += length
    if sum(cramjam.snappy.decompress_raw_len(block) for block in blocks) > limit:
        raise _TooLarge
    return b"".join(bytes(cramjam.snappy.decompress_raw(block)) for block in blocks)
