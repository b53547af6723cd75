"""Producer id allocation: ids come in blocks reserved durably in the metadata
store (as Kafka reserves blocks in ZooKeeper), so an id is never handed out
twice, even across restarts."""
from __future__ import annotations

BLOCK_SIZE = 1000


class ProducerIdManager:
    def __init__(self, metadata):
        self.metadata = metadata
        self._next = 0
        self._end = 0

    async def next_id(self) -> int:
        if self._next >= self._end:
            # Callers meanwhile reserve blocks of their own: no id is handed out
            # twice, at worst the rest of a block goes unused.
            start = await self.metadata.reserve_producer_id_block(BLOCK_SIZE)
            self._next, self._end = start, start + BLOCK_SIZE
        pid = self._next
        self._next += 1
        return pid
