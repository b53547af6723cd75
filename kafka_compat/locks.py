"""Holding a trio.Lock without a scheduler pass when it is free.

trio's ``Lock.acquire`` ends with a checkpoint even when the lock was free:
a whole pass of its scheduler (an epoll_wait and the run loop). A replica
fetcher took three locks per fetch (connecting, sending, applying the
response), so a follower paid three passes for nothing in each fetch cycle,
which with one-message fetches is most of what it does. ``held(lock)``
takes a free lock at once and waits, as ``acquire`` does, only when another
task holds it or is queued for it.
"""
from __future__ import annotations

import trio


class held:
    """``async with held(lock):`` holds ``lock`` for the block."""

    __slots__ = ("lock",)

    def __init__(self, lock: trio.Lock):
        self.lock = lock

    async def __aenter__(self) -> None:
        try:
            self.lock.acquire_nowait()
        except trio.WouldBlock:
            await self.lock.acquire()

    async def __aexit__(self, *exc_info) -> None:
        self.lock.release()
