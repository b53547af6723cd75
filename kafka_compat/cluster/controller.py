"""The active controller in ZooKeeper mode (Kafka's KafkaController): the one
broker that won /controller decides every partition's leader and ISR, writes
them to ZooKeeper and tells the brokers.

Everything it does is one event at a time, as Kafka's ControllerEventManager
runs them: ZooKeeper watches (brokers coming and going, new topics, new
partitions, topics to delete) only queue an event, and the event loop reads
ZooKeeper afresh and acts. Every partition state it writes is a conditional
write that also checks /controller_epoch's version, so a controller that lost
its election (a zombie) can no longer write anything. Brokers learn of
changes through LeaderAndIsr, UpdateMetadata and StopReplica, sent over one
BrokerChannel per live broker on the inter-broker listener.

Leaders are elected as Kafka's PartitionLeaderElectionAlgorithms do: a new
partition's first live replica (its live replicas all in the ISR); for an
offline partition the first replica in assignment order that is alive and
in the ISR (or, with
unclean.leader.election.enable, any live replica, the ISR becoming just it).
A partition with no such replica keeps its state and has no live leader:
brokers answer LEADER_NOT_AVAILABLE for it until one of its replicas returns.

Requests from outside the loop come in as events too, answered when they
have run: a broker's ControlledShutdown (leadership moves to the first other
live ISR member, the broker leaves the ISRs it follows, and it counts as
shutting down: no election picks it any more) and ElectLeaders (preferred:
the first assigned replica, if live and in the ISR; unclean: a partition
without a live leader takes any live replica). With auto.leader.rebalance.enable
a timer queues Kafka's leader imbalance check. A dead broker's replicas
leave the ISRs (new leader epochs), also when a new controller finds them
gone.

Leaders change their ISRs themselves with AlterPartition (followers joining
once caught up, leaving once lagging): the controller checks the leader and
partition epochs, writes the new ISR under the same leader epoch, and tells
every broker (UpdateMetadata).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import trio

from ..protocol.errors import ErrorCode, KafkaError
from . import zk_data
from .assignment import reassignment_error
from .broker_queue import BrokerQueue
from .channel import BrokerChannel
from .metadata import BrokerInfo
from .metadata_cache import LEADER_DURING_DELETE, SECURITY_PROTOCOL_IDS
from .zk_client import CheckOp, CreateOp, NoNodeError, NodeExistsError, SetDataOp, ZkClient

log = logging.getLogger(__name__)

LEADER_AND_ISR_VERSION = 7
UPDATE_METADATA_VERSION = 8
STOP_REPLICA_VERSION = 4
NO_LEADER = -1
EPOCH_DURING_DELETE = -2
UNKNOWN_BROKER_EPOCH = -1
# ElectLeaders' election types.
PREFERRED = 0
UNCLEAN = 1
# Kafka's first leader imbalance check comes this long after taking over.
FIRST_IMBALANCE_CHECK_S = 5


@dataclass
class LeaderIsr:
    """A partition's state znode, and that znode's version (the partition epoch)."""

    leader: int
    leader_epoch: int
    isr: list[int]
    controller_epoch: int
    zk_version: int


@dataclass
class LiveBroker:
    info: BrokerInfo
    epoch: int  # the czxid of its registration


class _Call:
    """A request answered by one controller event (Kafka's events with a callback)."""

    def __init__(self):
        self.done = trio.Event()
        self.value = None
        self.error: KafkaError | None = None


class Controller:
    def __init__(self, zk: ZkClient, broker_id: int, epoch: int, epoch_zk_version: int, *,
                 inter_broker_listener: str, unclean_leader_election: bool, auto_leader_rebalance: bool,
                 imbalance_check_interval_s: float, imbalance_per_broker_percentage: int,
                 request_timeout_s: float):
        self.zk = zk
        self.broker_id = broker_id
        self.epoch = epoch
        self.epoch_zk_version = epoch_zk_version
        self.inter_broker_listener = inter_broker_listener
        self.unclean_leader_election = unclean_leader_election
        self.auto_leader_rebalance = auto_leader_rebalance
        self.imbalance_check_interval_s = imbalance_check_interval_s
        self.imbalance_per_broker_percentage = imbalance_per_broker_percentage
        self.request_timeout_s = request_timeout_s  # controller.socket.timeout.ms
        self.brokers: dict[int, LiveBroker] = {}
        # Brokers in controlled shutdown: alive, but no election picks them.
        self.shutting_down: set[int] = set()
        self.assignments: dict[str, list[list[int]]] = {}
        self.topic_ids: dict[str, bytes] = {}
        self.states: dict[tuple[str, int], LeaderIsr] = {}
        self.deleting: set[str] = set()
        # Partitions being reassigned: (adding replicas, removing replicas).
        self.reassigning: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
        self._queues: dict[int, BrokerQueue] = {}
        self._events_in, self._events = trio.open_memory_channel(math.inf)
        self._nursery: trio.Nursery | None = None
        self._calls: set[_Call] = set()
        self._stopped = False

    # -- the event loop --------------------------------------------------------
    async def run(self) -> None:
        """Take charge (Kafka's onControllerFailover), then handle events until
        cancelled (the election was lost or the broker stops)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self._failover()
                if self.auto_leader_rebalance:
                    nursery.start_soon(self._schedule_imbalance_check, FIRST_IMBALANCE_CHECK_S)
                async for event in self._events:
                    await event()
            finally:
                self._stopped = True
                for call in self._calls:
                    call.error = KafkaError(ErrorCode.NOT_CONTROLLER, "Controller moved to another broker.")
                    call.done.set()
                for queue in self._queues.values():
                    with trio.CancelScope(shield=True):
                        await queue.aclose()
                nursery.cancel_scope.cancel()

    async def _call(self, handler, *args):
        """Run ``handler(*args)`` as one event and return its result (its
        KafkaError raised here); NOT_CONTROLLER if this controller stops
        first (Kafka's ControllerMovedException)."""
        if self._stopped:
            raise KafkaError(ErrorCode.NOT_CONTROLLER, "Controller moved to another broker.")
        call = _Call()

        async def event():
            try:
                call.value = await handler(*args)
            except KafkaError as e:
                call.error = e
            call.done.set()

        self._calls.add(call)
        try:
            self._events_in.send_nowait(event)
            await call.done.wait()
        finally:
            self._calls.discard(call)
        if call.error is not None:
            raise call.error
        return call.value

    def _queue(self, handler):
        """A watch callback that queues ``handler`` (watches run on the trio loop)."""
        return lambda _event: self._events_in.send_nowait(handler)

    async def _failover(self) -> None:
        log.info("broker %d is the controller at epoch %d", self.broker_id, self.epoch)
        await self._read_brokers()
        await self._read_topics()
        await self._read_partition_states(list(self.assignments))
        await self._elect_leaders(self._partitions())
        # Replicas on brokers that are gone leave the ISRs (Kafka's replica
        # state machine starting up moves them to OfflineReplica).
        dead = {b for t in self.assignments for replicas in self.assignments[t] for b in replicas
                if b not in self.brokers}
        await self._take_offline(dead, elected=[])
        await self._send_update_metadata(self.brokers, self._partitions())
        await self._send_leader_and_isr(self._partitions())
        for tp in list(self.reassigning):  # (Kafka's maybeResumeReassignments)
            await self._maybe_complete_reassignment(tp)
        await self._delete_topics()

    # -- reading ZooKeeper (each read re-arms its watch) --------------------------
    async def _read_brokers(self) -> tuple[set[int], set[int]]:
        """Re-read the live brokers; (new ids, dead ids), including a broker that
        re-registered under a new epoch in both."""
        ids = await self.zk.get_children(zk_data.BROKER_IDS, watch=self._queue(self._on_broker_change))
        fresh: dict[int, LiveBroker] = {}
        for child in ids:
            try:
                data, stat = await self.zk.get(zk_data.broker_path(int(child)))
            except NoNodeError:
                continue
            fresh[int(child)] = LiveBroker(zk_data.broker_info_of(zk_data.decode_broker(int(child), data)), stat.czxid)
        old = self.brokers
        bounced = {b for b in fresh.keys() & old.keys() if fresh[b].epoch != old[b].epoch}
        new = (fresh.keys() - old.keys()) | bounced
        dead = (old.keys() - fresh.keys()) | bounced
        self.brokers = fresh
        self.shutting_down -= dead
        return new, dead

    async def _read_topics(self) -> set[str]:
        """Re-read the topic list; the new topics (their assignments read)."""
        names = set(await self.zk.get_children(zk_data.TOPICS, watch=self._queue(self._on_topic_change)))
        new = names - self.assignments.keys()
        async with trio.open_nursery() as nursery:
            for name in new:
                nursery.start_soon(self._read_assignment, name)
        for gone in self.assignments.keys() - names:
            self._forget_topic(gone)
        return new

    async def _read_assignment(self, name: str) -> list[int]:
        """Re-read a topic's assignment; the partitions it gained."""
        try:
            data, _ = await self.zk.get(zk_data.topic_path(name),
                                        watch=self._queue(lambda: self._on_partition_change(name)))
        except NoNodeError:
            return []
        topic = zk_data.decode_topic(data)
        assignment = [topic.partitions[p] for p in range(len(topic.partitions))]
        old = self.assignments.get(name, [])
        self.assignments[name] = assignment
        self.topic_ids[name] = topic.topic_id
        for p in range(len(assignment)):
            adding, removing = topic.adding_replicas.get(p, []), topic.removing_replicas.get(p, [])
            if adding or removing:
                self.reassigning[(name, p)] = (adding, removing)
            else:
                self.reassigning.pop((name, p), None)
        return list(range(len(old), len(assignment)))

    async def _read_partition_states(self, topics) -> None:
        """Read the state of every partition of ``topics``, all the reads in
        flight at once (as Kafka's controller sends its batched requests)."""
        async def read(tp: tuple[str, int]) -> None:
            try:
                data, stat = await self.zk.get(zk_data.partition_state_path(*tp))
            except NoNodeError:
                return  # a new partition: initialised by the election
            state = zk_data.decode_partition_state(data)
            if state is not None:
                self.states[tp] = LeaderIsr(
                    state.leader, state.leader_epoch, list(state.isr), state.controller_epoch, stat.version)

        async with trio.open_nursery() as nursery:
            for topic in topics:
                for partition in range(len(self.assignments[topic])):
                    nursery.start_soon(read, (topic, partition))

    def _forget_topic(self, topic: str) -> None:
        for partition in range(len(self.assignments.pop(topic, []))):
            self.states.pop((topic, partition), None)
            self.reassigning.pop((topic, partition), None)
        self.topic_ids.pop(topic, None)
        self.deleting.discard(topic)

    def _partitions(self, topics=None) -> list[tuple[str, int]]:
        return [(t, p) for t in (self.assignments if topics is None else topics)
                if t not in self.deleting for p in range(len(self.assignments[t]))]

    # -- events ------------------------------------------------------------------
    async def _on_broker_change(self) -> None:
        new, dead = await self._read_brokers()
        for broker_id in dead:
            await self._drop_queue(broker_id)
        if dead:
            # A bounced broker (re-registered under a new epoch, e.g. restarted
            # after a crash) first fails, then starts, as in Kafka's
            # processBrokerChange: its partitions get new leader epochs.
            log.info("controller: brokers %s went away", sorted(dead))
            live = self.brokers
            self.brokers = {b: v for b, v in live.items() if b not in dead}
            try:
                await self._on_brokers_failed(dead)
            finally:
                self.brokers = live
        if new:
            log.info("controller: brokers %s joined", sorted(new))
            elected = await self._elect_leaders(self._partitions())
            # The newcomers learn the whole cluster, the others learn of them.
            await self._send_update_metadata(self.brokers, self._partitions())
            await self._send_leader_and_isr(elected)
            theirs = [tp for tp in self._partitions()
                      if tp not in elected and new & set(self.assignments[tp[0]][tp[1]])]
            await self._send_leader_and_isr(theirs, only=new)

    async def _on_brokers_failed(self, dead: set[int]) -> None:
        """Partitions led by a dead broker elect a new leader; then dead
        replicas leave the ISRs (the last member stays) and a dead leader
        that nobody could replace becomes none (Kafka's onReplicasBecomeOffline:
        OfflinePartition, then OfflineReplica)."""
        elected = await self._elect_leaders(self._partitions())
        changed = elected + await self._take_offline(dead, elected)
        await self._send_update_metadata(self.brokers, self._partitions())
        await self._send_leader_and_isr(changed)

    async def _take_offline(self, dead: set[int], elected: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Writes that ``dead`` brokers' replicas leave the ISRs (the last
        member stays) and that a dead leader nobody could replace is none;
        the partitions changed (but for those just ``elected``)."""
        offline = {}
        for tp in self._partitions():
            state = self.states.get(tp)
            if state is None or tp in elected or (state.leader not in dead and not dead & set(state.isr)):
                continue
            leader = NO_LEADER if state.leader in dead else state.leader
            isr = [b for b in state.isr if b not in dead] or state.isr[-1:]
            if (leader, isr) != (state.leader, state.isr):
                offline[tp] = (leader, isr)
        await self._write_states(offline)
        return list(offline)

    async def _on_topic_change(self) -> None:
        new = await self._read_topics()
        if new:
            partitions = self._partitions(new)
            await self._elect_leaders(partitions)
            await self._send_update_metadata(self.brokers, partitions)
            await self._send_leader_and_isr(partitions)

    async def _on_partition_change(self, topic: str) -> None:
        added = await self._read_assignment(topic)
        if added and topic not in self.deleting:
            partitions = [(topic, p) for p in added]
            await self._elect_leaders(partitions)
            await self._send_update_metadata(self.brokers, partitions)
            await self._send_leader_and_isr(partitions)

    async def _on_delete_topics(self) -> None:
        await self._delete_topics()

    # -- leader election ---------------------------------------------------------------
    def _live(self, broker_id: int) -> bool:
        """Alive and not in controlled shutdown (Kafka's isLiveBroker)."""
        return broker_id in self.brokers and broker_id not in self.shutting_down

    async def _elect_leaders(self, partitions) -> list[tuple[str, int]]:
        """Give every partition without a live leader one, where a replica can
        take it; the partitions that changed."""
        changes = {}
        for tp in partitions:
            state = self.states.get(tp)
            if state is None:
                live = [b for b in self.assignments[tp[0]][tp[1]] if self._live(b)]
                if not live:
                    continue  # stays new until one of its replicas is alive
                # Kafka's initial election: every live replica is in sync (all empty).
                changes[tp] = (live[0], live)
            elif state.leader not in self.brokers:
                choice = self._offline_leader(tp, state, allow_unclean=False)
                if choice is None and await self._unclean_allowed(tp[0]):
                    choice = self._offline_leader(tp, state, allow_unclean=True)
                if choice is not None:  # (else offline until an ISR member returns)
                    changes[tp] = choice
        await self._write_states(changes)
        return list(changes)

    async def _unclean_allowed(self, topic: str) -> bool:
        """unclean.leader.election.enable for ``topic``: its override in
        /config/topics, read afresh at each election as Kafka's controller
        does, else the broker's."""
        try:
            data, _ = await self.zk.get(zk_data.topic_config_path(topic))
        except NoNodeError:
            data = None
        value = zk_data.decode_config(data).get("unclean.leader.election.enable")
        return self.unclean_leader_election if value is None else value.strip().lower() == "true"

    async def enable_unclean_election(self, topic: str) -> None:
        """The topic's config now allows unclean elections: its partitions
        without a live leader get one if a replica is live (Kafka's
        TopicUncleanLeaderElectionEnable event)."""
        await self._call(self._unclean_election_for, topic)

    async def _unclean_election_for(self, topic: str) -> None:
        if topic in self.assignments and topic not in self.deleting:
            elected = await self._elect_leaders(self._partitions([topic]))
            if elected:
                await self._send_update_metadata(self.brokers, elected)
                await self._send_leader_and_isr(elected)

    def _offline_leader(self, tp, state: LeaderIsr, allow_unclean: bool) -> tuple[int, list[int]] | None:
        """Kafka's offline partition election: (leader, ISR) with the first
        replica in assignment order that is live and in the ISR (the ISR keeps
        its live members); else, if ``allow_unclean``, the first live replica,
        alone in the ISR; else None."""
        live = [b for b in self.assignments[tp[0]][tp[1]] if self._live(b)]
        for candidate in live:
            if candidate in state.isr:
                return candidate, [b for b in state.isr if self._live(b)]
        if live and allow_unclean:
            log.warning("controller: unclean election of %d for %s-%d (data may be lost)", live[0], *tp)
            return live[0], [live[0]]
        return None

    def _preferred_leader(self, tp, state: LeaderIsr) -> tuple[int, list[int]] | None:
        """Kafka's preferred replica election: the first assigned replica, if
        it is live and in the ISR (which stays as it is)."""
        preferred = self.assignments[tp[0]][tp[1]][0]
        if self._live(preferred) and preferred in state.isr:
            return preferred, state.isr
        return None

    async def _elect(self, partitions, choose, wait: bool = False) -> list[tuple[str, int]]:
        """Write the (leader, ISR) that ``choose(tp, state)`` gives each
        partition (None: no eligible replica), then tell the brokers; the
        partitions elected."""
        changes = {}
        for tp in partitions:
            state = self.states.get(tp)
            choice = None if state is None else choose(tp, state)
            if choice is not None:
                changes[tp] = choice
        await self._write_states(changes)
        elected = list(changes)
        if elected:
            await self._send_update_metadata(self.brokers, elected, wait=wait)
            await self._send_leader_and_isr(elected, wait=wait)
        return elected

    # -- controlled shutdown, ElectLeaders, leader rebalancing ----------------------------
    async def controlled_shutdown(self, broker_id: int, broker_epoch: int) -> list[tuple[str, int]]:
        """A broker's ControlledShutdown, as an event: the partitions it still leads."""
        return await self._call(self._controlled_shutdown, broker_id, broker_epoch)

    async def elect_leaders(self, election_type: int, partitions) -> dict[tuple[str, int], tuple[ErrorCode, str | None]]:
        """An admin client's ElectLeaders, as an event: each partition's (error, message)."""
        return await self._call(self._elect_leaders_by_admin, election_type, partitions)

    async def _controlled_shutdown(self, broker_id: int, broker_epoch: int) -> list[tuple[str, int]]:
        """Kafka's doControlledShutdown: the broker counts as shutting down;
        each partition with other replicas that it leads moves to the first
        other live ISR member (the ISR losing it); it leaves the ISRs of the
        partitions it follows, which it stops (StopReplica without deletion).
        Returns the partitions with other replicas it still leads (no
        eligible replica). STALE_BROKER_EPOCH for an older registration's
        request."""
        live = self.brokers.get(broker_id)
        if live is None:
            raise KafkaError(ErrorCode.BROKER_NOT_AVAILABLE, f"Broker id {broker_id} does not exist.")
        if broker_epoch != UNKNOWN_BROKER_EPOCH and broker_epoch < live.epoch:
            raise KafkaError(ErrorCode.STALE_BROKER_EPOCH,
                             f"Received controlled shutdown request from an old broker epoch {broker_epoch} for "
                             f"broker {broker_id}. Current broker epoch is {live.epoch}.")
        log.info("controller: shutting down broker %d", broker_id)
        self.shutting_down.add(broker_id)
        acting = [tp for tp in self._partitions()
                  if tp in self.states and broker_id in self.assignments[tp[0]][tp[1]]
                  and len(self.assignments[tp[0]][tp[1]]) > 1]
        led = [tp for tp in acting if self.states[tp].leader == broker_id]
        followed = [tp for tp in acting if self.states[tp].leader != broker_id]

        def elsewhere(tp, state):
            for candidate in self.assignments[tp[0]][tp[1]]:
                if self._live(candidate) and candidate in state.isr:
                    return candidate, [b for b in state.isr if b not in self.shutting_down]
            return None

        await self._elect(led, elsewhere)
        await self._send_stop_replica(followed, delete=False, only={broker_id})
        shrinking = {tp: (self.states[tp].leader, [b for b in self.states[tp].isr if b != broker_id])
                     for tp in followed if broker_id in self.states[tp].isr and len(self.states[tp].isr) > 1}
        await self._write_states(shrinking)
        shrunk = list(shrinking)
        if shrunk:
            await self._send_update_metadata(self.brokers, shrunk)
            await self._send_leader_and_isr(shrunk, only=set(self.brokers) - {broker_id})
        return [tp for tp in led if self.states[tp].leader == broker_id]

    async def _elect_leaders_by_admin(self, election_type: int, partitions):
        """Kafka's processReplicaLeaderElection for an admin client's
        ElectLeaders: each partition's (error, message)."""
        results = {}
        electable = []
        for tp in partitions:
            topic, partition = tp
            if not 0 <= partition < len(self.assignments.get(topic, [])):
                results[tp] = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")
            elif topic in self.deleting:
                results[tp] = (ErrorCode.INVALID_TOPIC_EXCEPTION, "The topic is being deleted")
            elif self._needs_election(tp, election_type):
                electable.append(tp)
            else:
                results[tp] = (ErrorCode.ELECTION_NOT_NEEDED, None)
        if election_type == PREFERRED:
            choose, error, strategy = (self._preferred_leader, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                                       "PreferredReplicaPartitionLeaderElectionStrategy")
        else:
            choose, error, strategy = (lambda tp, state: self._offline_leader(tp, state, allow_unclean=True),
                                       ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                                       "OfflinePartitionLeaderElectionStrategy(true)")
        elected = set(await self._elect(electable, choose, wait=True))
        for tp in electable:
            results[tp] = (ErrorCode.NONE, None) if tp in elected else (
                error, f"Failed to elect leader for partition {tp[0]}-{tp[1]} under strategy {strategy}")
        return results

    def _needs_election(self, tp, election_type: int) -> bool:
        state = self.states.get(tp)
        leader = NO_LEADER if state is None else state.leader
        if election_type == PREFERRED:
            return leader != self.assignments[tp[0]][tp[1]][0]
        return leader == NO_LEADER or not self._live(leader)

    def topic_name(self, topic_id: bytes) -> str | None:
        for name, known in self.topic_ids.items():
            if known == topic_id:
                return name
        return None

    async def alter_partition(self, broker_id: int, broker_epoch: int, changes):
        """A leader's AlterPartition, as an event: ``changes`` is [(topic,
        partition, leader epoch, new ISR, partition epoch)]; returns each
        partition's (error, LeaderIsr or None)."""
        return await self._call(self._alter_partition, broker_id, broker_epoch, changes)

    async def _alter_partition(self, broker_id: int, broker_epoch: int, changes):
        """Kafka's tryProcessAlterPartition, in its order of checks: the
        leader's broker epoch (STALE_BROKER_EPOCH for the whole request), then
        per partition: unknown (UNKNOWN_TOPIC_OR_PARTITION); epochs newer than
        ours (NOT_CONTROLLER: we may be a zombie); an older leader epoch
        (FENCED_LEADER_EPOCH); the state asked for already written (answered
        as it is); an older partition epoch (INVALID_UPDATE_VERSION); an ISR
        member not live (INELIGIBLE_REPLICA). The rest are written (same
        leader epoch, partition epoch + 1) and every broker told
        (UpdateMetadata)."""
        live = self.brokers.get(broker_id)
        if live is None or live.epoch != broker_epoch:
            raise KafkaError(ErrorCode.STALE_BROKER_EPOCH)
        results: dict[tuple[str, int], tuple[ErrorCode, LeaderIsr | None]] = {}
        writes = {}
        for topic, partition, leader_epoch, isr, partition_epoch in changes:
            tp = (topic, partition)
            state = self.states.get(tp)
            if state is None or topic in self.deleting:
                results[tp] = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None)
            elif partition_epoch > state.zk_version or leader_epoch > state.leader_epoch:
                results[tp] = (ErrorCode.NOT_CONTROLLER, None)
            elif leader_epoch < state.leader_epoch:
                results[tp] = (ErrorCode.FENCED_LEADER_EPOCH, None)
            elif broker_id == state.leader and isr == state.isr:
                results[tp] = (ErrorCode.NONE, state)
            elif partition_epoch < state.zk_version:
                results[tp] = (ErrorCode.INVALID_UPDATE_VERSION, None)
            elif any(not self._live(b) for b in isr):
                log.info("controller: refusing AlterPartition from broker %d for %s-%d: ISR %s has brokers that "
                         "are not live", broker_id, topic, partition, isr)
                results[tp] = (ErrorCode.INELIGIBLE_REPLICA, None)
            else:
                writes[tp] = (broker_id, isr)
        await self._write_states(writes, new_leader_epoch=False)
        for tp in writes:
            results[tp] = (ErrorCode.NONE, self.states[tp])
        if writes:
            await self._send_update_metadata(self.brokers, list(writes))
        # Followers joining an ISR may complete a reassignment (after the
        # answer in Kafka; the leader's own state is not affected by it).
        for tp in writes:
            if tp in self.reassigning:
                self._events_in.send_nowait(lambda tp=tp: self._maybe_complete_reassignment(tp))
        return results

    async def _schedule_imbalance_check(self, delay: float) -> None:
        await trio.sleep(delay)
        self._events_in.send_nowait(self._check_leader_imbalance)

    async def _check_leader_imbalance(self) -> None:
        """Kafka's checkAndTriggerAutoLeaderRebalance: for each broker, the
        share of the partitions it is the preferred replica of that another
        broker leads; above leader.imbalance.per.broker.percentage, those whose
        preferred replica can lead get a preferred election. The next check
        comes leader.imbalance.check.interval.seconds after this one."""
        try:
            by_preferred: dict[int, list[tuple[str, int]]] = {}
            for tp in self._partitions():
                by_preferred.setdefault(self.assignments[tp[0]][tp[1]][0], []).append(tp)
            candidates = []
            for broker_id, partitions in by_preferred.items():
                elsewhere = [tp for tp in partitions if tp in self.states and self.states[tp].leader != broker_id]
                if len(elsewhere) / len(partitions) > self.imbalance_per_broker_percentage / 100:
                    candidates += [tp for tp in elsewhere if self._preferred_leader(tp, self.states[tp]) is not None]
            if candidates:
                log.info("controller: moving leadership of %d partitions back to their preferred replicas",
                         len(candidates))
                await self._elect(candidates, self._preferred_leader)
        finally:
            self._nursery.start_soon(self._schedule_imbalance_check, self.imbalance_check_interval_s)

    async def _write_states(self, changes: dict[tuple[str, int], tuple[int, list[int]]],
                            new_leader_epoch: bool = True) -> None:
        """Write each partition's new (leader, ISR), all the ZooKeeper requests
        in flight at once, as Kafka's controller sends its batched requests: a
        new topic's 1,000 partitions cost one round of pipelined writes, not
        1,000 round trips."""
        for topic in {topic for topic, partition in changes if (topic, partition) not in self.states}:
            await self.zk.ensure_path(zk_data.partitions_path(topic))
        async with trio.open_nursery() as nursery:
            for tp, (leader, isr) in changes.items():
                nursery.start_soon(self._write_state, tp, leader, isr, new_leader_epoch)

    async def _write_state(self, tp: tuple[str, int], leader: int, isr: list[int], new_leader_epoch: bool) -> None:
        """Write a partition's new leader and ISR (leader epoch + 1, unless a
        leader's ISR change keeps it), conditional on its znode's version and
        on /controller_epoch's (so a deposed controller cannot write)."""
        state = self.states.get(tp)
        epoch = 0 if state is None else state.leader_epoch + int(new_leader_epoch)
        data = zk_data.encode_partition_state(zk_data.PartitionState(leader, epoch, list(isr), self.epoch))
        path = zk_data.partition_state_path(*tp)
        check = CheckOp(zk_data.CONTROLLER_EPOCH, self.epoch_zk_version)
        if state is None:
            await self.zk.ensure_path(zk_data.partition_path(*tp))
            try:
                await self.zk.multi([check, CreateOp(path, data)])
                version = 0
            except NodeExistsError:  # written by an earlier controller meanwhile
                _, stat = await self.zk.get(path)
                results = await self.zk.multi([check, SetDataOp(path, data, stat.version)])
                version = results[1].version
        else:
            results = await self.zk.multi([check, SetDataOp(path, data, state.zk_version)])
            version = results[1].version
        self.states[tp] = LeaderIsr(leader, epoch, list(isr), self.epoch, version)

    # -- partition reassignment (KIP-455) ------------------------------------------------
    async def alter_reassignments(self, changes: dict[tuple[str, int], list[int] | None]):
        """An admin client's AlterPartitionReassignments, as an event: each
        partition's (error, message)."""
        return await self._call(self._alter_reassignments, changes)

    async def list_reassignments(self, partitions) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
        """ListPartitionReassignments, as an event: (replicas, adding, removing)
        of each partition (of ``partitions``, None: all) being reassigned."""
        async def listing():
            wanted = self.reassigning if partitions is None else [tp for tp in partitions if tp in self.reassigning]
            return {tp: (self.assignments[tp[0]][tp[1]], *self.reassigning[tp]) for tp in wanted}
        return await self._call(listing)

    def _origin(self, tp: tuple[str, int]) -> list[int]:
        """The replicas before the reassignment (none for an unknown partition)."""
        adding = self.reassigning.get(tp, ([], []))[0]
        replicas = self.assignments.get(tp[0], [])
        return [b for b in replicas[tp[1]] if b not in adding] if 0 <= tp[1] < len(replicas) else []

    def _target(self, tp: tuple[str, int]) -> list[int]:
        removing = self.reassigning.get(tp, ([], []))[1]
        return [b for b in self.assignments[tp[0]][tp[1]] if b not in removing]

    async def _alter_reassignments(self, changes):
        """Kafka's processApiPartitionReassignment: a target replica list
        starts (or replaces) a reassignment, None cancels one (back to the
        original replicas). The list is checked first (validateReplicas),
        then whether the partition exists."""
        results = {}
        for tp, target in changes.items():
            topic, partition = tp
            exists = topic not in self.deleting and 0 <= partition < len(self.assignments.get(topic, []))
            error = None if target is None else reassignment_error(
                list(target), [b for b in target if b not in self._origin(tp)],
                [b for b in self.brokers if self._live(b)])
            if error is not None:
                results[tp] = error
            elif target is None and tp not in self.reassigning:
                results[tp] = (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
            elif not exists:
                results[tp] = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")
            else:
                await self._reassign(tp, self._origin(tp) if target is None else list(target))
                results[tp] = (ErrorCode.NONE, None)
        return results

    async def _reassign(self, tp: tuple[str, int], target: list[int]) -> None:
        """Kafka's onPartitionReassignment, first part: the partition's
        replicas become target + original (the new ones added, the others to
        be removed, written to the topic znode), replicas no longer wanted
        stop, and every replica learns of it at a new leader epoch; the new
        replicas start fetching. Completes at once if the target is in sync."""
        origin = self._origin(tp)
        full = list(dict.fromkeys(target + origin))
        previous = self.assignments[tp[0]][tp[1]]
        adding, removing = [b for b in full if b not in origin], [b for b in full if b not in target]
        self.assignments[tp[0]][tp[1]] = full
        if adding or removing:
            self.reassigning[tp] = (adding, removing)
        else:
            self.reassigning.pop(tp, None)
        await self._write_assignment(tp[0])
        unneeded = [b for b in previous if b not in full]
        if unneeded:
            await self._stop_removed_replicas(tp, unneeded)
        log.info("controller: reassigning %s-%d to %s (adding %s, removing %s)", *tp, target, adding, removing)
        if tp in self.reassigning and not set(target) <= set(self.states[tp].isr):
            state = self.states[tp]
            await self._write_states({tp: (state.leader, state.isr)})
            await self._send_update_metadata(self.brokers, [tp])
            await self._send_leader_and_isr([tp])
        else:
            await self._complete_reassignment(tp)

    async def _maybe_complete_reassignment(self, tp: tuple[str, int]) -> None:
        state = self.states.get(tp)
        if tp in self.reassigning and state is not None and set(self._target(tp)) <= set(state.isr):
            log.info("controller: target replicas %s of %s-%d have caught up with the leader", self._target(tp), *tp)
            await self._complete_reassignment(tp)

    async def _complete_reassignment(self, tp: tuple[str, int]) -> None:
        """Kafka's onPartitionReassignment once the target replicas are all in
        the ISR: the assignment becomes the target; the leader stays if it is
        a live target replica, else the first live target replica in the ISR
        leads; the removed replicas leave the ISR (one new leader epoch for
        both) and delete their logs; then the znode and every broker's
        metadata."""
        target = self._target(tp)
        removing = self.reassigning.pop(tp, ([], []))[1]
        self.assignments[tp[0]][tp[1]] = target
        state = self.states[tp]
        leader = state.leader
        if leader not in target or not self._live(leader):
            leader = next((b for b in target if self._live(b) and b in state.isr), NO_LEADER)
        isr = [b for b in state.isr if b in target] or state.isr[-1:]
        await self._write_states({tp: (leader, isr)})
        await self._write_assignment(tp[0])
        await self._send_leader_and_isr([tp])
        if removing:
            await self._stop_removed_replicas(tp, removing)
        await self._send_update_metadata(self.brokers, [tp])
        log.info("controller: reassignment of %s-%d to %s completed", *tp, target)

    async def _stop_removed_replicas(self, tp: tuple[str, int], replicas: list[int]) -> None:
        """Replicas no longer assigned stop and delete their logs (Kafka's
        OfflineReplica, then ReplicaDeletionStarted)."""
        by_broker = {b: ("StopReplica", STOP_REPLICA_VERSION, {
            **self._common(b), "topic_states": [{"topic_name": tp[0], "partition_states": [
                {"partition_index": tp[1], "leader_epoch": self.states[tp].leader_epoch,
                 "delete_partition": True}]}]}) for b in replicas if b in self.brokers}
        await self._send_all(by_broker)

    async def _write_assignment(self, topic: str) -> None:
        """The topic znode with the current assignment and reassignments,
        conditional on /controller_epoch's version."""
        partitions = self.assignments[topic]
        reassigning = {p: self.reassigning[(topic, p)] for p in range(len(partitions)) if (topic, p) in self.reassigning}
        data = zk_data.encode_topic(zk_data.TopicAssignment(
            dict(enumerate(partitions)), self.topic_ids.get(topic),
            adding_replicas={p: r[0] for p, r in reassigning.items()},
            removing_replicas={p: r[1] for p, r in reassigning.items()}))
        await self.zk.multi([CheckOp(zk_data.CONTROLLER_EPOCH, self.epoch_zk_version),
                             SetDataOp(zk_data.topic_path(topic), data, -1)])

    # -- topic deletion ----------------------------------------------------------------
    async def _delete_topics(self) -> None:
        """Topics queued in /admin/delete_topics: every live replica deletes
        its log (StopReplica), their znodes go, then every broker forgets them
        (UpdateMetadata), so that once a DeleteTopics is answered (when the
        broker's cache no longer has the topic) the name can be created again
        (Kafka's TopicDeletionManager, without waiting for dead replicas: a
        broker that comes back deletes what the metadata no longer has)."""
        queued = await self.zk.get_children(zk_data.DELETE_TOPICS, watch=self._queue(self._on_delete_topics))
        for topic in queued:
            if topic not in self.assignments:
                await self._delete_znodes(topic)
                continue
            self.deleting.add(topic)
            partitions = [(topic, p) for p in range(len(self.assignments[topic]))]
            await self._send_stop_replica(partitions, delete=True, wait=True)
            await self._delete_znodes(topic)
            await self._send_update_metadata(self.brokers, partitions, deleting=True, wait=True)
            self._forget_topic(topic)
            log.info("controller: deleted topic %s", topic)

    async def _delete_znodes(self, topic: str) -> None:
        await self.zk.delete_recursive(zk_data.topic_path(topic))
        await self.zk.delete_recursive(zk_data.topic_config_path(topic))
        await self.zk.delete_recursive(zk_data.delete_topic_path(topic))

    # -- requests to brokers -------------------------------------------------------------
    def _queue_for(self, broker_id: int) -> BrokerQueue | None:
        queue = self._queues.get(broker_id)
        if queue is None:
            live = self.brokers.get(broker_id)
            endpoint = None if live is None else live.info.endpoint(self.inter_broker_listener)
            if endpoint is None:
                return None
            channel = BrokerChannel(endpoint.host, endpoint.port, self._nursery,
                                    client_id=f"controller-{self.broker_id}", request_timeout=self.request_timeout_s)
            queue = self._queues[broker_id] = BrokerQueue(broker_id, channel)
            self._nursery.start_soon(queue.run)
        return queue

    async def _drop_queue(self, broker_id: int) -> None:
        queue = self._queues.pop(broker_id, None)
        if queue is not None:
            await queue.aclose()

    async def _send_all(self, requests: dict[int, tuple[str, int, dict]], wait: bool = False) -> None:
        """Queue each broker its request; with ``wait``, return once every one
        is answered (or failed). Each broker's requests go out one at a time
        in the order queued, so a broker that doesn't answer (stopped, or
        dying: its registration's watch will tell) holds up only its own."""
        sent = []
        for broker_id, (api, version, body) in requests.items():
            queue = self._queue_for(broker_id)
            if queue is not None:
                sent.append(queue.put(api, version, body))
        if wait:
            for done in sent:
                await done.wait()

    def _common(self, broker_id: int) -> dict:
        return {"controller_id": self.broker_id, "is_kraft_controller": False, "controller_epoch": self.epoch,
                "broker_epoch": self.brokers[broker_id].epoch}

    def _partition_state(self, tp: tuple[str, int]) -> dict:
        state = self.states[tp]
        return {"partition_index": tp[1], "controller_epoch": state.controller_epoch, "leader": state.leader,
                "leader_epoch": state.leader_epoch, "isr": state.isr, "partition_epoch": state.zk_version,
                "zk_version": state.zk_version, "replicas": self.assignments[tp[0]][tp[1]],
                "adding_replicas": self.reassigning.get(tp, ([], []))[0],
                "removing_replicas": self.reassigning.get(tp, ([], []))[1], "is_new": False, "leader_recovery_state": 0,
                "offline_replicas": [b for b in self.assignments[tp[0]][tp[1]] if b not in self.brokers]}

    async def _send_leader_and_isr(self, partitions, only: set[int] | None = None, wait: bool = False) -> None:
        by_broker: dict[int, dict[str, list]] = {}
        for tp in partitions:
            if tp not in self.states:
                continue
            for replica in self.assignments[tp[0]][tp[1]]:
                if replica in self.brokers and (only is None or replica in only):
                    by_broker.setdefault(replica, {}).setdefault(tp[0], []).append(self._partition_state(tp))
        leaders = {self.states[tp].leader for tp in partitions if tp in self.states}
        await self._send_all({
            broker_id: ("LeaderAndIsr", LEADER_AND_ISR_VERSION, {
                **self._common(broker_id), "type": 0,
                "topic_states": [{"topic_name": t, "topic_id": self.topic_ids[t], "partition_states": states}
                                 for t, states in topics.items()],
                "live_leaders": [self._live_leader(b) for b in leaders if b in self.brokers]})
            for broker_id, topics in by_broker.items()}, wait)

    def _live_leader(self, broker_id: int) -> dict:
        endpoint = self.brokers[broker_id].info.endpoint(self.inter_broker_listener)
        return {"broker_id": broker_id, "host_name": endpoint.host if endpoint else "",
                "port": endpoint.port if endpoint else -1}

    async def _send_update_metadata(self, brokers, partitions, deleting: bool = False,
                                    wait: bool = False) -> None:
        topics: dict[str, list] = {}
        for tp in partitions:
            if tp not in self.states and not deleting:
                continue
            if deleting:
                state = {"partition_index": tp[1], "controller_epoch": self.epoch, "leader": LEADER_DURING_DELETE,
                         "leader_epoch": EPOCH_DURING_DELETE, "isr": [], "zk_version": 0,
                         "replicas": self.assignments[tp[0]][tp[1]], "offline_replicas": []}
            else:
                state = self._partition_state(tp)
            topics.setdefault(tp[0], []).append(state)
        live = [{"id": b.info.node_id, "rack": b.info.rack, "endpoints": [
                    {"host": e.host, "port": e.port, "listener": name,
                     "security_protocol": SECURITY_PROTOCOL_IDS[e.security_protocol]}
                    for name, e in b.info.endpoints.items()]}
                for b in self.brokers.values()]
        await self._send_all({
            broker_id: ("UpdateMetadata", UPDATE_METADATA_VERSION, {
                **self._common(broker_id), "type": 0,
                "topic_states": [{"topic_name": t, "topic_id": self.topic_ids[t], "partition_states": states}
                                 for t, states in topics.items()],
                "live_brokers": live})
            for broker_id in brokers}, wait)

    async def _send_stop_replica(self, partitions, delete: bool, only: set[int] | None = None,
                                 wait: bool = False) -> None:
        by_broker: dict[int, dict[str, list]] = {}
        for topic, partition in partitions:
            epoch = EPOCH_DURING_DELETE if delete else self.states[(topic, partition)].leader_epoch
            for replica in self.assignments[topic][partition]:
                if replica in self.brokers and (only is None or replica in only):
                    by_broker.setdefault(replica, {}).setdefault(topic, []).append(
                        {"partition_index": partition, "leader_epoch": epoch, "delete_partition": delete})
        await self._send_all({
            broker_id: ("StopReplica", STOP_REPLICA_VERSION, {
                **self._common(broker_id),
                "topic_states": [{"topic_name": t, "partition_states": states} for t, states in topics.items()]})
            for broker_id, topics in by_broker.items()}, wait)
