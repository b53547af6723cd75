"""Listeners and the set of live connections: Kafka's connection limits
(ConnectionQuotas), idle expiry (connections.max.idle.ms) and graceful
shutdown: stop accepting, let requests in flight finish, close idle connections."""
from __future__ import annotations

import logging
import socket
import time

import trio

from ..cluster.metadata import Endpoint
from ..config import ConfigError
from .connection import Connection
from .frames import FramePool

log = logging.getLogger(__name__)

SUPPORTED_SECURITY_PROTOCOLS = ("PLAINTEXT",)
# Idle connections are looked for at most this often (Kafka's Selector checks
# once per poll, every 300 ms at most), so 10,000 connections near expiry cost
# a few scans a second rather than one per connection.
IDLE_SCAN_INTERVAL = 0.25


def unsupported_listener(config) -> str | None:
    """Why the broker must not start, if a listener uses a security protocol we
    don't implement: serving it as plaintext would hand clients that expect TLS
    or SASL an unencrypted, unauthenticated broker. (The inter-broker listener
    is one of the advertised listeners, which are a subset of these.)"""
    for listener in config.listeners:
        if listener.security_protocol not in SUPPORTED_SECURITY_PROTOCOLS:
            return (
                f"listener {listener.name}://{listener.host}:{listener.port} uses security protocol "
                f"{listener.security_protocol}, which kafka-compat does not implement (only PLAINTEXT); "
                "not starting rather than serving it as plaintext"
            )
    return None


def advertised_endpoints(config, bound: list[tuple[str, trio.SocketListener]]) -> dict[str, Endpoint]:
    """The broker's endpoints by listener name, in advertised.listeners order:
    an advertised port 0 becomes the port its listener bound (Kafka's
    boundPort), so a broker on free ports advertises where it really listens."""
    ports: dict[str, int] = {}
    for name, listener in bound:
        ports.setdefault(name, listener.socket.getsockname()[1])
    return {
        adv.name: Endpoint(adv.host, adv.port or ports[adv.name], adv.security_protocol)
        for adv in config.advertised_listeners
    }


def _resolve_overrides(overrides: dict[str, int]) -> dict[str, int]:
    """max.connections.per.ip.overrides keyed by IP address. Kafka resolves each
    host once at start-up (InetAddress.getByName); a name here counts for every
    address it resolves to (localhost: 127.0.0.1 and ::1)."""
    by_ip: dict[str, int] = {}
    for host, count in overrides.items():
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as e:
            raise ConfigError(f"max.connections.per.ip.overrides: cannot resolve {host}: {e.strerror}") from None
        for info in infos:
            by_ip[info[4][0]] = count
    return by_ip


class Server:
    def __init__(self, broker):
        config = broker.config
        self.broker = broker
        self.connections: set[Connection] = set()
        self.frames = FramePool()
        # queued.max.requests: how many request frames may be received at once
        # beyond what connections read ahead (see Connection._loop).
        self.request_slots = trio.Semaphore(config.queued_max_requests)
        self.max_connections = config.max_connections
        self.max_connections_per_ip = config.max_connections_per_ip
        self.per_ip_overrides = _resolve_overrides(config.max_connections_per_ip_overrides)
        self.per_ip: dict[str, int] = {}
        self._connection_closed = trio.lowlevel.ParkingLot()
        idle_ms = config.connections_max_idle_ms
        self.max_idle = idle_ms / 1000 if idle_ms >= 0 else None  # negative: never expire, as Kafka
        self._accept_scope = trio.CancelScope()

    async def serve(self, listeners: list[tuple[str, trio.SocketListener]], *,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Accept on every (listener name, socket) until ``stop_accepting``;
        returns when every connection has ended."""
        async with trio.open_nursery() as connections:
            with self._accept_scope:
                async with trio.open_nursery() as accepting:
                    for name, listener in listeners:
                        accepting.start_soon(self._accept_loop, name, listener, connections)
                    if self.max_idle is not None:
                        accepting.start_soon(self._expire_idle)
                    task_status.started()
            for _, listener in listeners:
                await listener.aclose()

    async def _accept_loop(self, name: str, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        while True:
            # max.connections: at the limit Kafka's acceptor blocks until a
            # connection closes; new ones wait in the listen backlog meanwhile.
            while len(self.connections) >= self.max_connections:
                await self._connection_closed.park()
            try:
                stream = await listener.accept()
            except (OSError, trio.BrokenResourceError) as e:
                log.warning("accept failed: %s", e)
                await trio.sleep(0.01)
                continue
            conn = Connection(self, stream, name)
            limit = self.per_ip_overrides.get(conn.ip, self.max_connections_per_ip)
            count = self.per_ip.get(conn.ip, 0)
            if count >= limit:
                log.info("Rejected connection from %s, address already has the configured maximum of %d connections.",
                         conn.ip, limit)
                await stream.aclose()
                continue
            self.per_ip[conn.ip] = count + 1
            self.connections.add(conn)  # counted now, before its task runs
            connections.start_soon(self._serve_one, conn)

    async def _serve_one(self, conn: Connection) -> None:
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)
            count = self.per_ip.pop(conn.ip) - 1
            if count:
                self.per_ip[conn.ip] = count
            self._connection_closed.unpark_all()

    async def _expire_idle(self) -> None:
        """Close connections that received nothing and sent no response for
        connections.max.idle.ms, as Kafka's Selector does; it sleeps until the
        earliest a connection could expire."""
        while True:
            now = time.monotonic()
            wake = now + self.max_idle
            for conn in list(self.connections):
                expires = conn.last_active + self.max_idle
                if expires <= now:
                    conn.expire()
                elif expires < wake:
                    wake = expires
            await trio.sleep(max(wake - now, IDLE_SCAN_INTERVAL))

    def stop_accepting(self) -> None:
        self._accept_scope.cancel()
        for conn in list(self.connections):
            conn.close_when_idle()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.scope.cancel()

