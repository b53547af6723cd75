"""The broker: wires config, logs, metadata and handlers together, and owns
start-up and graceful shutdown."""
from __future__ import annotations

import gc
import logging
import os
import signal
from pathlib import Path

import trio

from .api.fetch_sessions import FetchSessionCache
from .api.metadata import PartitionArrays
from .api.registry import load_handlers
from .cluster.controlled_shutdown import controlled_shutdown
from .cluster.metadata import BrokerInfo, LocalMetadataStore
from .cluster.topics import TopicManager, start_leader_epoch
from .replica.alter_partition import AlterPartitionManager
from .replica.fetcher import ReplicaFetcherManager
from .replica.manager import ReplicaManager
from .config import BrokerConfig
from .group.coordinator import GroupCoordinator
from .group.internal_topics import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC
from .log.cleaner_manager import CleanerConfig
from .log.manager import LogDirError, LogManager
from .server.listener import Server, advertised_endpoints, unsupported_listener
from .api.waiters import AppendWaiters
from .txn.coordinator import TransactionCoordinator
from .txn.producer_ids import ProducerIdManager

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10


class StartupError(Exception):
    """The broker can't start (a port in use, an unusable log dir): one line for the user."""


class Broker:
    def __init__(self, config: BrokerConfig):
        problem = unsupported_listener(config)
        if problem:
            raise StartupError(problem)
        load_handlers()
        self.config = config
        self.data_dirs = [Path(d) for d in config.log_dirs]
        for d in self.data_dirs:
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StartupError(f"cannot use log dir {d}: {e.strerror}") from None
            if not os.access(d, os.R_OK | os.W_OK | os.X_OK):  # e.g. a read-only mount
                raise StartupError(f"cannot use log dir {d}: not a writable directory")
        self.logs = LogManager(
            self.data_dirs,
            config.topic_defaults(),
            log_retention_check_interval_ms=config.log_retention_check_interval_ms,
            log_flush_scheduler_interval_ms=config.log_flush_scheduler_interval_ms,
            log_flush_offset_checkpoint_interval_ms=config.log_flush_offset_checkpoint_interval_ms,
            log_flush_start_offset_checkpoint_interval_ms=config.log_flush_start_offset_checkpoint_interval_ms,
            producer_id_expiration_ms=config.producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms=config.producer_id_expiration_check_interval_ms,
            replica_high_watermark_checkpoint_interval_ms=config.replica_high_watermark_checkpoint_interval_ms,
            # A cluster member's high watermarks come from replication, restarting from the checkpoint.
            high_watermarks_from_checkpoint=bool(config.zookeeper_connect),
            on_dir_failure=self._log_dir_failed,
            cleaner_config=CleanerConfig.from_broker(config),
        )
        self.waiters = AppendWaiters()
        self.fetch_sessions = FetchSessionCache(config.max_incremental_fetch_session_cache_slots)
        self.metadata_partitions = PartitionArrays()
        self.server = Server(self)
        self.shutting_down = trio.Event()
        self.bound: list[tuple[str, int]] = []
        self.info: BrokerInfo | None = None  # this broker's registration: advertised endpoints, rack
        self.metadata = None
        self.topics = None
        self.replicas = None
        self.cluster = None  # the ZooKeeper-mode member: None for a single broker
        self.producer_ids = None
        self.groups = None
        self.transactions = None
        self.exit_status = 0

    async def _open_listeners(self) -> list[tuple[str, trio.SocketListener]]:
        """Every listener's sockets, each with its listener name."""
        listeners = []
        for listener in self.config.listeners:
            try:
                sockets = await trio.open_tcp_listeners(listener.port, host=listener.host)
            except OSError as e:
                raise StartupError(f"cannot listen on {listener.host}:{listener.port}: {e.strerror}") from None
            listeners += [(listener.name, s) for s in sockets]
        self.bound = [s.socket.getsockname()[:2] for _, s in listeners]
        return listeners

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve until ``shutdown()``; ``task_status.started`` gets the bound
        (host, port) pairs once requests can be served."""
        listeners = await self._open_listeners()
        self.info = BrokerInfo(self.config.broker_id, advertised_endpoints(self.config, listeners),
                               self.config.broker_rack)
        if self.config.zookeeper_connect:
            # Imported here: a single broker needs neither kazoo nor the controller.
            from .cluster.zk_broker import ClusterStartupError, ZkBroker

            self.cluster = self.metadata = ZkBroker(self.config, self.info,
                                                    on_topic_config=lambda topic: self.topics.config_changed(topic),
                                                    on_leadership=self._leadership_changed)
            # Before start(): it applies the config changes made meanwhile.
            self.topics = TopicManager(self.config, self.metadata, self.logs)
            try:
                topics = await self.cluster.start()
            except ClusterStartupError as e:
                raise StartupError(str(e)) from None
        else:
            try:
                self.metadata = LocalMetadataStore(self.data_dirs[0], self.info)
            except OSError as e:
                raise StartupError(f"cannot use log dir {self.data_dirs[0]}: {e.strerror}") from None
            topics = {name: (meta.topic_id, meta.partitions) for name, meta in self.metadata.topics().items()}
            self.topics = TopicManager(self.config, self.metadata, self.logs)
        fetchers = alter_partition = None
        if self.cluster is not None:
            fetchers = ReplicaFetcherManager(self.config.broker_id, self.config, self.logs, self._inter_broker_endpoint)
            alter_partition = AlterPartitionManager(self.config.broker_id, lambda: self.cluster.broker_epoch,
                                                    self._controller_endpoint)
        self.replicas = ReplicaManager(self.config.broker_id, self.logs, self.metadata,
                                       single_broker=self.cluster is None, fetchers=fetchers,
                                       alter_partition=alter_partition, broker_alive=self._broker_alive,
                                       on_change=self.waiters.notify,
                                       on_high_watermark=self.waiters.high_watermark_moved,
                                       replica_lag_time_max_ms=self.config.replica_lag_time_max_ms)
        if self.cluster is None:
            topic_configs = {name: self.topics.effective_config(name) for name in topics}
        else:  # this broker's cache fills only once the controller sends UpdateMetadata
            topic_configs = {name: self.config.effective_topic_config(self.cluster.overrides(name)) for name in topics}
        try:
            # In a cluster a broker's logs are the replicas LeaderAndIsr gives it.
            await trio.to_thread.run_sync(self.logs.load, topics, topic_configs, self.metadata.local_logs)
        except LogDirError as e:
            raise StartupError(str(e)) from None
        if self.cluster is None:
            for partition_log in self.logs.logs.values():
                start_leader_epoch(partition_log, self.metadata.leader_epoch(partition_log.topic, partition_log.partition))
        self.producer_ids = ProducerIdManager(self.metadata)
        self.groups = GroupCoordinator(self)
        self.transactions = TransactionCoordinator(self)
        try:
            async with trio.open_nursery() as nursery:
                background = trio.CancelScope()

                async def log_background():
                    with background:
                        async with trio.open_nursery() as tasks:
                            tasks.start_soon(self.logs.run)
                            tasks.start_soon(self.groups.run)
                            tasks.start_soon(self.transactions.run)
                            if self.cluster is not None:
                                tasks.start_soon(self.cluster.run)
                                tasks.start_soon(self.replicas.fetchers.run)
                                tasks.start_soon(self.replicas.alter_partition.run)
                                tasks.start_soon(self.replicas.run)

                nursery.start_soon(log_background)
                await nursery.start(self.server.serve, listeners)
                log.info(
                    "kafka-compat broker %d serving on %s, data in %s",
                    self.config.broker_id,
                    ", ".join(f"{name}://{h}:{p}" for (name, _), (h, p) in zip(listeners, self.bound)),
                    ", ".join(map(str, self.data_dirs)),
                )
                # What start-up built lives as long as the broker: keep it out of
                # the collector's full passes, which otherwise stall requests.
                # (No gc.collect() first: start-up leaves no cyclic garbage to
                # speak of, and a full pass would delay serving by ~50 ms.)
                gc.freeze()
                task_status.started(self.bound)
                await self.shutting_down.wait()
                if self.cluster is not None and self.config.controlled_shutdown_enable:
                    log.info("Starting controlled shutdown")
                    await controlled_shutdown(self.config, self.cluster)
                self.server.stop_accepting()
                self.waiters.wake_all()
                self.groups.shutdown()
                self.transactions.shutdown()
                with trio.move_on_after(SHUTDOWN_GRACE_SECONDS) as grace:
                    while self.server.connections:
                        await trio.sleep(0.01)
                if grace.cancelled_caught:
                    self.server.abort_all()
                background.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.logs.close()
                if self.cluster is not None:
                    await self.cluster.close()
            log.info("broker shut down cleanly")

    def _inter_broker_endpoint(self, broker_id: int):
        """Where another broker takes inter-broker requests, as the metadata cache knows it."""
        info = self.cluster.cache.brokers.get(broker_id)
        return None if info is None else info.endpoint(self.config.inter_broker_listener_name)

    def _controller_endpoint(self):
        """(id, inter-broker endpoint) of the controller the metadata cache names, or None."""
        controller_id = self.cluster.cache.controller_id
        endpoint = self._inter_broker_endpoint(controller_id)
        return None if endpoint is None else (controller_id, endpoint)

    def _broker_alive(self, broker_id: int) -> bool:
        return broker_id in self.cluster.cache.brokers

    def _leadership_changed(self, topic: str, partition: int, leads: bool) -> None:
        """The coordinators follow the leadership of their topics' partitions."""
        if topic == OFFSETS_TOPIC:
            if leads:
                self.groups.on_election(partition)
            else:
                self.groups.on_resignation(partition)
        elif topic == TRANSACTION_STATE_TOPIC:
            if leads:
                self.transactions.on_election(partition)
            else:
                self.transactions.on_resignation(partition)

    def _log_dir_failed(self, log_dir: Path) -> None:
        """A log dir went offline: its partitions lose their leader. When it is
        the metadata's dir (the first), the broker shuts down with exit status
        1, as Kafka does; that also covers Kafka's "all log dirs have failed",
        since every dir failing includes the first."""
        if self.cluster is None:  # (a cluster's controller isn't told yet: see docs/robustness.md)
            self.metadata.mark_offline((pl.topic, pl.partition) for pl in self.logs.in_dir(log_dir))
        if log_dir == self.data_dirs[0]:
            log.error("Shutdown broker because the metadata log dir %s has failed", log_dir)
            self.exit_status = 1
            self.shutdown()

    def shutdown(self) -> None:
        self.shutting_down.set()


async def _main(config: BrokerConfig) -> int:
    for key in config.unknown_keys:
        log.warning("The configuration '%s' was supplied but isn't a known config.", key)
    ignored = config.ignored_configs()
    if ignored:
        log.warning("These configs were supplied but kafka-compat does not implement them, so they have no effect: "
                    "%s (see docs/compatibility.md)", ", ".join(ignored))
    broker = Broker(config)
    async with trio.open_nursery() as nursery:
        async def watch_signals():
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("received %s, shutting down", signal.Signals(signum).name)
                    broker.shutdown()
                    return

        nursery.start_soon(watch_signals)
        await broker.run()
        nursery.cancel_scope.cancel()
    return broker.exit_status


def run(config: BrokerConfig) -> int:
    """Run a broker until SIGINT/SIGTERM; the process exit status (1 when it
    stopped because its log dirs failed). Raises StartupError when it can't start."""
    try:
        return trio.run(_main, config)
    except BaseExceptionGroup as group:
        startup = group.subgroup(StartupError)
        if startup is None:
            raise
        while isinstance(startup, BaseExceptionGroup):
            startup = startup.exceptions[0]
        raise startup from None
