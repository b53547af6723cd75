"""One log segment: a .log file of record batches as they go on the wire, with
its sparse .index and .timeindex and its aborted-transaction .txnindex
(Kafka's LogSegment).

Only batch headers are read on the hot paths; record bytes are touched by
recovery (CRC) and by timestamp lookups.
"""
from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from kafka_compat.protocol.errors import KafkaError
from kafka_compat.protocol.records import CURRENT_MAGIC, HEADER_SIZE, INT32_MAX, BatchView, parse_end_txn_marker

from .config import LogConfig
from .index import NO_TIMESTAMP, CorruptIndexError, OffsetIndex, TimeIndex
from .txn_index import TXN_INDEX_SUFFIX, TransactionIndex

log = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"
# The log cleaner writes a segment as .cleaned files and swaps it in through .swap ones.
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
_SCAN_CHUNK = 16 * 1024
_RECOVERY_CHUNK = 1024 * 1024


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class LogSegment:
    """A segment file and its indexes.

    ``size`` is the number of valid, fully written bytes: nothing past it is ever
    read. ``fd`` stays open until the segment is deleted or closed, so file
    regions handed to readers remain valid while they send them.
    """

    def __init__(self, directory: Path, base_offset: int, config: LogConfig, now_ms: int, *, create: bool,
                 suffix: str = ""):
        """``suffix`` (CLEANED_SUFFIX, SWAP_SUFFIX) follows each file's own
        suffix, as in Kafka's 00000000000000000000.log.cleaned."""
        self.base_offset = base_offset
        name = segment_name(base_offset)
        self.log_path = directory / (name + LOG_SUFFIX + suffix)
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        self.fd = os.open(self.log_path, flags, 0o644)
        self.size = 0 if create else os.fstat(self.fd).st_size
        self._offset_index = OffsetIndex(
            directory / (name + INDEX_SUFFIX + suffix), base_offset, config.segment_index_bytes, exists=not create
        )
        self._time_index = TimeIndex(
            directory / (name + TIME_INDEX_SUFFIX + suffix), base_offset, config.segment_index_bytes,
            exists=not create
        )
        self.txn_index = TransactionIndex(directory / (name + TXN_INDEX_SUFFIX + suffix), base_offset)
        if create:
            self.txn_index.reset()  # a leftover file of an old segment of that name
        # Index files read from disk are loaded and sanity-checked (and rebuilt
        # if broken) on first use, so that opening a log touches none of them.
        self._offset_index_checked = self._time_index_checked = create
        self.index_interval_bytes = config.index_interval_bytes
        self.created_ms = now_ms
        self.roll_jitter_ms = random.randrange(config.segment_jitter_ms) if config.segment_jitter_ms > 0 else 0
        self._bytes_since_index_entry = 0
        # Largest batch max-timestamp and the last offset of the batch holding it;
        # None = not yet read from the time index (segments loaded from disk).
        self._max_ts: tuple[int, int] | None = (NO_TIMESTAMP, base_offset) if create else None
        # Max timestamp of the first batch, which segment.ms measures from.
        self._rolling_ts: int | None = NO_TIMESTAMP if create else None
        self.closed = False

    # -- indexes -------------------------------------------------------------
    @property
    def offset_index(self) -> OffsetIndex:
        if not self._offset_index_checked:
            self._offset_index_checked = True
            self._checked(lambda: self._offset_index.check(self.size))
        return self._offset_index

    @property
    def time_index(self) -> TimeIndex:
        if not self._time_index_checked:
            self._time_index_checked = True
            self._checked(self._time_index.check)
        return self._time_index

    def ensure_indexes(self) -> None:
        """Load and sanity-check both indexes now (Kafka's checks)."""
        _ = self.offset_index, self.time_index

    def _checked(self, check: Callable[[], None]) -> None:
        try:
            check()
        except CorruptIndexError as e:
            log.warning("%s: rebuilding indexes: %s", self.log_path, e)
            self.rebuild_indexes()

    def index_files_look_valid(self) -> bool:
        """Cheap start-up check: both index files exist with a whole number of entries."""
        for index in (self._offset_index, self._time_index):
            try:
                if os.stat(index.path).st_size % index.ENTRY_SIZE:
                    return False
            except FileNotFoundError:
                return False
        return True

    # -- timestamps ----------------------------------------------------------
    @property
    def max_timestamp_and_offset(self) -> tuple[int, int]:
        if self._max_ts is None:
            try:
                # Kafka keeps it as the time index's last entry: no need to load it all.
                self._max_ts = self._time_index.last_entry()
            except CorruptIndexError:
                self._max_ts = self.time_index.last_entry()
        return self._max_ts

    @property
    def max_timestamp(self) -> int:
        return self.max_timestamp_and_offset[0]

    def largest_timestamp(self) -> int:
        """What retention.ms compares against: the max timestamp, else the file's mtime."""
        ts = self.max_timestamp
        return ts if ts >= 0 else int(os.fstat(self.fd).st_mtime * 1000)

    def first_batch_timestamp(self) -> int:
        """The first batch's max timestamp, what segment.ms and
        max.compaction.lag.ms measure from (NO_TIMESTAMP when empty)."""
        if self._rolling_ts is None:
            first = self._read_header(0)
            self._rolling_ts = first.max_timestamp if first is not None else NO_TIMESTAMP
        return self._rolling_ts

    def time_waited_for_roll(self, now_ms: int, incoming_max_ts: int) -> int:
        rolling_ts = self.first_batch_timestamp()
        if rolling_ts >= 0:
            return incoming_max_ts - rolling_ts
        return now_ms - self.created_ms

    # -- writing -------------------------------------------------------------
    def append(self, data, largest_offset: int, max_ts: int, offset_of_max_ts: int) -> None:
        """Write whole batches at the end; no fsync (the page cache holds them)."""
        position = self.size
        if position == 0:
            self._rolling_ts = max_ts
        view = memoryview(data)
        at = position
        while view:
            n = os.pwrite(self.fd, view, at)
            view, at = view[n:], at + n
        self.size = at
        if max_ts > self.max_timestamp:
            self._max_ts = (max_ts, offset_of_max_ts)
        if self._bytes_since_index_entry > self.index_interval_bytes:
            self.offset_index.append(largest_offset, position)
            self.time_index.maybe_append(*self.max_timestamp_and_offset)
            self._bytes_since_index_entry = 0
        self._bytes_since_index_entry += len(data)

    def truncate_to(self, offset: int, now_ms: int) -> int | None:
        """Cut the file before the batch holding ``offset`` (Kafka's
        truncateTo) and drop the index entries from ``offset`` on; no fsync.
        Returns the cut batch's base offset, None if no batch reaches ``offset``."""
        found = self.find_batch(offset)
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        self._bytes_since_index_entry = 0
        if found is None:
            return None
        position, batch = found
        os.ftruncate(self.fd, position)
        self.size = position
        if position == 0:
            self.created_ms = now_ms
            self._rolling_ts = NO_TIMESTAMP
        best = self.time_index.last_entry()
        for _, view in self.headers(self.offset_index.lookup(best[1])[1]):
            if view.max_timestamp > best[0]:
                best = (view.max_timestamp, view.last_offset)
        self._max_ts = best
        return batch.base_offset

    def on_become_inactive(self) -> None:
        """Kafka records the segment's max timestamp as the last time index entry on roll."""
        self.time_index.maybe_append(*self.max_timestamp_and_offset, skip_full_check=True)

    def should_roll(self, config: LogConfig, now_ms: int, size: int, max_ts: int, max_offset: int) -> bool:
        if self.size == 0:
            return False
        return (
            self.size > config.segment_bytes - size
            or self.time_waited_for_roll(now_ms, max_ts) > config.segment_ms - self.roll_jitter_ms
            or self.offset_index.is_full
            or self.time_index.is_full
            or max_offset - self.base_offset > INT32_MAX
        )

    # -- scanning ------------------------------------------------------------
    def _read_header(self, position: int) -> BatchView | None:
        if position + HEADER_SIZE > self.size:
            return None
        return BatchView(os.pread(self.fd, HEADER_SIZE, position), 0)

    def headers(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchView]]:
        """(position, header view) of each batch starting in [start, end).

        Reads only headers; trusts the structure (use ``recover`` to check it).
        """
        end = self.size if end is None else min(end, self.size)
        buf, buf_start = b"", start
        pos = start
        while pos + HEADER_SIZE <= self.size and pos < end:
            if pos + HEADER_SIZE > buf_start + len(buf):
                buf, buf_start = os.pread(self.fd, _SCAN_CHUNK, pos), pos
            view = BatchView(buf, pos - buf_start)
            size = view.size
            if size < HEADER_SIZE:
                raise ValueError(f"{self.log_path}: batch at {pos} has size {size}")
            yield pos, view
            pos += size

    def read_marker(self, position: int, header: BatchView) -> tuple[int, int] | None:
        """(control type, coordinator epoch) of the control batch at
        ``position``; None for an empty one (or one that is no marker)."""
        return marker_of(BatchView(os.pread(self.fd, header.size, position), 0))

    def find_batch(self, offset: int, start: int | None = None) -> tuple[int, BatchView] | None:
        """The first batch whose last offset is >= ``offset`` (Kafka's translateOffset)."""
        if start is None:
            start = self.offset_index.lookup(offset)[1]
        for pos, view in self.headers(start):
            if view.last_offset >= offset:
                return pos, view
        return None

    def batch_boundary_before(self, limit: int, start: int) -> int:
        """The largest batch boundary in [start, limit]; ``start`` must be one."""
        if limit >= self.size:
            return self.size
        pos = max(start, self.offset_index.lookup_position(limit))
        for p, view in self.headers(pos, limit):
            if p + view.size > limit:
                return p
            pos = p + view.size
        return pos

    def read_next_offset(self) -> int:
        """The offset after the last batch, scanning from the last index entry."""
        next_offset = self.base_offset
        end = position = self.offset_index.last_entry()[1]
        for pos, view in self.headers(position):
            end = pos + view.size
            if view.magic != CURRENT_MAGIC or end > self.size or view.base_offset < next_offset:
                raise ValueError(f"{self.log_path}: invalid batch at position {pos}")
            next_offset = view.next_offset
        if end != self.size:
            raise ValueError(f"{self.log_path}: {self.size - end} bytes after the last whole batch")
        return next_offset

    # -- recovery ------------------------------------------------------------
    def recover(self) -> tuple[int, int]:
        """Check every batch (structure, CRC, offsets), rebuild the indexes and cut
        the file after the last valid batch. Returns (next offset, bytes cut)."""
        indexes = self._start_index_rebuild()
        self._rolling_ts = NO_TIMESTAMP
        file_size = os.fstat(self.fd).st_size
        expected = self.base_offset
        valid = 0
        buf, buf_start = b"", 0
        while valid + HEADER_SIZE <= file_size:
            if valid + HEADER_SIZE > buf_start + len(buf):
                buf, buf_start = os.pread(self.fd, _RECOVERY_CHUNK, valid), valid
            view = BatchView(buf, valid - buf_start)
            size = view.size
            if size < HEADER_SIZE or valid + size > file_size or view.magic != CURRENT_MAGIC:
                break
            if valid + size > buf_start + len(buf):
                buf, buf_start = os.pread(self.fd, max(size, _RECOVERY_CHUNK), valid), valid
                view = BatchView(buf, 0)
            if (
                not view.crc_ok()
                or view.base_offset < expected
                or view.last_offset_delta < 0
                or view.last_offset - self.base_offset > INT32_MAX
            ):
                break
            if valid == 0:
                self._rolling_ts = view.max_timestamp
            indexes.add(valid, view)
            expected = view.next_offset
            valid += size
        indexes.finish()
        self.size = valid
        if valid < file_size:
            log.warning("%s: truncating %d invalid bytes at position %d", self.log_path, file_size - valid, valid)
            os.ftruncate(self.fd, valid)
        return expected, file_size - valid

    def rebuild_indexes(self) -> None:
        """Rebuild both indexes from batch headers, without CRC checks or truncation."""
        indexes = self._start_index_rebuild()
        for pos, view in self.headers():
            indexes.add(pos, view)
        indexes.finish()

    def _start_index_rebuild(self) -> _IndexRebuild:
        self._offset_index_checked = self._time_index_checked = True
        self._offset_index.reset()
        self._time_index.reset()
        return _IndexRebuild(self)

    # -- durability and deletion ---------------------------------------------
    @property
    def has_unsaved_indexes(self) -> bool:
        return self._offset_index.dirty or self._time_index.dirty

    def flush(self, save_indexes: bool) -> None:
        """fsync the data; with ``save_indexes`` also write and fsync unsaved indexes.
        Blocking: call from a worker thread."""
        os.fsync(self.fd)
        self.txn_index.flush()
        if save_indexes:
            for index in (self._offset_index, self._time_index):
                if index.dirty:
                    index.save(sync=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)
            self.txn_index.close()

    def files(self) -> list[Path]:
        return [self.log_path, self._offset_index.path, self._time_index.path, self.txn_index.path]

    def change_file_suffixes(self, old: str, new: str) -> None:
        """Rename the segment's files from ``old`` to ``new`` suffix (Kafka's
        changeFileSuffixes: the log first, then the indexes); files that
        don't exist (an unused .txnindex) are skipped. No fsync of the
        directory."""
        for holder, attr in ((self, "log_path"), (self._offset_index, "path"), (self._time_index, "path"),
                             (self.txn_index, "path")):
            path: Path = getattr(holder, attr)
            if not path.name.endswith(old):
                raise ValueError(f"{path} does not end with {old!r}")
            target = path.with_name(path.name[: len(path.name) - len(old)] + new)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                if holder is self:
                    raise
            setattr(holder, attr, target)

    def rename_to_deleted(self) -> list[Path]:
        """Kafka renames a segment's files to *.deleted before removing them later."""
        renamed = []
        for path in self.files():
            target = path.with_name(path.name + DELETED_SUFFIX)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue
            renamed.append(target)
        return renamed


def marker_of(batch: BatchView) -> tuple[int, int] | None:
    """(control type, coordinator epoch) of a control batch's transaction
    marker; None when it has no record (cleaned away) or holds no marker."""
    for record in batch.records():
        try:
            return parse_end_txn_marker(record)
        except KafkaError:
            return None
    return None


class _IndexRebuild:
    """Both sparse indexes of a segment written anew from its batches, in file
    order (recovery and index rebuilds): an entry every index.interval.bytes,
    and the segment's max timestamp as the time index's last entry."""

    def __init__(self, segment: LogSegment):
        self.segment = segment
        self.max_ts = (NO_TIMESTAMP, segment.base_offset)
        self.last_index_pos = 0

    def add(self, pos: int, view: BatchView) -> None:
        segment = self.segment
        if view.max_timestamp > self.max_ts[0]:
            self.max_ts = (view.max_timestamp, view.last_offset)
        if pos - self.last_index_pos > segment.index_interval_bytes and not segment.offset_index.is_full:
            segment.offset_index.append(view.last_offset, pos)
            if not segment.time_index.is_full:
                segment.time_index.maybe_append(*self.max_ts)
            self.last_index_pos = pos

    def finish(self) -> None:
        self.segment._max_ts = self.max_ts
        self.segment.time_index.maybe_append(*self.max_ts, skip_full_check=True)
