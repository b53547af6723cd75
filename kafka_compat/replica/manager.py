"""The partitions this broker hosts, and what it is for each: leader or
follower, at which leader epoch (Kafka's ReplicaManager and Partition).

Every handler that reads or writes a partition's data asks here for the log,
so that NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR and fenced leader epochs
are decided in one place, in Kafka's order of checks. A single broker leads
every partition its metadata has, at the metadata's epoch; in a cluster the
controller's LeaderAndIsr requests say who leads, and StopReplica takes
partitions away.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..protocol.errors import ErrorCode, KafkaError

NO_EPOCH = -1


@dataclass
class PartitionState:
    """What the controller last said of a partition (LeaderAndIsr)."""

    leader: int
    leader_epoch: int
    isr: list[int]
    replicas: list[int]
    partition_epoch: int = 0


class ReplicaManager:
    def __init__(self, broker_id: int, logs, metadata, *, single_broker: bool):
        self.broker_id = broker_id
        self.logs = logs
        self.metadata = metadata
        self.single_broker = single_broker
        self.states: dict[tuple[str, int], PartitionState] = {}

    def state(self, topic: str, partition: int) -> PartitionState | None:
        if self.single_broker:
            if not self.metadata.has_partition(topic, partition):
                return None
            replicas = self.metadata.topics()[topic].replicas[partition]
            return PartitionState(self.metadata.leader(topic, partition), self.metadata.leader_epoch(topic, partition),
                                  self.metadata.isr(topic, partition), replicas)
        return self.states.get((topic, partition))

    def set_state(self, topic: str, partition: int, state: PartitionState) -> None:
        self.states[(topic, partition)] = state

    def remove(self, topic: str, partition: int) -> None:
        self.states.pop((topic, partition), None)

    def is_leader(self, topic: str, partition: int) -> bool:
        state = self.state(topic, partition)
        return state is not None and state.leader == self.broker_id

    def leader_log(self, topic: str, partition: int, current_leader_epoch: int = NO_EPOCH):
        """The partition's log if this broker leads it; else Kafka's error as a
        KafkaError: UNKNOWN_TOPIC_OR_PARTITION for a partition the cluster
        doesn't have, NOT_LEADER_OR_FOLLOWER for one hosted elsewhere or led
        by another broker, KAFKA_STORAGE_ERROR for one in a failed log dir,
        FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when the client's epoch is
        older / newer than ours."""
        state = self.state(topic, partition)
        log = self.logs.get(topic, partition)
        if state is None or log is None:
            if self.metadata.has_partition(topic, partition):
                raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if log.offline:
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR)
        if current_leader_epoch != NO_EPOCH:
            if current_leader_epoch < state.leader_epoch:
                raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH)
            if current_leader_epoch > state.leader_epoch:
                raise KafkaError(ErrorCode.UNKNOWN_LEADER_EPOCH)
        if state.leader != self.broker_id:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return log
