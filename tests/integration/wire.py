"""A minimal Kafka client over our own codecs, for tests that need to see
exact error codes and fields (real clients hide them behind retries)."""
from __future__ import annotations

import io
import struct

import trio

from kafka_compat.protocol import schema


class WireClient:
    def __init__(self, stream: trio.SocketStream, client_id: str = "wire-test"):
        self.stream = stream
        self.client_id = client_id
        self.correlation_id = 0
        self._buf = bytearray()

    @classmethod
    async def connect(cls, port: int) -> "WireClient":
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    def encode(self, api: str, version: int, body: dict) -> bytes:
        spec = schema.all_specs()[api]
        self.correlation_id += 1
        client = self.client_id.encode()
        header = struct.pack(">hhih", spec.api_key, version, self.correlation_id, len(client)) + client
        if schema.is_flexible(spec.api_key, version):
            header += b"\x00"
        out = io.BytesIO()
        schema.codec(api, version, "request").build_stream(body, out, deferred=[])
        payload = header + out.getvalue()
        return struct.pack(">i", len(payload)) + payload

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_frame(self) -> bytes | None:
        while len(self._buf) < 4 or len(self._buf) < 4 + struct.unpack_from(">i", self._buf)[0]:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self._buf += data
        (size,) = struct.unpack_from(">i", self._buf)
        frame = bytes(self._buf[4 : 4 + size])
        del self._buf[: 4 + size]
        return frame

    def decode(self, api: str, version: int, frame: bytes):
        spec = schema.all_specs()[api]
        (correlation_id,) = struct.unpack_from(">i", frame)
        pos = 4
        if schema.is_flexible(spec.api_key, version) and spec.api_key != 18:
            pos += 1  # empty tagged fields of response header v1
        return correlation_id, schema.codec(api, version, "response").parse(frame[pos:])

    async def request(self, api: str, version: int, body: dict):
        await self.send_raw(self.encode(api, version, body))
        frame = await self.read_frame()
        assert frame is not None, "broker closed the connection"
        correlation_id, response = self.decode(api, version, frame)
        assert correlation_id == self.correlation_id
        return response

    async def aclose(self) -> None:
        await self.stream.aclose()
