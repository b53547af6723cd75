"""Keyed one-shot timers on the trio clock, all driven by one task.

The group coordinator's delayed operations (session expiry, the join and sync
phases, the initial rebalance delay) are each one timer under a key such as
``("heartbeat", group, member)``; scheduling a key again replaces its timer,
as completing a delayed operation and watching a new one does in Kafka.
Callbacks are plain functions run on the trio thread, one at a time.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable, Hashable

import trio

log = logging.getLogger(__name__)


class Timers:
    def __init__(self):
        self._entries: dict[Hashable, tuple[float, int, Callable[[], None]]] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._changed = trio.Event()

    def schedule(self, key: Hashable, delay_ms: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay_ms``, replacing any timer under ``key``."""
        deadline = trio.current_time() + max(delay_ms, 0) / 1000
        seq = next(self._seq)
        self._entries[key] = (deadline, seq, callback)
        heapq.heappush(self._heap, (deadline, seq, key))
        self._changed.set()

    def cancel(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def cancel_all(self) -> None:
        self._entries.clear()
        self._heap.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __iter__(self):
        """The keys of the timers pending (a snapshot)."""
        return iter(list(self._entries))

    def _next_deadline(self) -> float:
        while self._heap:
            deadline, seq, key = self._heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry[1] == seq:
                return deadline
            heapq.heappop(self._heap)  # cancelled or replaced
        return math.inf

    def run_due(self) -> None:
        """Run every timer whose deadline has passed, earliest first."""
        now = trio.current_time()
        while self._next_deadline() <= now:
            _, _, key = heapq.heappop(self._heap)
            _, _, callback = self._entries.pop(key)
            try:
                callback()
            except Exception:
                log.exception("timer %r failed", key)

    async def run(self) -> None:
        """Fire timers as they come due, until cancelled."""
        while True:
            self._changed = trio.Event()
            with trio.move_on_at(self._next_deadline()):
                await self._changed.wait()
            self.run_due()
