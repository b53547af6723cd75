"""BrokerChannel, the client one broker uses to talk to another, against a
real in-process broker."""
from __future__ import annotations

import socket

import pytest
import trio

from kafka_compat.api.registry import REGISTRY
from kafka_compat.cluster.channel import BrokerChannel, BrokerChannelError
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch, iter_batches

from .test_requests import records

BROKER_HEARTBEAT = 63  # KRaft only: a ZooKeeper-mode broker closes a connection that sends it


def channel(port: int, nursery, **kw) -> BrokerChannel:
    return BrokerChannel("127.0.0.1", port, nursery, client_id="broker-7", **kw)


def create_body(name: str, partitions: int = 1) -> dict:
    return {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
                        "configs": []}], "timeout_ms": 5000}


def produce_body(topic: str, data, acks: int = 1) -> dict:
    return {"acks": acks, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": data}]}]}


def fetch_body(topic: str, offset: int, max_wait_ms: int = 0) -> dict:
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}]}


def values(data) -> list[bytes]:
    return [r.value for b in iter_batches(memoryview(data)) for r in b.records()]


def missing_topic(name: str) -> dict:
    return {"topics": [{"name": name}], "allow_auto_topic_creation": False}


async def test_requests_of_several_apis_and_versions(broker, nursery):
    ch = channel(broker.port, nursery)
    for version in (0, 3):  # v3 is flexible, yet its response header is v0
        resp = await ch.request("ApiVersions", version, {"client_software_name": "kc", "client_software_version": "1"})
        assert resp.error_code == 0 and 18 in {k.api_key for k in resp.api_keys}

    assert (await ch.request("CreateTopics", 4, create_body("old"))).topics[0].error_code == 0
    assert (await ch.request("CreateTopics", 7, create_body("new"))).topics[0].error_code == 0
    v1 = await ch.request("Metadata", 1, {"topics": [{"name": "old"}]})
    v12 = await ch.request("Metadata", 12, {"topics": [{"name": "new"}], "allow_auto_topic_creation": False})
    assert [(t.name, t.error_code, len(t.partitions)) for t in v1.topics] == [("old", 0, 1)]
    assert [(t.name, t.error_code, len(t.partitions)) for t in v12.topics] == [("new", 0, 1)]
    assert v12.topics[0].topic_id != bytes(16)

    old = await ch.request("Produce", 3, produce_body("old", records(2)))
    new = await ch.request("Produce", 9, produce_body("new", records(3)))
    assert old.responses[0].partition_responses[0].error_code == 0
    assert (new.responses[0].partition_responses[0].error_code, new.responses[0].partition_responses[0].base_offset) == (0, 0)
    assert await ch.request("Produce", 9, produce_body("new", records(1, 3), acks=0)) is None  # never answered

    fetched = await ch.request("Fetch", 4, fetch_body("old", 0))
    assert values(fetched.responses[0].partitions[0].records) == [b"v0", b"v1"]
    fetched = await ch.request("Fetch", 12, fetch_body("new", 0))
    assert values(fetched.responses[0].partitions[0].records) == [b"v0", b"v1", b"v2", b"v3"]
    await ch.aclose()


async def test_pipelined_requests_are_answered_in_order(broker, nursery):
    """A long-poll fetch holds the connection (the broker answers a connection's
    requests in order); requests sent behind it wait, then all are answered."""
    ch = channel(broker.port, nursery)
    await ch.request("CreateTopics", 7, create_body("held"))
    held = await ch.send("Fetch", 12, fetch_body("held", 0, max_wait_ms=60_000))
    behind = [await ch.send("Metadata", (4, 9, 12)[i % 3], missing_topic(f"missing-{i}")) for i in range(12)]

    producer = await broker.client()
    await producer.request("Produce", 9, produce_body("held", records(1)))
    for i, pending in reversed(list(enumerate(behind))):
        topic = (await pending.get()).topics[0]
        assert (topic.name, topic.error_code) == (f"missing-{i}", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert values((await held.get()).responses[0].partitions[0].records) == [b"v0"]
    await ch.aclose()


async def test_produces_already_received_are_appended_before_a_waiting_fetch_answers(broker, nursery):
    """Produce requests that arrive together (a producer that has fallen
    behind pipelines them) are appended one after another before the fetch
    they wake is answered: the fetch carries all of them, as a follower's
    does, rather than one request's records per fetch round trip."""
    ch = channel(broker.port, nursery)
    await ch.request("CreateTopics", 7, create_body("together"))
    waiting = await ch.send("Fetch", 12, fetch_body("together", 0, max_wait_ms=60_000))
    producer = await broker.client()
    await trio.sleep(0.1)  # (the fetch is parked by now; were it not, it would hold fewer values still)
    await producer.send_raw(b"".join(producer.encode("Produce", 9, produce_body("together", records(1, i)))
                                     for i in range(8)))
    assert values((await waiting.get()).responses[0].partitions[0].records) == [b"v%d" % i for i in range(8)]
    for i in range(8):
        _, response = producer.decode("Produce", 9, await producer.read_frame())
        assert response.responses[0].partition_responses[0].base_offset == i
    await ch.aclose()


async def test_large_responses_between_small_ones(broker, nursery):
    """Fetch responses larger than one read (a follower's are up to
    megabytes) are received into a buffer of their own; pipelined small
    responses before and after them come out whole and in order."""
    ch = channel(broker.port, nursery)
    await ch.request("CreateTopics", 7, create_body("large"))
    big = [bytes([i]) * 3000 for i in range(200)]  # ~600 KB in 4 batches
    producer = await broker.client()
    for chunk in range(4):
        batch = build_batch([(None, v, [], 1_700_000_000_000) for v in big[chunk * 50:(chunk + 1) * 50]])
        await producer.request("Produce", 9, produce_body("large", bytearray(batch)))
    pending = []
    for i in range(3):
        pending.append(await ch.send("Metadata", 12, missing_topic(f"small-{i}")))
        pending.append(await ch.send("Fetch", 12, fetch_body("large", 0)))
    for i in range(3):
        assert (await pending[2 * i].get()).topics[0].name == f"small-{i}"
        assert values((await pending[2 * i + 1].get()).responses[0].partitions[0].records) == big
    await ch.aclose()


async def test_a_large_response_buffer_is_reused_only_once_nothing_holds_it(broker, nursery):
    """A large response is received into the previous one's buffer once no
    view of that is left (a follower's fetch responses, one after another);
    records still held keep their bytes."""
    ch = channel(broker.port, nursery)
    await ch.request("CreateTopics", 7, create_body("reused"))
    big = [bytes([i]) * 3000 for i in range(200)]  # ~600 KB in 4 batches
    producer = await broker.client()
    for chunk in range(4):
        batch = build_batch([(None, v, [], 1_700_000_000_000) for v in big[chunk * 50:(chunk + 1) * 50]])
        await producer.request("Produce", 9, produce_body("reused", bytearray(batch)))
    held = (await ch.request("Fetch", 12, fetch_body("reused", 0))).responses[0].partitions[0].records
    later = (await ch.request("Fetch", 12, fetch_body("reused", 100))).responses[0].partitions[0].records
    assert values(later) == big[100:]
    assert values(held) == big
    spare = ch._connection._spare
    del held, later
    again = (await ch.request("Fetch", 12, fetch_body("reused", 100))).responses[0].partitions[0].records
    assert values(again) == big[100:]
    assert ch._connection._spare is spare
    await ch.aclose()


async def test_concurrent_requests_from_many_tasks(broker, nursery):
    ch = channel(broker.port, nursery)
    answers = {}

    async def ask(i: int) -> None:
        answers[i] = (await ch.request("Metadata", 12, missing_topic(f"t{i}"))).topics[0].name

    async with trio.open_nursery() as tasks:
        for i in range(30):
            tasks.start_soon(ask, i)
    assert answers == {i: f"t{i}" for i in range(30)}
    await ch.aclose()


async def test_a_closed_connection_fails_requests_in_flight_and_the_next_reconnects(broker, nursery):
    assert BROKER_HEARTBEAT not in REGISTRY, "pick another API the broker does not serve"
    ch = channel(broker.port, nursery, reconnect_backoff=0.01)
    await ch.request("CreateTopics", 7, create_body("closing"))
    held = await ch.send("Fetch", 12, fetch_body("closing", 0, max_wait_ms=60_000))
    bad = await ch.send("BrokerHeartbeat", 0, {})
    behind = await ch.send("Metadata", 12, missing_topic("after"))

    producer = await broker.client()
    await producer.request("Produce", 9, produce_body("closing", records(1)))
    assert values((await held.get()).responses[0].partitions[0].records) == [b"v0"]
    for pending in (bad, behind):
        with pytest.raises(BrokerChannelError, match=f"connection to 127.0.0.1:{broker.port} closed by the peer"):
            await pending.get()

    again = await ch.request("Metadata", 12, missing_topic("after"))
    assert again.topics[0].name == "after"
    await ch.aclose()


async def test_aclose_fails_requests_in_flight_and_later_ones(broker, nursery):
    ch = channel(broker.port, nursery)
    await ch.request("CreateTopics", 7, create_body("idle"))
    held = await ch.send("Fetch", 12, fetch_body("idle", 0, max_wait_ms=60_000))
    await ch.aclose()
    with pytest.raises(BrokerChannelError, match="the channel was closed"):
        await held.get()
    with pytest.raises(BrokerChannelError, match="is closed"):
        await ch.request("Metadata", 12, missing_topic("x"))


async def test_connection_refused_and_reconnect_backoff(nursery):
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        ch = channel(port, nursery, reconnect_backoff=0.3)
        started = trio.current_time()
        with pytest.raises(BrokerChannelError, match=f"cannot connect to 127.0.0.1:{port}: Connection refused"):
            await ch.request("Metadata", 12, missing_topic("x"))
        with pytest.raises(BrokerChannelError, match="Connection refused"):
            await ch.request("Metadata", 12, missing_topic("x"))
        assert trio.current_time() - started >= 0.3  # the second attempt waited out the backoff
        await ch.aclose()


async def test_connect_timeout(nursery):
    """A listener whose accept queue is full drops new connections' SYNs, so
    connecting hangs until the timeout."""
    with socket.socket() as full, socket.socket() as first:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        first.connect(full.getsockname())  # takes the only place in the queue
        ch = channel(full.getsockname()[1], nursery, connect_timeout=0.2)
        started = trio.current_time()
        with pytest.raises(BrokerChannelError, match=r"connecting to 127.0.0.1:\d+ timed out after 0.2 s"):
            await ch.request("Metadata", 12, missing_topic("x"))
        assert 0.2 <= trio.current_time() - started < 5
        await ch.aclose()


async def test_request_timeout_closes_the_connection(broker, nursery):
    ch = channel(broker.port, nursery, request_timeout=0.3, reconnect_backoff=0.01)
    await ch.request("CreateTopics", 7, create_body("slow"))
    held = await ch.send("Fetch", 12, fetch_body("slow", 0, max_wait_ms=60_000))
    behind = await ch.send("Metadata", 12, missing_topic("behind"))
    with pytest.raises(BrokerChannelError, match="closed: no response to Fetch v12 within the request timeout"):
        await held.get()
    with pytest.raises(BrokerChannelError, match="no response to Fetch v12"):
        await behind.get()
    assert (await ch.request("Metadata", 12, missing_topic("next"))).topics[0].name == "next"
    await ch.aclose()


async def test_controller_requests(broker, nursery):
    """The controller's requests go through too (a single broker has no other
    controller, so it answers them STALE_CONTROLLER_EPOCH)."""
    ch = channel(broker.port, nursery)
    common = {"controller_id": 7, "controller_epoch": 3, "broker_epoch": -1}
    lai = await ch.request("LeaderAndIsr", 7, {**common, "type": 0, "topic_states": [], "live_leaders": []})
    um = await ch.request("UpdateMetadata", 8, {**common, "topic_states": [], "live_brokers": []})
    sr = await ch.request("StopReplica", 3, {**common, "topic_states": []})
    assert (lai.error_code, um.error_code, sr.error_code) == (ErrorCode.STALE_CONTROLLER_EPOCH,) * 3
    await ch.aclose()
