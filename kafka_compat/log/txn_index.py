"""A segment's aborted-transaction index, ``<base offset>.txnindex`` (Kafka's
TransactionIndex).

Each entry is an aborted transaction whose ABORT marker is in the segment,
34 bytes big-endian as Kafka writes them: version int16 (0), producer id
int64, first offset int64, last offset (the marker's) int64, and the last
stable offset int64 when the marker was written. A READ_COMMITTED fetch
hands the overlapping entries to the consumer, which drops those
transactions' records.

The file is created by the first entry (most segments never have one); its
entries are read once and kept in memory (aborts are rare). Appends go to
the page cache; ``flush`` fsyncs them with the segment.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34
CURRENT_VERSION = 0


class CorruptTxnIndexError(Exception):
    pass


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    def __init__(self, path: Path, base_offset: int):
        self.path = path
        self.base_offset = base_offset
        self._entries: list[AbortedTxn] | None = None  # loaded on first use
        self._fd: int | None = None
        self.dirty = False

    @property
    def entries(self) -> list[AbortedTxn]:
        if self._entries is None:
            self._entries = self._load()
        return self._entries

    def _load(self) -> list[AbortedTxn]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        if len(data) % ENTRY_SIZE:
            raise CorruptTxnIndexError(f"{self.path} has size {len(data)}, not a multiple of {ENTRY_SIZE}")
        entries = []
        for pos in range(0, len(data), ENTRY_SIZE):
            version, *fields = _ENTRY.unpack_from(data, pos)
            if version != CURRENT_VERSION:
                raise CorruptTxnIndexError(f"{self.path}: unexpected aborted transaction version {version}")
            entries.append(AbortedTxn(*fields))
        return entries

    def looks_valid(self) -> bool:
        """Cheap start-up check: no file, or a whole number of entries."""
        try:
            return os.stat(self.path).st_size % ENTRY_SIZE == 0
        except FileNotFoundError:
            return True

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def append(self, txn: AbortedTxn) -> None:
        """Add an entry (page cache only); last offsets must increase, as Kafka checks."""
        entries = self.entries
        if entries and txn.last_offset <= entries[-1].last_offset:
            raise ValueError(f"The last offset of appended transactions must increase sequentially, but "
                             f"{txn.last_offset} is not greater than current last offset {entries[-1].last_offset} "
                             f"of index {self.path}")
        os.pwrite(self._open(), _ENTRY.pack(CURRENT_VERSION, *txn), len(entries) * ENTRY_SIZE)
        entries.append(txn)
        self.dirty = True

    def collect(self, fetch_offset: int, upper_bound_offset: int, out: list[AbortedTxn]) -> bool:
        """Add to ``out`` the transactions overlapping [fetch_offset,
        upper_bound_offset) (Kafka's collectAbortedTxns); True when no later
        segment can hold more (an entry's last stable offset reached the bound)."""
        for txn in self.entries:
            if txn.last_offset >= fetch_offset and txn.first_offset < upper_bound_offset:
                out.append(txn)
            if txn.last_stable_offset >= upper_bound_offset:
                return True
        return False

    def truncate_to(self, offset: int) -> None:
        """Drop the entries whose marker is at ``offset`` or later (log truncation)."""
        entries = self.entries
        keep = next((i for i, txn in enumerate(entries) if txn.last_offset >= offset), len(entries))
        if keep < len(entries):
            del entries[keep:]
            os.ftruncate(self._open(), keep * ENTRY_SIZE)
            self.dirty = True

    def reset(self) -> None:
        """Empty the index (its segment is being recovered and will refill it)."""
        self._entries = []
        if self._fd is not None or self.path.exists():
            os.ftruncate(self._open(), 0)
            self.dirty = True

    def flush(self) -> None:
        """fsync the file. Blocking."""
        if self.dirty and self._fd is not None:
            self.dirty = False  # before the fsync: an append meanwhile marks it again
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
