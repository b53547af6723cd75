"""The log cleaner's key -> last offset map (Kafka's SkimpyOffsetMap).

A fixed block of memory (the cleaner thread's share of
log.cleaner.dedupe.buffer.size) holds open-addressed slots of 24 bytes: the
key's MD5 hash and the offset. Keys themselves are never stored, so the map
costs what Kafka's costs whatever the key sizes, and a log with more distinct
keys than the map holds is cleaned in several passes (the cleaner stops
filling it at log.cleaner.io.buffer.load.factor of its slots).

The block is an anonymous mapping: pages no key hashed to are never touched,
and ``clear`` maps a fresh one instead of writing zeros over the old.
"""
from __future__ import annotations

import mmap
import struct
from hashlib import md5

HASH_SIZE = 16
BYTES_PER_ENTRY = HASH_SIZE + 8
_EMPTY = bytes(BYTES_PER_ENTRY)
_OFFSET = struct.Struct(">q")
_INT32_MIN = -(2**31)


class OffsetMapFullError(Exception):
    pass


class SkimpyOffsetMap:
    def __init__(self, memory: int):
        self.memory = memory
        self.slots = memory // BYTES_PER_ENTRY
        if self.slots < 1:
            raise ValueError(f"an offset map of {memory} bytes holds no entry")
        self._buf = mmap.mmap(-1, self.slots * BYTES_PER_ENTRY)
        self.size = 0  # entries put (distinct keys)
        self.latest_offset = -1  # the latest offset put or declared with update_latest_offset

    def _position(self, digest: bytes, attempt: int) -> int:
        """Kafka's probe sequence: successive big-endian ints of the hash,
        then linear probing from the last one."""
        start = min(attempt, HASH_SIZE - 4)
        probe = int.from_bytes(digest[start:start + 4], "big", signed=True) + max(0, attempt - HASH_SIZE + 4)
        probe = (probe + 2**31) % 2**32 - 2**31  # Java int arithmetic
        return (0 if probe == _INT32_MIN else abs(probe)) % self.slots * BYTES_PER_ENTRY

    def put(self, key: bytes, offset: int) -> None:
        if self.size >= self.slots:
            raise OffsetMapFullError(f"Attempted to add a new entry to a full offset map, entries: {self.size}, "
                                     f"slots: {self.slots}")
        digest = md5(key).digest()
        buf = self._buf
        attempt = 0
        pos = self._position(digest, 0)
        while True:
            entry = buf[pos:pos + BYTES_PER_ENTRY]
            if entry == _EMPTY:
                buf[pos:pos + BYTES_PER_ENTRY] = digest + _OFFSET.pack(offset)
                self.size += 1
                break
            if entry[:HASH_SIZE] == digest:
                buf[pos + HASH_SIZE:pos + BYTES_PER_ENTRY] = _OFFSET.pack(offset)
                break
            attempt += 1
            pos = self._position(digest, attempt)
        self.latest_offset = offset

    def get(self, key: bytes) -> int:
        """The offset put for ``key``, -1 if none."""
        digest = md5(key).digest()
        buf = self._buf
        max_attempts = self.slots + HASH_SIZE - 4
        attempt = 0
        pos = self._position(digest, 0)
        while attempt < max_attempts:
            entry = buf[pos:pos + BYTES_PER_ENTRY]
            if entry == _EMPTY:
                return -1
            if entry[:HASH_SIZE] == digest:
                return _OFFSET.unpack_from(entry, HASH_SIZE)[0]
            attempt += 1
            pos = self._position(digest, attempt)
        return -1

    def update_latest_offset(self, offset: int) -> None:
        self.latest_offset = offset

    def clear(self) -> None:
        self._buf.close()
        self._buf = mmap.mmap(-1, self.slots * BYTES_PER_ENTRY)
        self.size = 0
        self.latest_offset = -1

    @property
    def utilization(self) -> float:
        return self.size / self.slots

    def close(self) -> None:
        self._buf.close()
