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
"""
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


def decompress(codec: int, data) -> bytes:
    """Decompress `data`; KafkaError(UNKNOWN_SERVER_ERROR) if the codec id is
    unknown or the bytes do not decode."""
    if codec == Codec.NONE:
        return bytes(data)
    if codec == Codec.SNAPPY:
        decode = _snappy_decompress
    else:
        module = _MODULES.get(codec)
        if module is None:
            raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, f"Unknown compression type id: {codec}")
        decode = module.decompress
    try:
        return bytes(decode(data))
    except (cramjam.DecompressionError, struct.error, ValueError) as e:
        raise KafkaError(
            ErrorCode.UNKNOWN_SERVER_ERROR,
            f"Failed to decompress record stream ({Codec(codec).name.lower()}): {e}",
        ) from None


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


def _snappy_decompress(data) -> bytes:
    view = memoryview(data)
    if view[: len(XERIAL_MAGIC)] != XERIAL_MAGIC:
        return cramjam.snappy.decompress_raw(view)
    # The version/compat ints are not checked: only one framing version exists and
    # some writers get their byte order wrong.
    parts = []
    pos = len(XERIAL_HEADER)
    end = len(view)
    while pos < end:
        (length,) = _INT32.unpack_from(view, pos)
        pos += 4
        if length < 0 or pos + length > end:
            raise ValueError(f"xerial block of {length} bytes at {pos - 4} overruns the {end}-byte stream")
        parts.append(cramjam.snappy.decompress_raw(view[pos : pos + length]))
        pos += length
    return b"".join(parts)
