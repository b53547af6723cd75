"""All partition logs of a broker across its log dirs (Kafka's LogManager):
start-up loading and recovery, creation and deletion, the background loops
(retention, flush scheduler, checkpoints, producer id expiration) and clean
shutdown.

Per log dir, as Kafka keeps them: ``recovery-point-offset-checkpoint``,
``log-start-offset-checkpoint`` and, between a clean shutdown and the next
start, the ``.kafka_cleanshutdown`` marker.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from kafka_compat.config import LONG_MAX

from .background import DiskWork
from .checkpoint import read_checkpoint, write_checkpoint
from .config import LogConfig
from .partition_log import PartitionLog, wall_clock_ms

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
DELETE_DIR_SUFFIX = "-delete"
_PARTITION_DIR = re.compile(r"(.+)-(\d+)")
# How many partitions close (flush) at once: fsyncs overlap on the device.
_CLOSE_CONCURRENCY = 8


class LogManager:
    """Owns every PartitionLog of this broker.

    ``defaults`` are topic-level config defaults (Kafka topic config names,
    parsed values: topic_config.topic_defaults(broker)); per-topic overrides
    come with ``load``, ``create`` and ``update_config``. The interval arguments
    are Kafka's broker settings of the same names, in ms.
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
        clock: Callable[[], int] = wall_clock_ms,
    ):
        if not log_dirs:
            raise ValueError("at least one log dir is needed")
        self.log_dirs = [Path(d) for d in log_dirs]
        self.defaults = dict(defaults or {})
        self.retention_check_interval_ms = log_retention_check_interval_ms
        self.flush_scheduler_interval_ms = log_flush_scheduler_interval_ms
        self.recovery_point_checkpoint_interval_ms = log_flush_offset_checkpoint_interval_ms
        self.log_start_checkpoint_interval_ms = log_flush_start_offset_checkpoint_interval_ms
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.producer_id_expiration_check_interval_ms = producer_id_expiration_check_interval_ms
        self._clock = clock
        self._work = DiskWork()
        self._topic_configs: dict[str, dict[str, Any]] = {}
        self.logs: dict[tuple[str, int], PartitionLog] = {}
        self._partitions_per_dir: Counter[Path] = Counter()  # where the next partition goes

    # -- start-up ------------------------------------------------------------
    def load(self, topic_configs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Open every partition directory in the log dirs, recovering those not
        cleanly shut down. Blocking: run it in a worker thread."""
        for topic, config in (topic_configs or {}).items():
            self._topic_configs[topic] = dict(config)
        for log_dir in self.log_dirs:
            log_dir.mkdir(parents=True, exist_ok=True)
            marker = log_dir / CLEAN_SHUTDOWN_FILE
            clean = marker.exists()
            recovery_points = read_checkpoint(log_dir / RECOVERY_POINT_CHECKPOINT)
            log_starts = read_checkpoint(log_dir / LOG_START_OFFSET_CHECKPOINT)
            with os.scandir(log_dir) as entries:
                names = [e.name for e in entries if e.is_dir()]
            for name in names:
                if name.endswith(DELETE_DIR_SUFFIX):
                    shutil.rmtree(log_dir / name, ignore_errors=True)
                    continue
                match = _PARTITION_DIR.fullmatch(name)
                if match is None:
                    continue
                key = (match.group(1), int(match.group(2)))
                if key in self.logs:
                    raise RuntimeError(f"{key[0]}-{key[1]} is in two log dirs: {self.logs[key].dir} and {log_dir}")
                self.logs[key] = PartitionLog.open(
                    log_dir / name,
                    key[0],
                    key[1],
                    self._config_for(key[0]),
                    clean_shutdown=clean,
                    recovery_point=recovery_points.get(key, 0),
                    log_start_offset=log_starts.get(key, 0),
                    work=self._work,
                    clock=self._clock,
                )
                self._partitions_per_dir[log_dir] += 1
            if clean:
                # From now on a crash must not pass for a clean shutdown.
                marker.unlink()
                _fsync_dir(log_dir)
        log.info("loaded %d partition logs from %s", len(self.logs), ", ".join(map(str, self.log_dirs)))

    def _config_for(self, topic: str) -> LogConfig:
        return LogConfig(self._topic_configs.get(topic), self.defaults)

    # -- partitions ----------------------------------------------------------
    def in_dir(self, log_dir: Path) -> list[PartitionLog]:
        """The partition logs kept in ``log_dir``."""
        return [partition_log for partition_log in self.logs.values() if partition_log.dir.parent == log_dir]

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self.logs.get((topic, partition))

    def create(self, topic: str, partition: int, topic_config: Mapping[str, Any] | None = None) -> PartitionLog:
        """The partition's log, created in the log dir holding the fewest
        partitions if it doesn't exist. ``topic_config`` (overrides), if given,
        becomes the topic's config."""
        if topic_config is not None:
            self._topic_configs[topic] = dict(topic_config)
        existing = self.logs.get((topic, partition))
        if existing is not None:
            return existing
        log_dir = min(self.log_dirs, key=self._partitions_per_dir.__getitem__)
        partition_log = PartitionLog.open(
            log_dir / f"{topic}-{partition}",
            topic,
            partition,
            self._config_for(topic),
            work=self._work,
            clock=self._clock,
        )
        self.logs[(topic, partition)] = partition_log
        self._partitions_per_dir[log_dir] += 1
        return partition_log

    async def delete(self, topic: str, partition: int) -> None:
        """Remove a partition's log: its directory is renamed to
        ``<topic>-<partition>.<uuid>-delete`` now and removed after file.delete.delay.ms."""
        partition_log = self.logs.pop((topic, partition), None)
        if partition_log is None:
            return
        self._partitions_per_dir[partition_log.dir.parent] -= 1
        renamed = partition_log.dir.with_name(f"{topic}-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
        await partition_log.delete(renamed)
        if not any(key[0] == topic for key in self.logs):
            self._topic_configs.pop(topic, None)

    def update_config(self, topic: str, config: Mapping[str, Any]) -> None:
        """Replace the topic's overrides; takes effect for every later append,
        roll and retention pass (index sizes: from the next segment)."""
        self._topic_configs[topic] = dict(config)
        merged = self._config_for(topic)
        for (log_topic, _), partition_log in self.logs.items():
            if log_topic == topic:
                partition_log.config = merged

    # -- background ----------------------------------------------------------
    async def run(self) -> None:
        """The background work, until cancelled: flushes and delayed deletions
        the logs ask for, retention, the flush.ms scheduler, checkpoints and
        producer id expiration."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._work.run)
            nursery.start_soon(self._every, self.retention_check_interval_ms, self.cleanup_logs)
            nursery.start_soon(self._every, self.flush_scheduler_interval_ms, self.flush_dirty_logs)
            nursery.start_soon(
                self._every, self.recovery_point_checkpoint_interval_ms, self.checkpoint_recovery_points
            )
            nursery.start_soon(self._every, self.log_start_checkpoint_interval_ms, self.checkpoint_log_start_offsets)
            nursery.start_soon(
                self._every, self.producer_id_expiration_check_interval_ms, self.expire_producer_ids
            )

    @staticmethod
    async def _every(interval_ms: int, job: Callable[[], Any]) -> None:
        if interval_ms >= LONG_MAX:
            await trio.sleep(math.inf)
        while True:
            await trio.sleep(interval_ms / 1000)
            await job()

    async def cleanup_logs(self) -> int:
        """One retention pass over every log; returns segments deleted."""
        deleted = 0
        for partition_log in list(self.logs.values()):
            deleted += await partition_log.delete_old_segments()
        return deleted

    async def flush_dirty_logs(self) -> None:
        """Flush the logs whose flush.ms has passed."""
        for partition_log in list(self.logs.values()):
            if partition_log.flush_due:
                await partition_log.flush()

    async def checkpoint_recovery_points(self) -> None:
        await self._checkpoint(RECOVERY_POINT_CHECKPOINT, lambda pl: pl.recovery_point)

    async def checkpoint_log_start_offsets(self) -> None:
        await self._checkpoint(LOG_START_OFFSET_CHECKPOINT, lambda pl: pl.log_start_offset)

    async def _checkpoint(self, name: str, value: Callable[[PartitionLog], int]) -> None:
        snapshot = self._per_dir(value)
        await trio.to_thread.run_sync(lambda: [write_checkpoint(d / name, offsets) for d, offsets in snapshot.items()])

    def _per_dir(self, value: Callable[[PartitionLog], int]) -> dict[Path, dict[tuple[str, int], int]]:
        out: dict[Path, dict[tuple[str, int], int]] = {d: {} for d in self.log_dirs}
        for key, partition_log in self.logs.items():
            out.setdefault(partition_log.dir.parent, {})[key] = value(partition_log)
        return out

    async def expire_producer_ids(self) -> None:
        now = self._clock()
        for partition_log in list(self.logs.values()):
            partition_log.producer_state.remove_expired(now, self.producer_id_expiration_ms)

    # -- shutdown ------------------------------------------------------------
    async def close(self) -> None:
        """Clean shutdown (cancel ``run`` first): flush and close every log, run
        the pending file deletions, write both checkpoints and the
        clean-shutdown marker."""
        limiter = trio.CapacityLimiter(_CLOSE_CONCURRENCY)

        async def close_one(partition_log: PartitionLog) -> None:
            async with limiter:
                await partition_log.close()

        async with trio.open_nursery() as nursery:
            for partition_log in self.logs.values():
                nursery.start_soon(close_one, partition_log)
        deletes = self._work.drain()
        recovery_points = self._per_dir(lambda pl: pl.recovery_point)
        log_starts = self._per_dir(lambda pl: pl.log_start_offset)

        def finish() -> None:
            for delete in deletes:
                delete()
            for log_dir in self.log_dirs:
                write_checkpoint(log_dir / RECOVERY_POINT_CHECKPOINT, recovery_points.get(log_dir, {}))
                write_checkpoint(log_dir / LOG_START_OFFSET_CHECKPOINT, log_starts.get(log_dir, {}))
                (log_dir / CLEAN_SHUTDOWN_FILE).touch()
                _fsync_dir(log_dir)

        await trio.to_thread.run_sync(finish)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
