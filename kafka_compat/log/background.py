"""Disk work the logs hand off instead of doing it inline: flushes (requested
on segment roll and by flush.messages) and file deletions delayed by
file.delete.delay.ms so that readers still sending a deleted segment finish.
``run`` executes it; deletions still waiting at shutdown are handed back by
``drain``. An I/O error in this work takes the log's directory offline
(``dir_failed``, LogManager.fail_dir) instead of ending ``run``.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from kafka_compat.protocol.errors import KafkaError

if TYPE_CHECKING:
    from .partition_log import PartitionLog

logger = logging.getLogger(__name__)


DirFailed = Callable[[Path, str, OSError], None]


class DiskWork:
    def __init__(self, dir_failed: DirFailed | None = None) -> None:
        self._send, self._recv = trio.open_memory_channel(math.inf)
        self._flush_pending: set[PartitionLog] = set()
        self._deletes_waiting: set[tuple[float, Callable[[], None], Path]] = set()
        self._dir_failed = dir_failed

    def request_flush(self, log: PartitionLog) -> None:
        if log not in self._flush_pending:
            self._flush_pending.add(log)
            self._send.send_nowait(("flush", log))

    def delete_later(self, delay_ms: int, delete: Callable[[], None], log_dir: Path) -> None:
        """Run the blocking ``delete`` (of files in ``log_dir``) in a worker
        thread ``delay_ms`` from now."""
        item = (time.monotonic() + delay_ms / 1000, delete, log_dir)
        self._deletes_waiting.add(item)
        self._send.send_nowait(("delete", item))

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            async for item in self._recv:
                if item[0] == "flush":
                    nursery.start_soon(self._flush, item[1])
                else:
                    nursery.start_soon(self._delete, item[1])

    async def _flush(self, log: PartitionLog) -> None:
        self._flush_pending.discard(log)
        try:
            await log.flush()
        except KafkaError:
            pass  # the log's dir went offline (flush reported it); the recovery point stays

    async def _delete(self, item: tuple[float, Callable[[], None], Path]) -> None:
        await trio.sleep(max(0.0, item[0] - time.monotonic()))
        self._deletes_waiting.discard(item)
        try:
            await trio.to_thread.run_sync(item[1])
        except OSError as e:
            if self._dir_failed is None:
                logger.exception("deleting files in %s failed", item[2])
            else:
                self._dir_failed(item[2], f"Error while deleting files in dir {item[2]}", e)

    def drain(self) -> list[tuple[Callable[[], None], Path]]:
        """Forget queued work and return the deletions still waiting (with their
        log dirs), for the caller to run now (at shutdown, when nothing reads any more); flushing
        is the shutdown's own job."""
        while True:
            try:
                self._recv.receive_nowait()
            except trio.WouldBlock:
                break
        self._flush_pending.clear()
        deletes = [(delete, log_dir) for _, delete, log_dir in sorted(self._deletes_waiting, key=lambda item: item[0])]
        self._deletes_waiting.clear()
        return deletes
