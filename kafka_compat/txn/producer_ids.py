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

    def next_id(self) -> int:
        if self._next >= self._end:
            self._next = self.metadata.reserve_producer_id_block(BLOCK_SIZE)
            self._end = self._next + BLOCK_SIZE
        pid = self._next
        self._next += 1
        return pid
