"""Replaying a log from its start, as the coordinators load their partitions:
everything up to the log end, chunk by chunk, stopping between chunks once
the partition is no longer wanted (its leadership moved away)."""
import time

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.log.replay import replay
from kafka_compat.protocol.records import BatchView, build_batch

NOW = int(time.time() * 1000)
BATCHES = 8
CHUNK = 100  # smaller than a batch: each chunk holds one whole batch


def written_log(path) -> PartitionLog:
    log = PartitionLog.open(path, "t", 0, LogConfig({}), clean_shutdown=True, recovery_point=0,
                            log_start_offset=0)
    for i in range(BATCHES):
        data = bytearray(build_batch([(b"k%d" % i, b"v" * 200, [], NOW)]))
        log.append(data, [BatchView(data, 0)], leader_epoch=0)
    return log


async def test_every_batch_is_applied_in_offset_order(tmp_path):
    log = written_log(tmp_path / "t-0")
    applied = []
    await replay(log, CHUNK, lambda batch: applied.append(batch.base_offset))
    assert applied == list(range(BATCHES))
    await log.close()


async def test_replay_stops_between_chunks_once_the_partition_is_not_wanted(tmp_path):
    log = written_log(tmp_path / "t-0")
    applied = []
    await replay(log, CHUNK, lambda batch: applied.append(batch.base_offset), lambda: len(applied) < 3)
    assert applied == [0, 1, 2]
    await log.close()
