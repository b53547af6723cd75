"""Wakes the requests waiting on a partition when it changes: long-polling
fetches when records are appended (or, for consumers, when the high
watermark moves), acks=all produces and coordinator appends when the high
watermark, the ISR or the leadership changes.

Each waiter says what it waits for, so that a change wakes only the ones it
can finish, as Kafka's purgatories check a delayed operation only on the
keys it watches: a follower's fetch is not woken by the high watermark (its
read goes to the log end; Kafka's DelayedFetch for a follower counts only
new bytes), and an acks=all produce is not woken by later appends (only the
high watermark, the ISR or the leadership can end its wait), nor by a high
watermark short of its append's end. With one-message requests the first
kind of useless wake-up was one of every five fetch reads on a leader; with
a producer's acks=all requests pipelined (each waiting for its own offset),
every high watermark move woke all of them, about ten wake-ups per request."""
from __future__ import annotations

import trio

APPENDS = 1  # records appended at the log end
HIGH_WATERMARK = 2  # the high watermark moved
_STATE = 4  # the ISR or the leadership changed: wakes every waiter
_EVERYTHING = APPENDS | HIGH_WATERMARK | _STATE


class AppendWaiters:
    def __init__(self):
        # {partition: {event: (what wakes it, the high watermark it waits for)}}
        self._waiting: dict[tuple[str, int], dict[trio.Event, tuple[int, int]]] = {}
        self._closed = False

    def notify(self, topic: str, partition: int, what: int = _EVERYTHING, high_watermark: int | None = None) -> None:
        """The partition changed (by default in every way a waiter may wait
        for: the ISR or its leadership); ``what`` narrows it to APPENDS or
        HIGH_WATERMARK. With ``high_watermark`` (where it moved to), a waiter
        for a higher one sleeps on."""
        key = (topic, partition)
        waiting = self._waiting.get(key)
        if waiting is None:
            return
        woken = [event for event, (wake_on, at) in waiting.items()
                 if wake_on & what and (high_watermark is None or high_watermark >= at)]
        for event in woken:
            del waiting[event]
            event.set()
        if not waiting:
            del self._waiting[key]

    def appended(self, topic: str, partition: int) -> None:
        self.notify(topic, partition, APPENDS)

    def high_watermark_moved(self, topic: str, partition: int, high_watermark: int | None = None) -> None:
        self.notify(topic, partition, HIGH_WATERMARK, high_watermark)

    @property
    def closed(self) -> bool:
        """Shut down: ``wait_any`` returns at once, so a loop waiting on it
        for a condition must stop there."""
        return self._closed

    def wake_all(self) -> None:
        """Shutdown: every waiting fetch answers now, and later ones don't wait."""
        self._closed = True
        for waiting in self._waiting.values():
            for event in waiting:
                event.set()
        self._waiting.clear()

    async def wait_any(self, partitions: list[tuple[str, int]], timeout_s: float, *, appends: bool = True,
                       high_watermark: bool = True, high_watermark_at: list[int] | None = None) -> None:
        """Until one of ``partitions`` changes (appends and high watermark
        moves only if asked for; with ``high_watermark_at``, one offset per
        partition, only a high watermark that reaches it), the timeout, or
        shutdown."""
        if self._closed:
            return
        event = trio.Event()
        wake_on = _STATE | (APPENDS if appends else 0) | (HIGH_WATERMARK if high_watermark else 0)
        offsets = high_watermark_at or [-1] * len(partitions)
        for key, at in zip(partitions, offsets):
            self._waiting.setdefault(key, {})[event] = (wake_on, at)
        try:
            with trio.move_on_after(timeout_s):
                await event.wait()
        finally:
            for key in partitions:
                waiting = self._waiting.get(key)
                if waiting is not None:
                    waiting.pop(event, None)
                    if not waiting:
                        del self._waiting[key]
