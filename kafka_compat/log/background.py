"""Disk work the logs hand off instead of doing it inline: flushes (requested
on segment roll and by flush.messages) and file deletions delayed by
file.delete.delay.ms so that readers still sending a deleted segment finish.
``run`` executes it; deletions still waiting at shutdown are handed back by
``drain``.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .partition_log import PartitionLog

logger = logging.getLogger(__name__)


class DiskWork:
    def __init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel(math.inf)
        self._flush_pending: set[PartitionLog] = set()
        self._deletes_waiting: set[tuple[float, Callable[[], None]]] = set()

    def request_flush(self, log: PartitionLog) -> None:
        if log not in self._flush_pending:
            self._flush_pending.add(log)
            self._send.send_nowait(("flush", log))

    def delete_later(self, delay_ms: int, delete: Callable[[], None]) -> None:
        """Run the blocking ``delete`` in a worker thread ``delay_ms`` from now."""
        item = (time.monotonic() + delay_ms / 1000, delete)
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
        except OSError:
            # The data stays in the page cache and the recovery point where it
            # was: a later flush retries, a crash recovers from there.
            logger.exception("flushing %s failed", log)

    async def _delete(self, item: tuple[float, Callable[[], None]]) -> None:
        await trio.sleep(max(0.0, item[0] - time.monotonic()))
        self._deletes_waiting.discard(item)
        try:
            await trio.to_thread.run_sync(item[1])
        except OSError:
            logger.exception("deleting files failed; the next start-up removes the leftovers")

    def drain(self) -> list[Callable[[], None]]:
        """Forget queued work and return the deletions still waiting, for the
        caller to run now (at shutdown, when nothing reads any more); flushing
        is the shutdown's own job."""
        while True:
            try:
                self._recv.receive_nowait()
            except trio.WouldBlock:
                break
        self._flush_pending.clear()
        deletes = [delete for _, delete in sorted(self._deletes_waiting, key=lambda item: item[0])]
        self._deletes_waiting.clear()
        return deletes
