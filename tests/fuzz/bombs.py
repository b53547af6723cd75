"""Decompression bombs: a few hundred kilobytes that inflate to gigabytes, made
with streaming compressors so that building one costs no memory either.

Snappy cannot be a bomb (at most ~21x), but a raw snappy block states its
decompressed length up front and can lie about it; `snappy_liar` does.
"""
from __future__ import annotations

import zlib

import lz4.frame
import zstandard

from kafka_compat.protocol.compression import Codec

_MIB = bytes(1 << 20)


def bomb(codec: int, mebibytes: int) -> bytes:
    """`mebibytes` MiB of zeros compressed with `codec` (gzip, lz4 or zstd)."""
    if codec == Codec.GZIP:
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [c.compress(_MIB) for _ in range(mebibytes)] + [c.flush()]
    elif codec == Codec.ZSTD:
        c = zstandard.ZstdCompressor().compressobj()
        parts = [c.compress(_MIB) for _ in range(mebibytes)] + [c.flush()]
    elif codec == Codec.LZ4:
        # Independent blocks, as Kafka's Java reader requires.
        c = lz4.frame.LZ4FrameCompressor(block_linked=False)
        parts = [c.begin()] + [c.compress(_MIB) for _ in range(mebibytes)] + [c.flush()]
    else:
        raise ValueError(f"no bomb for codec {codec}")
    return b"".join(parts)


def snappy_liar(claimed: int = 0xFFFFFFFF) -> bytes:
    """A raw snappy block whose header claims `claimed` bytes (4 GiB by default)
    and whose body is one literal byte."""
    out = bytearray()
    n = claimed
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + b"\x00x"  # literal tag of length 1, then the byte
