"""One client connection: frames in, requests decoded, handlers run, responses out.

Requests on a connection are handled one at a time and answered in order, as
Kafka does (it mutes a channel while a request is in flight), so pipelined
requests need no reordering. One exception, for throughput: while an acks=all
produce waits for its replicas (AnswerLater), the producer's next produce
requests are handled (appended) too, so that followers fetch them together;
their responses queue behind it in order, and any other request waits until
every earlier one is answered. One task, started with the first, makes those
responses in order and sends the ready ones together.

Requests that have arrived together are handled one after another (up to
BUFFERED_IN_A_ROW) before other tasks run. A leader that falls behind its
producer thus answers its followers' waiting fetches with all those
appends at once: it catches up with fewer, larger round trips instead of
falling further behind with one per request. Anything malformed closes this
connection only, with one log line.
"""
from __future__ import annotations

import io
import logging
import math
import struct
import time
from collections import deque
from dataclasses import dataclass

import trio
from construct import StreamError

from ..api.registry import REGISTRY, AnswerLater, ApiEntry, CloseConnection
from ..protocol import schema
from ..protocol.errors import ErrorCode
from ..protocol.primitives import FrameReader, uvarint_at
from .sender import send_chunks
from .socket_io import Socket

log = logging.getLogger(__name__)

PRODUCE_KEY = 0
API_VERSIONS_KEY = 18
_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhi")
# Bytes read from a socket at a time, and of a request before it gets its frame buffer.
READ_AHEAD = 65536
# Responses a connection may hold back behind an acks=all produce that waits
# for its replicas; with this many, it reads no further request until the
# oldest goes out.
ANSWERS_QUEUED = 64
# Requests already whole in the read-ahead buffer that a connection handles
# one after another (at most this many) before it lets other tasks run.
BUFFERED_IN_A_ROW = 32


def _whole_frame(pending: bytearray) -> bool:
    return len(pending) >= 4 and len(pending) - 4 >= _SIZE.unpack_from(pending, 0)[0]


class MalformedRequest(Exception):
    pass


@dataclass
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


@dataclass
class RequestContext:
    """What a handler knows about the request besides its body."""

    broker: object
    header: RequestHeader
    peer: str
    listener: str  # the name of the listener the connection arrived on (INTERNAL, PLAINTEXT, ...)

    @property
    def api_version(self) -> int:
        return self.header.api_version


def parse_header(frame) -> RequestHeader:
    """Request header v1 (v2 adds tagged fields when the API version is flexible).
    The client id is a non-compact nullable string in both."""
    if len(frame) < 10:
        raise MalformedRequest("request shorter than its header")
    api_key, api_version, correlation_id = _HEADER.unpack_from(frame, 0)
    (n,) = struct.unpack_from(">h", frame, 8)
    pos = 10
    client_id = None
    if n >= 0:
        if pos + n > len(frame):
            raise MalformedRequest("client id runs past the request")
        client_id = bytes(frame[pos : pos + n]).decode("utf-8", "replace")
        pos += n
    header = RequestHeader(api_key, api_version, correlation_id, client_id, pos)
    entry = REGISTRY.get(api_key)
    if entry is not None and entry.min_version <= api_version <= entry.max_version and schema.is_flexible(api_key, api_version):
        try:
            count, pos = uvarint_at(frame, pos)
            for _ in range(count):
                _, pos = uvarint_at(frame, pos)  # tag
                size, pos = uvarint_at(frame, pos)
                pos += size
        except StreamError:
            raise MalformedRequest("bad varint in request header") from None
        if pos > len(frame):
            raise MalformedRequest("header tagged fields run past the request")
        header.body_offset = pos
    return header


def encode_response(entry: ApiEntry, header: RequestHeader, body: dict) -> list:
    """Response header (v0 for ApiVersions, else v1 in flexible versions) and
    body as a list of chunks; records given as DeferredRecords are spliced in
    so that file regions can go out with sendfile."""
    version = header.api_version
    codec = schema.codec(entry.name, version, "response")
    out = io.BytesIO()
    out.write(bytes(4))
    out.write(_SIZE.pack(header.correlation_id))
    if schema.is_flexible(entry.api_key, version) and entry.api_key != API_VERSIONS_KEY:
        out.write(b"\x00")
    deferred: list = []
    codec.build_stream(body, out, deferred=deferred)
    data = out.getbuffer()
    size = len(data) - 4 + sum(d.size for _, d in deferred)
    _SIZE.pack_into(data, 0, size)
    if not deferred:
        return [bytes(data)]
    chunks: list = []
    start = 0
    for pos, records in deferred:
        chunks.append(bytes(data[start:pos]))
        chunks.extend(records.chunks)
        start = pos
    chunks.append(bytes(data[start:]))
    del data
    return chunks


class _QueuedAnswer:
    """A response that goes out after the earlier ones: its chunks once
    ``ready`` (None: nothing to send); ``close``: the connection closes once
    the earlier responses are out, instead of answering this."""

    __slots__ = ("ready", "chunks", "close")

    def __init__(self, chunks: list | None = None, ready: bool = False, close: bool = False):
        self.ready = ready
        self.chunks = chunks
        self.close = close


class Connection:
    def __init__(self, server, stream: trio.SocketStream, listener: str):
        self.broker = server.broker
        self.stream = stream
        self.sock = Socket(stream.socket)
        self.listener = listener
        self.frames = server.frames
        self.request_slots = server.request_slots
        try:
            host, port = stream.socket.getpeername()[:2]
            self.ip, self.peer = host, f"{host}:{port}"
        except OSError:
            self.ip = self.peer = "?"
        self.max_request = self.broker.config.socket_request_max_bytes
        self.scope = trio.CancelScope()
        self.between_requests = True  # no byte of the next request read yet
        self.closing = False
        # When bytes last arrived or a response went out (time.monotonic), for
        # connections.max.idle.ms; infinite while a request is being handled
        # or answered, which is never idle (a long-poll fetch, a join waiting
        # for a rebalance, an acks=all produce waiting for its replicas).
        self.last_active = time.monotonic()
        # Responses waiting to go out in order behind an acks=all produce,
        # whether a task is sending them, and (while ANSWERS_QUEUED wait) an
        # event set when the oldest has gone.
        self.answers: deque[_QueuedAnswer] = deque()
        # The AnswerLater outcomes whose responses are still to be made; the
        # task making them (started with the first) waits on ``more_later``
        # for the next.
        self.later: deque[tuple[RequestHeader, AnswerLater, _QueuedAnswer]] = deque()
        self.answerer_started = False
        self.more_later = trio.Event()
        self.sending = False
        self.room = trio.Event()
        self.all_answered = trio.Event()
        self.all_answered.set()

    @property
    def queued(self) -> int:
        return len(self.answers)

    @property
    def idle(self) -> bool:
        """Waiting for a request, with every response sent."""
        return self.between_requests and not self.queued

    def close_when_idle(self) -> None:
        """Shutdown: end now if waiting for a request, else after the current one."""
        self.closing = True
        if self.idle:
            self.scope.cancel()

    def expire(self) -> None:
        log.debug("closing connection from %s: idle for longer than connections.max.idle.ms", self.peer)
        self.scope.cancel()

    async def serve(self) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    await self._loop(nursery)
                    await self.all_answered.wait()
                    nursery.cancel_scope.cancel()
        except* MalformedRequest as group:
            log.warning("closing connection from %s: %s", self.peer, group.exceptions[0])
        except* (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass
        finally:
            await self.stream.aclose()

    async def _loop(self, nursery: trio.Nursery) -> None:
        """Requests one at a time. A request's bytes are read ahead into
        ``pending`` until it is whole or READ_AHEAD of it has arrived; only then
        does it get a frame buffer (so a client trickling bytes holds no more
        than that), and a frame still to be received takes one of
        queued.max.requests slots while it arrives: when all are taken,
        connections stop reading until one is free. A client that does not read
        its responses blocks its own send, so its connection reads nothing more."""
        pending = bytearray()
        unyielded = 0
        while not self.closing:
            waits = self.sock.waits
            self.between_requests = not pending
            if not await self._read_ahead(pending, 4):
                return
            self.between_requests = False
            (size,) = _SIZE.unpack_from(pending, 0)
            if size < 0 or size > self.max_request:
                raise MalformedRequest(
                    f"request of {size} bytes exceeds socket.request.max.bytes ({self.max_request})"
                )
            await self._read_ahead(pending, 4 + min(size, READ_AHEAD))
            if len(pending) - 4 >= size:
                frame = self.frames.take(size)
                await self._receive_frame(pending, frame)
            else:
                async with self.request_slots:
                    frame = self.frames.take(size)
                    await self._receive_frame(pending, frame)
            self.last_active = math.inf
            header = parse_header(frame)
            if self.queued and header.api_key != PRODUCE_KEY:
                await self.all_answered.wait()
            outcome = await self._handle(frame, header)
            self.frames.give_back(frame)
            if isinstance(outcome, AnswerLater):
                answer = _QueuedAnswer()
                await self._queue(answer)
                self.later.append((header, outcome, answer))
                if self.answerer_started:
                    self.more_later.set()
                else:
                    self.answerer_started = True
                    nursery.start_soon(self._answer_later)
            elif self.queued:
                await self._queue(_QueuedAnswer(outcome, ready=True, close=self.closing))
                await self._send_ready()
            else:
                self.last_active = time.monotonic()
                if outcome:
                    await send_chunks(self.sock, outcome)
                    self.last_active = time.monotonic()
            if self.sock.waits != waits:
                unyielded = 0
            elif unyielded < BUFFERED_IN_A_ROW and _whole_frame(pending):
                # The next request is here already (a producer that has fallen
                # behind pipelines them): append it before the fetches this one
                # woke are answered, so that they carry both.
                unyielded += 1
            else:
                # Nothing waited for the socket in this request (its bytes were
                # read ahead): give the other tasks their turn.
                unyielded = 0
                await trio.lowlevel.checkpoint()

    async def _queue(self, answer: _QueuedAnswer) -> None:
        """Queue a response behind the earlier ones; with ANSWERS_QUEUED
        queued, first wait until the oldest has gone out."""
        while len(self.answers) >= ANSWERS_QUEUED:
            if self.room.is_set():
                self.room = trio.Event()
            await self.room.wait()
        if not self.answers:
            self.all_answered = trio.Event()
        self.answers.append(answer)

    async def _answer_later(self) -> None:
        """Makes the AnswerLater responses in arrival order, in one task
        started with the connection's first and kept for the next: a
        producer's acks=all requests keep coming, and waking a task costs
        less than starting one. Responses go out in order, so one that waits
        holds back those behind it anyway, and by the time it is answered
        most of those are ready too (their appends replicated by the same
        fetches): they are made without waiting, and go out in one send.
        What is ready goes out before the task waits for another response."""
        while True:
            if not self.later:
                await self._send_ready()
                if not self.later:
                    self.more_later = trio.Event()
                    await self.more_later.wait()
                    continue
            header, later, answer = self.later.popleft()
            if not later.ready():
                await self._send_ready()
            entry = REGISTRY[header.api_key]
            body = await self._run_handler(entry, header, later.response)
            answer.close = isinstance(body, CloseConnection)
            answer.chunks = self._encode(entry, header, body)
            answer.ready = True

    async def _send_ready(self) -> None:
        """Send the queued responses that are ready, oldest first, up to the
        first one still waiting (whose task sends it and those behind it).
        One task sends at a time; one that finds another sending leaves its
        response to it."""
        if self.sending:
            return
        self.sending = True
        try:
            while self.answers and self.answers[0].ready:
                if self.answers[0].close:
                    self.scope.cancel()
                    return
                # The ready responses up to the first that waits or closes go
                # out together: one send, one wake-up of the client.
                chunks: list = []
                count = 0
                for answer in self.answers:
                    if not answer.ready or answer.close:
                        break
                    if answer.chunks:
                        chunks.extend(answer.chunks)
                    count += 1
                # (A client that reads no responses blocks this send: it is
                # idle from here, for connections.max.idle.ms.)
                self.last_active = time.monotonic()
                if chunks:
                    await send_chunks(self.sock, chunks)
                for _ in range(count):
                    self.answers.popleft()
                self.room.set()
                if self.answers:
                    self.last_active = math.inf
                else:
                    self.last_active = time.monotonic()
                    self.all_answered.set()
                    if self.closing and self.between_requests:
                        self.scope.cancel()
        finally:
            self.sending = False

    async def _read_ahead(self, buf: bytearray, size: int) -> bool:
        """Make ``buf`` hold at least ``size`` bytes (reading up to READ_AHEAD at
        a time, so small pipelined requests cost one receive). False on a clean
        close between requests."""
        while len(buf) < size:
            data = await self.sock.receive_some(READ_AHEAD)
            if not data:
                if buf:
                    raise MalformedRequest("connection closed mid-request")
                return False
            buf += data
            self.last_active = time.monotonic()
        return True

    async def _receive_frame(self, buf: bytearray, frame: memoryview) -> None:
        """Fill ``frame`` with the request body: what was read ahead, then the rest
        received straight into the frame (no intermediate buffers for large produces)."""
        size = len(frame)
        have = min(len(buf) - 4, size)
        frame[:have] = memoryview(buf)[4 : 4 + have]
        del buf[: 4 + have]
        while have < size:
            n = await self.sock.receive_into(frame[have:])
            if not n:
                raise MalformedRequest("connection closed mid-request")
            have += n
            self.last_active = time.monotonic()

    async def _handle(self, frame: memoryview, header: RequestHeader) -> list | AnswerLater | None:
        """The response's chunks (None: no response), or AnswerLater."""
        entry = REGISTRY.get(header.api_key)
        if entry is None:
            raise MalformedRequest(f"unknown API key {header.api_key}")
        if not entry.min_version <= header.api_version <= entry.max_version:
            if header.api_key == API_VERSIONS_KEY:
                return self._api_versions_fallback(entry, header)
            raise MalformedRequest(f"unsupported version {header.api_version} of {entry.name}")
        try:
            reader = FrameReader(frame, header.body_offset)
            request = schema.codec(entry.name, header.api_version, "request").parse_stream(reader)
        except Exception as e:  # construct raises many kinds on garbage input
            raise MalformedRequest(f"cannot decode {entry.name} v{header.api_version}: {e}") from None
        ctx = RequestContext(self.broker, header, self.peer, self.listener)
        body = await self._run_handler(entry, header, entry.handler, ctx, request)
        if isinstance(body, AnswerLater):
            return body
        return self._encode(entry, header, body)

    async def _run_handler(self, entry: ApiEntry, header: RequestHeader, handler, *args):
        try:
            return await handler(*args)
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception:
            # A bug must not take the broker down: close this connection only.
            log.exception("%s v%d from %s failed", entry.name, header.api_version, self.peer)
            raise MalformedRequest(f"{entry.name} handler failed") from None

    def _encode(self, entry: ApiEntry, header: RequestHeader, body: dict | CloseConnection | None) -> list | None:
        if isinstance(body, CloseConnection):
            log.info("closing connection from %s: %s", self.peer, body.reason)
            self.closing = True
            return None
        if body is None:
            return None
        return encode_response(entry, header, body)

    def _api_versions_fallback(self, entry: ApiEntry, header: RequestHeader) -> list:
        """KIP-511: a too-new ApiVersions request gets a v0 response carrying
        UNSUPPORTED_VERSION and the versions of ApiVersions itself (only
        those, as Kafka's ApiVersionsRequest.getErrorResponse), so the client
        can pick one."""
        from ..api.api_versions import supported_api_keys

        own = [k for k in supported_api_keys() if k["api_key"] == header.api_key]
        body = {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": own}
        v0 = RequestHeader(header.api_key, 0, header.correlation_id, header.client_id, header.body_offset)
        return encode_response(entry, v0, body)
