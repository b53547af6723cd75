"""Cleaning one log (Kafka's LogCleaner.Cleaner): build the key -> last offset
map of the dirty section, then copy each group of segments into one
``.cleaned`` segment keeping, for every key, only its latest record.

Everything here runs in a worker thread or process (cleaner_worker.py) on
data prepared by the event loop (``LogToClean``: the segments' files and
sizes, their aborted transactions, the producers whose last batch must
stay); it never touches the PartitionLog. The cleaner_manager swaps each
cleaned segment in.

What survives, as Kafka decides it (records v2):
- a record whose key has a later offset in the map goes; a record past the
  map's latest offset stays (a map too small for the dirty section's keys
  covers only its start: the rest is cleaned by the next pass);
- a tombstone (null value) stays until its batch's delete horizon: the
  first cleaning that keeps it stamps the batch with now +
  delete.retention.ms (KIP-534: the horizon goes in the base timestamp
  field and attribute bit 6 says so);
- records of aborted transactions go at once; a transaction marker stays
  while data of its transaction is left, then until its own delete horizon;
- a batch emptied of records still stays, as an empty header, when it is
  the last batch of a producer that is still active (its sequence numbers
  and epoch keep fencing working) or the last batch of the cleaning round.
A kept batch keeps its base offset, last offset delta, producer id/epoch,
base sequence and leader epoch; it is copied byte for byte when nothing in
it changes, else rebuilt from the surviving records (their offset deltas
kept, so offsets become sparse but never change) and recompressed with its
codec.
"""
from __future__ import annotations

import heapq
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kafka_compat.protocol.compression import Codec, compress, decompress
from kafka_compat.protocol.records import (
    BATCH_LENGTH_OFFSET,
    CONTROL_MASK,
    DELETE_HORIZON_MASK,
    HEADER_SIZE,
    INT32_MAX,
    LOG_APPEND_TIME,
    LOG_OVERHEAD,
    NO_TIMESTAMP,
    RECORDS_OFFSET,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    BatchView,
    ControlType,
    decode_varint,
    fix_crc,
    write_varint,
)

from .config import LogConfig
from .segment import CLEANED_SUFFIX, LogSegment
from .txn_index import AbortedTxn

if TYPE_CHECKING:
    from .offset_map import SkimpyOffsetMap

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">qiibIhiqqqhii")
_INT32 = struct.Struct(">i")
_CONTROL_KEY = struct.Struct(">hh")


class CleaningAborted(Exception):
    """The log changed under the cleaning (truncated, deleted, closed) or the
    cleaner is shutting down (Kafka's LogCleaningAbortedException)."""


# ---------------------------------------------------------------- what the event loop hands over


@dataclass
class SourceSegment:
    """One segment as the cleaning reads it, its sizes taken by the event
    loop when the log was chosen (a segment below the first uncleanable
    offset never grows). The cleaning opens its file by name: a segment
    retired meanwhile aborts it, and a changed one is refused at the swap
    (PartitionLog.replace_segments compares segments and sizes)."""

    path: Path  # the .log file
    base_offset: int
    size: int
    next_base_offset: int  # the next segment's base offset
    index_bytes: int
    time_index_bytes: int
    aborted: list[AbortedTxn]  # collected for [base_offset, next_base_offset)


@dataclass(eq=False)
class LogToClean:
    """A log chosen for cleaning and everything the worker thread needs of it
    (Kafka's LogToClean). ``segments`` are the log's segments below the
    first uncleanable offset (never the active one)."""

    topic: str
    partition: int
    directory: Path
    config: LogConfig
    first_dirty_offset: int
    first_uncleanable_offset: int
    segments: list[SourceSegment]
    dirty_start_position: int  # the offset index's position for the first dirty offset in its segment
    dirty_aborted: list[AbortedTxn]  # aborted transactions in [first dirty, first uncleanable)
    # Producer id -> (last data offset or None, epoch) of producers still active (Kafka's lastRecordsOfActiveProducers).
    active_producers: dict[int, tuple[int | None, int]]
    clean_bytes: int = 0
    cleanable_bytes: int = 0
    need_compaction_now: bool = False

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        return self.cleanable_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass
class CleanerStats:
    start: float = field(default_factory=time.monotonic)
    map_done: float = 0.0
    end: float = 0.0
    bytes_read: int = 0
    bytes_written: int = 0
    map_bytes_read: int = 0
    map_messages_read: int = 0
    messages_read: int = 0
    messages_written: int = 0
    invalid_messages: int = 0
    buffer_utilization: float = 0.0

    @property
    def elapsed(self) -> float:
        return max((self.end or time.monotonic()) - self.start, 1e-9)


# ---------------------------------------------------------------- I/O throttle


class Throttler:
    """log.cleaner.io.max.bytes.per.second shared by every cleaner thread
    (Kafka's Throttler: the rate is checked every 300 ms and the caller
    sleeps off any excess)."""

    CHECK_INTERVAL = 0.3

    def __init__(self, rate_per_sec: float, stop: threading.Event):
        self.rate = rate_per_sec
        self._stop = stop
        self._lock = threading.Lock()
        self._period_start = time.monotonic()
        self._observed = 0.0

    def maybe_throttle(self, observed: int) -> None:
        with self._lock:
            self._observed += observed
            now = time.monotonic()
            elapsed = now - self._period_start
            if elapsed <= self.CHECK_INTERVAL or self._observed <= 0:
                return
            sleep = 0.0
            if self._observed / elapsed > self.rate:
                sleep = self._observed / self.rate - elapsed
            if sleep > 0:
                self._stop.wait(sleep)
            self._period_start = time.monotonic()
            self._observed = 0.0


# ---------------------------------------------------------------- transactions


class _AbortedTxnMetadata:
    __slots__ = ("txn", "last_observed_batch_offset")

    def __init__(self, txn: AbortedTxn):
        self.txn = txn
        self.last_observed_batch_offset: int | None = None


class CleanedTransactionMetadata:
    """The transactions the cleaner is inside of as it walks the log (Kafka's
    CleanedTransactionMetadata): which data batches belong to aborted
    transactions, and when a marker may go. Aborted transactions whose
    marker stays are written to the cleaned segment's .txnindex."""

    def __init__(self) -> None:
        self._committed: set[int] = set()
        self._aborted: dict[int, _AbortedTxnMetadata] = {}
        self._pending: list[tuple[int, int, AbortedTxn]] = []  # heap by first offset
        self._seq = 0
        self.cleaned_index = None  # the TransactionIndex of the segment being written

    def add_aborted_transactions(self, txns: list[AbortedTxn]) -> None:
        for txn in txns:
            self._seq += 1
            heapq.heappush(self._pending, (txn.first_offset, self._seq, txn))

    def _consume_aborted_up_to(self, offset: int) -> None:
        while self._pending and self._pending[0][0] <= offset:
            txn = heapq.heappop(self._pending)[2]
            self._aborted.setdefault(txn.producer_id, _AbortedTxnMetadata(txn))

    def on_control_batch_read(self, batch: BatchView) -> bool:
        """Whether the control batch may be discarded."""
        self._consume_aborted_up_to(batch.last_offset)
        control_type = control_type_of(batch)
        if control_type is None:
            return True  # an empty control batch was cleaned already
        producer_id = batch.producer_id
        if control_type == ControlType.ABORT:
            aborted = self._aborted.pop(producer_id, None)
            if aborted is not None and aborted.last_observed_batch_offset is not None:
                # Kept until all batches of the transaction are gone.
                if self.cleaned_index is not None:
                    self.cleaned_index.append(aborted.txn)
                return False
            return True
        if control_type == ControlType.COMMIT:
            if producer_id in self._committed:
                self._committed.discard(producer_id)
                return False
            return True
        return False

    def on_batch_read(self, batch: BatchView) -> bool:
        """Whether the data batch belongs to an aborted transaction."""
        self._consume_aborted_up_to(batch.last_offset)
        if batch.is_transactional:
            aborted = self._aborted.get(batch.producer_id)
            if aborted is not None:
                aborted.last_observed_batch_offset = batch.last_offset
                return True
            self._committed.add(batch.producer_id)
        return False


def control_type_of(batch: BatchView) -> int | None:
    """The control type in the key of a control batch's first record; None
    for an empty batch."""
    for record in batch.records():
        key = record.key
        if key is None or len(key) < _CONTROL_KEY.size:
            return -1
        return _CONTROL_KEY.unpack_from(key)[1]
    return None


# ---------------------------------------------------------------- records


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    b = data[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    return decode_varint(data, pos, 10)


def _scan_records(data: bytes, count: int) -> Iterator[tuple[int, int, int, int, int, bytes | None, bool]]:
    """(record start, timestamp delta position, record end, timestamp delta,
    offset delta, key, has value) of each record of an uncompressed records
    section. Raises what the record decoder raises for malformed data."""
    pos = 0
    for _ in range(count):
        start = pos
        length, pos = _varint(data, pos)
        end = pos + length
        if length < 0 or end > len(data):
            raise ValueError(f"record of {length} bytes at {start} overruns the batch")
        ts_pos = pos + 1  # after the attributes byte
        ts_delta, pos = _varint(data, ts_pos)
        offset_delta, pos = _varint(data, pos)
        key_len, pos = _varint(data, pos)
        if key_len >= 0:
            key = data[pos:pos + key_len]
            pos += key_len
        else:
            key = None
        value_len, pos = _varint(data, pos)
        yield start, ts_pos, end, ts_delta, offset_delta, key, value_len >= 0
        pos = end
    if pos != len(data):
        raise ValueError("records still remaining after the batch's record count")


def _records_data(batch: BatchView) -> bytes:
    body = memoryview(batch.buf)[batch.pos + RECORDS_OFFSET:batch.end]
    return decompress(batch.compression, body)


# ---------------------------------------------------------------- the cleaner


@dataclass
class _Filtered:
    """One batch's outcome: bytes to write (None: dropped)."""
    data: bytes | memoryview | None
    last_offset: int = -1
    max_timestamp: int = NO_TIMESTAMP


def open_segment_file(source: SourceSegment) -> int:
    """A descriptor of the source segment's file, owned by the caller."""
    try:
        return os.open(source.path, os.O_RDONLY)
    except FileNotFoundError:
        raise CleaningAborted(f"{source.path} is gone") from None


class Cleaner:
    """One cleaner thread's state: its offset map and I/O buffer size.
    ``check_done`` raises CleaningAborted when the cleaning must stop."""

    def __init__(self, offset_map: SkimpyOffsetMap, io_buffer_size: int, max_io_buffer_size: int,
                 load_factor: float, throttler: Throttler, check_done: Callable[[], None]):
        if offset_map.slots * load_factor <= 1:
            raise ValueError("offset map is too small to fit in even a single message, so log cleaning will never "
                             "make progress. You can increase log.cleaner.dedupe.buffer.size or decrease "
                             "log.cleaner.threads")
        self.offset_map = offset_map
        self.io_buffer_size = max(io_buffer_size, HEADER_SIZE)
        self.max_io_buffer_size = max_io_buffer_size
        self.load_factor = load_factor
        self.throttler = throttler
        self.check_done = check_done

    # -- reading -----------------------------------------------------------
    def _read_batches(self, fd: int, start: int, end: int, read_bytes: list[int]) -> Iterator[BatchView]:
        """Each whole batch in [start, end), read with a buffer of
        io_buffer_size that grows only as far as a bigger batch needs."""
        buffer_size = self.io_buffer_size
        pos = start
        while pos < end:
            self.check_done()
            chunk = os.pread(fd, min(buffer_size, end - pos), pos)
            if len(chunk) < LOG_OVERHEAD:
                raise ValueError(f"segment ends at {pos + len(chunk)}, before its recorded size {end}")
            self.throttler.maybe_throttle(len(chunk))
            offset = 0
            while offset + LOG_OVERHEAD <= len(chunk):
                size = _INT32.unpack_from(chunk, offset + BATCH_LENGTH_OFFSET)[0] + LOG_OVERHEAD
                if size < HEADER_SIZE:
                    raise ValueError(f"batch of {size} bytes at position {pos + offset}")
                if offset + size > len(chunk):
                    break
                yield BatchView(chunk, offset)
                offset += size
            if offset == 0:
                size = _INT32.unpack_from(chunk, BATCH_LENGTH_OFFSET)[0] + LOG_OVERHEAD
                if size > end - pos:
                    raise ValueError(f"Log segment may be corrupt, batch size {size} > {end - pos} bytes left "
                                     f"at position {pos}")
                log.info("growing cleaner I/O buffer from %d to %d bytes", buffer_size, size)
                buffer_size = size
            pos += offset
            read_bytes[0] += offset

    # -- the offset map ----------------------------------------------------
    def build_offset_map(self, ltc: LogToClean, stats: CleanerStats) -> int:
        """Map the dirty section's keys to their last offsets, as far as the
        map holds (load factor); returns the offset cleaning goes up to
        (exclusive): the map's latest offset + 1."""
        offset_map = self.offset_map
        offset_map.clear()
        start, end = ltc.first_dirty_offset, ltc.first_uncleanable_offset
        dirty = [s for s in ltc.segments if s.next_base_offset > start and s.base_offset < end]
        txns = CleanedTransactionMetadata()
        txns.add_aborted_transactions(ltc.dirty_aborted)
        max_entries = int(offset_map.slots * self.load_factor)
        for i, source in enumerate(dirty):
            next_start = source.next_base_offset if i + 1 < len(dirty) else end
            position = ltc.dirty_start_position if i == 0 else 0
            if self._map_segment(ltc, source, position, start, txns, max_entries, stats):
                break
            offset_map.update_latest_offset(next_start - 1)  # over any offset gap at the segment's end
        stats.map_done = time.monotonic()
        return offset_map.latest_offset + 1

    def _map_segment(self, ltc: LogToClean, source: SourceSegment, position: int, start: int,
                     txns: CleanedTransactionMetadata, max_entries: int, stats: CleanerStats) -> bool:
        """True when the map filled up inside this segment."""
        offset_map = self.offset_map
        put = offset_map.put
        read = [0]
        fd = open_segment_file(source)
        try:
            for batch in self._read_batches(fd, position, source.size, read):
                if batch.is_control:
                    txns.on_control_batch_read(batch)
                    stats.map_messages_read += 1
                elif txns.on_batch_read(batch):
                    stats.map_messages_read += batch.record_count  # aborted: not mapped
                else:
                    base = batch.base_offset
                    data = _records_data(batch)
                    for _, _, _, _, delta, key, _ in _scan_records(data, batch.record_count):
                        offset = base + delta
                        if key is not None and offset >= start:
                            if offset_map.size < max_entries:
                                put(key, offset)
                            else:
                                return True
                        stats.map_messages_read += 1
                if batch.last_offset >= start:
                    offset_map.update_latest_offset(batch.last_offset)
        finally:
            os.close(fd)
            stats.map_bytes_read += read[0]
        return False

    # -- grouping ----------------------------------------------------------
    @staticmethod
    def group_segments_by_size(segments: list[SourceSegment], max_size: int, max_index_size: int,
                               first_uncleanable_offset: int) -> list[list[SourceSegment]]:
        """Consecutive segments whose data and indexes each fit one segment
        (and whose offsets fit one segment's relative offsets) become one
        group, cleaned into one segment (Kafka's groupSegmentsBySize)."""
        groups = []
        i = 0
        while i < len(segments):
            group = [segments[i]]
            log_size, index_size, time_index_size = (segments[i].size, segments[i].index_bytes,
                                                     segments[i].time_index_bytes)
            i += 1
            while i < len(segments):
                nxt = segments[i]
                last_offset = segments[i + 1].base_offset - 1 if i + 1 < len(segments) \
                    else first_uncleanable_offset - 1
                if not (log_size + nxt.size <= max_size and index_size + nxt.index_bytes <= max_index_size
                        and time_index_size + nxt.time_index_bytes <= max_index_size
                        and (nxt.size == 0 or last_offset - group[-1].base_offset <= INT32_MAX)):
                    break
                group.append(nxt)
                log_size += nxt.size
                index_size += nxt.index_bytes
                time_index_size += nxt.time_index_bytes
                i += 1
            groups.append(group)
        return groups

    # -- cleaning ----------------------------------------------------------
    def clean_segments(self, ltc: LogToClean, group: list[SourceSegment], txns: CleanedTransactionMetadata,
                       now_ms: int, upper_bound_offset: int, stats: CleanerStats) -> LogSegment:
        """Copy the group's surviving batches into a new ``.cleaned`` segment
        named after the group's first, flushed to disk (Kafka's
        cleanSegments before the swap). The caller swaps it in, or deletes
        its files."""
        config = ltc.config
        cleaned = LogSegment(ltc.directory, group[0].base_offset, config, now_ms, create=True, suffix=CLEANED_SUFFIX)
        try:
            txns.cleaned_index = cleaned.txn_index
            mtime = None
            for source in group:
                txns.add_aborted_transactions(source.aborted)
                mtime = self._clean_into(ltc, source, cleaned, txns, now_ms, upper_bound_offset, stats)
            cleaned.on_become_inactive()
            cleaned.flush(save_indexes=True)
            os.utime(cleaned.log_path, (mtime, mtime))  # the last source's, as Kafka keeps it
            return cleaned
        except BaseException:
            delete_segment_files(cleaned)
            raise
        finally:
            txns.cleaned_index = None

    def _clean_into(self, ltc: LogToClean, source: SourceSegment, dest: LogSegment,
                    txns: CleanedTransactionMetadata, now_ms: int, upper_bound_offset: int,
                    stats: CleanerStats) -> float:
        """Returns the source's modification time."""
        delete_retention_ms = int(ltc.config.get("delete.retention.ms"))
        read = [0]
        fd = open_segment_file(source)
        try:
            mtime = os.fstat(fd).st_mtime
            for batch in self._read_batches(fd, 0, source.size, read):
                stats.bytes_read += batch.size
                out = self._filter_batch(batch, ltc.active_producers, txns, now_ms, delete_retention_ms,
                                         upper_bound_offset, stats)
                if out.data is not None:
                    dest.append(out.data, out.last_offset, out.max_timestamp, out.last_offset)
                    stats.bytes_written += len(out.data)
                    self.throttler.maybe_throttle(len(out.data))
        except ValueError as e:
            raise ValueError(f"cleaning segment {source.base_offset} of {ltc.name}: {e}") from e
        finally:
            os.close(fd)
        return mtime

    def _filter_batch(self, batch: BatchView, active_producers: dict[int, tuple[int | None, int]],
                      txns: CleanedTransactionMetadata, now_ms: int, delete_retention_ms: int,
                      upper_bound_offset: int, stats: CleanerStats) -> _Filtered:
        """Kafka's checkBatchRetention, shouldRetainRecord and filterTo for one batch."""
        is_control = batch.is_control
        can_discard = txns.on_control_batch_read(batch) if is_control else txns.on_batch_read(batch)
        horizon = batch.base_timestamp if batch.has_delete_horizon else None
        if is_control:
            discard_records = can_discard and horizon is not None and horizon <= now_ms
        else:
            discard_records = can_discard
        producer_id = batch.producer_id
        last_of_producer = False
        if producer_id >= 0:
            last = active_producers.get(producer_id)
            if last is not None:
                last_data_offset, epoch = last
                if last_data_offset is not None:
                    last_of_producer = batch.last_offset == last_data_offset
                else:
                    last_of_producer = is_control and batch.producer_epoch == epoch
        retain_empty = last_of_producer or batch.next_offset == upper_bound_offset
        if discard_records and not retain_empty:
            return _Filtered(None)
        marker_for_empty_txn = can_discard and is_control

        kept: list[tuple[int, int, int, int]] = []  # (start, ts position, end, timestamp delta)
        all_kept = True
        tombstones = False
        if not discard_records:
            count = batch.record_count
            data = _records_data(batch)
            stats.messages_read += count
            offset_map = self.offset_map
            latest = offset_map.latest_offset
            get = offset_map.get
            base = batch.base_offset
            retain_deletes = horizon is None or now_ms < horizon
            for start, ts_pos, end, ts_delta, delta, key, has_value in _scan_records(data, count):
                if is_control or base + delta > latest:
                    keep = True
                elif key is not None:
                    keep = base + delta >= get(key) and (has_value or retain_deletes)
                else:
                    stats.invalid_messages += 1
                    keep = False
                if keep:
                    kept.append((start, ts_pos, end, ts_delta))
                    if not has_value:
                        tombstones = True
                else:
                    all_kept = False
        if kept:
            stats.messages_written += len(kept)
            set_horizon = (tombstones or marker_for_empty_txn) and horizon is None
            if all_kept and not set_horizon:
                return _Filtered(batch.buf[batch.pos:batch.end], batch.last_offset, batch.max_timestamp)
            new_horizon = now_ms + delete_retention_ms if set_horizon else horizon
            out = _rebuild_batch(batch, data, kept, new_horizon)
            return _Filtered(out, batch.last_offset, BatchView(out).max_timestamp)
        if retain_empty:
            out = _empty_batch(batch)
            return _Filtered(out, batch.last_offset, batch.max_timestamp)
        return _Filtered(None)


def _rebuild_batch(batch: BatchView, data: bytes, kept: list[tuple[int, int, int, int]],
                   horizon: int | None) -> bytes:
    """The batch with only the ``kept`` records (Kafka's
    buildRetainedRecordsInto): same base offset, last offset delta, producer
    fields and codec; the base timestamp is the delete horizon when there is
    one (attribute bit 6), else the first record's timestamp, and each
    record's timestamp delta is rewritten against it."""
    log_append_time = batch.timestamp_type == LOG_APPEND_TIME
    old_base = batch.base_timestamp
    batch_max = batch.max_timestamp

    def timestamp(ts_delta: int) -> int:
        return batch_max if log_append_time else old_base + ts_delta

    new_base = horizon if horizon is not None else timestamp(kept[0][3])
    body = bytearray()
    max_ts = NO_TIMESTAMP
    for start, ts_pos, end, ts_delta in kept:
        ts = timestamp(ts_delta)
        if ts > max_ts:
            max_ts = ts
        new_delta = ts - new_base
        if new_delta == ts_delta:
            body += data[start:end]
            continue
        _, after_ts = _varint(data, ts_pos)
        record = bytearray(data[ts_pos - 1:ts_pos])  # attributes
        write_varint(record, new_delta)
        record += data[after_ts:end]
        write_varint(body, len(record))
        body += record
    if log_append_time:
        max_ts = batch_max
    codec = batch.compression
    records = compress(codec, body) if codec != Codec.NONE else body
    attributes = batch.attributes & ~DELETE_HORIZON_MASK
    if horizon is not None:
        attributes |= DELETE_HORIZON_MASK
    out = bytearray(HEADER_SIZE)
    _HEADER.pack_into(out, 0, batch.base_offset, HEADER_SIZE - LOG_OVERHEAD + len(records),
                      batch.partition_leader_epoch, 2, 0, attributes, batch.last_offset_delta, new_base, max_ts,
                      batch.producer_id, batch.producer_epoch, batch.base_sequence, len(kept))
    out += records
    fix_crc(out)
    return bytes(out)


def _empty_batch(batch: BatchView) -> bytes:
    """A header without records keeping the batch's offsets and producer
    fields (Kafka's writeEmptyHeader): no compression, base timestamp -1."""
    attributes = (batch.attributes & (TIMESTAMP_TYPE_MASK | TRANSACTIONAL_MASK | CONTROL_MASK))
    out = bytearray(HEADER_SIZE)
    _HEADER.pack_into(out, 0, batch.base_offset, HEADER_SIZE - LOG_OVERHEAD, batch.partition_leader_epoch, 2, 0,
                      attributes, batch.last_offset_delta, NO_TIMESTAMP, batch.max_timestamp, batch.producer_id,
                      batch.producer_epoch, batch.base_sequence, 0)
    fix_crc(out)
    return bytes(out)


def delete_segment_files(segment: LogSegment) -> None:
    """Close a cleaned segment that won't be swapped in and delete its files."""
    segment.close()
    for path in segment.files():
        path.unlink(missing_ok=True)

