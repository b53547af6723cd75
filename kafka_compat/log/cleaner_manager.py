"""The log cleaner's threads and bookkeeping (Kafka's LogCleaner and
LogCleanerManager).

log.cleaner.threads tasks each loop: choose the compacted log with the
highest dirty ratio over its min.cleanable.dirty.ratio (or one that
max.compaction.lag.ms says must be compacted now), clean it (cleaner.py, in
a worker thread; the event loop only prepares the work and swaps each
cleaned segment in), record how far it got in ``cleaner-offset-checkpoint``
(Kafka's format, one per log dir), and sleep log.cleaner.backoff.ms when no
log needs cleaning. A log whose cleaning fails unexpectedly becomes
uncleanable until it leaves the broker, as in Kafka.

The cleanable range of a log (Kafka's cleanableOffsets) starts at its
checkpointed first dirty offset and stops before the last stable offset, the
active segment and the first segment whose largest timestamp is within
min.compaction.lag.ms.
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from kafka_compat.protocol.errors import ErrorCode, KafkaError

from .checkpoint import read_checkpoint, write_checkpoint
from .cleaner import (
    CleanedTransactionMetadata,
    Cleaner,
    CleanerStats,
    CleaningAborted,
    LogToClean,
    SourceSegment,
    Throttler,
    delete_segment_files,
)
from .cleaner_worker import ProcessRunner
from .offset_map import SkimpyOffsetMap
from .segment import CLEANED_SUFFIX, LogSegment

if TYPE_CHECKING:
    from .partition_log import PartitionLog

log = logging.getLogger(__name__)

CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
_DOUBLE_MAX = 1.7976931348623157e308


@dataclass(frozen=True)
class CleanerConfig:
    """The log.cleaner.* broker configs (Kafka's CleanerConfig)."""

    threads: int = 1
    dedupe_buffer_size: int = 128 * 1024 * 1024
    dedupe_buffer_load_factor: float = 0.9
    io_buffer_size: int = 512 * 1024
    max_message_size: int = 1048588
    io_max_bytes_per_second: float = _DOUBLE_MAX
    backoff_ms: int = 15000
    enable: bool = True

    @classmethod
    def from_broker(cls, config: Any) -> CleanerConfig:
        return cls(
            threads=config.log_cleaner_threads,
            dedupe_buffer_size=config.log_cleaner_dedupe_buffer_size,
            dedupe_buffer_load_factor=config.log_cleaner_io_buffer_load_factor,
            io_buffer_size=config.log_cleaner_io_buffer_size,
            max_message_size=config.message_max_bytes,
            io_max_bytes_per_second=config.log_cleaner_io_max_bytes_per_second,
            backoff_ms=config.log_cleaner_backoff_ms,
            enable=config.log_cleaner_enable,
        )


_IN_PROGRESS = "in progress"
_ABORTED = "aborted"

DirFailed = Callable[[Path, str, OSError], None]


class LogCleaner:
    """Cleans the compacted logs among ``logs`` (the LogManager's live dict,
    (topic, partition) -> PartitionLog) kept in ``log_dirs``."""

    def __init__(self, config: CleanerConfig, log_dirs: list[Path], logs: Mapping[tuple[str, int], PartitionLog],
                 clock: Callable[[], int], dir_failed: DirFailed | None = None, worker_processes: bool = True):
        self.config = config
        self.worker_processes = worker_processes
        self.log_dirs = list(log_dirs)
        self.logs = logs
        self._clock = clock
        self._dir_failed = dir_failed
        self._stop = threading.Event()
        self.throttler = Throttler(config.io_max_bytes_per_second, self._stop)
        # log dir -> (topic, partition) -> first dirty offset; read at start, then kept here and written through.
        self.checkpoints: dict[Path, dict[tuple[str, int], int]] = {d: {} for d in self.log_dirs}
        self._checkpoint_lock = trio.Lock()
        self.in_progress: dict[tuple[str, int], str] = {}
        self.uncleanable: dict[Path, set[tuple[str, int]]] = {}
        self.last_stats: CleanerStats | None = None
        # The segments each prepared cleaning reads (those the swap must find unchanged).
        self._live: dict[tuple[str, int], list[LogSegment]] = {}

    # -- start and stop ------------------------------------------------------
    async def run(self) -> None:
        """Load the checkpoints, then run the cleaner tasks until cancelled."""
        loaded = await trio.to_thread.run_sync(
            lambda: {d: read_checkpoint(d / CLEANER_OFFSET_CHECKPOINT) for d in self.log_dirs})
        for directory, offsets in loaded.items():
            self.checkpoints[directory].update(offsets)
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self.config.threads):
                    nursery.start_soon(self._cleaner_loop)
        finally:
            self._stop.set()

    def new_runner(self) -> CleanerRunner:
        """What one cleaner task cleans with: a worker process (the broker's
        way), or a worker thread of this process."""
        config = self.config
        threads = max(config.threads, 1)
        memory = min(config.dedupe_buffer_size // threads, 2**31 - 1)
        io_buffer_size = config.io_buffer_size // threads // 2
        if self.worker_processes:
            return ProcessRunner(memory, io_buffer_size, config.max_message_size,
                                 config.dedupe_buffer_load_factor, config.io_max_bytes_per_second / threads)
        cleaner = Cleaner(SkimpyOffsetMap(memory), io_buffer_size, config.max_message_size,
                          config.dedupe_buffer_load_factor, self.throttler, self._check_stop)
        return ThreadRunner(cleaner, self._stop)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise CleaningAborted("the cleaner is stopping")

    async def _cleaner_loop(self) -> None:
        runner = self.new_runner()
        try:
            while True:
                if not await self.clean_filthiest(runner):
                    await trio.sleep(self.config.backoff_ms / 1000)
                self._maintain_uncleanable()
        finally:
            runner.close()

    # -- choosing ------------------------------------------------------------
    async def clean_filthiest(self, runner: CleanerRunner) -> bool:
        """Clean the dirtiest log that needs it; whether there was one."""
        ltc = self.grab_filthiest_log()
        if ltc is None:
            return False
        await self.clean_log(runner, ltc)
        return True

    def grab_filthiest_log(self) -> LogToClean | None:
        """Kafka's grabFilthiestCompactedLog: the compacted log with the
        highest cleanable ratio above its min.cleanable.dirty.ratio (or
        with bytes that max.compaction.lag.ms says must go now), marked in
        progress."""
        now = self._clock()
        best: LogToClean | None = None
        for key, partition_log in list(self.logs.items()):
            if ("compact" not in partition_log.config.cleanup_policy or key in self.in_progress
                    or partition_log.closed or partition_log.offline
                    or key in self.uncleanable.get(partition_log.dir.parent, ())):
                continue
            try:
                ltc = self._log_to_clean(key, partition_log, now, prepare=False)
            except (KafkaError, OSError, ValueError) as e:
                log.warning("Failed to calculate log cleaning stats for partition %s-%d: %s; marking it uncleanable",
                            *key, e)
                self.uncleanable.setdefault(partition_log.dir.parent, set()).add(key)
                continue
            if ltc.total_bytes <= 0:
                continue
            ratio = float(partition_log.config.get("min.cleanable.dirty.ratio"))
            if not ((ltc.need_compaction_now and ltc.cleanable_bytes > 0) or ltc.cleanable_ratio > ratio):
                continue
            if best is None or ltc.cleanable_ratio > best.cleanable_ratio:
                best = ltc
        if best is None:
            return None
        key = (best.topic, best.partition)
        partition_log = self.logs[key]
        try:
            best = self._log_to_clean(key, partition_log, now, prepare=True)
        except (KafkaError, OSError) as e:
            log.warning("cannot prepare the cleaning of %s: %s", partition_log, e)
            return None
        self.in_progress[key] = _IN_PROGRESS
        return best

    def _log_to_clean(self, key: tuple[str, int], partition_log: PartitionLog, now: int, prepare: bool) -> LogToClean:
        """The cleanable range and its sizes; with ``prepare``, also what the
        worker thread needs (segments, aborted transactions, producers)."""
        directory = partition_log.dir.parent
        checkpoint = self.checkpoints.setdefault(directory, {})
        first_dirty, force_update = cleanable_first_dirty(partition_log, checkpoint.get(key))
        if force_update:
            checkpoint[key] = first_dirty
        first_uncleanable = first_uncleanable_offset(partition_log, first_dirty, now)
        segments = partition_log.segments
        config = partition_log.config
        delay = max_compaction_delay(partition_log, first_dirty, now)
        uncleanable_segment = _first_uncleanable_segment(partition_log, first_uncleanable)
        first_uncleanable = uncleanable_segment.base_offset
        clean_bytes = sum(s.size for s in log_segments(partition_log, -1, first_dirty))
        cleanable_bytes = sum(s.size for s in log_segments(partition_log, min(first_dirty, first_uncleanable),
                                                           first_uncleanable))
        ltc = LogToClean(key[0], key[1], partition_log.dir, config, first_dirty, first_uncleanable, [], 0, [], {},
                         clean_bytes, cleanable_bytes, delay > 0)
        if not prepare:
            return ltc
        live = self._live[key] = []
        for i, segment in enumerate(segments):
            if segment.base_offset >= first_uncleanable:
                break
            next_base = segments[i + 1].base_offset
            ltc.segments.append(SourceSegment(
                segment.log_path, segment.base_offset, segment.size, next_base,
                segment.offset_index.size_in_bytes(), segment.time_index.size_in_bytes(),
                partition_log.collect_aborted_transactions(segment.base_offset, next_base)))
            live.append(segment)
        dirty = log_segments(partition_log, first_dirty, first_uncleanable)
        if dirty:
            ltc.dirty_start_position = dirty[0].offset_index.lookup(first_dirty)[1]
        ltc.dirty_aborted = partition_log.collect_aborted_transactions(first_dirty, first_uncleanable)
        ltc.active_producers = {
            pid: (entry.batches[-1].last_offset if entry.batches else None, entry.epoch)
            for pid, entry in partition_log.producer_state.producers.items()
        }
        return ltc

    # -- cleaning ------------------------------------------------------------
    async def clean_log(self, runner: CleanerRunner, ltc: LogToClean) -> None:
        """Clean ``ltc`` (marked in progress): the offset map, then each group
        of segments into a cleaned segment swapped in at once (Kafka's
        cleanLog/doClean); the checkpoint moves to the map's end."""
        key = (ltc.topic, ltc.partition)
        partition_log = self.logs.get(key)
        live = self._live.pop(key, [])
        end_offset = None
        try:
            now = self._clock()
            started = time.monotonic()
            end_offset, utilization = await runner.build_offset_map(ltc)
            config = ltc.config
            indexes = [i for i, s in enumerate(ltc.segments) if s.base_offset < end_offset]
            groups = Cleaner.group_segments_by_size([ltc.segments[i] for i in indexes], config.segment_bytes,
                                                    config.segment_index_bytes, ltc.first_uncleanable_offset)
            stats = None
            position = 0
            for group in groups:
                group_indexes = indexes[position:position + len(group)]
                position += len(group)
                stats = await runner.clean_group(group_indexes, now, ltc.first_uncleanable_offset)
                cleaned = LogSegment(ltc.directory, group[0].base_offset, config, now, create=False,
                                     suffix=CLEANED_SUFFIX)
                old = [live[i] for i in group_indexes]
                swapped = partition_log is not None and await partition_log.replace_segments(
                    cleaned, old, [s.size for s in group])
                if not swapped:
                    await trio.to_thread.run_sync(delete_segment_files, cleaned)
                    raise CleaningAborted()
            if stats is not None:
                stats.buffer_utilization = utilization
                stats.start, stats.end = started, time.monotonic()
                self.last_stats = stats
                _log_stats(ltc, end_offset, stats)
        except CleaningAborted:
            end_offset = None
        except KafkaError as e:
            end_offset = None
            if e.code != ErrorCode.KAFKA_STORAGE_ERROR:  # (else the log's dir went offline)
                self._uncleanable(ltc, live, e)
        except OSError as e:
            end_offset = None
            if partition_log is not None and not partition_log.closed and not _changed(ltc, live, partition_log):
                if self._dir_failed is not None:
                    self._dir_failed(ltc.directory.parent, f"Failed to clean up log for {ltc.name} in dir "
                                     f"{ltc.directory.parent} due to IOException", e)
                else:
                    log.exception("cleaning %s failed", ltc.name)
        except ValueError as e:
            end_offset = None
            self._uncleanable(ltc, live, e)
        finally:
            await self._done_cleaning(key, ltc.directory.parent, end_offset)

    def _uncleanable(self, ltc: LogToClean, live: list[LogSegment], error: Exception) -> None:
        """A cleaning failed on the log's data: unless the log changed under
        it (then it was only an abort), the log is not cleaned again."""
        partition_log = self.logs.get((ltc.topic, ltc.partition))
        if partition_log is None or partition_log.closed or _changed(ltc, live, partition_log):
            return
        log.warning("Unexpected exception thrown when cleaning log %s. Marking it as uncleanable: %s",
                    ltc.name, error)
        self.uncleanable.setdefault(ltc.directory.parent, set()).add((ltc.topic, ltc.partition))

    async def _done_cleaning(self, key: tuple[str, int], log_dir: Path, end_offset: int | None) -> None:
        state = self.in_progress.pop(key, None)
        if state == _IN_PROGRESS and end_offset is not None:
            self.checkpoints.setdefault(log_dir, {})[key] = end_offset
            await self.write_checkpoint(log_dir)

    async def write_checkpoint(self, log_dir: Path) -> None:
        """Write the dir's cleaner-offset-checkpoint, of its live logs only."""
        async with self._checkpoint_lock:
            offsets = {key: offset for key, offset in self.checkpoints.get(log_dir, {}).items()
                       if key in self.logs and self.logs[key].dir.parent == log_dir}
            self.checkpoints[log_dir] = dict(offsets)
            try:
                await trio.to_thread.run_sync(write_checkpoint, log_dir / CLEANER_OFFSET_CHECKPOINT, offsets)
            except OSError as e:
                if self._dir_failed is not None:
                    self._dir_failed(log_dir, f"Error while writing {CLEANER_OFFSET_CHECKPOINT} in dir {log_dir}", e)

    # -- the log's changes ---------------------------------------------------
    def abort_cleaning(self, key: tuple[str, int]) -> None:
        """A cleaning of ``key`` in progress stops at its next check and
        records nothing (truncation, deletion)."""
        if self.in_progress.get(key) == _IN_PROGRESS:
            self.in_progress[key] = _ABORTED

    async def maybe_truncate_checkpoint(self, log_dir: Path, key: tuple[str, int], offset: int) -> None:
        """After a truncation to ``offset``: a checkpoint past it comes back to it."""
        self.abort_cleaning(key)
        checkpoint = self.checkpoints.get(log_dir, {})
        if checkpoint.get(key, 0) > offset:
            checkpoint[key] = offset
            await self.write_checkpoint(log_dir)

    def _maintain_uncleanable(self) -> None:
        for directory in list(self.uncleanable):
            self.uncleanable[directory] = {key for key in self.uncleanable[directory] if key in self.logs}
            if not self.uncleanable[directory]:
                del self.uncleanable[directory]


class ThreadRunner:
    """Cleaning in a worker thread of this process (tests; the broker uses
    ProcessRunner). Cancelled, the thread is told to stop at its next
    check and left to end on its own."""

    def __init__(self, cleaner: Cleaner, stop: threading.Event):
        self.cleaner = cleaner
        self._stop = stop
        self._job: tuple[LogToClean, CleanedTransactionMetadata, CleanerStats] | None = None

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await trio.to_thread.run_sync(functools.partial(fn, *args), abandon_on_cancel=True)
        except trio.Cancelled:
            self._stop.set()
            raise

    async def build_offset_map(self, ltc: LogToClean) -> tuple[int, float]:
        self._job = (ltc, CleanedTransactionMetadata(), CleanerStats())
        end = await self._in_thread(self.cleaner.build_offset_map, ltc, self._job[2])
        return end, self.cleaner.offset_map.utilization

    async def clean_group(self, indexes: list[int], now_ms: int, upper_bound_offset: int) -> CleanerStats:
        ltc, txns, stats = self._job
        group = [ltc.segments[i] for i in indexes]
        cleaned = await self._in_thread(self.cleaner.clean_segments, ltc, group, txns, now_ms, upper_bound_offset,
                                        stats)
        cleaned.close()
        return stats

    def close(self) -> None:
        self.cleaner.offset_map.close()


CleanerRunner = ThreadRunner | ProcessRunner


def _changed(ltc: LogToClean, live: list[LogSegment], partition_log: PartitionLog) -> bool:
    """Whether the segments the cleaning read are no longer in the log as they were."""
    if partition_log.closed or partition_log.offline:
        return True
    current = {id(s): s for s in partition_log.segments}
    return any(id(s) not in current or s.size != source.size for s, source in zip(live, ltc.segments))


def _log_stats(ltc: LogToClean, end_offset: int, stats: CleanerStats) -> None:
    mb = 1024 * 1024
    log.info("cleaned log %s (dirty section = [%d, %d]): %.1f MB of log processed in %.2f s (%.1f MB/s), "
             "indexed %.1f MB, %d messages read, %d written, buffer utilization %.1f%%",
             ltc.name, ltc.first_dirty_offset, end_offset, stats.bytes_read / mb, stats.elapsed,
             stats.bytes_read / mb / stats.elapsed, stats.map_bytes_read / mb, stats.messages_read,
             stats.messages_written, 100 * stats.buffer_utilization)
    if stats.invalid_messages:
        log.warning("Found %d invalid messages during compaction of %s.", stats.invalid_messages, ltc.name)


# ---------------------------------------------------------------- Kafka's cleanable range


def log_segments(partition_log: PartitionLog, from_offset: int, to_offset: int) -> list[LogSegment]:
    """The segments holding offsets in [from_offset, to_offset) (Kafka's logSegments(from, to))."""
    if from_offset >= to_offset:
        return []
    segments = partition_log.segments
    bases = [s.base_offset for s in segments]
    floor = bisect_right(bases, from_offset) - 1
    start = max(floor, 0)
    out = []
    for segment in segments[start:]:
        if segment.base_offset >= to_offset:
            break
        out.append(segment)
    return out


def _non_active_from(partition_log: PartitionLog, offset: int) -> list[LogSegment]:
    """Kafka's nonActiveLogSegmentsFrom: the segments from the one holding
    ``offset`` on, but the active one."""
    segments = partition_log.segments
    bases = [s.base_offset for s in segments]
    start = max(bisect_right(bases, offset) - 1, 0)
    return segments[start:-1]


def cleanable_first_dirty(partition_log: PartitionLog, checkpointed: int | None) -> tuple[int, bool]:
    """(first dirty offset, whether the checkpoint must be rewritten): the
    checkpoint, unless it is below the log start or past the log end."""
    start = partition_log.log_start_offset
    offset = start if checkpointed is None else checkpointed
    if offset < start:
        if not partition_log.config.delete_enabled:
            log.warning("Resetting first dirty offset of %s to log start offset %d since the checkpointed offset "
                        "%d is invalid.", partition_log, start, offset)
        return start, True
    if offset > partition_log.log_end_offset:
        log.warning("The last checkpoint dirty offset for partition %s is %d, which is larger than the log end "
                    "offset %d. Resetting to the log start offset %d.", partition_log, offset,
                    partition_log.log_end_offset, start)
        return start, True
    return offset, False


def first_uncleanable_offset(partition_log: PartitionLog, first_dirty: int, now: int) -> int:
    """Not past the last stable offset, the active segment, nor the first
    segment whose largest timestamp is within min.compaction.lag.ms."""
    candidates = [partition_log.last_stable_offset, partition_log.segments[-1].base_offset]
    lag = max(int(partition_log.config.get("min.compaction.lag.ms")), 0)
    if lag > 0:
        for segment in _non_active_from(partition_log, first_dirty):
            if segment.largest_timestamp() > now - lag:
                candidates.append(segment.base_offset)
                break
    return max(first_dirty, min(candidates))


def _first_uncleanable_segment(partition_log: PartitionLog, uncleanable_offset: int) -> LogSegment:
    non_active = _non_active_from(partition_log, uncleanable_offset)
    return non_active[0] if non_active else partition_log.segments[-1]


def max_compaction_delay(partition_log: PartitionLog, first_dirty: int, now: int) -> int:
    """How long past max.compaction.lag.ms the oldest dirty batch is (0: not late)."""
    timestamps = [t for t in (s.first_batch_timestamp() for s in _non_active_from(partition_log, first_dirty))
                  if t > 0]
    earliest = min(timestamps, default=math.inf)
    clean_until = now - max(int(partition_log.config.get("max.compaction.lag.ms")), 0)
    return int(clean_until - earliest) if earliest < clean_until else 0
