"""Wakes long-polling fetches when data is appended to a partition they watch."""
from __future__ import annotations

import trio


class AppendWaiters:
    def __init__(self):
        self._waiting: dict[tuple[str, int], set[trio.Event]] = {}
        self._closed = False

    def notify(self, topic: str, partition: int) -> None:
        for event in self._waiting.pop((topic, partition), ()):
            event.set()

    @property
    def closed(self) -> bool:
        """Shut down: ``wait_any`` returns at once, so a loop waiting on it
        for a condition must stop there."""
        return self._closed

    def wake_all(self) -> None:
        """Shutdown: every waiting fetch answers now, and later ones don't wait."""
        self._closed = True
        for events in self._waiting.values():
            for event in events:
                event.set()
        self._waiting.clear()

    async def wait_any(self, partitions: list[tuple[str, int]], timeout_s: float) -> None:
        """Until an append to one of ``partitions``, the timeout, or shutdown."""
        if self._closed:
            return
        event = trio.Event()
        for key in partitions:
            self._waiting.setdefault(key, set()).add(event)
        try:
            with trio.move_on_after(timeout_s):
                await event.wait()
        finally:
            for key in partitions:
                events = self._waiting.get(key)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiting[key]
