"""A broker's ZooKeeper side in cluster mode (Kafka's KafkaServer and
ZkAdminManager, ZooKeeper parts): it registers the broker, takes part in the
controller election, and is the MetadataStore the handlers use.

Reads come from the MetadataCache the controller keeps up to date with
UpdateMetadata, and from the topic configs in /config/topics (re-read on each
/config/changes notification). Admin changes are written to ZooKeeper for the
controller to act on, as Kafka's AdminZkClient writes them: a new topic's
config and assignment, a /admin/delete_topics entry, a grown assignment, a
config change with its notification. Each call returns once this broker's
cache shows the result (Kafka's DelayedCreatePartitions/DelayedDeleteTopics),
or raises REQUEST_TIMED_OUT.
"""
from __future__ import annotations

import logging
import time

import trio

from ..protocol.errors import ErrorCode, KafkaError
from . import zk_data
from .controller import Controller
from .metadata import BrokerInfo, MetadataStore, TopicMeta, new_uuid
from .metadata_cache import MetadataCache
from .zk_client import (BadVersionError, ConnectionLoss, CreateOp, NodeExistsError, NoNodeError, SessionEvent,
                        SessionExpiredError, SetDataOp, ZkClient, ZkConnectionTimeout)

log = logging.getLogger(__name__)

# How long an admin change waits for this broker's cache by default (Kafka's
# requests carry their own timeout_ms; auto-creation has none).
DEFAULT_WAIT_S = 30.0

# A ZooKeeper request failed for want of a session: the connection dropped
# with it in flight (its outcome unknown) or the session expired.
NO_SESSION = (ConnectionLoss, SessionExpiredError)


async def _first_of(*events: trio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:
            async def wait(event=event):
                await event.wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(wait)


class ClusterStartupError(Exception):
    """The broker can't join the cluster: one line for the user."""


class ZkBroker(MetadataStore):
    local_logs = False  # partition logs come and go with LeaderAndIsr/StopReplica

    def __init__(self, config, info: BrokerInfo, on_topic_config=lambda topic: None,
                 on_leadership=lambda topic, partition, leads: None):
        self.config = config
        self.info = info
        self.broker_id = info.node_id
        self.zk = ZkClient(config.zookeeper_connect, session_timeout_ms=config.zookeeper_session_timeout_ms,
                           connection_timeout_ms=config.zookeeper_connection_timeout_ms,
                           on_session_event=self._on_session_event)
        self.cache = MetadataCache()
        self.cluster_id = ""
        self.broker_epoch = -1
        self.controller: Controller | None = None  # while this broker is the active controller
        self._on_topic_config = on_topic_config
        self._on_leadership = on_leadership
        self._configs: dict[str, dict[str, str]] = {}  # topic -> overrides, from /config/topics
        self._metas: dict[str, TopicMeta] = {}  # topics(), as of the cache's generation _metas_generation
        self._metas_generation = 0
        self._by_id: dict[bytes, TopicMeta] = {}
        self._last_change = -1  # the last /config/changes notification applied
        self._session_renewed = trio.Event()
        self._registered_session: int | None = None  # the session /brokers/ids/<id> belongs to
        self._session_changed = trio.Event()  # set (and replaced) on each session event and registration
        self._configs_changed = trio.Event()

    # -- start-up ------------------------------------------------------------------------
    async def start(self) -> dict[str, tuple[bytes, int]]:
        """Connect, make Kafka's persistent paths, learn the cluster id and
        register. Returns the topics ZooKeeper has (name -> (id, partition
        count)), for the log manager to load against."""
        try:
            await self.zk.connect()
        except ZkConnectionTimeout as e:
            raise ClusterStartupError(str(e)) from None
        for path in zk_data.PERSISTENT_PATHS:
            await self.zk.ensure_path(path)
        self.cluster_id = await self._cluster_id()
        topics = await self._read_topics()
        await self._watch_config_changes()
        await self._register()
        return topics

    async def _cluster_id(self) -> str:
        try:
            data, _ = await self.zk.get(zk_data.CLUSTER_ID)
        except NoNodeError:
            try:
                await self.zk.create(zk_data.CLUSTER_ID, zk_data.encode_cluster_id(zk_data.new_cluster_id()),
                                     makepath=True)
            except NodeExistsError:
                pass  # another broker was first
            data, _ = await self.zk.get(zk_data.CLUSTER_ID)
        return zk_data.decode_cluster_id(data)

    async def _read_topics(self) -> dict[str, tuple[bytes, int]]:
        topics = {}
        for name in await self.zk.get_children(zk_data.TOPICS):
            try:
                data, _ = await self.zk.get(zk_data.topic_path(name))
            except NoNodeError:
                continue
            topic = zk_data.decode_topic(data)
            topics[name] = (topic.topic_id, len(topic.partitions))
            await self._read_config(name)
        return topics

    async def _register(self) -> None:
        """The ephemeral /brokers/ids/<id>; its czxid is this registration's
        broker epoch (Kafka's KIP-380)."""
        path = zk_data.broker_path(self.broker_id)
        data = zk_data.encode_broker(zk_data.registration_of(self.info))
        try:
            await self.zk.create(path, data, ephemeral=True)
        except NodeExistsError:
            _, stat = await self.zk.get(path)
            if stat.ephemeralOwner != self.zk.session_id:
                # Kafka's message; a broker restarted within the session timeout of
                # its crash gets it too, until ZooKeeper expires the old session.
                raise ClusterStartupError(
                    f"Error while creating ephemeral at {path}, node already exists and owner "
                    f"'{stat.ephemeralOwner:#x}' does not match current session '{self.zk.session_id:#x}'") from None
        _, stat = await self.zk.get(path)
        self.broker_epoch = stat.czxid
        self._registered_session = stat.ephemeralOwner
        self._notify_session()
        log.info("registered broker %d at %s with broker epoch %d", self.broker_id, path, self.broker_epoch)

    def _on_session_event(self, event: SessionEvent) -> None:
        if event is SessionEvent.EXPIRED:
            log.warning("ZooKeeper session expired: re-registering once a new session is up")
        elif event is SessionEvent.NEW_SESSION:
            self._session_renewed.set()
        self._notify_session()

    def _notify_session(self) -> None:
        self._session_changed.set()
        self._session_changed = trio.Event()

    async def _until_registered(self) -> None:
        """Wait until the session is connected and this broker is registered
        in it: at once, after a dropped connection comes back to the same
        session, or once a new session has re-registered after an expiry."""
        while not (self.zk.connected and self.zk.session_id == self._registered_session):
            await self._session_changed.wait()

    # -- the controller election ------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled: stand for controller whenever /controller is free,
        act as controller while elected, re-register after a session expiry."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._renew_sessions)
            nursery.start_soon(self._follow_config_changes)
            while True:
                try:
                    await self._stand_for_controller()
                except* NO_SESSION:
                    # Every watch fires when the connection drops, so this round ends
                    # anyway; the next one starts once the session is back (after an
                    # expiry: once this broker is registered again, as Kafka's
                    # RegisterBrokerAndReelect does).
                    log.info("controller election paused until the ZooKeeper session is back")
                    await self._until_registered()

    async def _follow_config_changes(self) -> None:
        while True:
            await self._configs_changed.wait()
            self._configs_changed = trio.Event()
            try:
                await self._watch_config_changes()
            except NO_SESSION:
                await self._until_registered()
                self._configs_changed.set()  # the watch may not be armed: read again

    async def _renew_sessions(self) -> None:
        """After an expiry (Kafka's afterInitializingSession): register again,
        under a new broker epoch, and catch up on config changes missed."""
        while True:
            await self._session_renewed.wait()
            self._session_renewed = trio.Event()
            while True:
                try:
                    await self._register()
                    break
                except NO_SESSION:  # lost again: retry once connected (a new expiry sets _session_renewed)
                    while not self.zk.connected:
                        await self._session_changed.wait()
            self._configs_changed.set()

    async def _stand_for_controller(self) -> None:
        """One round of Kafka's elect(): become controller if /controller is
        free (incrementing /controller_epoch in the same transaction), then
        wait until /controller changes."""
        changed = trio.Event()
        try:
            data, _ = await self.zk.get(zk_data.CONTROLLER, watch=lambda _: changed.set())
            holder = zk_data.decode_controller(data)
        except NoNodeError:
            holder = await self._try_elect(changed)
        if holder == self.broker_id:
            await self._act_as_controller(changed)
        else:
            await changed.wait()

    async def _try_elect(self, changed: trio.Event) -> int:
        """Create /controller with the next controller epoch; the holder's id."""
        try:
            data, stat = await self.zk.get(zk_data.CONTROLLER_EPOCH)
            epoch, version = zk_data.decode_controller_epoch(data), stat.version
        except NoNodeError:
            try:
                await self.zk.create(zk_data.CONTROLLER_EPOCH,
                                     zk_data.encode_controller_epoch(zk_data.INITIAL_CONTROLLER_EPOCH))
            except NodeExistsError:
                pass
            data, stat = await self.zk.get(zk_data.CONTROLLER_EPOCH)
            epoch, version = zk_data.decode_controller_epoch(data), stat.version
        try:
            results = await self.zk.multi([
                CreateOp(zk_data.CONTROLLER, zk_data.encode_controller(self.broker_id, int(time.time() * 1000)),
                         ephemeral=True),
                SetDataOp(zk_data.CONTROLLER_EPOCH, zk_data.encode_controller_epoch(epoch + 1), version),
            ])
        except (NodeExistsError, BadVersionError):
            results = None
        try:
            data, _ = await self.zk.get(zk_data.CONTROLLER, watch=lambda _: changed.set())
        except NoNodeError:
            changed.set()
            return -1
        holder = zk_data.decode_controller(data)
        if holder == self.broker_id and results is not None:
            self._controller_epoch = (epoch + 1, results[1].version)
        return holder

    async def _act_as_controller(self, lost: trio.Event) -> None:
        epoch, version = self._controller_epoch
        config = self.config
        controller = Controller(self.zk, self.broker_id, epoch, version,
                                inter_broker_listener=config.inter_broker_listener_name,
                                unclean_leader_election=config.unclean_leader_election_enable,
                                auto_leader_rebalance=config.auto_leader_rebalance_enable,
                                imbalance_check_interval_s=config.leader_imbalance_check_interval_seconds,
                                imbalance_per_broker_percentage=config.leader_imbalance_per_broker_percentage,
                                request_timeout_s=config.controller_socket_timeout_ms / 1000)
        self.controller = controller
        session = self.zk.session_id
        stopped = trio.Event()
        async with trio.open_nursery() as nursery:
            async def run_controller():
                try:
                    await controller.run()
                except* NO_SESSION:
                    # A ZooKeeper write of unknown outcome, or none possible: step
                    # down; the next election, once the session is back, says who leads.
                    log.warning("controller lost its ZooKeeper session or connection; stepping down")
                except* Exception:
                    # As Kafka's controller does on an unexpected error: resign, so
                    # that a fresh election (maybe this broker again) starts over.
                    log.exception("controller failed; resigning")
                    await self._resign()
                finally:
                    stopped.set()

            nursery.start_soon(run_controller)
            watch = lost
            while watch is not None:
                await _first_of(watch, stopped)
                watch = None if stopped.is_set() else await self._still_controller(session)
            log.info("broker %d is no longer the controller", self.broker_id)
            nursery.cancel_scope.cancel()
        self.controller = None  # (a stopped Controller answers NOT_CONTROLLER meanwhile)

    async def _still_controller(self, session: int) -> trio.Event | None:
        """/controller's watch fired. A dropped connection fires every watch:
        if it comes back to the same session, in which this broker still holds
        /controller, it stays controller (as Kafka's does) and gets a new watch;
        None if it has lost /controller or the session."""
        while not self.zk.connected and self.zk.session_id == session:
            await self._session_changed.wait()
        changed = trio.Event()
        try:
            _, stat = await self.zk.get(zk_data.CONTROLLER, watch=lambda _: changed.set())
        except (NoNodeError, *NO_SESSION):
            return None
        return changed if stat.ephemeralOwner == session == self.zk.session_id else None

    async def _resign(self) -> None:
        try:
            data, stat = await self.zk.get(zk_data.CONTROLLER)
            if zk_data.decode_controller(data) == self.broker_id:
                await self.zk.delete(zk_data.CONTROLLER, stat.version)
        except (NoNodeError, BadVersionError):
            pass

    # -- topic configs ----------------------------------------------------------------------
    async def _read_config(self, topic: str) -> None:
        try:
            data, _ = await self.zk.get(zk_data.topic_config_path(topic))
            self._configs[topic] = zk_data.decode_config(data)
        except NoNodeError:
            self._configs.pop(topic, None)
        meta = self._metas.get(topic)
        if meta is not None:
            meta.configs = dict(self._configs.get(topic, {}))

    async def _watch_config_changes(self) -> None:
        """Apply the /config/changes notifications not applied yet (Kafka's
        ZkConfigManager), and watch for more."""
        changes = await self.zk.get_children(zk_data.CONFIG_CHANGES, watch=lambda _: self._configs_changed.set())
        for name in sorted(changes):
            seq = int(name.rpartition("_")[2])
            if seq <= self._last_change:
                continue
            try:
                data, _ = await self.zk.get(f"{zk_data.CONFIG_CHANGES}/{name}")
            except NoNodeError:
                continue
            kind, _, topic = zk_data.decode_config_change(data).partition("/")
            if kind == "topics":
                await self._read_config(topic)
                self._on_topic_config(topic)
                unclean = self._configs.get(topic, {}).get("unclean.leader.election.enable", "")
                if self.controller is not None and unclean.strip().lower() == "true":
                    # Kafka's TopicConfigHandler tells the active controller.
                    try:
                        await self.controller.enable_unclean_election(topic)
                    except KafkaError:
                        pass  # no longer the controller: the next one elects at its failover
            self._last_change = seq

    def overrides(self, topic: str) -> dict[str, str]:
        """The topic's config overrides as last read from /config/topics."""
        return dict(self._configs.get(topic, {}))

    async def topic_config(self, topic: str) -> dict:
        """The topic's effective config, for creating its logs (Kafka fetches
        it from ZooKeeper there too)."""
        await self._read_config(topic)
        return self.config.effective_topic_config(self._configs.get(topic, {}))

    # -- MetadataStore: reading --------------------------------------------------------------
    @property
    def controller_id(self) -> int:
        return self.cache.controller_id

    def brokers(self) -> list[BrokerInfo]:
        return list(self.cache.brokers.values())

    @property
    def generation(self) -> int:
        return self.cache.generation

    def topics(self) -> dict[str, TopicMeta]:
        """The topics whose every partition the cache knows, brought up to
        date (only those an update touched) once per cache update."""
        cache = self.cache
        if self._metas_generation == cache.generation:
            return self._metas
        for name in self._metas.keys() - cache.partitions.keys():
            del self._metas[name]
        for name, partitions in cache.partitions.items():
            if cache.topic_generations[name] <= self._metas_generation:
                continue
            topic_id = cache.topic_ids.get(name)
            if topic_id is None or len(partitions) != max(partitions) + 1:
                self._metas.pop(name, None)
                continue  # not all its partitions are known yet
            meta = self._metas.get(name)
            replicas = [partitions[p].replicas for p in range(len(partitions))]
            if meta is None or meta.topic_id != topic_id:
                meta = TopicMeta(name, topic_id, replicas, dict(self._configs.get(name, {})))
            else:
                meta.replicas = replicas
            self._metas[name] = meta
        self._by_id = {meta.topic_id: meta for meta in self._metas.values()}
        self._metas_generation = cache.generation
        return self._metas

    def topic_by_id(self, topic_id: bytes) -> TopicMeta | None:
        self.topics()
        return self._by_id.get(topic_id)

    def leader(self, topic: str, partition: int) -> int:
        info = self.cache.partition(topic, partition)
        return -1 if info is None or info.leader not in self.cache.brokers else info.leader

    def leader_epoch(self, topic: str, partition: int) -> int:
        info = self.cache.partition(topic, partition)
        return -1 if info is None else info.leader_epoch

    def isr(self, topic: str, partition: int) -> list[int]:
        info = self.cache.partition(topic, partition)
        return [] if info is None else info.isr

    def offline_replicas(self, topic: str, partition: int) -> list[int]:
        info = self.cache.partition(topic, partition)
        return [] if info is None else info.offline_replicas

    # -- MetadataStore: changing ---------------------------------------------------------------
    async def _wait_for(self, done, what: str) -> None:
        with trio.move_on_after(DEFAULT_WAIT_S):
            while not done():
                await self.cache.wait_for_change()
            return
        raise KafkaError(ErrorCode.REQUEST_TIMED_OUT, f"{what} timed out")

    async def create_topic(self, name: str, replicas: list[list[int]], configs: dict[str, str]) -> TopicMeta:
        topic_id = new_uuid()
        try:
            await self.zk.multi([
                CreateOp(zk_data.topic_config_path(name), zk_data.encode_config(configs)),
                CreateOp(zk_data.topic_path(name), zk_data.encode_topic(
                    zk_data.TopicAssignment(dict(enumerate(replicas)), topic_id))),
            ])
        except NodeExistsError:
            if await self.zk.exists(zk_data.delete_topic_path(name)):
                raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' is marked for deletion.") from None
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.") from None
        self._configs[name] = dict(configs)
        await self._wait_for(lambda: self.cache.has_leaders(name, len(replicas)), f"Creating topic {name}")
        return self.topics()[name]

    async def delete_topic(self, name: str) -> None:
        try:
            await self.zk.create(zk_data.delete_topic_path(name))
        except NodeExistsError:
            pass
        await self._wait_for(lambda: name not in self.cache.partitions, f"Deleting topic {name}")
        self._configs.pop(name, None)

    async def add_partitions(self, name: str, new_replicas: list[list[int]]) -> None:
        data, stat = await self.zk.get(zk_data.topic_path(name))
        topic = zk_data.decode_topic(data)
        first = len(topic.partitions)
        topic.partitions.update({first + i: replicas for i, replicas in enumerate(new_replicas)})
        await self.zk.set(zk_data.topic_path(name), zk_data.encode_topic(topic), stat.version)
        await self._wait_for(lambda: self.cache.has_leaders(name, len(topic.partitions)), f"Adding partitions to {name}")

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        await self.zk.set(zk_data.topic_config_path(name), zk_data.encode_config(configs))
        await self.zk.create(zk_data.config_change_path(), zk_data.encode_config_change(f"topics/{name}"),
                             sequential=True)
        self._configs[name] = dict(configs)

    async def reserve_producer_id_block(self, size: int) -> int:
        """Kafka's ZkProducerIdManager: the block after /latest_producer_id_block's,
        claimed by a conditional write (another broker's claim makes us retry)."""
        while True:
            data, stat = await self.zk.get(zk_data.PRODUCER_ID_BLOCK)
            current = zk_data.decode_producer_id_block(data)
            first = 0 if current is None else current.last_producer_id + 1
            block = zk_data.ProducerIdBlock(self.broker_id, first, size)
            try:
                await self.zk.set(zk_data.PRODUCER_ID_BLOCK, zk_data.encode_producer_id_block(block), stat.version)
                return first
            except BadVersionError:
                continue

    # -- what the controller's requests change ------------------------------------------------
    def leadership_changed(self, changes, errors) -> None:
        """After LeaderAndIsr: each partition taken on is reported as led here or not."""
        for topic, _, partition, state in changes:
            if errors[(topic, partition)] == ErrorCode.NONE:
                self._on_leadership(topic, partition, state.leader == self.broker_id)

    def replicas_stopped(self, stops, errors) -> None:
        """After StopReplica: the partitions stopped are no longer led here."""
        for topic, partition, _, _ in stops:
            if errors[(topic, partition)] == ErrorCode.NONE:
                self._on_leadership(topic, partition, False)

    async def close(self) -> None:
        await self.zk.close()
