"""A trio-friendly ZooKeeper client: kazoo underneath, results in trio.

kazoo runs its connection and callbacks in its own threads. Every operation
here uses kazoo's asynchronous API and waits for the result on the trio loop
without holding a worker thread, so many requests can be in flight at once
(as Kafka's ZooKeeperClient pipelines them). Watches and session events call
plain functions on the trio loop (through the trio token): they must not
block, and exceptions they raise are logged, not propagated.

Errors are kazoo's exception types, re-exported here: `NoNodeError`,
`NodeExistsError`, `BadVersionError`, `NotEmptyError`; `ConnectionLoss` when
the connection drops with the request in flight (a write's outcome is then
unknown) and `SessionExpiredError` when the session has expired.
`ZkConnectionTimeout` is ours: no connection within
zookeeper.connection.timeout.ms.

Watches are one-shot, as in ZooKeeper: the callback gets a kazoo
`WatchedEvent` and the caller re-arms by reading again. kazoo also fires every
watch with an event of type NONE when the connection drops (it may have
missed changes): re-read then too.

Session events (`SessionEvent`) follow Kafka's ZooKeeperClient: SUSPENDED
when the connection drops, CONNECTED when it comes back to the same session,
EXPIRED when the session is gone (its ephemeral znodes are deleted), then
NEW_SESSION once kazoo has reconnected with a new session: the moment to
re-create ephemerals and re-arm watches, as Kafka re-registers its broker.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio
from kazoo.client import KazooClient
from kazoo.exceptions import (  # noqa: F401  (re-exported)
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    SessionExpiredError,
)
from kazoo.hosts import collect_hosts
from kazoo.protocol.states import KazooState, WatchedEvent, ZnodeStat  # noqa: F401
from kazoo.retry import KazooRetry

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT_MS = 18000


class ZkConnectionTimeout(Exception):
    """No connection to ZooKeeper within zookeeper.connection.timeout.ms."""


class SessionEvent(enum.Enum):
    CONNECTED = "connected"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    NEW_SESSION = "new_session"


@dataclass(frozen=True)
class CreateOp:
    path: str
    data: bytes = b""
    ephemeral: bool = False
    sequential: bool = False


@dataclass(frozen=True)
class SetDataOp:
    path: str
    data: bytes
    version: int = -1


@dataclass(frozen=True)
class CheckOp:
    path: str
    version: int


@dataclass(frozen=True)
class DeleteOp:
    path: str
    version: int = -1


MultiOp = CreateOp | SetDataOp | CheckOp | DeleteOp


class ZkClient:
    """One ZooKeeper session, configured as Kafka's zookeeper.* settings are.

    `connect` is zookeeper.connect: `host:port[,host:port...][/chroot]`; a
    chroot that does not exist is created (as Kafka does) and all paths are
    then relative to it. `connection_timeout_ms=None` means the session
    timeout, Kafka's default for zookeeper.connection.timeout.ms.
    `on_session_event` is called on the trio loop with each `SessionEvent`
    after `connect()` returns.
    """

    def __init__(self, connect: str, *, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
                 connection_timeout_ms: int | None = None,
                 on_session_event: Callable[[SessionEvent], None] | None = None):
        self.connect_string = connect
        self.hosts = connect.partition("/")[0]
        self.chroot = collect_hosts(connect)[1]  # validates the host list too
        self.session_timeout_ms = session_timeout_ms
        self.connection_timeout_ms = (
            session_timeout_ms if connection_timeout_ms is None else connection_timeout_ms)
        self._on_session_event = on_session_event
        self._kazoo: KazooClient | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._connected = trio.Event()
        self._first_connect = True
        self._expired = False
        self._closing = False

    # -- session ----------------------------------------------------------

    async def connect(self) -> None:
        """Connect, creating the chroot if needed; raises ZkConnectionTimeout
        if no connection is made within the connection timeout."""
        self._token = trio.lowlevel.current_trio_token()
        deadline = trio.current_time() + self.connection_timeout_ms / 1000
        if self.chroot:
            try:
                await self._create_chroot(deadline)
            except ZkConnectionTimeout:
                raise self._timeout_error() from None
        self._kazoo_log = _QuietUntilConnected(self)
        self._kazoo = KazooClient(
            hosts=self.connect_string, timeout=self.session_timeout_ms / 1000, logger=self._kazoo_log,
            # kazoo's default backs off to an hour between attempts; the Java
            # client keeps trying about every second.
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0))
        self._kazoo.add_listener(self._on_kazoo_state)
        self._kazoo.start_async()
        try:
            with trio.move_on_at(deadline):
                await self._connected.wait()
        finally:
            if not self._connected.is_set():
                with trio.CancelScope(shield=True):
                    await self.close()
        if not self._connected.is_set():
            raise self._timeout_error()

    def _timeout_error(self) -> ZkConnectionTimeout:
        return ZkConnectionTimeout(
            f"Timed out waiting for connection to ZooKeeper at {self.connect_string} "
            f"within {self.connection_timeout_ms} ms (zookeeper.connection.timeout.ms)")

    async def _create_chroot(self, deadline: float) -> None:
        remaining_ms = max(1, int((deadline - trio.current_time()) * 1000))
        async with ZkClient(self.hosts, session_timeout_ms=self.session_timeout_ms,
                            connection_timeout_ms=remaining_ms) as root:
            await root.ensure_path(self.chroot)

    def _on_kazoo_state(self, state: KazooState) -> None:
        """kazoo's listener, run in its connection thread: must not block."""
        if self._closing:
            return
        if state == KazooState.CONNECTED:
            if self._first_connect:
                self._first_connect = False
                self._kazoo_log.connected = True
                self._call_soon(self._connected.set)
                return
            event = SessionEvent.NEW_SESSION if self._expired else SessionEvent.CONNECTED
            self._expired = False
        elif state == KazooState.SUSPENDED:
            event = SessionEvent.SUSPENDED
        else:
            self._expired = True
            event = SessionEvent.EXPIRED
        if self._on_session_event is not None:
            self._call_soon(self._on_session_event, event)

    def _call_soon(self, fn: Callable, *args) -> None:
        """Run fn(*args) on the trio loop; callable from any thread."""
        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("ZooKeeper callback %r failed", fn)
        try:
            self._token.run_sync_soon(run)
        except trio.RunFinishedError:
            pass

    @property
    def connected(self) -> bool:
        return self._kazoo is not None and self._kazoo.connected

    @property
    def session_id(self) -> int | None:
        client_id = self.client_id
        return client_id[0] if client_id else None

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        """(session id, session password) while there is a session."""
        return self._kazoo.client_id if self._kazoo is not None else None

    async def close(self) -> None:
        """End the session (its ephemerals go at once) and stop kazoo's threads."""
        if self._kazoo is None or self._closing:
            return
        self._closing = True
        kazoo = self._kazoo

        def stop() -> None:
            kazoo.stop()
            kazoo.close()
        await trio.to_thread.run_sync(stop)

    async def __aenter__(self) -> ZkClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info) -> None:
        with trio.CancelScope(shield=True):
            await self.close()

    # -- operations -------------------------------------------------------

    async def _result(self, async_result):
        """Wait on the trio loop for a kazoo IAsyncResult; its value, or its
        exception raised."""
        done = trio.Event()
        async_result.rawlink(lambda _: self._call_soon(done.set))
        await done.wait()
        return async_result.get_nowait()

    def _watch(self, callback: Callable[[WatchedEvent], None] | None):
        return None if callback is None else _TrioWatch(callback, self)

    async def get(self, path: str, watch: Callable[[WatchedEvent], None] | None = None
                  ) -> tuple[bytes, ZnodeStat]:
        """Data and stat; NoNodeError if absent. The watch fires on a change
        or deletion. A znode created with null data reads as b""."""
        data, stat = await self._result(self._kazoo.get_async(path, self._watch(watch)))
        return data or b"", stat

    async def get_children(self, path: str, watch: Callable[[WatchedEvent], None] | None = None
                           ) -> list[str]:
        """Child names (unordered); NoNodeError if absent. The watch fires
        when a child is added or removed, or the znode is deleted."""
        return await self._result(self._kazoo.get_children_async(path, self._watch(watch)))

    async def exists(self, path: str, watch: Callable[[WatchedEvent], None] | None = None
                     ) -> ZnodeStat | None:
        """Stat, or None if absent. The watch is set either way and fires on
        creation, change or deletion (how Kafka watches /controller)."""
        return await self._result(self._kazoo.exists_async(path, self._watch(watch)))

    async def create(self, path: str, data: bytes | None = None, *, ephemeral: bool = False,
                     sequential: bool = False, makepath: bool = False) -> str:
        """The created path (with its sequence number when sequential).
        `data=None` stores null, as Kafka does for znodes without data.
        NodeExistsError; NoNodeError for a missing parent unless makepath
        (parents are created persistent with null data)."""
        try:
            return await self._result(self._kazoo.create_async(
                path, data, ephemeral=ephemeral, sequence=sequential))
        except NoNodeError:
            if not makepath:
                raise
        await self.ensure_path(_parent(path))
        return await self._result(self._kazoo.create_async(
            path, data, ephemeral=ephemeral, sequence=sequential))

    async def set(self, path: str, data: bytes, version: int = -1) -> ZnodeStat:
        """Write if the znode is at `version` (-1: any); the new stat.
        BadVersionError if it is not, NoNodeError if absent."""
        return await self._result(self._kazoo.set_async(path, data, version))

    async def delete(self, path: str, version: int = -1) -> None:
        """Delete if at `version` (-1: any). BadVersionError, NoNodeError,
        NotEmptyError if it has children."""
        await self._result(self._kazoo.delete_async(path, version))

    async def delete_recursive(self, path: str) -> None:
        """Delete a znode and everything under it, siblings concurrently;
        nothing if absent (Kafka's deleteRecursive). Not atomic."""
        try:
            children = await self.get_children(path)
        except NoNodeError:
            return
        async with trio.open_nursery() as nursery:
            for child in children:
                nursery.start_soon(self.delete_recursive, f"{path.rstrip('/')}/{child}")
        try:
            await self.delete(path)
        except NoNodeError:
            pass

    async def ensure_path(self, path: str) -> None:
        """Create a persistent path and its missing parents, with null data
        (Kafka's makeSurePersistentPathExists / createRecursive)."""
        if path == "/":
            return
        try:
            await self.create(path, makepath=True)
        except NodeExistsError:
            pass

    async def multi(self, ops: Sequence[MultiOp]) -> list:
        """All of `ops` atomically, or none. Results in order: the created
        path for a CreateOp, the new stat for a SetDataOp, True for CheckOp and
        DeleteOp. On failure raises the failing op's error (e.g.
        BadVersionError for a CheckOp whose version moved, NodeExistsError),
        with that op as its `failed_op` attribute."""
        transaction = self._kazoo.transaction()
        for op in ops:
            match op:
                case CreateOp():
                    transaction.create(op.path, op.data, ephemeral=op.ephemeral,
                                       sequence=op.sequential)
                case SetDataOp():
                    transaction.set_data(op.path, op.data, op.version)
                case CheckOp():
                    transaction.check(op.path, op.version)
                case DeleteOp():
                    transaction.delete(op.path, op.version)
                case _:
                    raise TypeError(f"not a multi operation: {op!r}")
        results = await self._result(transaction.commit_async())
        for op, result in zip(ops, results):
            if isinstance(result, Exception) and not isinstance(result, RolledBackError):
                result.failed_op = op
                raise result
        return results


class _QuietUntilConnected(logging.LoggerAdapter):
    """kazoo's logger for one session. Until the first connection is made,
    kazoo's two lines per failed attempt are held back and the first failure
    is reported once, in one line that says what happens next; after that
    kazoo logs as usual."""

    def __init__(self, client: ZkClient):
        super().__init__(logging.getLogger("kazoo.client"), {})
        self.client = client
        self.connected = False
        self._reported = False

    def log(self, level, msg, *args, **kwargs) -> None:
        if self.connected:
            super().log(level, msg, *args, **kwargs)
        elif level >= logging.WARNING and not self._reported and not self.client._closing:
            self._reported = True
            log.warning("Cannot reach ZooKeeper at %s yet (%s): retrying until zookeeper.connection.timeout.ms "
                        "has passed", self.client.hosts, msg % args)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


class _TrioWatch:
    """A kazoo watcher that runs `callback` on the trio loop. Equal to any
    other wrapper of the same callback, so arming the same callback twice on
    one path registers one watch in kazoo (which keeps watchers in a set)."""

    def __init__(self, callback: Callable[[WatchedEvent], None], client: ZkClient):
        self.callback = callback
        self.client = client

    def __call__(self, event: WatchedEvent) -> None:
        self.client._call_soon(self.callback, event)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TrioWatch) and other.callback == self.callback

    def __hash__(self) -> int:
        return hash(self.callback)
