"""The broker: wires config, logs, metadata and handlers together, and owns
start-up and graceful shutdown."""
from __future__ import annotations

import gc
import logging
import signal
from pathlib import Path

import trio

from .api.fetch_sessions import FetchSessionCache
from .api.registry import load_handlers
from .cluster.metadata import BrokerInfo, LocalMetadataStore
from .cluster.topics import TopicManager
from .config import BrokerConfig
from .group.coordinator import GroupCoordinator
from .log.manager import LogManager
from .server.listener import Server
from .api.waiters import AppendWaiters
from .txn.producer_ids import ProducerIdManager

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10


class StartupError(Exception):
    """The broker can't start (a port in use, an unusable log dir): one line for the user."""


class Broker:
    def __init__(self, config: BrokerConfig):
        load_handlers()
        self.config = config
        self.data_dirs = [Path(d) for d in config.log_dirs]
        for d in self.data_dirs:
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StartupError(f"cannot use log dir {d}: {e.strerror}") from None
        self.logs = LogManager(
            self.data_dirs,
            config.topic_defaults(),
            log_retention_check_interval_ms=config.log_retention_check_interval_ms,
            log_flush_scheduler_interval_ms=config.log_flush_scheduler_interval_ms,
            log_flush_offset_checkpoint_interval_ms=config.log_flush_offset_checkpoint_interval_ms,
            log_flush_start_offset_checkpoint_interval_ms=config.log_flush_start_offset_checkpoint_interval_ms,
            producer_id_expiration_ms=config.producer_id_expiration_ms,
        )
        self.waiters = AppendWaiters()
        self.fetch_sessions = FetchSessionCache(config.max_incremental_fetch_session_cache_slots)
        self.server = Server(self)
        self.shutting_down = trio.Event()
        self.bound: list[tuple[str, int]] = []
        self.metadata = None
        self.topics = None
        self.producer_ids = None
        self.groups = None

    async def _open_listeners(self) -> list:
        listeners = []
        for listener in self.config.listeners:
            host = listener.host or "127.0.0.1"
            try:
                listeners += await trio.open_tcp_listeners(listener.port, host=host)
            except OSError as e:
                raise StartupError(f"cannot listen on {host}:{listener.port}: {e.strerror}") from None
        self.bound = [l.socket.getsockname()[:2] for l in listeners]
        return listeners

    def _advertised(self) -> tuple[str, int]:
        adv = self.config.advertised_listeners[0]
        port = adv.port or self.bound[0][1]
        return adv.host or "127.0.0.1", port

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve until ``shutdown()``; ``task_status.started`` gets the bound
        (host, port) pairs once requests can be served."""
        listeners = await self._open_listeners()
        host, port = self._advertised()
        self.metadata = LocalMetadataStore(self.data_dirs[0], BrokerInfo(self.config.broker_id, host, port))
        self.topics = TopicManager(self.config, self.metadata, self.logs)
        topic_configs = {name: self.topics.effective_config(name) for name in self.metadata.topics()}
        await trio.to_thread.run_sync(self.logs.load, topic_configs)
        self._ensure_partition_logs()
        self.producer_ids = ProducerIdManager(self.metadata)
        self.groups = GroupCoordinator(self)
        try:
            async with trio.open_nursery() as nursery:
                background = trio.CancelScope()

                async def log_background():
                    with background:
                        async with trio.open_nursery() as tasks:
                            tasks.start_soon(self.logs.run)
                            tasks.start_soon(self.groups.run)

                nursery.start_soon(log_background)
                await nursery.start(self.server.serve, listeners)
                log.info(
                    "kafka-compat broker %d serving on %s, data in %s",
                    self.config.broker_id,
                    ", ".join(f"{h}:{p}" for h, p in self.bound),
                    ", ".join(map(str, self.data_dirs)),
                )
                # What start-up built lives as long as the broker: keep it out of
                # the collector's full passes, which otherwise stall requests.
                # (No gc.collect() first: start-up leaves no cyclic garbage to
                # speak of, and a full pass would delay serving by ~50 ms.)
                gc.freeze()
                task_status.started(self.bound)
                await self.shutting_down.wait()
                self.server.stop_accepting()
                self.waiters.wake_all()
                self.groups.shutdown()
                with trio.move_on_after(SHUTDOWN_GRACE_SECONDS) as grace:
                    while self.server.connections:
                        await trio.sleep(0.01)
                if grace.cancelled_caught:
                    self.server.abort_all()
                background.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.logs.close()
            log.info("broker shut down cleanly")

    def _ensure_partition_logs(self) -> None:
        """Every partition the metadata knows has a log (e.g. after a crash
        between writing metadata and creating the directories)."""
        for meta in self.metadata.topics().values():
            for p in range(meta.partitions):
                if self.logs.get(meta.name, p) is None:
                    self.logs.create(meta.name, p, self.topics.effective_config(meta.name))

    def shutdown(self) -> None:
        self.shutting_down.set()


async def _main(config: BrokerConfig) -> None:
    for key in config.unknown_keys:
        log.warning("The configuration '%s' was supplied but isn't a known config.", key)
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


def run(config: BrokerConfig) -> int:
    """Run a broker until SIGINT/SIGTERM; the process exit status.
    Raises StartupError when it can't start."""
    try:
        trio.run(_main, config)
    except BaseExceptionGroup as group:
        startup = group.subgroup(StartupError)
        if startup is None:
            raise
        while isinstance(startup, BaseExceptionGroup):
            startup = startup.exceptions[0]
        raise startup from None
    return 0
