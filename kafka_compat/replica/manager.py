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

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..protocol.errors import ErrorCode, KafkaError

NO_EPOCH = -1
# StopReplica's leader epoch for a partition whose topic is being deleted.
EPOCH_DURING_DELETE = -2


@dataclass
class PartitionState:
    """What the controller last said of a partition (LeaderAndIsr)."""

    leader: int
    leader_epoch: int
    isr: list[int]
    replicas: list[int]
    partition_epoch: int = 0
    # As leader: each follower's log end offset, as its last fetch said.
    follower_end_offsets: dict[int, int] = field(default_factory=dict)


class ReplicaManager:
    def __init__(self, broker_id: int, logs, metadata, *, single_broker: bool, fetchers=None):
        self.broker_id = broker_id
        self.logs = logs
        self.metadata = metadata
        self.single_broker = single_broker
        self.fetchers = fetchers  # the ReplicaFetcherManager of a cluster's broker
        self.states: dict[tuple[str, int], PartitionState] = {}
        # The newest controller epoch seen: requests of older controllers are
        # refused (STALE_CONTROLLER_EPOCH).
        self.controller_epoch = 0

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

    def follower_state(self, topic: str, partition: int, replica: int, current_leader_epoch: int) -> PartitionState:
        """The state of a partition this broker leads (``leader_log`` passed)
        for a fetch by follower ``replica``, which must be one of its replicas
        (Kafka's followerReplicaOrThrow): else UNKNOWN_LEADER_EPOCH (the
        follower may know of a reassignment we don't yet), or
        NOT_LEADER_OR_FOLLOWER when the fetch carries no leader epoch."""
        state = self.state(topic, partition)
        if replica not in state.replicas:
            raise KafkaError(ErrorCode.UNKNOWN_LEADER_EPOCH if current_leader_epoch != NO_EPOCH
                             else ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return state

    # -- what the controller says (cluster mode) ----------------------------------------
    def check_controller_epoch(self, epoch: int) -> None:
        if epoch < self.controller_epoch:
            raise KafkaError(ErrorCode.STALE_CONTROLLER_EPOCH)
        self.controller_epoch = epoch

    async def apply_leadership(
        self,
        changes: list[tuple[str, bytes, int, PartitionState]],
        topic_config: Callable[[str], Awaitable[dict]],
    ) -> dict[tuple[str, int], ErrorCode]:
        """LeaderAndIsr (Kafka's becomeLeaderOrFollower, after the controller
        epoch check): each (topic, topic id, partition, state) this broker is
        a replica of, at a leader epoch not older than ours, is taken on, its
        log created if missing (with the topic's config from
        ``topic_config``). A partition led elsewhere is fetched from its
        leader (its high watermark then comes from the leader); one led here
        is fetched no more (any fetch in progress applied first). Returns each
        partition's error."""
        errors: dict[tuple[str, int], ErrorCode] = {}
        accepted: list[tuple[str, bytes, int, PartitionState]] = []
        for topic, topic_id, partition, state in changes:
            key = (topic, partition)
            current = self.states.get(key)
            log = self.logs.get(topic, partition)
            if log is not None and log.topic_id not in (None, topic_id):
                errors[key] = ErrorCode.INCONSISTENT_TOPIC_ID
            elif current is not None and state.leader_epoch < current.leader_epoch:
                errors[key] = ErrorCode.STALE_CONTROLLER_EPOCH
            elif self.broker_id not in state.replicas:
                errors[key] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                accepted.append((topic, topic_id, partition, state))
        missing: dict[tuple[str, bytes], list[int]] = defaultdict(list)
        for topic, topic_id, partition, _ in accepted:
            if self.logs.get(topic, partition) is None:
                missing[(topic, topic_id)].append(partition)
        for (topic, topic_id), partitions in missing.items():
            try:
                await self.logs.create(topic, topic_id, partitions, await topic_config(topic))
            except KafkaError:
                pass  # no log dir online: those partitions get no log, answered below
        await self.fetchers.remove((topic, partition) for topic, _, partition, _ in accepted)
        follow = {}
        for topic, topic_id, partition, state in accepted:
            log = self.logs.get(topic, partition)
            if log is None or log.offline:
                errors[(topic, partition)] = ErrorCode.KAFKA_STORAGE_ERROR
                continue
            if state.leader == self.broker_id:
                # Kafka's makeLeader: the new epoch starts at our log end, so
                # followers with newer data than ours can find where to truncate.
                log.assign_epoch_start_offset(state.leader_epoch, log.log_end_offset)
                # The ISR is the leader alone until followers join it (AlterPartition).
                log.high_watermark_follows_leo = True
                log.high_watermark = log.log_end_offset
            else:
                log.high_watermark_follows_leo = False
                if state.leader >= 0:
                    follow[(topic, partition)] = (state.leader, topic_id, state.leader_epoch)
            self.states[(topic, partition)] = state
            errors[(topic, partition)] = ErrorCode.NONE
        await self.fetchers.add(follow)
        return errors

    async def stop_replicas(self, partitions: list[tuple[str, int, int, bool]]) -> dict[tuple[str, int], ErrorCode]:
        """StopReplica (after the controller epoch check): each (topic,
        partition, leader epoch, delete) stops being hosted here unless the
        request's leader epoch is older than ours; with delete, its log is
        removed (renamed *-delete, then deleted in the background). Fetching
        stops first."""
        errors: dict[tuple[str, int], ErrorCode] = {}
        stopped = []
        for topic, partition, leader_epoch, delete in partitions:
            current = self.states.get((topic, partition))
            if (current is not None and leader_epoch not in (NO_EPOCH, EPOCH_DURING_DELETE)
                    and leader_epoch < current.leader_epoch):
                errors[(topic, partition)] = ErrorCode.FENCED_LEADER_EPOCH
                continue
            stopped.append((topic, partition, delete))
        await self.fetchers.remove((topic, partition) for topic, partition, _ in stopped)
        doomed = []
        for topic, partition, delete in stopped:
            self.states.pop((topic, partition), None)
            if delete:
                doomed += self.logs.detach(topic, [partition])
            errors[(topic, partition)] = ErrorCode.NONE
        if doomed:
            await self.logs.delete(doomed)
        return errors
