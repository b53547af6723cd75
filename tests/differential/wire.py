"""A blocking Kafka client over kafka_compat's own codecs (protocol_specs/),
used to send the very same request bytes to Apache Kafka and to kafka-compat
and to decode both answers the same way."""
from __future__ import annotations

import io
import socket
import struct

from construct import Container, ListContainer

from kafka_compat.protocol import schema

API_VERSIONS = 18


def plain(value):
    """A decoded construct message as plain dicts and lists (comparable, printable)."""
    if isinstance(value, Container):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, (list, ListContainer)):
        return [plain(v) for v in value]
    if isinstance(value, memoryview):
        return bytes(value)
    return value


class Wire:
    """One connection. `request(api, version, body)` -> the decoded response
    as plain data; `None` when the broker closes the connection instead of
    answering (it is then reopened for the next request)."""

    def __init__(self, host: str, port: int, client_id: str = "differential", timeout: float = 30.0):
        self.host, self.port, self.client_id, self.timeout = host, port, client_id, timeout
        self.correlation_id = 0
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def encode(self, api: str, version: int, body: dict, client_id: str | None = None) -> bytes:
        spec = schema.all_specs()[api]
        self.correlation_id += 1
        client = (self.client_id if client_id is None else client_id).encode()
        header = struct.pack(">hhih", spec.api_key, version, self.correlation_id, len(client)) + client
        if schema.is_flexible(spec.api_key, version):
            header += b"\x00"
        out = io.BytesIO()
        schema.codec(api, version, "request").build_stream(body, out, deferred=[])
        return header + out.getvalue()

    def send_only(self, payload: bytes) -> None:
        """Send one frame body without waiting for its answer."""
        sock = self._connect()
        sock.sendall(struct.pack(">i", len(payload)) + payload)

    def send_frame(self, payload: bytes) -> bytes | None:
        """Send one frame body; the response frame body, or None if the
        broker closed the connection."""
        sock = self._connect()
        try:
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            size = struct.unpack(">i", self._recv(4))[0]
            return self._recv(size)
        except (EOFError, ConnectionError):
            self.close()
            return None

    def _recv(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(size - len(chunks))
            if not chunk:
                raise EOFError("connection closed")
            chunks += chunk
        return bytes(chunks)

    def request(self, api: str, version: int, body: dict, client_id: str | None = None):
        frame = self.send_frame(self.encode(api, version, body, client_id))
        if frame is None:
            return None
        return self.decode(api, version, frame)

    def decode(self, api: str, version: int, frame: bytes):
        spec = schema.all_specs()[api]
        (correlation_id,) = struct.unpack_from(">i", frame)
        assert correlation_id == self.correlation_id, (correlation_id, self.correlation_id)
        pos = 4
        if schema.is_flexible(spec.api_key, version) and spec.api_key != API_VERSIONS:
            pos += 1  # the response header's empty tagged fields
        return plain(schema.codec(api, version, "response").parse(frame[pos:]))
