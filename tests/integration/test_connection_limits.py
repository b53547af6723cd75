"""Kafka's connection limits on an in-process broker over real sockets:
connections.max.idle.ms, max.connections, max.connections.per.ip(.overrides),
queued.max.requests and socket.request.max.bytes.

A check that something does *not* happen (a response that must not come yet)
waits a bounded window; everything else waits on a condition with a deadline."""
from __future__ import annotations

import struct
import time

import pytest
import trio

from kafka_compat.broker import Broker, StartupError
from kafka_compat.config import BrokerConfig
from kafka_compat.server.connection import READ_AHEAD

from .conftest import make_config
from .wire import WireClient

NOT_YET = 0.5  # how long a response that must not come is waited for
DEADLINE = 10


async def serve(tmp_path, nursery, **overrides) -> tuple[Broker, int]:
    broker = Broker(make_config(tmp_path / "data", **overrides))
    bound = await nursery.start(broker.run)
    return broker, bound[0][1]


async def api_versions(client: WireClient):
    return await client.request("ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})


async def closed_by_broker(client: WireClient) -> bool:
    """True once the broker closed the connection (EOF or reset)."""
    try:
        return await client.read_frame() is None
    except trio.BrokenResourceError:
        return True


async def no_frame_within(client: WireClient, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        await client.read_frame()
        return False
    return True


async def test_idle_connections_are_closed_after_connections_max_idle_ms(tmp_path, nursery):
    broker, port = await serve(tmp_path, nursery, connections_max_idle_ms=1500)
    idle = await WireClient.connect(port)
    await api_versions(idle)
    busy = await WireClient.connect(port)
    started = time.monotonic()
    # A connection that keeps sending requests is not idle, however long it lives.
    while time.monotonic() - started < 3:
        await api_versions(busy)
        await trio.sleep(0.1)
    with trio.fail_after(DEADLINE):
        assert await closed_by_broker(idle)
    assert time.monotonic() - started >= 1.5 - 0.1  # (the idle one's last request came just before)
    await api_versions(busy)
    assert len(broker.server.connections) == 1


async def test_a_request_being_handled_is_not_idle(tmp_path, nursery):
    _, port = await serve(tmp_path, nursery, connections_max_idle_ms=300)
    client = await WireClient.connect(port)
    await client.request("CreateTopics", 7, {
        "topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1, "configs": []}], "timeout_ms": 1000})
    # A long-poll fetch on an empty topic waits max_wait_ms, three times the idle limit.
    resp = await client.request("Fetch", 12, {
        "replica_id": -1, "max_wait_ms": 1000, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
        "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    assert resp.responses[0].partitions[0].error_code == 0
    with trio.fail_after(DEADLINE):  # then idle like any other
        assert await closed_by_broker(client)


async def test_max_connections_blocks_accepting_until_a_connection_closes(tmp_path, nursery):
    broker, port = await serve(tmp_path, nursery, max_connections=3)
    clients = [await WireClient.connect(port) for _ in range(3)]
    for c in clients:
        await api_versions(c)
    # The kernel completes the handshake (listen backlog), but the broker doesn't accept.
    waiting = await WireClient.connect(port)
    await waiting.send_raw(waiting.encode("ApiVersions", 0, {}))
    assert await no_frame_within(waiting, NOT_YET)
    assert len(broker.server.connections) == 3
    await clients.pop().aclose()
    with trio.fail_after(DEADLINE):
        frame = await waiting.read_frame()
    assert waiting.decode("ApiVersions", 0, frame)[1].error_code == 0


async def test_a_connection_over_the_per_ip_limit_is_closed_at_once(tmp_path, nursery):
    broker, port = await serve(tmp_path, nursery, max_connections_per_ip=2)
    first, second = await WireClient.connect(port), await WireClient.connect(port)
    await api_versions(first)
    await api_versions(second)
    third = await WireClient.connect(port)
    with trio.fail_after(DEADLINE):
        assert await closed_by_broker(third)
    await first.aclose()
    with trio.fail_after(DEADLINE):  # the broker counts it gone once its task ended
        while len(broker.server.connections) > 1:
            await trio.sleep(0.01)
    fourth = await WireClient.connect(port)
    assert (await api_versions(fourth)).error_code == 0


async def test_per_ip_overrides_take_precedence(tmp_path, nursery):
    _, port = await serve(tmp_path, nursery, max_connections_per_ip=0,
                          max_connections_per_ip_overrides="127.0.0.1:1,127.0.0.2:5")
    allowed = await WireClient.connect(port)
    assert (await api_versions(allowed)).error_code == 0
    refused = await WireClient.connect(port)
    with trio.fail_after(DEADLINE):
        assert await closed_by_broker(refused)
    other_ip = WireClient(await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.2"))
    assert (await api_versions(other_ip)).error_code == 0


@pytest.mark.parametrize("size", [2**31 - 1, -(2**31), 1001])
async def test_a_frame_over_socket_request_max_bytes_is_refused_without_allocating(tmp_path, nursery, size, caplog):
    broker, port = await serve(tmp_path, nursery, socket_request_max_bytes=1000)
    client = await WireClient.connect(port)
    await client.send_raw(struct.pack(">i", size) + b"\x00" * 64)
    with trio.fail_after(DEADLINE):
        assert await closed_by_broker(client)
    assert f"request of {size} bytes exceeds socket.request.max.bytes (1000)" in caplog.text
    assert broker.server.frames.free_bytes == 0  # no frame was taken
    assert (await api_versions(await WireClient.connect(port))).error_code == 0


def _big_request(client: WireClient, size: int) -> bytes:
    """A Metadata v4 request of about ``size`` bytes: topic names too long to be
    valid (strings are at most 32767 bytes), so nothing is created."""
    names = [f"{i}" + "a" * 30000 for i in range(size // 30000 + 1)]
    return client.encode("Metadata", 4, {"topics": [{"name": n} for n in names], "allow_auto_topic_creation": False})


def _answered(client: WireClient, frame: bytes) -> bool:
    return all(t.error_code == 17 for t in client.decode("Metadata", 4, frame)[1].topics)  # INVALID_TOPIC_EXCEPTION


async def test_queued_max_requests_bounds_frames_being_received(tmp_path, nursery):
    _, port = await serve(tmp_path, nursery, queued_max_requests=1)
    slow = await WireClient.connect(port)
    request = _big_request(slow, 4 * READ_AHEAD)
    await slow.send_raw(request[: 2 * READ_AHEAD])  # past the read-ahead: its frame takes the one slot
    other = await WireClient.connect(port)
    # Sent from its own task: the broker reads no more of it than its read-ahead
    # until the slot is free, and the rest may not fit in the socket buffers.
    nursery.start_soon(other.send_raw, _big_request(other, 4 * READ_AHEAD))
    assert await no_frame_within(other, NOT_YET)  # waits for the slot, reading nothing more
    # Requests that fit in what a connection reads ahead need no slot.
    assert (await api_versions(await WireClient.connect(port))).error_code == 0
    await slow.send_raw(request[2 * READ_AHEAD :])
    with trio.fail_after(DEADLINE):
        assert _answered(slow, await slow.read_frame())
        assert _answered(other, await other.read_frame())


async def test_a_client_trickling_a_request_holds_no_frame(tmp_path, nursery):
    broker, port = await serve(tmp_path, nursery, queued_max_requests=1)
    slow = await WireClient.connect(port)
    request = _big_request(slow, 4 * READ_AHEAD)
    await slow.send_raw(request[:100])
    # Announcing a large request and sending little of it takes no slot: others' large requests go on.
    other = await WireClient.connect(port)
    await other.send_raw(_big_request(other, 4 * READ_AHEAD))
    with trio.fail_after(DEADLINE):
        assert _answered(other, await other.read_frame())
    await slow.send_raw(request[100:])
    with trio.fail_after(DEADLINE):
        assert _answered(slow, await slow.read_frame())


@pytest.mark.parametrize("overrides", [
    {"listeners": "SSL://127.0.0.1:0", "listener.security.protocol.map": "SSL:SSL",
     "security.inter.broker.protocol": "SSL"},
    {"listeners": "PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
     "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:SASL_SSL"},
    {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "inter.broker.listener.name": "SASL_PLAINTEXT"},
])
def test_a_listener_with_an_unimplemented_security_protocol_stops_start_up(tmp_path, overrides):
    config = BrokerConfig({"log.dirs": str(tmp_path / "data"), **overrides})
    with pytest.raises(StartupError, match="which kafka-compat does not implement .only PLAINTEXT.; "
                                           "not starting rather than serving it as plaintext"):
        Broker(config)
    assert not (tmp_path / "data").exists()
