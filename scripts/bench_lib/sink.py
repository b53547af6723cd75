"""A Kafka-protocol sink: acks every produce request and drops the records.

It measures what the client can do when the broker costs nothing, so every
figure can be read as a fraction of that ceiling. It answers just enough for
librdkafka to produce and consume at full speed: ApiVersions, Metadata (any
topic exists, with the partition count CreateTopics asked for, else 1, and the
sink leads every partition), CreateTopics, InitProducerId, Produce (base
offsets increase per partition by the records each batch holds) and Fetch:
below the high watermark a fetch gets the partition's last produced batch
again, as many times as fit the partition's fetch size, with base offsets
from the fetch offset on, so a consumer reads as many records as were
produced without the sink keeping them.

    python -m bench_lib.sink --port PORT
"""
from __future__ import annotations

import argparse
import io
import itertools
import struct
import sys
import uuid

import trio

from kafka_compat.protocol import schema
from kafka_compat.protocol.primitives import read_uvarint

HOST = "127.0.0.1"
NODE_ID = 0
API_VERSIONS = 18
# API name -> lowest version served. Record batches v2 need Produce v3+, and
# librdkafka sends them only to a broker that also has Fetch v4+.
SERVED = {"ApiVersions": 0, "Metadata": 0, "CreateTopics": 0, "InitProducerId": 0, "Produce": 3, "Fetch": 4}

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhih")
# Record batch v2 header fields the sink reads or writes, by byte position.
_BASE_OFFSET = struct.Struct(">q")  # at 0
_BATCH_LENGTH = struct.Struct(">i")  # at 8
_MAGIC = 16
_LAST_OFFSET_DELTA = struct.Struct(">i")  # at 23
_BATCH_HEADER_SIZE = 61


def batches(blob: bytes | bytearray | None) -> list[tuple[int, int]]:
    """(start, end) of each record batch (v2) in ``blob``."""
    out = []
    pos, n = 0, len(blob or b"")
    while pos + _BATCH_HEADER_SIZE <= n:
        if blob[pos + _MAGIC] != 2:
            raise ValueError(f"record batch magic {blob[pos + _MAGIC]}: the sink handles v2 only")
        end = pos + 12 + _BATCH_LENGTH.unpack_from(blob, pos + 8)[0]
        out.append((pos, end))
        pos = end
    return out


def offsets_taken(blob: bytes | bytearray, start: int) -> int:
    """How many offsets the batch at ``start`` takes up."""
    return _LAST_OFFSET_DELTA.unpack_from(blob, start + 23)[0] + 1


class Sink:
    """The sink's state: topics' partition counts and next offsets."""

    def __init__(self, port: int):
        self.port = port
        self.partitions: dict[str, int] = {}
        self.topic_ids: dict[str, bytes] = {}
        self.topic_names: dict[bytes, str] = {}
        self.next_offset: dict[tuple[str, int], int] = {}  # the high watermark
        self.last_batch: dict[tuple[str, int], bytearray] = {}
        self.producer_ids = itertools.count(1000)
        specs = schema.all_specs()
        self.versions = {specs[name].api_key: (name, low, specs[name].max_stable) for name, low in SERVED.items()}

    def topic_id(self, name: str) -> bytes:
        if name not in self.topic_ids:
            self.topic_ids[name] = uuid.uuid4().bytes
            self.topic_names[self.topic_ids[name]] = name
        return self.topic_ids[name]

    def api_versions(self, request) -> dict:
        keys = [{"api_key": k, "min_version": lo, "max_version": hi} for k, (_, lo, hi) in sorted(self.versions.items())]
        return {"error_code": 0, "api_keys": keys}

    def metadata(self, request) -> dict:
        names = list(self.partitions) if request.topics is None else [t.name for t in request.topics]
        topics = []
        for name in names:
            count = self.partitions.setdefault(name, 1)
            partitions = [
                {"error_code": 0, "partition_index": i, "leader_id": NODE_ID, "leader_epoch": 0,
                 "replica_nodes": [NODE_ID], "isr_nodes": [NODE_ID], "offline_replicas": []}
                for i in range(count)
            ]
            topics.append({"error_code": 0, "name": name, "topic_id": self.topic_id(name), "partitions": partitions})
        return {"brokers": [{"node_id": NODE_ID, "host": HOST, "port": self.port}], "cluster_id": "bench-sink",
                "controller_id": NODE_ID, "topics": topics}

    def create_topics(self, request) -> dict:
        topics = []
        for t in request.topics:
            count = t.num_partitions if t.num_partitions > 0 else 1
            self.partitions[t.name] = count
            topics.append({"name": t.name, "topic_id": self.topic_id(t.name), "error_code": 0,
                           "num_partitions": count, "replication_factor": 1, "configs": []})
        return {"topics": topics}

    def init_producer_id(self, request) -> dict:
        return {"error_code": 0, "producer_id": next(self.producer_ids), "producer_epoch": 0}

    def produce(self, request) -> dict | None:
        responses = []
        for topic in request.topic_data:
            partitions = []
            for pd in topic.partition_data:
                key = (topic.name, pd.index)
                base = self.next_offset.setdefault(key, 0)
                for start, end in batches(pd.records):
                    self.next_offset[key] += offsets_taken(pd.records, start)
                    self.last_batch[key] = pd.records[start:end]
                partitions.append({"index": pd.index, "error_code": 0, "base_offset": base,
                                   "log_append_time_ms": -1, "log_start_offset": 0})
            responses.append({"name": topic.name, "partition_responses": partitions})
        return None if request.acks == 0 else {"responses": responses}

    async def fetch(self, request, version: int) -> dict:
        by_id = version >= 13
        responses = []
        any_records = False
        for topic in request.topics:
            name = self.topic_names.get(topic.topic_id) if by_id else topic.topic
            partitions = []
            for p in topic.partitions:
                key = (name, p.partition)
                high_watermark = self.next_offset.get(key, 0)
                records = b""
                if p.fetch_offset < high_watermark:
                    records = self._replay(key, p.fetch_offset, high_watermark, p.partition_max_bytes)
                    any_records = True
                partitions.append({"partition_index": p.partition, "error_code": 0, "high_watermark": high_watermark,
                                   "last_stable_offset": high_watermark, "log_start_offset": 0,
                                   "aborted_transactions": None, "records": records})
            responses.append({"topic": name, "topic_id": topic.topic_id, "partitions": partitions})
        if not any_records:  # nothing will come: the long poll just waits out max_wait_ms
            await trio.sleep(request.max_wait_ms / 1000)
        return {"error_code": 0, "session_id": 0, "responses": responses}

    def _replay(self, key: tuple[str, int], offset: int, high_watermark: int, max_bytes: int) -> bytearray:
        """The partition's last batch, repeated from ``offset`` as a broker
        would fill the fetch: up to ``max_bytes`` (at least one batch), not
        past the high watermark."""
        batch = self.last_batch[key]
        step = offsets_taken(batch, 0)
        copies = max(1, min(max_bytes // len(batch), -(-(high_watermark - offset) // step)))
        records = batch * copies
        for i in range(copies):
            _BASE_OFFSET.pack_into(records, i * len(batch), offset + i * step)
        return records

    async def handle(self, frame: memoryview) -> memoryview | None:
        """One request frame (without its size) -> the response frame, or None."""
        api_key, version, correlation_id, client_id_len = _HEADER.unpack_from(frame, 0)
        name, low, high = self.versions[api_key]
        if not low <= version <= high:
            raise ValueError(f"{name} v{version} is not served by the sink")
        stream = io.BytesIO(frame)
        stream.seek(_HEADER.size + max(client_id_len, 0))
        flexible = schema.is_flexible(api_key, version)
        if flexible:  # request header v2: skip its tagged fields
            for _ in range(read_uvarint(stream)):
                read_uvarint(stream)
                stream.seek(read_uvarint(stream), io.SEEK_CUR)
        request = schema.codec(name, version, "request").parse_stream(stream)
        if name == "Fetch":
            body = await self.fetch(request, version)
        else:
            body = getattr(self, schema.snake_case(name))(request)
        if body is None:
            return None
        out = io.BytesIO()
        out.write(bytes(4))  # the size, filled in below
        out.write(_SIZE.pack(correlation_id))
        if flexible and api_key != API_VERSIONS:  # response header v1: no tagged fields
            out.write(b"\x00")
        schema.codec(name, version, "response").build_stream(body, out)
        response = out.getbuffer()
        _SIZE.pack_into(response, 0, len(response) - 4)
        return response

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        """Serve one client until it goes; a request the sink can't serve ends
        that connection only."""
        try:
            async with stream:
                await self._requests(stream.socket)
        except (trio.BrokenResourceError, ConnectionError, EOFError):
            pass
        except Exception as e:  # noqa: BLE001 - one bad connection must not stop the sink
            print(f"sink: closing a connection: {e!r}", file=sys.stderr)

    async def _requests(self, sock) -> None:
        # Requests are read straight into one buffer per connection: no
        # per-receive allocations, which would cost the sink more than the data.
        size = bytearray(4)
        buffer = bytearray(1 << 16)
        while await _receive_into(sock, memoryview(size), first=True):
            (n,) = _SIZE.unpack(size)
            if n > len(buffer):
                buffer = bytearray(n)
            frame = memoryview(buffer)[:n]
            await _receive_into(sock, frame, first=False)
            response = await self.handle(frame)
            frame.release()
            if response is not None:
                await _send_all(sock, response)
                response.release()


async def _send_all(sock, data: memoryview) -> None:
    sent = 0
    while sent < len(data):
        sent += await sock.send(data[sent:])


async def _receive_into(sock, view: memoryview, first: bool) -> bool:
    """Fill ``view`` from the socket; False when the peer closed before its
    first byte (only allowed ``first``, between requests)."""
    got = 0
    while got < len(view):
        n = await sock.recv_into(view[got:])
        if n == 0:
            if first and got == 0:
                return False
            raise EOFError("connection closed mid-request")
        got += n
    return True


async def _serve(port: int) -> None:
    await trio.serve_tcp(Sink(port).serve_connection, port, host=HOST)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench_lib.sink", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    trio.run(_serve, parser.parse_args().port)


if __name__ == "__main__":
    main()
