"""One broker's connection to another, for the inter-broker protocol: the
controller sending LeaderAndIsr, UpdateMetadata and StopReplica, a follower
fetching from its leader.

Requests are pipelined on one connection and a broker answers a connection's
requests in the order they came, so each response belongs to the oldest
request still waiting (its correlation id must say so). A reader task per
connection, in the nursery the channel was given, hands each response to its
request.

A connection that breaks (closed by the peer, a socket error, a response out
of order) fails every request in flight on it with BrokerChannelError and is
dropped; the next request opens a new one, no sooner than
``reconnect_backoff`` seconds after the previous attempt began (Kafka's
reconnect.backoff.ms). A caller cancelled while awaiting its response leaves
the connection alone (the response is dropped when it comes); one cancelled
while its request is being written closes it, since part of a request may be
on the wire.
"""
from __future__ import annotations

import io
import math
import os
import struct
from collections import deque

import trio

from ..locks import held
from ..protocol import schema
from ..protocol.headers import encode_request_header, parse_response_header
from ..protocol.primitives import FrameReader
from ..server.socket_io import Socket

_SIZE = struct.Struct(">i")
_RECEIVE_SIZE = 65536
_PRODUCE_KEY = 0


def _unshared(buf: bytearray) -> bool:
    """Whether no view of ``buf`` is left (a bytearray with views can't be resized)."""
    try:
        buf.append(0)
    except BufferError:
        return False
    buf.pop()
    return True


class BrokerChannelError(Exception):
    """A request got no usable response: the connection could not be made,
    broke, or the response did not decode. The message says which."""


class PendingResponse:
    """A request on the wire; ``await get()`` for its decoded response (None
    for a Produce with acks=0, which is never answered)."""

    __slots__ = ("api", "api_key", "api_version", "correlation_id", "deadline", "_connection", "_done", "_frame", "_error")

    def __init__(self, api: str, api_key: int, api_version: int, correlation_id: int, deadline: float, connection):
        self.api, self.api_key, self.api_version = api, api_key, api_version
        self.correlation_id = correlation_id
        self.deadline = deadline
        self._connection = connection
        self._done = trio.Event()
        self._frame = None  # a bytearray, or a view of the connection's reused one
        self._error: BrokerChannelError | None = None

    def _resolve(self, frame=None, error: BrokerChannelError | None = None) -> None:
        self._frame, self._error = frame, error
        self._done.set()

    async def get(self):
        """The response; BrokerChannelError if the connection broke first or
        the deadline passed (which closes the connection, as Kafka's clients
        do: the responses behind a lost one would never come)."""
        with trio.move_on_at(self.deadline):
            await self._done.wait()
        if not self._done.is_set():
            self._connection.fail(f"closed: no response to {self.api} v{self.api_version} within the request timeout")
        if self._error is not None:
            raise self._error
        if self._frame is None:
            return None
        try:
            _, pos = parse_response_header(self._frame, self.api_key, self.api_version)
            return schema.codec(self.api, self.api_version, "response").parse_stream(FrameReader(self._frame, pos))
        except Exception as e:  # construct raises many kinds on bad input
            raise BrokerChannelError(
                f"cannot decode {self.api} v{self.api_version} response from {self._connection.peer}: {e}"
            ) from None


class _Connection:
    def __init__(self, stream: trio.SocketStream, peer: str):
        self.stream = stream
        self.sock = Socket(stream.socket)
        self.peer = peer
        self.send_lock = trio.Lock()
        self.in_flight: deque[PendingResponse] = deque()
        self.error: BrokerChannelError | None = None
        self._reader_scope = trio.CancelScope()
        self._spare: bytearray | None = None  # the last large frame's buffer

    def fail(self, reason: str) -> None:
        """Close the connection and fail every request in flight on it."""
        if self.error is not None:
            return
        self.error = BrokerChannelError(f"connection to {self.peer} {reason}")
        self._reader_scope.cancel()
        self.stream.socket.close()  # wakes a task blocked on the socket with ClosedResourceError
        while self.in_flight:
            self.in_flight.popleft()._resolve(error=self.error)

    async def read_responses(self) -> None:
        """Frames are cut from what arrives; a frame larger than what has
        arrived of it (a follower's fetch response, up to megabytes) gets a
        buffer (``_large_frame``), and the rest of it is received straight
        into that, so each byte is copied once rather than three times."""
        reason = "closed"
        try:
            with self._reader_scope:
                buf = bytearray()
                while True:
                    waits = self.sock.waits
                    data = await self.sock.receive_some(_RECEIVE_SIZE)
                    if self.sock.waits == waits:
                        await trio.lowlevel.checkpoint()  # data keeps coming: let the others run too
                    if not data:
                        reason = "closed by the peer"
                        return
                    buf += data
                    while len(buf) >= 4:
                        (size,) = _SIZE.unpack_from(buf, 0)
                        if size < 4:
                            reason = f"closed: the peer sent a frame of {size} bytes"
                            return
                        if len(buf) < 4 + size:
                            if size <= _RECEIVE_SIZE:
                                break
                            frame = self._large_frame(size)
                            have = len(buf) - 4
                            frame[:have] = memoryview(buf)[4:]
                            buf.clear()
                            if not await self._receive_into(memoryview(frame)[have:]):
                                reason = "closed by the peer"
                                return
                        else:
                            frame = buf[4 : 4 + size]  # a copy, writable (as records views need)
                            del buf[: 4 + size]
                        problem = self._deliver(frame)
                        del frame  # (a view of a reused buffer must not outlive its response)
                        if problem:
                            reason = f"closed: {problem}"
                            return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            reason = f"failed: {e}"
        finally:
            self.fail(reason)

    def _large_frame(self, size: int) -> memoryview:
        """A buffer for a frame of ``size`` bytes: the previous large frame's
        if nothing holds a view of it any more (its response was decoded and
        applied), else a new one. A follower receives megabytes per fetch,
        and a fresh buffer cost a zero fill and a page fault per 4 KiB."""
        buf = self._spare
        if buf is None or len(buf) < size or not _unshared(buf):
            # (a power of two: responses vary in size, and each somewhat
            # larger one should not cost a new buffer)
            buf = self._spare = bytearray(1 << (size - 1).bit_length())
        return memoryview(buf)[:size]

    async def _receive_into(self, view: memoryview) -> bool:
        """Fill ``view`` from the socket; False if the peer closed first."""
        while view:
            received = await self.sock.receive_into(view)
            if not received:
                return False
            view = view[received:]
        return True

    def _deliver(self, frame) -> str | None:
        """Hand a response to the oldest request in flight; what is wrong if it can't."""
        (correlation_id,) = _SIZE.unpack_from(frame, 0)
        if not self.in_flight:
            return f"a response (correlation id {correlation_id}) came for no request"
        pending = self.in_flight[0]
        if correlation_id != pending.correlation_id:
            return f"a response has correlation id {correlation_id}, expected {pending.correlation_id}"
        self.in_flight.popleft()._resolve(frame)
        return None


class BrokerChannel:
    """Requests to the broker at (host, port), any API and version our
    protocol specs know, encoded and decoded with their codecs.

    ``nursery`` runs each connection's reader task; ``aclose()`` ends it and
    fails what is in flight. A request unanswered ``request_timeout`` seconds
    after it was sent fails and closes the connection (Kafka's
    request.timeout.ms; the controller's is controller.socket.timeout.ms).
    """

    def __init__(
        self,
        host: str,
        port: int,
        nursery: trio.Nursery,
        *,
        client_id: str,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
        reconnect_backoff: float = 0.05,
    ):
        self.host, self.port = host, port
        self.peer = f"{host}:{port}"
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.reconnect_backoff = reconnect_backoff
        self._nursery = nursery
        self._connect_lock = trio.Lock()
        self._connection: _Connection | None = None
        self._next_attempt = -math.inf
        self._correlation_id = 0
        self._closed = False

    async def request(self, api: str, version: int, body: dict):
        """Send a request and return its decoded response (a construct
        Container; None for a Produce with acks=0). Raises BrokerChannelError."""
        pending = await self.send(api, version, body)
        return await pending.get()

    async def send(self, api: str, version: int, body: dict) -> PendingResponse:
        """Write a request without waiting for its response: several may be in
        flight on the connection, and are answered in the order sent."""
        spec = schema.all_specs()[api]
        out = io.BytesIO()
        schema.codec(api, version, "request").build_stream(body, out, deferred=[])
        payload = out.getvalue()
        connection = await self._connect()
        async with held(connection.send_lock):
            if connection.error is not None:
                raise connection.error
            self._correlation_id = (self._correlation_id + 1) & 0x7FFFFFFF
            header = encode_request_header(spec.api_key, version, self._correlation_id, self.client_id)
            deadline = trio.current_time() + self.request_timeout
            pending = PendingResponse(api, spec.api_key, version, self._correlation_id, deadline, connection)
            if spec.api_key == _PRODUCE_KEY and body.get("acks") == 0:
                pending._resolve()  # the broker will not answer
            else:
                connection.in_flight.append(pending)
            try:
                await connection.sock.send_all(_SIZE.pack(len(header) + len(payload)) + header + payload)
            except trio.Cancelled:
                connection.fail("closed: a request was cancelled while being sent")
                raise
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                connection.fail(f"failed: {e}")
                raise connection.error from None
        return pending

    async def _connect(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.error is None and not self._closed:
            return connection  # (the common case: no lock, no scheduler pass)
        async with self._connect_lock:
            if self._closed:
                raise BrokerChannelError(f"channel to {self.peer} is closed")
            if self._connection is not None and self._connection.error is None:
                return self._connection
            await trio.sleep_until(self._next_attempt)
            self._next_attempt = trio.current_time() + self.reconnect_backoff
            try:
                with trio.fail_after(self.connect_timeout):
                    stream = await trio.open_tcp_stream(self.host, self.port)
            except trio.TooSlowError:
                raise BrokerChannelError(
                    f"connecting to {self.peer} timed out after {self.connect_timeout:g} s"
                ) from None
            except OSError as e:
                # trio's error says only that every address failed; its cause says why
                cause = (getattr(e.__cause__, "exceptions", None) or [e])[-1]
                reason = os.strerror(cause.errno) if getattr(cause, "errno", None) else str(cause)
                raise BrokerChannelError(f"cannot connect to {self.peer}: {reason}") from None
            if self._closed:  # by aclose() while connecting
                await stream.aclose()
                raise BrokerChannelError(f"channel to {self.peer} is closed")
            self._connection = _Connection(stream, self.peer)
            self._nursery.start_soon(self._connection.read_responses)
            return self._connection

    async def aclose(self) -> None:
        """Close the connection, failing what is in flight; later requests
        raise BrokerChannelError."""
        self._closed = True
        if self._connection is not None:
            self._connection.fail("closed: the channel was closed")
        await trio.lowlevel.checkpoint()
