"""Listeners and the set of live connections, with graceful shutdown: stop
accepting, let requests in flight finish, close idle connections."""
from __future__ import annotations

import logging

import trio

from .connection import Connection
from .frames import FramePool

log = logging.getLogger(__name__)


class Server:
    def __init__(self, broker):
        self.broker = broker
        self.connections: set[Connection] = set()
        self.frames = FramePool()
        self._accept_scope = trio.CancelScope()

    async def serve(self, listeners: list, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Accept on every listener until ``stop_accepting``; returns when every
        connection has ended."""
        async with trio.open_nursery() as connections:
            with self._accept_scope:
                async with trio.open_nursery() as accepting:
                    for listener in listeners:
                        accepting.start_soon(self._accept_loop, listener, connections)
                    task_status.started()
            for listener in listeners:
                await listener.aclose()

    async def _accept_loop(self, listener, connections: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (OSError, trio.BrokenResourceError) as e:
                log.warning("accept failed: %s", e)
                await trio.sleep(0.01)
                continue
            connections.start_soon(self._serve_one, stream)

    async def _serve_one(self, stream) -> None:
        conn = Connection(self.broker, stream, self.frames)
        self.connections.add(conn)
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)

    def stop_accepting(self) -> None:
        self._accept_scope.cancel()
        for conn in list(self.connections):
            conn.close_when_idle()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.scope.cancel()
