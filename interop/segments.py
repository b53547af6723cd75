"""Read record batch headers straight from a partition's segment files
(Kafka's on-disk format: the batches exactly as they went over the wire)."""
from __future__ import annotations

import struct
from pathlib import Path

# baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8,
# crc uint32, attributes int16
BATCH_HEADER = struct.Struct(">qiibIh")
LOG_OVERHEAD = 12  # baseOffset + batchLength precede the counted length
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def batch_codecs(log_dir: Path, topic: str, partition: int = 0) -> list[str]:
    """The compression codec of every batch in the partition, in log order."""
    codecs = []
    for segment in sorted((Path(log_dir) / f"{topic}-{partition}").glob("*.log")):
        data = segment.read_bytes()
        position = 0
        while position + BATCH_HEADER.size <= len(data):
            _, length, _, magic, _, attributes = BATCH_HEADER.unpack_from(data, position)
            if length <= 0:
                break  # preallocated zeroes past the end of the log
            if magic != 2:
                raise ValueError(f"{segment} at {position}: magic {magic}, expected 2")
            codecs.append(CODECS.get(attributes & 0x07, f"unknown({attributes & 0x07})"))
            position += LOG_OVERHEAD + length
    return codecs
