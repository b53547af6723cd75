"""All partition logs of a broker across its log dirs (Kafka's LogManager):
start-up loading and recovery, creation and deletion, the background loops
(retention, flush scheduler, checkpoints, producer id expiration, the log
cleaner of compacted topics) and clean shutdown.

Per log dir, as Kafka keeps them: ``recovery-point-offset-checkpoint``,
``log-start-offset-checkpoint``, ``replication-offset-checkpoint`` (the high
watermarks) and, between a clean shutdown and the next start, the
``.kafka_cleanshutdown`` marker. Each partition directory holds a
``partition.metadata`` file with its topic's id: at start-up a directory whose
topic the metadata store doesn't have, or has under another id, is an old
deleted topic's and is deleted, never served.

Deleted logs' directories are renamed ``<topic>-<partition>.<uuid>-delete`` and
removed after file.delete.delay.ms in the background (at the next start-up if
the broker stops first).

A log dir with an I/O error goes offline (Kafka's LogDirFailureChannel):
``fail_dir`` marks every log in it offline (they answer KAFKA_STORAGE_ERROR),
nothing more is written there, no checkpoint nor clean-shutdown marker either,
so the next start-up recovers it from what is really on disk.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from kafka_compat.config import LONG_MAX

from kafka_compat.protocol.errors import ErrorCode, KafkaError

from .background import DiskWork
from .checkpoint import read_checkpoint, write_checkpoint
from .cleaner_manager import CleanerConfig, LogCleaner
from .config import LogConfig
from .partition_log import PartitionLog, wall_clock_ms
from .partition_metadata import CorruptPartitionMetadataError, read_partition_metadata, write_partition_metadata

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint"
DELETE_DIR_SUFFIX = "-delete"
_PARTITION_DIR = re.compile(r"(.+)-(\d+)")
# How many partitions close (flush) at once: fsyncs overlap on the device.
_CLOSE_CONCURRENCY = 8


class LogDirError(Exception):
    """A log dir can't be used at start-up: one line for the user."""


class LogManager:
    """Owns every PartitionLog of this broker.

    ``defaults`` are topic-level config defaults (Kafka topic config names,
    parsed values: topic_config.topic_defaults(broker)); per-topic overrides
    come with ``load``, ``create`` and ``update_config``. The interval arguments
    are Kafka's broker settings of the same names, in ms. ``on_dir_failure`` is
    called with a log dir that has just gone offline.

    ``high_watermarks_from_checkpoint`` (a cluster member): a log's high
    watermark no longer follows its log end; a loaded log starts at its
    checkpointed high watermark (its log start when it has none), as Kafka's
    Partition does, rather than at its log end: records past it may never
    have reached the ISR. A single broker leaves it False: there the high
    watermark is the log end.
    """

    def __init__(
        self,
        log_dirs: list[Path],
        defaults: Mapping[str, Any] | None = None,
        *,
        log_retention_check_interval_ms: int = 300_000,
        log_flush_scheduler_interval_ms: int = LONG_MAX,
        log_flush_offset_checkpoint_interval_ms: int = 60_000,
        log_flush_start_offset_checkpoint_interval_ms: int = 60_000,
        producer_id_expiration_ms: int = 86_400_000,
        producer_id_expiration_check_interval_ms: int = 600_000,
        replica_high_watermark_checkpoint_interval_ms: int = 5000,
        high_watermarks_from_checkpoint: bool = False,
        clock: Callable[[], int] = wall_clock_ms,
        on_dir_failure: Callable[[Path], None] | None = None,
        cleaner_config: CleanerConfig | None = None,
    ):
        if not log_dirs:
            raise ValueError("at least one log dir is needed")
        self.log_dirs = [Path(d) for d in log_dirs]
        self.defaults = dict(defaults or {})
        self.retention_check_interval_ms = log_retention_check_interval_ms
        self.flush_scheduler_interval_ms = log_flush_scheduler_interval_ms
        self.recovery_point_checkpoint_interval_ms = log_flush_offset_checkpoint_interval_ms
        self._checkpoint_lock = trio.Lock()
        self.log_start_checkpoint_interval_ms = log_flush_start_offset_checkpoint_interval_ms
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.producer_id_expiration_check_interval_ms = producer_id_expiration_check_interval_ms
        self.high_watermark_checkpoint_interval_ms = replica_high_watermark_checkpoint_interval_ms
        self.high_watermarks_from_checkpoint = high_watermarks_from_checkpoint
        self._clock = clock
        self._work = DiskWork(self.fail_dir)
        self._topic_configs: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, int], PartitionLog] = {}
        self._partitions_per_dir: Counter[Path] = Counter()  # where the next partition goes
        self.offline_dirs: set[Path] = set()
        self._on_dir_failure = on_dir_failure
        # Creating and deleting logs, one at a time (Kafka's logCreationOrDeletionLock).
        self._lifecycle = trio.Lock()
        # Logs of deleted topics whose directories are not renamed yet.
        self._doomed: dict[tuple[str, int], PartitionLog] = {}
        # *-delete directories found at start-up, for ``run`` to remove.
        self._dirs_to_remove: list[Path] = []
        # The log cleaner compacts the logs of compacted topics (log.cleaner.enable, log.cleaner.threads).
        self.cleaner: LogCleaner | None = None
        if cleaner_config is not None and cleaner_config.enable and cleaner_config.threads > 0:
            self.cleaner = LogCleaner(cleaner_config, self.log_dirs, self.logs, clock, self.fail_dir)

    @property
    def live_dirs(self) -> list[Path]:
        return [d for d in self.log_dirs if d not in self.offline_dirs]

    # -- start-up ------------------------------------------------------------
    def load(
        self,
        topics: Mapping[str, tuple[bytes, int]],
        topic_configs: Mapping[str, Mapping[str, Any]] | None = None,
        create_missing: bool = True,
    ) -> None:
        """Open every partition directory in the log dirs, recovering those not
        cleanly shut down, and (``create_missing``: a single broker, whose logs
        are all its topics' partitions) create the missing logs (a crash
        between writing metadata and creating them). ``topics`` is the metadata
        store's word: topic name -> (topic id, partition count); a directory of
        any other topic, or of this one under another id, is deleted.

        Blocking: run it in a worker thread. Raises LogDirError when a log dir
        can't be used."""
        for topic, config in (topic_configs or {}).items():
            self._topic_configs[topic] = dict(config)
        for log_dir in self.log_dirs:
            try:
                self._load_dir(log_dir, topics)
            except (OSError, CorruptPartitionMetadataError) as e:
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                raise LogDirError(f"cannot use log dir {log_dir}: {reason}") from e
        missing = [(name, p, topic_id) for name, (topic_id, count) in topics.items()
                   for p in range(count) if (name, p) not in self.logs] if create_missing else []
        for name, partition, topic_id in missing:
            log_dir = self._choose_dir()
            self.logs[(name, partition)] = self._create_blocking(name, partition, topic_id, log_dir)
            self._partitions_per_dir[log_dir] += 1
        for log_dir in {self.logs[(name, p)].dir.parent for name, p, _ in missing}:
            _fsync_dir(log_dir)
        log.info("loaded %d partition logs from %s", len(self.logs), ", ".join(map(str, self.log_dirs)))

    def _load_dir(self, log_dir: Path, topics: Mapping[str, tuple[bytes, int]]) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        marker = log_dir / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        recovery_points = read_checkpoint(log_dir / RECOVERY_POINT_CHECKPOINT)
        log_starts = read_checkpoint(log_dir / LOG_START_OFFSET_CHECKPOINT)
        high_watermarks = (read_checkpoint(log_dir / HIGH_WATERMARK_CHECKPOINT)
                           if self.high_watermarks_from_checkpoint else {})
        with os.scandir(log_dir) as entries:
            names = [e.name for e in entries if e.is_dir()]
        for name in names:
            if name.endswith(DELETE_DIR_SUFFIX):
                self._dirs_to_remove.append(log_dir / name)
                continue
            match = _PARTITION_DIR.fullmatch(name)
            if match is None:
                continue
            key = (match.group(1), int(match.group(2)))
            directory = log_dir / name
            known = topics.get(key[0])
            recorded = read_partition_metadata(directory)
            if known is None or key[1] >= known[1] or recorded not in (None, known[0]):
                log.warning("deleting %s: the metadata has no such partition (it is an old deleted topic's)", directory)
                renamed = directory.with_name(_delete_dir_name(*key))
                os.rename(directory, renamed)
                self._dirs_to_remove.append(renamed)
                continue
            if key in self.logs:
                raise LogDirError(f"{key[0]}-{key[1]} is in two log dirs: {self.logs[key].dir.parent} and {log_dir}")
            if recorded is None:  # written by a version that kept no partition.metadata
                write_partition_metadata(directory, known[0])
            self.logs[key] = PartitionLog.open(
                directory,
                key[0],
                key[1],
                self._config_for(key[0]),
                clean_shutdown=clean,
                recovery_point=recovery_points.get(key, 0),
                log_start_offset=log_starts.get(key, 0),
                work=self._work,
                clock=self._clock,
                topic_id=known[0],
                dir_failed=self.fail_dir,
            )
            if self.high_watermarks_from_checkpoint:
                partition_log = self.logs[key]
                partition_log.high_watermark_follows_leo = False
                # (The setter clamps it to [log start, log end].)
                partition_log.high_watermark = high_watermarks.get(key, partition_log.log_start_offset)
            self._partitions_per_dir[log_dir] += 1
        if clean:
            # From now on a crash must not pass for a clean shutdown.
            marker.unlink()
        _fsync_dir(log_dir)

    def _config_for(self, topic: str) -> LogConfig:
        return LogConfig(self._topic_configs.get(topic), self.defaults)

    # -- partitions ----------------------------------------------------------
    def in_dir(self, log_dir: Path) -> list[PartitionLog]:
        """The partition logs kept in ``log_dir``."""
        return [partition_log for partition_log in self.logs.values() if partition_log.dir.parent == log_dir]

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self.logs.get((topic, partition))

    def _choose_dir(self) -> Path:
        """The online log dir holding the fewest partitions."""
        live = self.live_dirs
        if not live:
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, "No log directory is online")
        return min(live, key=self._partitions_per_dir.__getitem__)

    async def create(
        self,
        topic: str,
        topic_id: bytes,
        partitions: Sequence[int],
        topic_config: Mapping[str, Any] | None = None,
    ) -> list[PartitionLog]:
        """The topic's logs for ``partitions``, each created (with its
        partition.metadata) in the online log dir holding the fewest partitions
        if it doesn't exist; in a worker thread. ``topic_config`` (overrides),
        if given, becomes the topic's config. A partition whose dir fails while
        it is created gets no log. Raises KafkaError(KAFKA_STORAGE_ERROR) when
        no log dir is online."""
        if topic_config is not None:
            self._topic_configs[topic] = dict(topic_config)
        async with self._lifecycle:
            todo: list[tuple[int, Path]] = []
            for partition in partitions:
                key = (topic, partition)
                doomed = self._doomed.get(key)
                if doomed is not None:  # the same name's deleted topic: its dir goes first
                    await self._rename_doomed(doomed)
                existing = self.logs.get(key)
                if existing is not None:
                    if existing.topic_id != topic_id:
                        raise RuntimeError(f"{topic}-{partition} exists with another topic id")
                    continue
                log_dir = self._choose_dir()
                self._partitions_per_dir[log_dir] += 1
                todo.append((partition, log_dir))
            created, failures = await trio.to_thread.run_sync(self._create_all, topic, topic_id, todo)
            for partition_log in created:
                self.logs[(topic, partition_log.partition)] = partition_log
            for log_dir, partition, error in failures:
                self._partitions_per_dir[log_dir] -= 1
                self.fail_dir(log_dir, f"Error while creating log for {topic}-{partition} in dir {log_dir}", error)
        return [self.logs[(topic, p)] for p in partitions if (topic, p) in self.logs]

    def _create_all(
        self, topic: str, topic_id: bytes, todo: list[tuple[int, Path]]
    ) -> tuple[list[PartitionLog], list[tuple[Path, int, OSError]]]:
        created: list[PartitionLog] = []
        failures: list[tuple[Path, int, OSError]] = []
        failed: set[Path] = set()
        for partition, log_dir in todo:
            if log_dir in failed:
                failures.append((log_dir, partition, OSError("log dir failed")))
                continue
            try:
                created.append(self._create_blocking(topic, partition, topic_id, log_dir))
            except OSError as e:
                failed.add(log_dir)
                failures.append((log_dir, partition, e))
        for log_dir in {partition_log.dir.parent for partition_log in created} - failed:
            try:
                _fsync_dir(log_dir)  # the new partition directories' entries
            except OSError as e:
                failures += [(log_dir, pl.partition, e) for pl in created if pl.dir.parent == log_dir]
        return created, failures

    def _create_blocking(self, topic: str, partition: int, topic_id: bytes, log_dir: Path) -> PartitionLog:
        directory = log_dir / f"{topic}-{partition}"
        partition_log = PartitionLog.open(
            directory,
            topic,
            partition,
            self._config_for(topic),
            work=self._work,
            clock=self._clock,
            topic_id=topic_id,
            dir_failed=self.fail_dir,
        )
        try:
            write_partition_metadata(directory, topic_id)
        except OSError:
            partition_log._close_files()
            raise
        if self.high_watermarks_from_checkpoint:
            partition_log.high_watermark_follows_leo = False  # (at its log end until replication moves it)
        return partition_log

    def detach(self, topic: str, partitions: Iterable[int] | None = None) -> list[PartitionLog]:
        """Deletion, first step: the topic's logs (or those of ``partitions``)
        stop serving at once and leave the manager; their directories stay
        until ``delete``."""
        wanted = None if partitions is None else set(partitions)
        doomed = [partition_log for key, partition_log in self.logs.items()
                  if key[0] == topic and (wanted is None or key[1] in wanted)]
        for partition_log in doomed:
            key = (topic, partition_log.partition)
            if self.cleaner is not None:
                self.cleaner.abort_cleaning(key)
            del self.logs[key]
            partition_log.closed = True
            self._doomed[key] = partition_log
            self._partitions_per_dir[partition_log.dir.parent] -= 1
        if not any(key[0] == topic for key in self.logs):
            self._topic_configs.pop(topic, None)
        return doomed

    async def delete(self, doomed: list[PartitionLog]) -> None:
        """Topic deletion, last step (once the metadata no longer has the topic):
        each detached log's directory is renamed ``<topic>-<partition>.<uuid>-delete``
        now and removed after file.delete.delay.ms."""
        async with self._lifecycle:
            for partition_log in doomed:
                await self._rename_doomed(partition_log)

    async def _rename_doomed(self, partition_log: PartitionLog) -> None:
        key = (partition_log.topic, partition_log.partition)
        if self._doomed.get(key) is not partition_log:
            return  # done already
        del self._doomed[key]
        await partition_log.delete(partition_log.dir.with_name(_delete_dir_name(*key)))

    def update_config(self, topic: str, config: Mapping[str, Any]) -> None:
        """Replace the topic's overrides; takes effect for every later append,
        roll and retention pass (index sizes: from the next segment)."""
        self._topic_configs[topic] = dict(config)
        merged = self._config_for(topic)
        for (log_topic, _), partition_log in self.logs.items():
            if log_topic == topic:
                partition_log.config = merged

    # -- log dir failure -----------------------------------------------------
    def fail_dir(self, log_dir: Path, message: str, error: OSError) -> None:
        """An I/O error in ``log_dir``: take it offline with all its logs (Kafka's
        LogDirFailureChannel and ReplicaManager.handleLogDirFailure)."""
        if log_dir in self.offline_dirs:
            return
        log.error("%s", message, exc_info=error)
        self.offline_dirs.add(log_dir)
        offline = self.in_dir(log_dir)
        for partition_log in offline:
            partition_log.offline = True
        log.warning(
            "Stopping serving logs in dir %s because the log directory has failed; offline partitions: %s",
            log_dir,
            ", ".join(f"{pl.topic}-{pl.partition}" for pl in offline) or "none",
        )
        if self._on_dir_failure is not None:
            self._on_dir_failure(log_dir)

    # -- background ----------------------------------------------------------
    async def run(self) -> None:
        """The background work, until cancelled: flushes and delayed deletions
        the logs ask for, retention, the flush.ms scheduler, checkpoints and
        producer id expiration."""
        delay_ms = LogConfig(None, self.defaults).file_delete_delay_ms
        for directory in self._dirs_to_remove:
            self._work.delete_later(delay_ms, functools.partial(_remove_dir, directory), directory.parent)
        self._dirs_to_remove.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._work.run)
            nursery.start_soon(self._every, self.retention_check_interval_ms, self.cleanup_logs)
            nursery.start_soon(self._every, self.flush_scheduler_interval_ms, self.flush_dirty_logs)
            nursery.start_soon(
                self._every, self.recovery_point_checkpoint_interval_ms, self.checkpoint_recovery_points
            )
            nursery.start_soon(self._every, self.log_start_checkpoint_interval_ms, self.checkpoint_log_start_offsets)
            nursery.start_soon(
                self._every, self.high_watermark_checkpoint_interval_ms, self.checkpoint_high_watermarks
            )
            nursery.start_soon(
                self._every, self.producer_id_expiration_check_interval_ms, self.expire_producer_ids
            )
            if self.cleaner is not None:
                nursery.start_soon(self.cleaner.run)

    @staticmethod
    async def _every(interval_ms: int, job: Callable[[], Any]) -> None:
        if interval_ms >= LONG_MAX:
            await trio.sleep(math.inf)
        if interval_ms <= 0:  # once, as Kafka's scheduler runs a task whose period isn't positive
            await job()
            await trio.sleep(math.inf)
        while True:
            await trio.sleep(interval_ms / 1000)
            await job()

    async def cleanup_logs(self) -> int:
        """One retention pass over every log; returns segments deleted."""
        deleted = 0
        for partition_log in list(self.logs.values()):
            try:
                deleted += await partition_log.delete_old_segments()
            except KafkaError:
                pass  # its dir went offline
        return deleted

    async def flush_dirty_logs(self) -> None:
        """Flush the logs whose flush.ms has passed."""
        for partition_log in list(self.logs.values()):
            if partition_log.flush_due:
                try:
                    await partition_log.flush()
                except KafkaError:
                    pass  # its dir went offline

    async def checkpoint_recovery_points(self, log_dir: Path | None = None) -> None:
        """Write the recovery points of every online log dir (or of ``log_dir``)."""
        await self._checkpoint(RECOVERY_POINT_CHECKPOINT, lambda pl: pl.recovery_point, log_dir)

    async def checkpoint_log_start_offsets(self, log_dir: Path | None = None) -> None:
        await self._checkpoint(LOG_START_OFFSET_CHECKPOINT, lambda pl: pl.log_start_offset, log_dir)

    async def checkpoint_high_watermarks(self, log_dir: Path | None = None) -> None:
        """Write the high watermarks (Kafka's replication-offset-checkpoint)."""
        await self._checkpoint(HIGH_WATERMARK_CHECKPOINT, lambda pl: pl.high_watermark, log_dir)

    async def _checkpoint(self, name: str, value: Callable[[PartitionLog], int], log_dir: Path | None) -> None:
        """Write checkpoint ``name`` with each log's ``value``. One writer at a
        time (a truncation's rewrite can meet the periodic one: both use the
        same .tmp file), and the values are read once the turn comes, so an
        older snapshot never lands after a newer one."""
        async with self._checkpoint_lock:
            snapshot = self._per_dir(value)
            if log_dir is not None:
                snapshot = {d: offsets for d, offsets in snapshot.items() if d == log_dir}

            def write() -> list[tuple[Path, OSError]]:
                failures = []
                for log_dir, offsets in snapshot.items():
                    try:
                        write_checkpoint(log_dir / name, offsets)
                    except OSError as e:
                        failures.append((log_dir, e))
                return failures

            for log_dir, error in await trio.to_thread.run_sync(write):
                self.fail_dir(log_dir, f"Error while writing {name} in dir {log_dir}", error)

    def _per_dir(self, value: Callable[[PartitionLog], int]) -> dict[Path, dict[tuple[str, int], int]]:
        """Per online log dir, ``value`` of each of its logs."""
        out: dict[Path, dict[tuple[str, int], int]] = {d: {} for d in self.live_dirs}
        for key, partition_log in self.logs.items():
            offsets = out.get(partition_log.dir.parent)
            if offsets is not None:
                offsets[key] = value(partition_log)
        return out

    # -- replication -----------------------------------------------------------
    async def truncate_to(self, topic: str, partition: int, offset: int) -> bool:
        """A follower's truncation (PartitionLog.truncate_to), then the log
        dir's recovery point checkpoint rewritten at once, as Kafka's
        LogManager does: an older, higher recovery point would let the next
        start-up trust data appended after the truncation without checking it.
        Returns whether anything was removed."""
        partition_log = self.logs[(topic, partition)]
        truncated = await partition_log.truncate_to(offset)
        if truncated:
            await self.checkpoint_recovery_points(partition_log.dir.parent)
            if self.cleaner is not None:
                await self.cleaner.maybe_truncate_checkpoint(partition_log.dir.parent, (topic, partition),
                                                             partition_log.segments[-1].base_offset)
        return truncated

    async def truncate_fully_and_start_at(
        self, topic: str, partition: int, offset: int, log_start_offset: int | None = None
    ) -> None:
        """PartitionLog.truncate_fully_and_start_at, then the log dir's recovery
        point and log start offset checkpoints."""
        partition_log = self.logs[(topic, partition)]
        await partition_log.truncate_fully_and_start_at(offset, log_start_offset)
        await self.checkpoint_recovery_points(partition_log.dir.parent)
        await self.checkpoint_log_start_offsets(partition_log.dir.parent)
        if self.cleaner is not None:
            await self.cleaner.maybe_truncate_checkpoint(partition_log.dir.parent, (topic, partition),
                                                         partition_log.segments[-1].base_offset)

    async def expire_producer_ids(self) -> None:
        now = self._clock()
        for partition_log in list(self.logs.values()):
            partition_log.producer_state.remove_expired(now, self.producer_id_expiration_ms)

    # -- shutdown ------------------------------------------------------------
    async def close(self) -> None:
        """Clean shutdown (cancel ``run`` first): flush and close every log, run
        the pending file deletions, write the three checkpoints and the
        clean-shutdown marker in every online log dir."""
        limiter = trio.CapacityLimiter(_CLOSE_CONCURRENCY)

        async def close_one(partition_log: PartitionLog) -> None:
            async with limiter:
                await partition_log.close()

        async with trio.open_nursery() as nursery:
            for partition_log in self.logs.values():
                nursery.start_soon(close_one, partition_log)
        deletes = self._work.drain()
        deletes += [(functools.partial(_remove_dir, d), d.parent) for d in self._dirs_to_remove]
        await self._checkpoint_lock.acquire()  # (kept: nothing is written after this)
        recovery_points = self._per_dir(lambda pl: pl.recovery_point)
        log_starts = self._per_dir(lambda pl: pl.log_start_offset)
        high_watermarks = self._per_dir(lambda pl: pl.high_watermark)

        def finish() -> list[tuple[Path, OSError]]:
            failures = []
            for delete, log_dir in deletes:
                try:
                    delete()
                except OSError as e:
                    failures.append((log_dir, e))
            failed = {log_dir for log_dir, _ in failures}
            for log_dir in recovery_points:
                if log_dir in failed:
                    continue
                try:
                    write_checkpoint(log_dir / RECOVERY_POINT_CHECKPOINT, recovery_points[log_dir])
                    write_checkpoint(log_dir / LOG_START_OFFSET_CHECKPOINT, log_starts[log_dir])
                    write_checkpoint(log_dir / HIGH_WATERMARK_CHECKPOINT, high_watermarks[log_dir])
                    (log_dir / CLEAN_SHUTDOWN_FILE).touch()
                    _fsync_dir(log_dir)
                except OSError as e:
                    failures.append((log_dir, e))
            return failures

        for log_dir, error in await trio.to_thread.run_sync(finish):
            self.fail_dir(log_dir, f"Error while shutting down the logs in dir {log_dir}", error)


def _delete_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"


def _remove_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
