"""Reading a partition's log back from its start, as the coordinators load
``__consumer_offsets`` and ``__transaction_state`` when they become its
leader (Kafka's GroupMetadataManager and TransactionStateManager loaders)."""
from __future__ import annotations

from collections.abc import Callable

import trio

from kafka_compat.protocol.records import BatchView, iter_batches

# Logs up to this size are read on the event loop: a few page-cache reads
# cost less than handing them to a worker thread.
INLINE_BYTES = 1 << 20


async def replay(partition_log, chunk_bytes: int, apply: Callable[[BatchView], None],
                 wanted: Callable[[], bool] = lambda: True) -> None:
    """Hand every batch from the log start up to the log end to ``apply``,
    read ``chunk_bytes`` at a time (the first batch of a chunk whole however
    big), so memory holds one chunk besides what ``apply`` builds. The end is
    read again before each chunk, as Kafka's loaders do: records appended
    while a large partition loads (a transaction's marker, say) are read too.
    Like them, it stops between chunks once ``wanted()`` is false (the
    partition's leadership moved away). A large log's chunks are read and
    applied in worker threads, a small one's at once."""
    inline = partition_log.size_in_bytes <= INLINE_BYTES
    offset = partition_log.log_start_offset
    while offset < (end := partition_log.log_end_offset) and wanted():
        chunk = partition_log.read(offset, chunk_bytes, True, max_offset=end)
        if not chunk.regions:
            break
        if inline:
            next_offset = _apply_chunk(chunk.read_bytes, offset, apply)
        else:
            next_offset = await trio.to_thread.run_sync(_apply_chunk, chunk.read_bytes, offset, apply)
        if next_offset <= offset:
            break
        offset = next_offset


def _apply_chunk(read_bytes: Callable[[], bytes], offset: int, apply: Callable[[BatchView], None]) -> int:
    """Apply one chunk's batches; the offset after the chunk."""
    for batch in iter_batches(read_bytes()):
        offset = max(offset, batch.next_offset)
        apply(batch)
    return offset
