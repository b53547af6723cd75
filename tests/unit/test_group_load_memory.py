"""Loading a large ``__consumer_offsets`` partition holds one chunk of records
in memory at a time, not the whole partition."""
from __future__ import annotations

import tracemalloc

from kafka_compat.api.waiters import AppendWaiters
from kafka_compat.cluster.metadata import BrokerInfo, LocalMetadataStore
from kafka_compat.cluster.topics import TopicManager
from kafka_compat.config import BrokerConfig
from kafka_compat.group.internal_topics import OFFSETS_TOPIC, create_internal_topic
from kafka_compat.group.log_format import OffsetAndMetadata, offset_key, offset_value
from kafka_compat.group.offsets_log import OffsetsLog
from kafka_compat.log.manager import LogManager
from kafka_compat.replica.manager import ReplicaManager

KEYS = 300
BATCHES, PER_BATCH = 50, 2000  # 100,000 commits to 300 keys
CHUNK = 256 * 1024


class Parts:
    """What the offsets log uses of a broker, real and on disk."""

    def __init__(self, data_dir):
        data_dir.mkdir(parents=True)
        self.config = BrokerConfig.from_properties({"log.dirs": str(data_dir), "offsets.topic.num.partitions": "1"})
        self.logs = LogManager([data_dir], self.config.topic_defaults())
        self.metadata = LocalMetadataStore(data_dir, BrokerInfo(0, "127.0.0.1", 9))
        self.topics = TopicManager(self.config, self.metadata, self.logs)
        self.waiters = AppendWaiters()
        self.replicas = ReplicaManager(0, self.logs, self.metadata, single_broker=True)


async def test_loading_keeps_memory_to_a_chunk_not_the_partition(tmp_path):
    parts = Parts(tmp_path / "data")
    await create_internal_topic(parts, OFFSETS_TOPIC)
    storage = OffsetsLog(parts, CHUNK)
    keys = [offset_key("g", "t", p) for p in range(KEYS)]
    latest = {}
    for b in range(BATCHES):
        commits = [(i % KEYS, b * PER_BATCH + i) for i in range(PER_BATCH)]
        storage.append(0, [(keys[p], offset_value(OffsetAndMetadata(o, -1, "", 0))) for p, o in commits], 0)
        latest.update(commits)
    on_disk = parts.logs.get(OFFSETS_TOPIC, 0).size_in_bytes

    tracemalloc.start()
    try:
        loaded = await storage.load(0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert {tp: o.value.offset for tp, o in loaded.offsets["g"].items()} == {("t", p): o for p, o in latest.items()}
    # Replaying the whole partition at once peaked at ~6.5x its size on disk (29 MB
    # here); chunk by chunk it peaks at ~0.5 MB.
    assert on_disk > 4_000_000
    assert peak < on_disk / 4, f"loading peaked at {peak} bytes for {on_disk} bytes on disk"
    await parts.logs.close()
