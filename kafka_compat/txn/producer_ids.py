"""Producer id allocation: ids come in blocks reserved durably in the metadata
store (as Kafka reserves blocks in ZooKeeper), so an id is never handed out
twice, even across restarts."""
from __future__ import annotations

import trio

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, metadata):
        self.metadata = metadata
        self._next = 0
        self._end = 0
        # One reservation at a time (Kafka's generateProducerId is synchronized):
        # requests arriving while a block is being reserved wait for it, rather
        # than each reserving (and mostly wasting) a block of its own.
        self._reserving = trio.Lock()

    async def next_id(self) -> int:
        async with self._reserving:
            if self._next >= self._end:
                start = await self.metadata.reserve_producer_id_block(BLOCK_SIZE)
                self._next, self._end = start, start + BLOCK_SIZE
            pid = self._next
            self._next += 1
            return pid
