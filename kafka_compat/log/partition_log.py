"""The log of one partition: an ordered list of segments, the last one active
(Kafka's UnifiedLog/LocalLog).

All methods run on the trio thread. Appends go to the page cache inline;
fsync, file deletion and shutdown run in worker threads, serialised per log by
``_io_lock`` so a thread never works on files another step is renaming.

An I/O error (ENOSPC, EIO, ...) takes the log's whole directory offline, as
Kafka's LogDirFailureChannel does: ``dir_failed`` (LogManager.fail_dir) is told
and the caller gets KAFKA_STORAGE_ERROR, as does every later use of the log. A
write cut short never becomes part of the log: the segment's size only moves
past whole batches, nothing appends after the failure, and recovery at the next
start truncates the torn tail.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import trio

from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.protocol.records import (
    CURRENT_MAGIC,
    BatchView,
    ControlType,
    build_control_batch,
    iter_batches,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
)
from kafka_compat.txn.producer_state import (
    CompletedTxn,
    ProducerStateManager,
    snapshot_offsets,
    snapshot_path,
    write_snapshot_file,
)

from .background import DirFailed, DiskWork
from .config import LogConfig
from .index import NO_TIMESTAMP
from .leader_epochs import (
    LEADER_EPOCH_CHECKPOINT,
    UNDEFINED_EPOCH_OFFSET,
    EpochEndOffset,
    write_leader_epoch_checkpoint,
)
from .loader import LoadedLog, load_log, load_producer_state
from .segment import CLEANED_SUFFIX, DELETED_SUFFIX, SWAP_SUFFIX, LogSegment, marker_of
from .txn_index import AbortedTxn

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the batches were stamped with LogAppendTime
    log_start_offset: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    """File regions (fd, position, length) holding whole batches, ready for
    os.sendfile, and the partition's offsets as of the read."""

    regions: list[tuple[int, int, int]]
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    # The aborted transactions overlapping the read (asked for: READ_COMMITTED), else None.
    aborted_transactions: list[AbortedTxn] | None = None

    @property
    def size(self) -> int:
        return sum(length for _, _, length in self.regions)

    def read_bytes(self) -> bytes:
        """The regions' bytes (for in-process readers such as coordinators)."""
        return b"".join(os.pread(fd, length, position) for fd, position, length in self.regions)


def _storage_errors(action: str):
    """An OSError from the decorated read takes the log's dir offline."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self: PartitionLog, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except OSError as e:
                raise self._io_failed(action, e) from e

        return wrapper

    return decorate


class UnexpectedAppendOffsetError(Exception):
    """A follower append whose first batch starts below the log end (Kafka's
    UnexpectedAppendOffsetException). Kafka's Partition recovers from one
    case: an empty log (log start == log end) and a batch holding the log
    end (the leader's log start was moved into the middle of a batch by
    DeleteRecords): truncate fully, start at ``first_offset`` and append
    again."""

    def __init__(self, message: str, first_offset: int, last_offset: int):
        super().__init__(message)
        self.first_offset = first_offset
        self.last_offset = last_offset


class OffsetsOutOfOrderError(Exception):
    """Batches of a follower append whose offsets don't increase (Kafka's
    OffsetsOutOfOrderException)."""


class TimestampOffset(NamedTuple):
    offset: int
    timestamp: int
    leader_epoch: int  # the batch's partition leader epoch, -1 if unknown


class PartitionLog:
    """One partition's log. The broker calls ``append``, ``read``,
    ``offset_for_timestamp``/``max_timestamp_offset`` and
    ``flush``; LogManager drives retention, background flushes and ``close``.

    Offsets: ``log_start_offset`` (first readable), ``log_end_offset`` (next to
    assign), ``high_watermark`` (what consumers may read), ``last_stable_offset``
    (what READ_COMMITTED consumers may read), ``recovery_point`` (everything
    below it is fsynced).

    Transactions: producers' transactional batches open transactions in the
    producer state; ``append_marker`` writes the COMMIT/ABORT control batch
    that closes one, and an aborted one goes into the active segment's
    .txnindex, from which ``read(..., aborted=True)`` collects them.

    Replication: a follower writes the leader's batches with
    ``append_as_follower`` and cuts divergent data with ``truncate_to`` /
    ``truncate_fully_and_start_at``; ``leader_epochs`` (Kafka's leader epoch
    cache) answers ``end_offset_for_epoch``. Its file is rewritten when the
    cache changes and fsynced by the next flush, before the recovery point
    passes the entry (recovery rebuilds entries above the recovery point).
    """

    def __init__(
        self,
        topic: str,
        partition: int,
        directory: Path,
        config: LogConfig,
        loaded: LoadedLog,
        work: DiskWork | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        topic_id: bytes | None = None,
        dir_failed: DirFailed | None = None,
    ):
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.dir = directory
        self.config = config
        self.segments: list[LogSegment] = loaded.segments
        self._bases = [s.base_offset for s in self.segments]
        self.log_end_offset = loaded.next_offset
        self.log_start_offset = loaded.log_start_offset
        self.recovery_point = loaded.recovery_point
        self.producer_state = loaded.producer_state
        self.leader_epochs = loaded.leader_epochs
        # On a single broker the high watermark follows the log end; replication
        # turns this off and sets it as followers catch up.
        self.high_watermark_follows_leo = True
        self._high_watermark = self.log_end_offset
        self.producer_state.on_high_watermark_updated(self._high_watermark)
        self._owns_work = work is None
        self._work = work if work is not None else DiskWork()
        self._clock = clock
        self._io_lock = trio.Lock()
        self._unsynced_files: list[Path] = []
        self._dir_dirty = False
        self.last_flush_ms = clock()
        self.closed = False
        self.offline = False  # its log dir failed
        self._dir_failed = dir_failed

    @classmethod
    def open(
        cls,
        directory: Path,
        topic: str,
        partition: int,
        config: LogConfig,
        *,
        clean_shutdown: bool = False,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        work: DiskWork | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        topic_id: bytes | None = None,
        dir_failed: DirFailed | None = None,
    ) -> PartitionLog:
        """Open or create the log in ``directory``, recovering it unless the
        previous shutdown was clean. Blocking: may scan segments."""
        loaded = load_log(
            directory,
            config,
            clock(),
            clean_shutdown=clean_shutdown,
            recovery_point=recovery_point,
            log_start_offset=log_start_offset,
        )
        return cls(topic, partition, directory, config, loaded, work, clock, topic_id, dir_failed)

    def __repr__(self) -> str:
        return f"PartitionLog({self.topic}-{self.partition}, start={self.log_start_offset}, end={self.log_end_offset})"

    # -- offsets -------------------------------------------
    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @high_watermark.setter
    def high_watermark(self, offset: int) -> None:
        offset = min(max(offset, self.log_start_offset), self.log_end_offset)
        self._high_watermark = offset
        if self.producer_state.unreplicated:
            self.producer_state.on_high_watermark_updated(offset)

    @property
    def last_stable_offset(self) -> int:
        """What READ_COMMITTED consumers may read up to (Kafka's lastStableOffset):
        the first unstable offset (never below the log start) if it is below
        the high watermark, else the high watermark."""
        first_unstable = self.producer_state.first_unstable_offset
        if first_unstable is None:
            return self._high_watermark
        first_unstable = max(first_unstable, self.log_start_offset)
        return first_unstable if first_unstable < self._high_watermark else self._high_watermark

    @property
    def size_in_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def _check_open(self) -> None:
        if self.offline:
            raise self.offline_error()
        if self.closed:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER, f"log of {self.topic}-{self.partition} is closed")

    def offline_error(self) -> KafkaError:
        return KafkaError(
            ErrorCode.KAFKA_STORAGE_ERROR, f"Partition {self.topic}-{self.partition} is in an offline log directory"
        )

    def _io_failed(self, action: str, error: OSError) -> KafkaError:
        """Take the log (and, through ``dir_failed``, its whole dir) offline;
        the KafkaError to raise instead of ``error``."""
        message = f"Error while {action} {self.topic}-{self.partition} in dir {self.dir.parent}"
        self.offline = True
        if self._dir_failed is None:
            log.error("%s", message, exc_info=error)
        else:
            self._dir_failed(self.dir.parent, message, error)
        return KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"{message}: {error.strerror or error}")

    def _segment_at(self, offset: int) -> int:
        """Index of the segment that would hold ``offset``."""
        return max(bisect_right(self._bases, offset) - 1, 0)

    # -- append ------------------------------------------------------------
    def append(
        self,
        records,
        batches: Sequence[BatchView],
        leader_epoch: int,
        log_append_time_ms: int | None = None,
        from_coordinator: bool = False,
    ) -> AppendResult:
        """Append validated batches (views into ``records``), assigning offsets.

        Base offsets and the leader epoch are patched into the batches (in
        ``records`` itself when it is writable); with ``log_append_time_ms`` the
        batches become LogAppendTime batches. Batches with a producer id go
        through the idempotence checks first: a duplicate of a recent batch is
        not written again, its original offsets are returned. A coordinator's
        batches (``from_coordinator``, Kafka's AppendOrigin.COORDINATOR: a
        TxnOffsetCommit's always has sequence 0) skip the duplicate and
        sequence checks, not the epoch check. Raises KafkaError
        (INVALID_PRODUCER_EPOCH, OUT_OF_ORDER_SEQUENCE_NUMBER,
        RECORD_LIST_TOO_LARGE).
        """
        self._check_open()
        if not batches:
            raise ValueError("nothing to append")
        start, end = batches[0].pos, batches[-1].end
        size = end - start
        if size > self.config.segment_bytes:
            raise KafkaError(
                ErrorCode.RECORD_LIST_TOO_LARGE,
                f"Message batch size is {size} bytes in append to partition {self.topic}-{self.partition} "
                f"which exceeds the maximum configured segment size of {self.config.segment_bytes}.",
            )

        producer_append = self.producer_state.begin_append()
        offset = self.log_end_offset
        for batch in batches:
            if batch.producer_id >= 0:
                if not batch.is_control and not from_coordinator:
                    duplicate = producer_append.find_duplicate(batch)
                    if duplicate is not None:
                        return AppendResult(
                            duplicate.first_offset, duplicate.last_offset, duplicate.timestamp, self.log_start_offset
                        )
                producer_append.add(batch, offset, check_sequence=not from_coordinator)
            offset += batch.last_offset_delta + 1

        if memoryview(records).readonly:
            records = bytearray(memoryview(records)[start:end])
            batches = [BatchView(records, b.pos - start) for b in batches]
            start, end = 0, size
        first_offset = offset = self.log_end_offset
        max_ts, offset_of_max_ts = NO_TIMESTAMP, first_offset
        for batch in batches:
            set_base_offset(records, batch.pos, offset)
            set_partition_leader_epoch(records, batch.pos, leader_epoch)
            if log_append_time_ms is not None:
                set_log_append_time(records, batch.pos, log_append_time_ms)
            offset += batch.last_offset_delta + 1
            if batch.max_timestamp > max_ts:
                max_ts, offset_of_max_ts = batch.max_timestamp, offset - 1
        last_offset = offset - 1

        try:
            segment = self.segments[-1]
            if segment.should_roll(self.config, self._clock(), size, max_ts, last_offset):
                segment = self._roll()
            segment.append(memoryview(records)[start:end], last_offset, max_ts, offset_of_max_ts)
        except OSError as e:
            raise self._io_failed("appending records to", e) from e
        self.log_end_offset = last_offset + 1
        producer_append.commit()
        self._appended(leader_epoch, first_offset)
        return AppendResult(
            first_offset,
            last_offset,
            -1 if log_append_time_ms is None else log_append_time_ms,
            self.log_start_offset,
        )

    def _appended(self, leader_epoch: int, first_offset: int) -> None:
        """After a leader's append: the producer state's end, the epoch cache,
        the high watermark (alone in the ISR), a flush when flush.messages is due."""
        self.producer_state.end_offset = self.log_end_offset
        if leader_epoch >= 0:
            self.assign_epoch_start_offset(leader_epoch, first_offset)
        if self.high_watermark_follows_leo:
            self._high_watermark = self.log_end_offset
            if self.producer_state.unreplicated:
                self.producer_state.on_high_watermark_updated(self._high_watermark)
        if self.log_end_offset - self.recovery_point >= self.config.flush_messages:
            self._work.request_flush(self)

    def append_marker(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                      leader_epoch: int) -> AppendResult:
        """Write a transaction marker (Kafka's appendAsLeader with origin
        COORDINATOR): a control batch with one COMMIT or ABORT record, stamped
        now. It closes the producer's open transaction, if any; an aborted one
        goes into the active segment's .txnindex with the last stable offset
        as of the marker. Raises KafkaError(INVALID_PRODUCER_EPOCH,
        TRANSACTION_COORDINATOR_FENCED, KAFKA_STORAGE_ERROR)."""
        self._check_open()
        offset = self.log_end_offset
        now = self._clock()
        control_type = ControlType.COMMIT if commit else ControlType.ABORT
        producer_append = self.producer_state.begin_append()
        completed = producer_append.add_marker(producer_id, producer_epoch, control_type, coordinator_epoch,
                                               offset, now)
        records = build_control_batch(control_type, producer_id=producer_id, producer_epoch=producer_epoch,
                                      coordinator_epoch=coordinator_epoch, timestamp_ms=now, base_offset=offset,
                                      partition_leader_epoch=leader_epoch)
        try:
            segment = self.segments[-1]
            if segment.should_roll(self.config, now, len(records), now, offset):
                segment = self._roll()
            segment.append(records, offset, now, offset)
            self.log_end_offset = offset + 1
            producer_append.commit()
            if completed is not None:
                self._complete_txn(segment, completed)
        except OSError as e:
            raise self._io_failed("appending a transaction marker to", e) from e
        self._appended(leader_epoch, offset)
        return AppendResult(offset, offset, -1, self.log_start_offset)

    def _complete_txn(self, segment: LogSegment, completed: CompletedTxn) -> None:
        """A marker in ``segment`` decided ``completed`` (Kafka's
        updateTxnIndex + completeTxn). Raises OSError."""
        state = self.producer_state
        if completed.is_aborted:
            segment.txn_index.append(AbortedTxn(completed.producer_id, completed.first_offset,
                                                completed.last_offset, state.last_stable_offset(completed)))
        state.complete_txn(completed)

    def _roll(self, base_offset: int | None = None) -> LogSegment:
        """Start a new active segment at ``base_offset`` (default: the log end;
        a follower's next batch may start later, after compaction on the
        leader); the old one's indexes and a producer state snapshot are made
        durable by a background flush."""
        base_offset = self.log_end_offset if base_offset is None else max(base_offset, self.log_end_offset)
        old = self.segments[-1]
        old.on_become_inactive()
        segment = LogSegment(self.dir, base_offset, self.config, self._clock(), create=True)
        self.segments.append(segment)
        self._bases.append(segment.base_offset)
        self.producer_state.end_offset = base_offset  # no batches in between
        self._write_snapshot(sync=False)
        self._dir_dirty = True
        self._work.request_flush(self)
        return segment

    def _write_snapshot(self, sync: bool) -> None:
        path = snapshot_path(self.dir, self.producer_state.end_offset)
        write_snapshot_file(path, self.producer_state.snapshot_bytes(), sync)
        if not sync:
            self._unsynced_files.append(path)

    # -- replication ---------------------------------------------------------
    def append_as_follower(self, records) -> AppendResult | None:
        """Append a leader's batches (a Fetch response's records) as they are:
        offsets, leader epochs and bytes unchanged (Kafka's appendAsFollower).

        Whole batches only (a partial batch at the end is left for the next
        fetch); each must be magic v2 with a good CRC, the offsets must
        increase and the first batch must not start below the log end. The
        leader epoch cache learns each epoch's first batch and the producer
        state takes the batches without idempotence checks (the leader made
        them). Segments roll batch by batch as on the leader, so the segment
        files come out the same. Returns None when there was no whole batch.
        Raises KafkaError(CORRUPT_MESSAGE), OffsetsOutOfOrderError,
        UnexpectedAppendOffsetError.
        """
        self._check_open()
        batches = list(iter_batches(records))
        if not batches:
            return None
        last = -1
        for batch in batches:
            if batch.size > self.config.segment_bytes:
                raise KafkaError(
                    ErrorCode.RECORD_LIST_TOO_LARGE,
                    f"Message batch size is {batch.size} bytes in append to partition {self.topic}-{self.partition} "
                    f"which exceeds the maximum configured segment size of {self.config.segment_bytes}.")
            if batch.magic != CURRENT_MAGIC:
                raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"Unsupported message format v{batch.magic} "
                                                            f"in append to {self.topic}-{self.partition}")
            if not batch.crc_ok():
                raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"Record is corrupt (stored crc = {batch.crc}) "
                                                            f"in topic partition {self.topic}-{self.partition}.")
            if batch.last_offset <= last:
                raise OffsetsOutOfOrderError(
                    f"Out of order offsets found in append to {self.topic}-{self.partition}: "
                    f"{[b.base_offset for b in batches]}")
            last = batch.last_offset
        first = batches[0]
        if first.base_offset < self.log_end_offset:
            raise UnexpectedAppendOffsetError(
                f"Unexpected offset in append to {self.topic}-{self.partition}. First offset {first.base_offset} "
                f"is less than the next offset {self.log_end_offset}. Log start offset = {self.log_start_offset}",
                first.base_offset, last)
        view = memoryview(records)
        try:
            for batch in batches:
                self._append_follower_batch(view, batch)
        except OSError as e:
            raise self._io_failed("appending records to", e) from e
        return AppendResult(first.base_offset, last, -1, self.log_start_offset)

    def _append_follower_batch(self, view: memoryview, batch: BatchView) -> None:
        """One batch, one write: rolls and index entries then fall where the
        leader's did for its appends of one batch each."""
        segment = self.segments[-1]
        if segment.should_roll(self.config, self._clock(), batch.size, batch.max_timestamp, batch.last_offset):
            segment = self._roll(batch.base_offset)
        segment.append(view[batch.pos:batch.end], batch.last_offset, batch.max_timestamp, batch.last_offset)
        self.log_end_offset = batch.next_offset
        if batch.producer_id >= 0:
            marker = marker_of(batch) if batch.is_control else None
            completed = self.producer_state.replay(batch, batch.base_offset, marker)
            if completed is not None:
                self._complete_txn(segment, completed)
        if batch.partition_leader_epoch >= 0:
            self.assign_epoch_start_offset(batch.partition_leader_epoch, batch.base_offset)
        self.producer_state.end_offset = self.log_end_offset
        if self.high_watermark_follows_leo:
            self._high_watermark = self.log_end_offset
            if self.producer_state.unreplicated:
                self.producer_state.on_high_watermark_updated(self._high_watermark)
        if self.log_end_offset - self.recovery_point >= self.config.flush_messages:
            self._work.request_flush(self)

    @property
    def latest_epoch(self) -> int | None:
        return self.leader_epochs.latest_epoch

    def epoch_for_offset(self, offset: int) -> int | None:
        return self.leader_epochs.epoch_for_offset(offset)

    def assign_epoch_start_offset(self, epoch: int, start_offset: int) -> None:
        """Record that leader epoch ``epoch`` starts at ``start_offset``: done by
        appends, and by a new leader at its log end before it appends
        anything (Kafka's maybeAssignEpochStartOffset), so that followers
        holding a newer epoch's data than it has can find where to truncate."""
        if self.leader_epochs.assign(epoch, start_offset):
            self._save_leader_epochs()

    def end_offset_for_epoch(self, epoch: int) -> EpochEndOffset | None:
        """(the largest epoch <= ``epoch``, its end offset), as Kafka's
        endOffsetForEpoch answers OffsetForLeaderEpoch; None when undefined."""
        self._check_open()
        found = self.leader_epochs.end_offset_for(epoch, self.log_end_offset)
        return None if found.end_offset == UNDEFINED_EPOCH_OFFSET else found

    async def truncate_to(self, target: int) -> bool:
        """Remove everything from offset ``target`` on (Kafka's truncateTo): the
        batch holding it and all after, across segments, indexes, producer
        state (rebuilt from the latest snapshot below) and leader epochs.
        Cutting inside a batch removes the whole batch: the log then ends at
        its base offset. Durable on return (the cut file, the epoch file and
        the directory are fsynced). Returns whether anything was removed.

        The caller must not append meanwhile (a replica fetcher truncates
        and appends in turn), and must lower the log dir's recovery point
        checkpoint afterwards (LogManager.truncate_to does both)."""
        if target < 0:
            raise ValueError(f"cannot truncate {self.topic}-{self.partition} to a negative offset ({target})")
        async with self._io_lock:
            self._check_open()
            if target >= self.log_end_offset:
                # A leader may have recorded an epoch at its log end and been
                # replaced before appending anything: that entry goes.
                if self.leader_epochs.truncate_from_end(self.log_end_offset):
                    self._save_leader_epochs()
                return False
            if target < self.segments[0].base_offset:
                await self._truncate_fully(target, target)
                return True
            log.info("%s: truncating to offset %d", self, target)
            keep = bisect_right(self._bases, target)
            doomed = self.segments[keep:]
            del self.segments[keep:], self._bases[keep:]
            try:
                self._retire(doomed)
                segment = self.segments[-1]
                cut = segment.truncate_to(target, self._clock())
                end = target if cut is None else min(target, cut)
                self.log_end_offset = end
                self.recovery_point = min(self.recovery_point, end)
                self.log_start_offset = min(self.log_start_offset, end)
                self._high_watermark = min(self._high_watermark, end)
                if self.leader_epochs.truncate_from_end(end):
                    self._save_leader_epochs()
                self.producer_state = await trio.to_thread.run_sync(self._rebuild_producer_state, end)
                self.producer_state.on_high_watermark_updated(self._high_watermark)
                await trio.to_thread.run_sync(self._sync_blocking, [segment])
            except OSError as e:
                raise self._io_failed("truncating", e) from e
            return True

    async def truncate_fully_and_start_at(self, new_offset: int, log_start_offset: int | None = None) -> None:
        """Delete all data and start the log empty at ``new_offset`` (Kafka's
        truncateFullyAndStartAt: a follower far behind the leader's log
        start, or whose first fetched batch starts below its empty log's
        end). Durable on return; the caller lowers the log dir's
        checkpoints afterwards (LogManager.truncate_fully_and_start_at)."""
        async with self._io_lock:
            self._check_open()
            await self._truncate_fully(new_offset, new_offset if log_start_offset is None else log_start_offset)

    async def _truncate_fully(self, new_offset: int, log_start_offset: int) -> None:
        log.info("%s: truncating fully, starting at offset %d", self, new_offset)
        doomed = self.segments
        try:
            # Renamed first: the new segment may have an old one's name.
            self._retire(doomed)
            segment = LogSegment(self.dir, new_offset, self.config, self._clock(), create=True)
            self.segments, self._bases = [segment], [new_offset]
            self.log_end_offset = self.recovery_point = self._high_watermark = new_offset
            self.log_start_offset = log_start_offset
            self.producer_state.clear(new_offset)
            if self.leader_epochs.clear():
                self._save_leader_epochs()
            await trio.to_thread.run_sync(self._delete_snapshots_and_sync, segment)
        except OSError as e:
            raise self._io_failed("truncating", e) from e

    def _retire(self, segments: list[LogSegment]) -> None:
        """Rename the segments' files (and the producer snapshots at their base
        offsets) to *.deleted now and delete them after
        file.delete.delay.ms, when readers still sending them are done."""
        renamed = self._rename_to_deleted(segments)
        self._dir_dirty = True
        self._delete_later(segments, renamed)

    def _rename_to_deleted(self, segments: list[LogSegment], keep_snapshot_at: int | None = None) -> list[Path]:
        """The renaming half of _retire (blocking): the paths renamed."""
        renamed: list[Path] = []
        for segment in segments:
            renamed += segment.rename_to_deleted()
            snapshot = snapshot_path(self.dir, segment.base_offset)
            if segment.base_offset != keep_snapshot_at and snapshot.exists():
                target = snapshot.with_name(snapshot.name + DELETED_SUFFIX)
                os.rename(snapshot, target)
                renamed.append(target)
        return renamed

    def _delete_later(self, segments: list[LogSegment], renamed: list[Path]) -> None:
        self._work.delete_later(
            self.config.file_delete_delay_ms, lambda: _delete_files(segments, renamed), self.dir.parent
        )

    async def replace_segments(self, cleaned: LogSegment, old: list[LogSegment], sizes: list[int]) -> bool:
        """Swap the log cleaner's ``cleaned`` segment (flushed, its files
        named *.cleaned) in for the consecutive segments ``old`` (Kafka's
        LocalLog.replaceSegments): its files become *.swap, the log holds
        it instead of them, their files become *.deleted (deleted after
        file.delete.delay.ms; the producer snapshots at the merged segments'
        base offsets too), then the .swap suffix goes, the directory fsynced
        after each renaming step. A crash at any point leaves files from
        which the loader completes the swap or drops it. The renaming is done
        in worker threads: a rename can wait for the filesystem's journal,
        which the cleaner's fsyncs keep busy, and the event loop must not
        wait with it. Returns False, and
        changes nothing, when the log is no longer what was cleaned:
        closed, offline, or ``old`` not all still in it with ``sizes``
        (truncated, deleted by retention) or holding the active segment."""
        async with self._io_lock:
            if self.closed or self.offline:
                return False
            try:
                first = next(i for i, s in enumerate(self.segments) if s is old[0])
            except StopIteration:
                return False
            current = self.segments[first:first + len(old)]
            if (len(current) != len(old) or any(a is not b for a, b in zip(current, old))
                    or first + len(old) >= len(self.segments)
                    or [s.size for s in old] != sizes or cleaned.base_offset != old[0].base_offset):
                return False
            try:
                await trio.to_thread.run_sync(self._swap_in_blocking, cleaned)
                self.segments[first:first + len(old)] = [cleaned]
                self._bases[first:first + len(old)] = [cleaned.base_offset]
                renamed = await trio.to_thread.run_sync(self._swap_done_blocking, cleaned, old)
            except OSError as e:
                raise self._io_failed("replacing segments of", e) from e
            self._delete_later(old, renamed)
            return True

    def _swap_in_blocking(self, cleaned: LogSegment) -> None:
        cleaned.change_file_suffixes(CLEANED_SUFFIX, SWAP_SUFFIX)
        _fsync_path(self.dir)

    def _swap_done_blocking(self, cleaned: LogSegment, old: list[LogSegment]) -> list[Path]:
        """The old segments' files to *.deleted, the .swap suffix gone, the
        directory fsynced: the paths to delete later."""
        renamed = self._rename_to_deleted(old, keep_snapshot_at=cleaned.base_offset)
        cleaned.change_file_suffixes(SWAP_SUFFIX, "")
        _fsync_path(self.dir)
        return renamed

    def _rebuild_producer_state(self, end: int) -> ProducerStateManager:
        """The producer state as of ``end``: the latest snapshot at or below it
        and the batches after (snapshots above it are deleted). Blocking."""
        return load_producer_state(self.dir, os.listdir(self.dir), self.segments, end, end)

    def _delete_snapshots_and_sync(self, segment: LogSegment) -> None:
        for offset in snapshot_offsets(self.dir):
            snapshot_path(self.dir, offset).unlink(missing_ok=True)
        self._sync_blocking([segment])

    def _sync_blocking(self, segments: list[LogSegment]) -> None:
        """fsync ``segments``' data, the files waiting for a flush and the directory."""
        for segment in segments:
            os.fsync(segment.fd)
        files, self._unsynced_files = self._unsynced_files, []
        for path in files:
            _fsync_path(path)
        self._dir_dirty = False
        _fsync_path(self.dir)

    def _save_leader_epochs(self) -> None:
        """Rewrite ``leader-epoch-checkpoint``; fsynced by the next flush."""
        path = self.dir / LEADER_EPOCH_CHECKPOINT
        try:
            write_leader_epoch_checkpoint(path, self.leader_epochs.entries, sync=False)
        except OSError as e:
            raise self._io_failed("writing the leader epoch checkpoint of", e) from e
        if path not in self._unsynced_files:
            self._unsynced_files.append(path)
        self._dir_dirty = True

    # -- read --------------------------------------------------------------
    @_storage_errors("reading")
    def read(
        self, fetch_offset: int, max_bytes: int, min_one_batch: bool, max_offset: int | None = None,
        aborted: bool = False,
    ) -> ReadResult:
        """Whole batches from the one holding ``fetch_offset`` on, within one segment.

        At most ``max_bytes``, except that with ``min_one_batch`` the first batch
        is returned whole however big it is (KIP-74). Only batches entirely below
        ``max_offset`` (e.g. the high watermark for consumers, the last stable
        offset for READ_COMMITTED ones) are included. With ``aborted``, the
        result carries the aborted transactions a READ_COMMITTED consumer needs
        (Kafka's addAbortedTransactions: those overlapping the fetch offset up
        to the first index entry past the bytes Kafka would have read).
        Raises KafkaError(OFFSET_OUT_OF_RANGE) outside [log start, log end].
        """
        self._check_open()
        end_offset = self.log_end_offset
        if fetch_offset < self.log_start_offset or fetch_offset > end_offset:
            raise KafkaError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"Received request for offset {fetch_offset} for partition {self.topic}-{self.partition}, "
                f"but we only have log segments from offset {self.log_start_offset} up to {end_offset}.",
            )
        limit_offset = end_offset if max_offset is None else min(max_offset, end_offset)
        regions: list[tuple[int, int, int]] = []
        aborted_txns: list[AbortedTxn] | None = [] if aborted else None
        i = self._segment_at(fetch_offset)
        while fetch_offset < limit_offset and i < len(self.segments):
            segment = self.segments[i]
            found = segment.find_batch(fetch_offset)
            if found is None:  # past this segment's last batch
                i += 1
                continue
            start, first = found
            if first.last_offset >= limit_offset:
                break
            max_position = segment.size
            segment_end = self._bases[i + 1] if i + 1 < len(self._bases) else end_offset
            if limit_offset < segment_end:
                bound = segment.find_batch(limit_offset, start)
                if bound is not None:
                    max_position = bound[0]
            budget = max(max_bytes, first.size) if min_one_batch else max_bytes
            window = min(max_position, start + budget)
            end = segment.batch_boundary_before(window, start)
            if end > start:
                regions.append((segment.fd, start, end - start))
            if aborted_txns is not None:
                upper = segment.offset_index.upper_bound_offset(window)
                if upper is None:
                    upper = self._bases[i + 1] if i + 1 < len(self._bases) else end_offset
                self._collect_aborted(i, fetch_offset, upper, aborted_txns)
            break
        return ReadResult(regions, self._high_watermark, self.log_start_offset, end_offset, aborted_txns)

    def _collect_aborted(self, i: int, fetch_offset: int, upper_bound_offset: int, out: list[AbortedTxn]) -> None:
        """Kafka's collectAbortedTransactions: segment ``i`` on, until an entry's
        last stable offset reaches the upper bound."""
        for segment in self.segments[i:]:
            if segment.txn_index.collect(fetch_offset, upper_bound_offset, out):
                return

    @_storage_errors("reading the aborted transactions of")
    def collect_aborted_transactions(self, start_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping [start_offset, upper_bound_offset)
        (Kafka's UnifiedLog.collectAbortedTransactions)."""
        self._check_open()
        out: list[AbortedTxn] = []
        self._collect_aborted(self._segment_at(start_offset), start_offset, upper_bound_offset, out)
        return out

    # -- timestamps ----------------------------------------------------------
    @_storage_errors("searching by timestamp in")
    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """The first record with a timestamp >= ``timestamp`` (ListOffsets by time)."""
        self._check_open()
        for segment in self.segments[self._segment_at(self.log_start_offset):]:
            if segment.max_timestamp < timestamp:
                continue
            _, indexed_offset = segment.time_index.lookup(timestamp)
            position = segment.offset_index.lookup(max(indexed_offset, self.log_start_offset))[1]
            for pos, header in segment.headers(position):
                if header.max_timestamp >= timestamp and header.last_offset >= self.log_start_offset:
                    batch = BatchView(os.pread(segment.fd, header.size, pos), 0)
                    for record in batch.records():
                        if record.timestamp >= timestamp and record.offset >= self.log_start_offset:
                            return TimestampOffset(record.offset, record.timestamp, _leader_epoch(batch))
        return None

    @_storage_errors("searching by timestamp in")
    def max_timestamp_offset(self) -> TimestampOffset | None:
        """The record with the largest timestamp (ListOffsets MAX_TIMESTAMP); the
        first such record if several share it."""
        self._check_open()
        segment = max(self.segments, key=lambda s: s.max_timestamp)  # first of equals
        max_ts, shallow_offset = segment.max_timestamp_and_offset
        if max_ts < 0:
            return None
        for pos, header in segment.headers(segment.offset_index.lookup(shallow_offset)[1]):
            if header.max_timestamp == max_ts:
                batch = BatchView(os.pread(segment.fd, header.size, pos), 0)
                for record in batch.records():
                    if record.timestamp == max_ts:
                        return TimestampOffset(record.offset, max_ts, _leader_epoch(batch))
        return None

    # -- retention -----------------------------------------------------------
    def increment_log_start_offset(self, offset: int) -> None:
        """DeleteRecords: records before ``offset`` are gone for readers at once;
        the segments wholly below it go with the next retention pass (Kafka's
        maybeIncrementLogStartOffset). Never past the high watermark."""
        if self.offline:
            raise self.offline_error()
        if offset > self._high_watermark:
            raise KafkaError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"Cannot increment the log start offset to {offset} of partition {self.topic}-{self.partition} "
                f"since it is larger than the high watermark {self._high_watermark}",
            )
        if offset > self.log_start_offset:
            self._set_log_start_offset(offset)

    async def delete_old_segments(self) -> int:
        """Kafka's retention pass: segments wholly below the log start offset,
        then (cleanup.policy=delete) over retention.bytes, then past retention.ms.
        The active segment counts too; if everything goes, a new empty segment
        is rolled first. Returns the number of segments deleted. Raises
        KafkaError(KAFKA_STORAGE_ERROR) on an I/O error."""
        if self.closed or self.offline:
            return 0
        async with self._io_lock:
            if self.closed or self.offline:
                return 0
            try:
                deleted = self._delete_segments(
                    lambda seg, nxt: nxt is not None and nxt.base_offset <= self.log_start_offset
                )
                if self.config.delete_enabled:
                    deleted += self._delete_over_size()
                    deleted += self._delete_expired()
            except OSError as e:
                raise self._io_failed("deleting old segments of", e) from e
            return deleted

    def _delete_over_size(self) -> int:
        retention = self.config.retention_bytes
        size = self.size_in_bytes
        if retention < 0 or size < retention:
            return 0
        excess = size - retention

        def over(segment: LogSegment, _next: LogSegment | None) -> bool:
            nonlocal excess
            if excess - segment.size >= 0:
                excess -= segment.size
                return True
            return False

        return self._delete_segments(over)

    def _delete_expired(self) -> int:
        retention = self.config.retention_ms
        if retention < 0:
            return 0
        now = self._clock()
        return self._delete_segments(lambda seg, _next: now - seg.largest_timestamp() > retention)

    def _delete_segments(self, predicate: Callable[[LogSegment, LogSegment | None], bool]) -> int:
        deletable = []
        for i, segment in enumerate(self.segments):
            nxt = self.segments[i + 1] if i + 1 < len(self.segments) else None
            upper = nxt.base_offset if nxt is not None else self.log_end_offset
            # Never past the high watermark, so the log start can't overtake it.
            if self._high_watermark < upper or not predicate(segment, nxt):
                break
            if nxt is None and segment.size == 0:
                break
            deletable.append(segment)
        if not deletable:
            return 0
        if len(deletable) == len(self.segments):
            self._roll()
        del self.segments[: len(deletable)]
        del self._bases[: len(deletable)]
        self._retire(deletable)
        self._set_log_start_offset(max(self.log_start_offset, self.segments[0].base_offset))
        log.info("%s: deleted %d old segment(s), log start now %d", self, len(deletable), self.log_start_offset)
        return len(deletable)

    def _set_log_start_offset(self, offset: int) -> None:
        self.log_start_offset = offset
        if self.leader_epochs.truncate_from_start(offset):
            self._save_leader_epochs()

    # -- durability ----------------------------------------------------------
    @property
    def flush_due(self) -> bool:
        """flush.ms has passed since the last flush and something is unflushed."""
        return (
            self.recovery_point < self.log_end_offset
            and not self.offline
            and self._clock() - self.last_flush_ms >= self.config.flush_ms
        )

    async def flush(self, offset: int | None = None) -> None:
        """Make everything below ``offset`` (default: the log end) durable.

        Group commit: concurrent callers share one fsync; the fsync runs in a
        worker thread. Advances the recovery point. Raises
        KafkaError(KAFKA_STORAGE_ERROR) once the log's dir is offline.
        """
        target = self.log_end_offset if offset is None else min(offset, self.log_end_offset)
        if self.recovery_point >= target:
            return
        async with self._io_lock:
            if self.offline:
                raise self.offline_error()
            if self.closed or self.recovery_point >= target:
                return
            end = self.log_end_offset
            segments = self.segments[self._segment_at(self.recovery_point):]
            files, self._unsynced_files = self._unsynced_files, []
            sync_dir, self._dir_dirty = self._dir_dirty, False
            try:
                await trio.to_thread.run_sync(self._flush_blocking, segments, files, sync_dir)
            except OSError as e:
                # After a failed fsync the page cache can't be trusted: the dir
                # goes offline and the recovery point stays where it was.
                raise self._io_failed("flushing", e) from e
            except BaseException:
                self._unsynced_files[:0] = files
                self._dir_dirty |= sync_dir
                raise
            self.recovery_point = max(self.recovery_point, end)
            self.last_flush_ms = self._clock()

    def _flush_blocking(self, segments: list[LogSegment], files: list[Path], sync_dir: bool) -> None:
        active = segments[-1]
        for segment in segments:
            # The active segment's indexes change with every append; recovery
            # rebuilds them if we crash, and close() saves them.
            segment.flush(save_indexes=segment is not active)
        for path in files:
            _fsync_path(path)
        if sync_dir:
            _fsync_path(self.dir)

    async def close(self) -> None:
        """Flush everything, save the indexes and a producer state snapshot at the
        log end, and close the files. The log can't be used afterwards. An
        offline log's files are only closed: its dir is left to recovery."""
        if self.closed:
            return
        async with self._io_lock:
            self.closed = True
            if self.offline:
                await trio.to_thread.run_sync(self._close_files)
                return
            try:
                await trio.to_thread.run_sync(self._close_blocking)
            except OSError as e:
                self._io_failed("closing", e)
                await trio.to_thread.run_sync(self._close_files)
                return
        if self._owns_work:
            deletes = self._work.drain()
            await trio.to_thread.run_sync(lambda: [delete() for delete, _ in deletes])

    def _close_files(self) -> None:
        for segment in self.segments:
            segment.close()

    def _close_blocking(self) -> None:
        self.segments[-1].on_become_inactive()
        unflushed = self.recovery_point < self.log_end_offset
        first_unflushed = self._segment_at(self.recovery_point)
        for i, segment in enumerate(self.segments):
            if (unflushed and i >= first_unflushed) or segment.has_unsaved_indexes:
                segment.flush(save_indexes=True)
        if unflushed or not snapshot_path(self.dir, self.log_end_offset).exists():
            self._write_snapshot(sync=True)
            self._dir_dirty = True
        for path in self._unsynced_files:
            _fsync_path(path)
        if self._dir_dirty:
            _fsync_path(self.dir)
        self._close_files()
        self.recovery_point = self.log_end_offset

    async def delete(self, renamed: Path) -> None:
        """Delete the whole log (topic deletion, Kafka's way): stop it, rename its
        directory to ``renamed`` at once and remove it after file.delete.delay.ms.
        An offline log's directory stays: the next start-up finds it belongs
        to no topic and deletes it then."""
        self.closed = True
        async with self._io_lock:
            if self.offline:
                await trio.to_thread.run_sync(self._close_files)
                return
            try:
                os.rename(self.dir, renamed)
            except OSError as e:
                self._io_failed("deleting", e)
                await trio.to_thread.run_sync(self._close_files)
                return
            self.dir = renamed

        def remove() -> None:
            self._close_files()
            shutil.rmtree(renamed, ignore_errors=True)

        if self._owns_work:
            await trio.to_thread.run_sync(remove)
        else:
            self._work.delete_later(self.config.file_delete_delay_ms, remove, renamed.parent)


def _leader_epoch(batch: BatchView) -> int:
    epoch = batch.partition_leader_epoch
    return epoch if epoch >= 0 else -1


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _delete_files(segments: list[LogSegment], paths: list[Path]) -> None:
    for segment in segments:
        segment.close()
    for path in paths:
        path.unlink(missing_ok=True)
