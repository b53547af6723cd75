"""Codecs: round trips, interoperation with kafka-python's own codec functions
(python-snappy, lz4 and zstandard underneath), and Kafka's error answers."""
import gzip
import os
import struct

import pytest
import zstandard
from kafka import codec as kp

from kafka_compat.protocol.compression import (
    XERIAL_BLOCK_SIZE,
    XERIAL_HEADER,
    Codec,
    compress,
    compression_type_codec,
    decompress,
)
from kafka_compat.protocol.errors import ErrorCode, KafkaError

# Compressible and incompressible parts, longer than several snappy-java blocks.
PAYLOAD = os.urandom(5000) + b"kafka-compat " * 10_000 + os.urandom(3000)
SAMPLES = [b"", b"x", PAYLOAD]


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "one-byte", "large"])
def test_round_trip(codec, data):
    packed = compress(codec, data)
    assert isinstance(packed, bytes)
    assert decompress(codec, packed) == data


@pytest.mark.parametrize("codec", list(Codec))
def test_accepts_memoryview_and_bytearray(codec):
    packed = compress(codec, memoryview(bytearray(PAYLOAD)))
    assert decompress(codec, memoryview(bytearray(packed))) == PAYLOAD


def test_compression_shrinks_compressible_data():
    for codec in (Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD):
        assert len(compress(codec, PAYLOAD)) < len(PAYLOAD) // 2, codec


# --- what kafka-python writes, we read ---------------------------------------------------------

KAFKA_PYTHON_ENCODERS = {
    "gzip": (Codec.GZIP, kp.gzip_encode),
    "snappy-xerial": (Codec.SNAPPY, lambda d: kp.snappy_encode(d, xerial_compatible=True)),
    "snappy-raw": (Codec.SNAPPY, lambda d: kp.snappy_encode(d, xerial_compatible=False)),
    "lz4": (Codec.LZ4, kp.lz4_encode),
    "zstd": (Codec.ZSTD, kp.zstd_encode),
}


def test_kafka_python_has_every_codec():
    # Without these the interop tests below would compare against nothing.
    assert kp.has_gzip() and kp.has_snappy() and kp.has_lz4() and kp.has_zstd()


@pytest.mark.parametrize("name", KAFKA_PYTHON_ENCODERS)
@pytest.mark.parametrize("data", SAMPLES[1:], ids=["one-byte", "large"])
def test_reads_kafka_python_encoding(name, data):
    codec, encode = KAFKA_PYTHON_ENCODERS[name]
    assert decompress(codec, encode(data)) == data


KAFKA_PYTHON_DECODERS = {
    Codec.GZIP: kp.gzip_decode,
    Codec.SNAPPY: kp.snappy_decode,
    Codec.LZ4: kp.lz4_decode,
    Codec.ZSTD: kp.zstd_decode,
}


@pytest.mark.parametrize("codec", list(KAFKA_PYTHON_DECODERS))
def test_kafka_python_reads_ours(codec):
    assert KAFKA_PYTHON_DECODERS[codec](compress(codec, PAYLOAD)) == PAYLOAD


def test_reads_streamed_zstd_without_content_size():
    # Java's zstd-jni streams frames without a content size; a batch may hold several.
    stream = zstandard.ZstdCompressor().compressobj()
    framed = stream.compress(PAYLOAD[:7000]) + stream.flush()
    framed += zstandard.ZstdCompressor().compress(PAYLOAD[7000:])
    assert decompress(Codec.ZSTD, framed) == PAYLOAD


def test_reads_concatenated_gzip_members():
    packed = gzip.compress(PAYLOAD[:100]) + gzip.compress(PAYLOAD[100:])
    assert decompress(Codec.GZIP, packed) == PAYLOAD


# --- framings ------------------------------------------------------------------------------------


def test_snappy_writes_xerial_blocks():
    packed = compress(Codec.SNAPPY, PAYLOAD)
    assert packed.startswith(XERIAL_HEADER)
    assert struct.unpack_from(">ii", packed, 8) == (1, 1)
    pos, blocks = len(XERIAL_HEADER), 0
    while pos < len(packed):
        (length,) = struct.unpack_from(">i", packed, pos)
        pos += 4 + length
        blocks += 1
    assert pos == len(packed)
    assert blocks == -(-len(PAYLOAD) // XERIAL_BLOCK_SIZE)


def test_lz4_writes_a_frame_java_can_read():
    # Java's Lz4BlockInputStream validates the frame descriptor: version 01,
    # reserved bits 0, independent blocks, block size id 4..7.
    packed = compress(Codec.LZ4, PAYLOAD)
    assert packed[:4] == b"\x04\x22\x4d\x18"  # LZ4 frame magic, little-endian
    flags, block_descriptor = packed[4], packed[5]
    assert flags >> 6 == 1
    assert flags & 0x03 == 0
    assert flags & 0x20, "linked blocks: Java answers 'Dependent block stream is unsupported'"
    assert block_descriptor & 0x8F == 0 and 4 <= (block_descriptor >> 4) & 7 <= 7


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_unknown_codec_id_is_unknown_server_error(codec_id):
    with pytest.raises(KafkaError) as e:
        decompress(codec_id, b"whatever")
    assert e.value.code == ErrorCode.UNKNOWN_SERVER_ERROR
    assert str(codec_id) in str(e.value)


@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_undecodable_data_is_unknown_server_error(codec, damage):
    packed = compress(codec, PAYLOAD)
    if damage == "garbage":
        bad = b"\xff\x00 definitely not compressed \x13\x37" * 3
    else:
        bad = packed[: len(packed) // 2]
    with pytest.raises(KafkaError) as e:
        decompress(codec, bad)
    assert e.value.code == ErrorCode.UNKNOWN_SERVER_ERROR


def test_xerial_block_length_past_the_end_is_rejected():
    packed = bytearray(compress(Codec.SNAPPY, b"abc" * 100))
    struct.pack_into(">i", packed, len(XERIAL_HEADER), 10_000)
    with pytest.raises(KafkaError) as e:
        decompress(Codec.SNAPPY, bytes(packed))
    assert e.value.code == ErrorCode.UNKNOWN_SERVER_ERROR


def test_compress_rejects_unknown_codec():
    with pytest.raises(ValueError):
        compress(5, b"data")


# --- compression.type ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,codec",
    [
        ("uncompressed", Codec.NONE),
        ("gzip", Codec.GZIP),
        ("snappy", Codec.SNAPPY),
        ("lz4", Codec.LZ4),
        ("zstd", Codec.ZSTD),
        ("producer", None),
    ],
)
def test_compression_type_names(name, codec):
    assert compression_type_codec(name) is codec


@pytest.mark.parametrize("name", ["none", "GZIP", "brotli", ""])
def test_bad_compression_type_is_invalid_config(name):
    with pytest.raises(KafkaError) as e:
        compression_type_codec(name)
    assert e.value.code == ErrorCode.INVALID_CONFIG
