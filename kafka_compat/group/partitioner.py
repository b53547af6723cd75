"""Which internal-topic partition coordinates a key (a group id, a transactional
id): ``Utils.abs(key.hashCode()) % partitions``, exactly as Kafka computes it,
so a group lands on the same partition here as on an Apache Kafka cluster."""
from __future__ import annotations

import struct

INT_MIN = -(2**31)


def java_string_hash(text: str) -> int:
    """Java's String.hashCode: over UTF-16 code units, wrapping at 32 bits."""
    data = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for unit in struct.unpack(f">{len(data) // 2}H", data):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_abs(n: int) -> int:
    """Kafka's Utils.abs: like Math.abs, except that Integer.MIN_VALUE maps to 0."""
    return 0 if n == INT_MIN else abs(n)


def partition_for(key: str, partitions: int) -> int:
    return kafka_abs(java_string_hash(key)) % partitions
