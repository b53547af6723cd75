"""A broker's view of the cluster in ZooKeeper mode: live brokers, partition
leaders, ISRs and topic ids, as the controller's UpdateMetadata requests keep
it (Kafka's ZkMetadataCache). Metadata, FindCoordinator and the leadership
checks of other brokers' partitions read it."""
from __future__ import annotations

from dataclasses import dataclass

import trio

from .metadata import BrokerInfo, Endpoint

# UpdateMetadata's leader for a partition whose topic is being deleted: the
# partition leaves the cache (Kafka's LeaderAndIsr.LeaderDuringDelete).
LEADER_DURING_DELETE = -2
SECURITY_PROTOCOLS = {0: "PLAINTEXT", 1: "SSL", 2: "SASL_PLAINTEXT", 3: "SASL_SSL"}
SECURITY_PROTOCOL_IDS = {name: i for i, name in SECURITY_PROTOCOLS.items()}


@dataclass
class PartitionInfo:
    leader: int
    leader_epoch: int
    isr: list[int]
    zk_version: int  # the partition epoch
    replicas: list[int]
    offline_replicas: list[int]


class MetadataCache:
    def __init__(self):
        self.brokers: dict[int, BrokerInfo] = {}
        self.partitions: dict[str, dict[int, PartitionInfo]] = {}
        self.topic_ids: dict[str, bytes] = {}
        self.controller_id = -1
        self.generation = 0  # moves with each update
        self.topic_generations: dict[str, int] = {}  # the generation that last changed each topic
        self._changed = trio.Event()

    def update(self, request) -> None:
        """Apply an UpdateMetadata request (v5+ shape): the live brokers are
        replaced, the partition states given are applied (a partition whose
        topic is being deleted leaves), topic ids are learnt."""
        self.generation += 1
        self.controller_id = request.controller_id
        self.brokers = {
            b.id: BrokerInfo(b.id, {e.listener: Endpoint(e.host, e.port, SECURITY_PROTOCOLS.get(e.security_protocol, "?"))
                                    for e in b.endpoints}, b.rack)
            for b in request.live_brokers
        }
        for topic in request.topic_states:
            if topic.topic_id and any(topic.topic_id):
                self.topic_ids[topic.topic_name] = topic.topic_id
            partitions = self.partitions.setdefault(topic.topic_name, {})
            self.topic_generations[topic.topic_name] = self.generation
            for p in topic.partition_states:
                if p.leader == LEADER_DURING_DELETE:
                    partitions.pop(p.partition_index, None)
                else:
                    partitions[p.partition_index] = PartitionInfo(
                        p.leader, p.leader_epoch, list(p.isr), p.zk_version, list(p.replicas), list(p.offline_replicas))
            if not partitions:
                del self.partitions[topic.topic_name]
                del self.topic_generations[topic.topic_name]
                self.topic_ids.pop(topic.topic_name, None)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_change(self) -> None:
        """Until the next UpdateMetadata."""
        await self._changed.wait()

    def partition(self, topic: str, partition: int) -> PartitionInfo | None:
        return self.partitions.get(topic, {}).get(partition)

    def has_leaders(self, topic: str, count: int) -> bool:
        """Whether the cache knows ``count`` partitions of ``topic``, each with a leader."""
        partitions = self.partitions.get(topic, {})
        return all(p in partitions and partitions[p].leader >= 0 for p in range(count))
