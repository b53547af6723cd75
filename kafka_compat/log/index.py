"""Kafka's sparse segment indexes, held in memory and saved as Kafka lays them out.

.index      entries of (relative offset int32, file position int32), big-endian
.timeindex  entries of (timestamp int64, relative offset int32), big-endian

Offsets are relative to the segment's base offset. An index is loaded from its
file lazily on first use, so opening many segments costs nothing; a file that
fails the sanity checks raises CorruptIndexError and the segment rebuilds it.
"""
from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

NO_TIMESTAMP = -1
_LITTLE_ENDIAN = sys.byteorder == "little"
_TIME_ENTRY = struct.Struct(">qi")


class CorruptIndexError(Exception):
    pass


def _write_file(path: Path, data: bytes, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _read_index_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CorruptIndexError(f"{path} is missing") from None


def _size_in_bytes(entries: array | None, path: Path, entry_size: int) -> int:
    if entries is not None:
        return len(entries) * entry_size
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


class OffsetIndex:
    """Maps an offset to the file position of a batch at or before it."""

    ENTRY_SIZE = 8

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int, *, exists: bool):
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(max_index_bytes // self.ENTRY_SIZE, 1)
        self._rel: array | None = None if exists else array("i")
        self._pos: array | None = None if exists else array("i")
        self.dirty = not exists

    # -- loading -----------------------------------------------------------
    def _ensure(self) -> None:
        if self._rel is None:
            self._load()

    def _load(self) -> None:
        data = _read_index_file(self.path)
        if len(data) % self.ENTRY_SIZE:
            raise CorruptIndexError(f"{self.path} has size {len(data)}, not a multiple of {self.ENTRY_SIZE}")
        flat = array("i")
        flat.frombytes(data)
        if _LITTLE_ENDIAN:
            flat.byteswap()
        rel, pos = flat[0::2], flat[1::2]
        if rel and (rel[0] < 0 or rel[-1] < rel[0] or pos[0] < 0 or pos[-1] < pos[0]):
            raise CorruptIndexError(f"{self.path} has out-of-order entries")
        self._rel, self._pos = rel, pos
        self.dirty = False

    def check(self, log_size: int) -> None:
        """Load the index and sanity-check it against the size of its segment."""
        self._ensure()
        if self._pos and self._pos[-1] >= log_size:
            raise CorruptIndexError(f"{self.path} points past the end of the log ({self._pos[-1]} >= {log_size})")

    # -- queries -----------------------------------------------------------
    def __len__(self) -> int:
        self._ensure()
        return len(self._rel)

    def size_in_bytes(self) -> int:
        """The entries' bytes (Kafka's sizeInBytes), from the file when not loaded."""
        return _size_in_bytes(self._rel, self.path, self.ENTRY_SIZE)

    @property
    def is_full(self) -> bool:
        return len(self) >= self.max_entries

    def last_entry(self) -> tuple[int, int]:
        """(offset, position) of the last entry, or (base_offset, 0)."""
        self._ensure()
        if not self._rel:
            return self.base_offset, 0
        return self.base_offset + self._rel[-1], self._pos[-1]

    def lookup(self, offset: int) -> tuple[int, int]:
        """Largest entry with offset <= ``offset``, or (base_offset, 0)."""
        self._ensure()
        i = bisect_right(self._rel, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._rel[i], self._pos[i]

    def lookup_position(self, position: int) -> int:
        """Largest indexed position <= ``position`` (a batch boundary), or 0."""
        self._ensure()
        i = bisect_right(self._pos, position) - 1
        return self._pos[i] if i >= 0 else 0

    def upper_bound_offset(self, position: int) -> int | None:
        """The offset of the first entry at or after ``position`` (Kafka's
        fetchUpperBoundOffset), None if there is none."""
        self._ensure()
        i = bisect_left(self._pos, position)
        return self.base_offset + self._rel[i] if i < len(self._pos) else None

    # -- mutation ----------------------------------------------------------
    def append(self, offset: int, position: int) -> None:
        self._ensure()
        rel = offset - self.base_offset
        if self._rel and (rel <= self._rel[-1] or position <= self._pos[-1]):
            raise ValueError(f"index entry ({offset}, {position}) is not after the last one")
        self._rel.append(rel)
        self._pos.append(position)
        self.dirty = True

    def reset(self) -> None:
        self._rel, self._pos = array("i"), array("i")
        self.dirty = True

    def truncate_to(self, offset: int) -> None:
        """Drop the entries for ``offset`` and above (log truncation)."""
        self._ensure()
        keep = bisect_left(self._rel, offset - self.base_offset)
        if keep < len(self._rel):
            del self._rel[keep:], self._pos[keep:]
            self.dirty = True

    def save(self, sync: bool) -> None:
        self._ensure()
        flat = array("i", bytes(8 * len(self._rel)))
        flat[0::2], flat[1::2] = self._rel, self._pos
        if _LITTLE_ENDIAN:
            flat.byteswap()
        _write_file(self.path, flat.tobytes(), sync)
        self.dirty = False


class TimeIndex:
    """Maps a timestamp to the offset from which to scan for it."""

    ENTRY_SIZE = 12

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int, *, exists: bool):
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(max_index_bytes // self.ENTRY_SIZE, 2)
        self._ts: array | None = None if exists else array("q")
        self._rel: array | None = None if exists else array("i")
        self.dirty = not exists

    def _ensure(self) -> None:
        if self._ts is None:
            self._load()

    def _load(self) -> None:
        data = _read_index_file(self.path)
        self._ts, self._rel = self._parse(data)
        self.dirty = False

    def _parse(self, data: bytes) -> tuple[array, array]:
        if len(data) % self.ENTRY_SIZE:
            raise CorruptIndexError(f"{self.path} has size {len(data)}, not a multiple of {self.ENTRY_SIZE}")
        flat = struct.unpack(">" + "qi" * (len(data) // self.ENTRY_SIZE), data)
        ts, rel = array("q", flat[0::2]), array("i", flat[1::2])
        if rel and (rel[0] < 0 or rel[-1] < rel[0] or ts[-1] < ts[0]):
            raise CorruptIndexError(f"{self.path} has out-of-order entries")
        return ts, rel

    def check(self) -> None:
        """Load the index (its loading checks the entries' order)."""
        self._ensure()

    def __len__(self) -> int:
        self._ensure()
        return len(self._ts)

    def size_in_bytes(self) -> int:
        """The entries' bytes (Kafka's sizeInBytes), from the file when not loaded."""
        return _size_in_bytes(self._ts, self.path, self.ENTRY_SIZE)

    @property
    def is_full(self) -> bool:
        # Kafka keeps one slot free for the entry written when the segment rolls.
        return len(self) >= self.max_entries - 1

    def last_entry(self) -> tuple[int, int]:
        """(timestamp, offset) of the last entry, or (NO_TIMESTAMP, base_offset).

        Reads only the file's last entry when the index isn't loaded: enough for
        a segment's largest timestamp, which Kafka keeps as the last entry.
        """
        if self._ts is None:
            try:
                with open(self.path, "rb") as f:
                    size = f.seek(0, os.SEEK_END)
                    if size % self.ENTRY_SIZE:
                        raise CorruptIndexError(f"{self.path} has size {size}")
                    if size == 0:
                        return NO_TIMESTAMP, self.base_offset
                    f.seek(size - self.ENTRY_SIZE)
                    ts, rel = _TIME_ENTRY.unpack(f.read(self.ENTRY_SIZE))
                    if rel < 0:
                        raise CorruptIndexError(f"{self.path} has a negative offset")
                    return ts, self.base_offset + rel
            except FileNotFoundError:
                raise CorruptIndexError(f"{self.path} is missing") from None
        if not self._ts:
            return NO_TIMESTAMP, self.base_offset
        return self._ts[-1], self.base_offset + self._rel[-1]

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """Largest entry with timestamp <= ``timestamp``, or (NO_TIMESTAMP, base_offset)."""
        self._ensure()
        i = bisect_right(self._ts, timestamp) - 1
        if i < 0:
            return NO_TIMESTAMP, self.base_offset
        return self._ts[i], self.base_offset + self._rel[i]

    def maybe_append(self, timestamp: int, offset: int, skip_full_check: bool = False) -> None:
        """Add an entry if ``timestamp`` is larger than the last one (Kafka's rule)."""
        self._ensure()
        if not skip_full_check and self.is_full:
            raise ValueError(f"{self.path} is full")
        rel = offset - self.base_offset
        if self._ts:
            if rel < self._rel[-1]:
                raise ValueError(f"time index offset {offset} is before the last entry's")
            if timestamp <= self._ts[-1]:
                return
        elif timestamp <= NO_TIMESTAMP:
            return
        self._ts.append(timestamp)
        self._rel.append(rel)
        self.dirty = True

    def reset(self) -> None:
        self._ts, self._rel = array("q"), array("i")
        self.dirty = True

    def truncate_to(self, offset: int) -> None:
        """Drop the entries for ``offset`` and above (log truncation)."""
        self._ensure()
        keep = bisect_left(self._rel, offset - self.base_offset)
        if keep < len(self._rel):
            del self._ts[keep:], self._rel[keep:]
            self.dirty = True

    def save(self, sync: bool) -> None:
        self._ensure()
        data = b"".join(_TIME_ENTRY.pack(t, r) for t, r in zip(self._ts, self._rel))
        _write_file(self.path, data, sync)
        self.dirty = False
