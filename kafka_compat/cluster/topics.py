"""Topic lifecycle over the metadata store and the log manager: create (with
Kafka's checks, in Kafka's order), delete, add partitions, auto-create, and
each topic's effective configuration.

The metadata store is the truth, so it changes first: a topic's logs are
created after it is in the metadata, and deleted after it is out of it. A
crash in between leaves directories that the next start-up creates (missing
partitions) or deletes (a directory whose partition.metadata topic id the
store doesn't know).
"""
from __future__ import annotations

import logging
import os
import signal

from ..config import BrokerConfig, validate_topic_configs
from ..protocol.errors import ErrorCode, KafkaError
from .assignment import assign_replicas_to_brokers, new_partitions_assignment
from .metadata import MetadataStore, TopicMeta, is_internal, validate_topic_name

log = logging.getLogger(__name__)

# Partition logs created per worker thread call: a topic may have thousands,
# and the topic may be deleted meanwhile.
_LOGS_PER_TURN = 64
# Kafka's controller writes at most this many metadata records per request
# (QuorumController.MAX_RECORDS_PER_USER_OP): more partitions than that in one
# go is refused, rather than planned (a count of 2**31 would exhaust memory).
MAX_RECORDS_PER_USER_OP = 10000


def crash_point(name: str) -> None:
    """Test-only fault point: with KAFKA_COMPAT_CRASH_AT=<name> the broker
    process dies here as kill -9 would kill it, so a test can check what a
    crash at each step of a change leaves. Unset (as outside tests) it does
    nothing."""
    if os.environ.get("KAFKA_COMPAT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def start_leader_epoch(log, epoch: int) -> None:
    """A single broker leads its logs from the start: like Kafka's makeLeader,
    its epoch starts at the log end of a log that has no epoch yet, so
    OffsetForLeaderEpoch and ListOffsets answer it for an empty log too."""
    if log.latest_epoch is None:
        log.assign_epoch_start_offset(epoch, log.log_end_offset)


def _collision_key(name: str) -> str:
    return name.replace(".", "_")


class TopicManager:
    def __init__(self, config: BrokerConfig, metadata: MetadataStore, logs):
        self.config = config
        self.metadata = metadata
        self.logs = logs
        self._effective: dict[str, dict] = {}

    # -- reading -----------------------------------------------------------
    def get(self, name: str) -> TopicMeta | None:
        return self.metadata.topics().get(name)

    def effective_config(self, name: str) -> dict:
        """Topic-level config values in force: broker defaults overlaid with the
        topic's overrides (parsed)."""
        cached = self._effective.get(name)
        if cached is None:
            cached = self.config.effective_topic_config(self.metadata.topics()[name].configs)
            self._effective[name] = cached
        return cached

    def partition_log(self, topic: str, partition: int):
        return self.logs.get(topic, partition)

    # -- checks ------------------------------------------------------------
    def _check_new_name(self, name: str) -> None:
        validate_topic_name(name)
        if name in self.metadata.topics():
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        key = _collision_key(name)
        for existing in self.metadata.topics():
            if _collision_key(existing) == key:
                raise KafkaError(
                    ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' collides with existing topic: {existing}"
                )

    def _live_brokers(self) -> list:
        return sorted(self.metadata.brokers(), key=lambda b: b.node_id)

    def _assign(self, num_partitions: int, replication_factor: int) -> list[list[int]]:
        """Kafka's replica assignment over the live brokers (rack-aware when
        they all have racks), leader first."""
        if num_partitions >= MAX_RECORDS_PER_USER_OP:
            raise KafkaError(ErrorCode.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
        return list(assign_replicas_to_brokers(self._live_brokers(), num_partitions, replication_factor).values())

    def _check_assignment(self, replicas: list[list[int]]) -> None:
        known = {b.node_id for b in self.metadata.brokers()}
        sizes = {len(r) for r in replicas}
        if len(sizes) > 1:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "All partitions should have the same number of replicas")
        for r in replicas:
            if not r:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Replica assignment must not be empty")
            if len(set(r)) != len(r):
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Duplicate brokers not allowed in replica assignment: {', '.join(map(str, r))}")
            unknown = [b for b in r if b not in known]
            if unknown:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Unknown broker(s) in replica assignment: {', '.join(map(str, unknown))}.")

    # -- changing ----------------------------------------------------------
    def plan_create(
        self, name: str, num_partitions: int, replication_factor: int, assignments: dict[int, list[int]], configs: dict[str, str | None]
    ) -> tuple[list[list[int]], dict]:
        """Every check CreateTopics makes; returns (replicas, parsed configs)."""
        self._check_new_name(name)
        if assignments:
            if num_partitions != -1 or replication_factor != -1:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                )
            if sorted(assignments) != list(range(len(assignments))):
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Partitions should be a consecutive 0-based integer sequence")
            replicas = [assignments[p] for p in range(len(assignments))]
            self._check_assignment(replicas)
        else:
            if num_partitions == -1:
                num_partitions = self.config.num_partitions
            if replication_factor == -1:
                replication_factor = self.config.default_replication_factor
            if num_partitions <= 0:
                raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
            if replication_factor <= 0:
                raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
            replicas = self._assign(num_partitions, replication_factor)
        parsed = validate_topic_configs(configs, self.config)
        return replicas, parsed

    async def create(self, name: str, replicas: list[list[int]], configs: dict[str, str | None]) -> TopicMeta:
        overrides = {k: v for k, v in configs.items() if v is not None}
        meta = await self.metadata.create_topic(name, replicas, overrides)
        self._effective.pop(name, None)
        if self.metadata.local_logs:
            await self._create_logs(meta, range(meta.partitions))
        log.info("created topic %s with %d partition(s)", name, meta.partitions)
        return meta

    def _still_exists(self, meta: TopicMeta) -> bool:
        """False once the topic was deleted (or deleted and made anew) while we awaited."""
        return self.metadata.topic_by_id(meta.topic_id) is meta

    async def _create_logs(self, meta: TopicMeta, partitions: range) -> None:
        for start in range(partitions.start, partitions.stop, _LOGS_PER_TURN):
            if not self._still_exists(meta):
                return
            chunk = range(start, min(start + _LOGS_PER_TURN, partitions.stop))
            for created in await self.logs.create(meta.name, meta.topic_id, chunk, self.effective_config(meta.name)):
                start_leader_epoch(created, self.metadata.leader_epoch(meta.name, created.partition))

    async def auto_create(self, name: str) -> TopicMeta:
        replicas, _ = self.plan_create(name, -1, -1, {}, {})
        return await self.create(name, replicas, {})

    async def delete(self, name: str) -> None:
        if not self.config.delete_topic_enable:
            raise KafkaError(ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
        if not self.metadata.local_logs:  # the controller has every replica deleted
            await self.metadata.delete_topic(name)
            self._effective.pop(name, None)
            log.info("deleted topic %s", name)
            return
        doomed = self.logs.detach(name)  # no more reads or appends
        self._effective.pop(name, None)
        crash_point("delete-topic:logs-detached")
        await self.metadata.delete_topic(name)
        crash_point("delete-topic:metadata-written")
        for i, partition_log in enumerate(doomed):
            await self.logs.delete([partition_log])
            if i == 0:
                crash_point("delete-topic:first-dir-renamed")
        log.info("deleted topic %s", name)

    def plan_partitions(self, name: str, count: int, assignments: list[list[int]] | None) -> list[list[int]]:
        meta = self.get(name)
        if meta is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        if is_internal(name):
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Cannot increase the number of partitions of internal topic {name}.")
        current = meta.partitions
        if count < current:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"Topic currently has {current} partitions, which is higher than the requested {count}.",
            )
        if count == current:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partitions.")
        added = count - current
        if assignments is not None:
            if len(assignments) != added:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Increasing the number of partitions by {added} but {len(assignments)} assignments provided.",
                )
            self._check_assignment(assignments)
            return [list(a) for a in assignments]
        if added >= MAX_RECORDS_PER_USER_OP:
            raise KafkaError(ErrorCode.POLICY_VIOLATION, "Unable to perform excessively large batch operation.")
        return list(new_partitions_assignment(self._live_brokers(), meta.replicas, count).values())

    async def alter_configs(self, name: str, overrides: dict[str, str]) -> None:
        """Replace the topic's config overrides (validated by the caller); its
        logs use them from the next append, roll or retention pass on."""
        meta = self.get(name)
        await self.metadata.set_topic_configs(name, overrides)
        if self._still_exists(meta):
            self.config_changed(name)
        log.info("topic %s now has config overrides %s", name, overrides)

    def config_changed(self, name: str) -> None:
        """The topic's overrides changed (here, or on another broker of the
        cluster): its logs use them from the next append, roll or retention
        pass on."""
        self._effective.pop(name, None)
        if self.get(name) is not None:
            self.logs.update_config(name, self.effective_config(name))

    async def add_partitions(self, name: str, new_replicas: list[list[int]]) -> None:
        meta = self.get(name)
        start = meta.partitions
        await self.metadata.add_partitions(name, new_replicas)
        if self.metadata.local_logs:
            await self._create_logs(meta, range(start, start + len(new_replicas)))
        log.info("topic %s now has %d partitions", name, start + len(new_replicas))
