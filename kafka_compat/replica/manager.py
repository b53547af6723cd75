"""The partitions this broker hosts, and what it is for each: leader or
follower, at which leader epoch (Kafka's ReplicaManager and Partition).

Every handler that reads or writes a partition's data asks here for the log,
so that NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR and fenced leader epochs
are decided in one place, in Kafka's order of checks. A single broker leads
every partition its metadata has, at the metadata's epoch; in a cluster the
controller's LeaderAndIsr requests say who leads, and StopReplica takes
partitions away.

As a partition's leader, this broker keeps its ISR and high watermark as
Kafka's Partition does:
- each follower's fetch offset is its log end offset; a follower is caught
  up while it has fetched up to our log end within replica.lag.time.max.ms;
- a follower outside the ISR whose log end has reached the high watermark
  and this leader epoch's start joins the ISR; an ISR follower no longer
  caught up leaves it (checked every replica.lag.time.max.ms / 2). Either is
  an AlterPartition to the controller, one at a time per partition; until
  it is answered the partition's "maximal" ISR counts both the old and the
  new members;
- the high watermark is the smallest log end offset in the maximal ISR, and
  never goes back. With the leader alone in it, it follows the log end.
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from ..protocol.errors import ErrorCode, KafkaError
from .alter_partition import AlterPartitionItem

log = logging.getLogger(__name__)

NO_EPOCH = -1
# A refused ISR change (e.g. a follower the controller doesn't see live yet) is
# not tried again for this long: followers fetch many times a second.
ISR_RETRY_BACKOFF_S = 0.2
# StopReplica's leader epoch for a partition whose topic is being deleted.
EPOCH_DURING_DELETE = -2


@dataclass
class FollowerState:
    """What a leader knows of one follower (Kafka's Replica)."""

    log_end_offset: int = -1  # unknown until its first fetch
    last_caught_up: float = -math.inf  # (trio clock) when it last had our whole log
    last_fetch_leader_end: int = -1
    last_fetch_time: float = -math.inf

    def fetched(self, fetch_offset: int, leader_end: int, now: float) -> None:
        """Kafka's Replica.updateFetchState: a fetch from our log end means
        caught up now; one from where our log ended at its previous fetch,
        caught up as of that fetch."""
        if fetch_offset >= leader_end:
            self.last_caught_up = max(self.last_caught_up, now)
        elif fetch_offset >= self.last_fetch_leader_end:
            self.last_caught_up = max(self.last_caught_up, self.last_fetch_time)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_end = leader_end
        self.last_fetch_time = now

    def caught_up(self, leader_end: int, now: float, lag_max_s: float) -> bool:
        return self.log_end_offset == leader_end or now - self.last_caught_up <= lag_max_s


@dataclass
class PartitionState:
    """What the controller last said of a partition (LeaderAndIsr), and, as
    its leader, what this broker knows of the followers."""

    leader: int
    leader_epoch: int
    isr: list[int]
    replicas: list[int]
    partition_epoch: int = 0
    topic_id: bytes | None = None
    # As leader: the followers, where this leader epoch began, and the ISR of
    # an AlterPartition awaiting the controller's answer.
    followers: dict[int, FollowerState] = field(default_factory=dict)
    epoch_start_offset: int = 0
    pending_isr: list[int] | None = None
    # After a refused ISR change, none is tried again until then (trio clock).
    isr_retry_at: float = -math.inf

    def maximal_isr(self) -> list[int]:
        if self.pending_isr is None:
            return self.isr
        return self.isr + [b for b in self.pending_isr if b not in self.isr]


class ReplicaManager:
    def __init__(self, broker_id: int, logs, metadata, *, single_broker: bool, fetchers=None,
                 alter_partition=None, broker_alive: Callable[[int], bool] = lambda broker_id: True,
                 on_change: Callable[[str, int], None] = lambda topic, partition: None,
                 on_high_watermark: Callable[[str, int, int], None] | None = None,
                 replica_lag_time_max_ms: int = 30000):
        self.broker_id = broker_id
        self.logs = logs
        self.metadata = metadata
        self.single_broker = single_broker
        self.fetchers = fetchers  # the ReplicaFetcherManager of a cluster's broker
        self.alter_partition = alter_partition  # its AlterPartitionManager
        self.broker_alive = broker_alive  # whether the metadata cache has a broker live
        # Called when a partition's ISR or leadership changes, and when its
        # high watermark moves, with where to (then only the requests that
        # wait for it look again: consumers' fetches, and acks=all produces
        # whose appends it now covers; not followers').
        self.on_change = on_change
        self.on_high_watermark = on_high_watermark or (lambda topic, partition, offset: on_change(topic, partition))
        self.lag_max_s = replica_lag_time_max_ms / 1000
        self.states: dict[tuple[str, int], PartitionState] = {}
        # A single broker's states, read from its metadata, as of which
        # metadata generation (a produce asks for one several times).
        self._metadata_states: dict[tuple[str, int], PartitionState] = {}
        self._metadata_states_generation = -1
        # The newest controller epoch seen: requests of older controllers are
        # refused (STALE_CONTROLLER_EPOCH).
        self.controller_epoch = 0

    def state(self, topic: str, partition: int) -> PartitionState | None:
        if self.single_broker:
            return self._metadata_state(topic, partition)
        return self.states.get((topic, partition))

    def _metadata_state(self, topic: str, partition: int) -> PartitionState | None:
        """A single broker's state of a partition: what its metadata says,
        kept until the metadata changes."""
        metadata = self.metadata
        if self._metadata_states_generation != metadata.generation:
            self._metadata_states.clear()
            self._metadata_states_generation = metadata.generation
        key = (topic, partition)
        state = self._metadata_states.get(key)
        if state is None and metadata.has_partition(topic, partition):
            state = self._metadata_states[key] = PartitionState(
                metadata.leader(topic, partition), metadata.leader_epoch(topic, partition),
                metadata.isr(topic, partition), metadata.topics()[topic].replicas[partition])
        return state

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

    def replication_status(self, topic: str, partition: int, log, epoch: int, required_offset: int,
                           min_insync_replicas: int) -> ErrorCode | None:
        """Kafka's checkEnoughReplicasReachOffset for an acks=all append that
        ended at ``required_offset`` under leader epoch ``epoch``: None while
        the high watermark is below it; NONE once it is reached with at least
        min.insync.replicas in the ISR, else NOT_ENOUGH_REPLICAS_AFTER_APPEND;
        NOT_LEADER_OR_FOLLOWER once this broker no longer leads the partition
        or its log no longer holds the appended batch (another leader's
        records replaced it)."""
        state = self.state(topic, partition)
        if (state is None or state.leader != self.broker_id or self.logs.get(topic, partition) is not log
                or log.offline or log.log_end_offset < required_offset
                or log.epoch_for_offset(required_offset - 1) != epoch):
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if log.high_watermark < required_offset:
            return None
        if len(state.isr) < min_insync_replicas:
            return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return ErrorCode.NONE

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

    # -- as leader: followers, the ISR and the high watermark -----------------------
    def follower_fetched(self, topic: str, partition: int, state: PartitionState, replica: int,
                         fetch_offset: int, partition_log) -> None:
        """A follower fetched from ``fetch_offset`` (its log end), which this
        broker's log (ending at the time of the read) answered. (A single
        broker has no followers: nothing to track.)"""
        if self.single_broker:
            return
        follower = state.followers.get(replica)
        if follower is None:
            follower = state.followers[replica] = FollowerState()
        now = trio.current_time()
        follower.fetched(fetch_offset, partition_log.log_end_offset, now)
        if (state.pending_isr is None and now >= state.isr_retry_at and replica not in state.isr
                and fetch_offset >= partition_log.high_watermark and fetch_offset >= state.epoch_start_offset
                and self.broker_alive(replica)):
            log_isr_change("Expanding", topic, partition, state, state.isr + [replica], partition_log, [replica])
            self._submit_isr((topic, partition), state, state.isr + [replica], partition_log)
        self._maybe_increment_high_watermark(topic, partition, state, partition_log)

    def _maybe_increment_high_watermark(self, topic: str, partition: int, state: PartitionState, partition_log) -> None:
        """Kafka's maybeIncrementLeaderHW: the smallest log end offset in the
        maximal ISR (a follower that hasn't fetched under this leader counts
        as unknown, holding it back)."""
        if partition_log.high_watermark_follows_leo:
            return
        end = partition_log.log_end_offset
        for replica in state.maximal_isr():
            if replica != self.broker_id:
                follower = state.followers.get(replica)
                end = min(end, -1 if follower is None else follower.log_end_offset)
        if end > partition_log.high_watermark:
            partition_log.high_watermark = end
            self.on_high_watermark(topic, partition, partition_log.high_watermark)

    def _follow_log_end_if_alone(self, topic: str, partition: int, state: PartitionState, partition_log) -> None:
        """With this leader alone in the maximal ISR the high watermark is its
        log end, kept so by every append; otherwise it is moved as followers
        fetch."""
        alone = state.maximal_isr() == [self.broker_id]
        partition_log.high_watermark_follows_leo = alone
        if alone and partition_log.high_watermark < partition_log.log_end_offset:
            partition_log.high_watermark = partition_log.log_end_offset
            self.on_high_watermark(topic, partition, partition_log.high_watermark)

    def _submit_isr(self, key: tuple[str, int], state: PartitionState, new_isr: list[int], partition_log) -> None:
        state.pending_isr = new_isr
        self._follow_log_end_if_alone(*key, state, partition_log)

        def done(error: ErrorCode, leader_epoch: int, isr: list[int], partition_epoch: int) -> None:
            self._isr_altered(key, state, new_isr, error, leader_epoch, isr, partition_epoch)

        self.alter_partition.submit(AlterPartitionItem(
            state.topic_id, key[1], state.leader_epoch, new_isr, state.partition_epoch, done))

    def _isr_altered(self, key, state: PartitionState, wanted: list[int], error: ErrorCode, leader_epoch: int,
                     isr: list[int], partition_epoch: int) -> None:
        """The controller's answer to an AlterPartition (Kafka's
        handleAlterPartitionUpdate / handleAlterPartitionError): a newer state
        is taken on; any answer ends the pending change (a refused one left
        the ISR as it was)."""
        if self.states.get(key) is not state or state.pending_isr is not wanted:
            return  # superseded (LeaderAndIsr since) or answered already
        state.pending_isr = None
        if error != ErrorCode.NONE:
            log.info("broker %d: AlterPartition of %s-%d to ISR %s failed: %s", self.broker_id, *key, wanted,
                     error.name)
            state.isr_retry_at = trio.current_time() + ISR_RETRY_BACKOFF_S
        elif leader_epoch == state.leader_epoch and partition_epoch >= state.partition_epoch:
            state.isr, state.partition_epoch = isr, partition_epoch
            log.info("broker %d: ISR of %s-%d updated to %s and partition epoch to %d", self.broker_id, *key,
                     ",".join(map(str, isr)), partition_epoch)
        partition_log = self.logs.get(*key)
        if partition_log is not None and state.leader == self.broker_id:
            self._follow_log_end_if_alone(*key, state, partition_log)
            self._maybe_increment_high_watermark(*key, state, partition_log)
        self.on_change(*key)

    async def run(self) -> None:
        """Every replica.lag.time.max.ms / 2, the ISR shrink check (Kafka's
        maybeShrinkIsr): ISR followers not caught up within
        replica.lag.time.max.ms leave the ISR."""
        while True:
            await trio.sleep(self.lag_max_s / 2)
            self.shrink_isrs()

    def shrink_isrs(self) -> None:
        now = trio.current_time()
        for key, state in self.states.items():
            if (state.leader != self.broker_id or state.pending_isr is not None or len(state.isr) <= 1
                    or now < state.isr_retry_at):
                continue
            partition_log = self.logs.get(*key)
            if partition_log is None or partition_log.offline:
                continue
            end = partition_log.log_end_offset
            out = [b for b in state.isr if b != self.broker_id
                   and not state.followers.get(b, FollowerState()).caught_up(end, now, self.lag_max_s)]
            if out:
                new_isr = [b for b in state.isr if b not in out]
                log_isr_change("Shrinking", *key, state, new_isr, partition_log, out)
                self._submit_isr(key, state, new_isr, partition_log)

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
            elif current is not None and state.leader_epoch <= current.leader_epoch:
                # (an equal epoch too, as Kafka in ZooKeeper mode: nothing changed)
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
            state.topic_id = topic_id
            previous = self.states.get((topic, partition))
            self.states[(topic, partition)] = state
            if state.leader == self.broker_id:
                self._make_leader(topic, partition, state, previous, log)
            else:
                log.high_watermark_follows_leo = False
                if state.leader >= 0:
                    follow[(topic, partition)] = (state.leader, topic_id, state.leader_epoch)
            errors[(topic, partition)] = ErrorCode.NONE
            self.on_change(topic, partition)
        await self.fetchers.add(follow)
        return errors

    def _make_leader(self, topic: str, partition: int, state: PartitionState, previous: PartitionState | None,
                     partition_log) -> None:
        """Kafka's Partition.makeLeader at a new leader epoch: the epoch starts
        at our log end (so followers with newer data than ours find where to
        truncate); the ISR's followers count as caught up as of now, the
        others not; a follower's log end stays known only if we led before.
        The high watermark stays where it was until the ISR's followers have
        fetched (or follows the log end if the ISR is this leader alone)."""
        state.epoch_start_offset = partition_log.log_end_offset
        partition_log.assign_epoch_start_offset(state.leader_epoch, state.epoch_start_offset)
        now = trio.current_time()
        led = previous is not None and previous.leader == self.broker_id
        for replica in state.replicas:
            if replica != self.broker_id:
                known = previous.followers.get(replica) if led else None
                state.followers[replica] = FollowerState(
                    log_end_offset=-1 if known is None else known.log_end_offset,
                    last_caught_up=now if replica in state.isr else -math.inf,
                    last_fetch_leader_end=state.epoch_start_offset, last_fetch_time=now)
        self._follow_log_end_if_alone(topic, partition, state, partition_log)
        self._maybe_increment_high_watermark(topic, partition, state, partition_log)

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
            self.on_change(topic, partition)
            if delete:
                doomed += self.logs.detach(topic, [partition])
            errors[(topic, partition)] = ErrorCode.NONE
        if doomed:
            await self.logs.delete(doomed)
        return errors


def log_isr_change(change: str, topic: str, partition: int, state: PartitionState, new_isr: list[int],
                   partition_log, replicas: list[int]) -> None:
    """Kafka's "Shrinking ISR from ... to ..." / "Expanding ISR ..." line."""
    followers = ", ".join(
        f"(brokerId: {b}, endOffset: {state.followers[b].log_end_offset if b in state.followers else -1})"
        for b in replicas)
    log.info("[Partition %s-%d] %s ISR from %s to %s. Leader: (highWatermark: %d, endOffset: %d). Replicas: %s",
             topic, partition, change, ",".join(map(str, state.isr)), ",".join(map(str, new_isr)),
             partition_log.high_watermark, partition_log.log_end_offset, followers)
