"""The ISR, the high watermark and acks=all in a three-broker cluster, as
Kafka's replication keeps them: a follower that stops fetching holds the
high watermark (consumers see nothing past it, acks=all waits) until it has
lagged replica.lag.time.max.ms and its leader drops it from the ISR; once it
fetches again it catches up and rejoins. With fewer in-sync replicas than
min.insync.replicas, acks=all is refused and acks=1 still works. An acks=all
write waiting for its replicas does not hold back the producer's next writes
on its connection."""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time

import pytest
import trio
from confluent_kafka import KafkaError as CkKafkaError
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import NotEnoughReplicasError

from interop.cluster import restart_after_crash, wait_for
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch
from tests.integration.wire import WireClient

LAG_MAX_MS = 5000
SESSION_TIMEOUT_S = 6
OVERRIDES = {"zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_S * 1000), "replica.lag.time.max.ms": str(LAG_MAX_MS),
             "replica.fetch.backoff.ms": "200", "offsets.topic.replication.factor": "1"}


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(30)


def state(zk, topic: str) -> dict:
    return json.loads(zk.get(f"/brokers/topics/{topic}/partitions/0/state")[0])


def end_offset(port: int, topic: str) -> int:
    """The partition's high watermark, as the leader answers a consumer's
    ListOffsets(latest) (on the wire: a client would also talk to the stopped
    broker)."""
    error, offset = list_latest(port, topic)
    assert error == ErrorCode.NONE
    return offset


def list_latest(port: int, topic: str) -> tuple[int, int]:
    """(error code, offset) of ListOffsets(latest) for partition 0."""
    async def go():
        client = await WireClient.connect(port)
        try:
            resp = await client.request("ListOffsets", 7, {"replica_id": -1, "isolation_level": 0, "topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
        finally:
            await client.aclose()
        p = resp.topics[0].partitions[0]
        return p.error_code, p.offset
    return trio.run(go)


def raw_produce(port: int, topic: str, acks: int, timeout_ms: int, value: bytes) -> tuple[int, int]:
    """(error code, base offset) of one Produce v9 on the wire."""
    async def go():
        client = await WireClient.connect(port)
        try:
            resp = await client.request("Produce", 9, {"acks": acks, "timeout_ms": timeout_ms, "topic_data": [
                {"name": topic, "partition_data": [
                    {"index": 0, "records": bytearray(build_batch([(None, value, [], 1_700_000_000_000)]))}]}]})
        finally:
            await client.aclose()
        p = resp.responses[0].partition_responses[0]
        return p.error_code, p.base_offset
    return trio.run(go)


def confluent_send(bootstrap: str, topic: str, values: list[bytes], acks: str) -> list:
    """Each value's delivery error (None when acknowledged), no retries."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "retries": 0, "linger.ms": 0})
    errors = {}
    for v in values:
        producer.produce(topic, v, partition=0, on_delivery=lambda err, msg, v=v: errors.__setitem__(v, err))
    assert producer.flush(30) == 0
    return [errors[v] for v in values]


def test_a_stopped_follower_holds_the_high_watermark_until_the_leader_drops_it(cluster, zk):
    create(cluster.bootstrap, "hw")
    assert confluent_send(cluster.bootstrap, "hw", [b"m%d" % i for i in range(10)], "all") == [None] * 10
    leader_id = state(zk, "hw")["leader"]
    leader = cluster.brokers[leader_id]
    follower_id = next(b for b in state(zk, "hw")["isr"] if b != leader_id)
    follower = cluster.brokers[follower_id]
    wait_for(lambda: end_offset(leader.port, "hw") == 10, 10, "the high watermark at 10")

    os.kill(follower.pid, signal.SIGSTOP)
    try:
        # Still in the ISR (it has not lagged replica.lag.time.max.ms yet): an
        # acks=all write waits for it and times out; an acks=1 write is
        # answered, but consumers don't see either past the high watermark.
        assert raw_produce(leader.port, "hw", -1, 1000, b"all") == (ErrorCode.REQUEST_TIMED_OUT, -1)
        assert raw_produce(leader.port, "hw", 1, 1000, b"one") == (ErrorCode.NONE, 11)
        assert end_offset(leader.port, "hw") == 10
        assert follower_id in state(zk, "hw")["isr"]
        # Out of the ISR after the lag: the high watermark moves past both.
        shrunk = wait_for(lambda: follower_id not in (s := state(zk, "hw"))["isr"] and s, LAG_MAX_MS / 1000 + 10,
                          "the leader to drop the stopped follower from the ISR")
        assert shrunk["leader"] == leader_id and len(shrunk["isr"]) == 2
        wait_for(lambda: end_offset(leader.port, "hw") == 12, 10, "the high watermark past both writes")
        assert raw_produce(leader.port, "hw", -1, 5000, b"after") == (ErrorCode.NONE, 12)
    finally:
        os.kill(follower.pid, signal.SIGCONT)
    wait_for(lambda: len(state(zk, "hw")["isr"]) == 3, 30, "the follower back in the ISR")
    consumer = KafkaConsumer("hw", bootstrap_servers=cluster.bootstrap, auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=10_000)
    try:
        values = [m.value for _, m in zip(range(13), consumer)]
    finally:
        consumer.close()
    assert values == [b"m%d" % i for i in range(10)] + [b"all", b"one", b"after"]


def read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "the broker closed the connection"
            data += chunk
        return data
    return exactly(struct.unpack(">i", exactly(4))[0])


def test_writes_behind_a_waiting_acks_all_write_are_appended_and_answered_in_order(cluster, zk):
    """Three requests pipelined on one connection: an acks=all produce that
    must wait for a stopped follower, a produce to another partition of the
    same leader, and a Metadata request. The second is appended while the
    first waits (so a producer's pipelined writes replicate together rather
    than one round trip each); nothing is answered until the first can be;
    then all three are, in order."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    create(cluster.bootstrap, "waits")
    assert confluent_send(cluster.bootstrap, "waits", [b"first"], "all") == [None]
    leader_id = state(zk, "waits")["leader"]
    leader = cluster.brokers[leader_id]
    admin.create_topics([NewTopic("alone", 1, replica_assignment=[[leader_id]])])["alone"].result(30)
    wait_for(lambda: list_latest(leader.port, "alone") == (ErrorCode.NONE, 0), 10, "the leader to lead 'alone'")
    follower_id = next(b for b in state(zk, "waits")["isr"] if b != leader_id)
    follower = cluster.brokers[follower_id]
    wait_for(lambda: end_offset(leader.port, "waits") == 1, 10, "the high watermark at 1")

    wire = WireClient(stream=None)
    requests = b"".join([
        wire.encode("Produce", 9, {"acks": -1, "timeout_ms": 60_000, "topic_data": [{"name": "waits", "partition_data": [
            {"index": 0, "records": bytearray(build_batch([(None, b"waits", [], 1_700_000_000_000)]))}]}]}),
        wire.encode("Produce", 9, {"acks": -1, "timeout_ms": 60_000, "topic_data": [{"name": "alone", "partition_data": [
            {"index": 0, "records": bytearray(build_batch([(None, b"alone", [], 1_700_000_000_000)]))}]}]}),
        wire.encode("Metadata", 9, {"topics": [{"name": "alone"}], "allow_auto_topic_creation": False,
                                    "include_cluster_authorized_operations": False,
                                    "include_topic_authorized_operations": False}),
    ])
    os.kill(follower.pid, signal.SIGSTOP)
    try:
        with socket.create_connection(("127.0.0.1", leader.port), timeout=30) as sock:
            sock.sendall(requests)
            wait_for(lambda: end_offset(leader.port, "alone") == 1, 10, "the second write appended")
            assert follower_id in state(zk, "waits")["isr"]  # so the first still waits
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            sock.settimeout(30)
            os.kill(follower.pid, signal.SIGCONT)
            frames = [read_frame(sock) for _ in range(3)]
    finally:
        os.kill(follower.pid, signal.SIGCONT)
    first, second = (wire.decode("Produce", 9, f) for f in frames[:2])
    assert [first[0], second[0]] == [1, 2]
    assert [(p.error_code, p.base_offset) for r in (first[1], second[1])
            for p in r.responses[0].partition_responses] == [(ErrorCode.NONE, 1), (ErrorCode.NONE, 0)]
    correlation_id, metadata = wire.decode("Metadata", 9, frames[2])
    assert correlation_id == 3 and metadata.topics[0].name == "alone"


def test_each_pipelined_acks_all_write_times_out_from_its_own_arrival(cluster, zk):
    """Two acks=all writes pipelined on one connection wait for a stopped
    follower: each times out request.timeout_ms after it arrived, though the
    connection makes their responses one after the other, so both are
    answered REQUEST_TIMED_OUT after about one timeout, not two."""
    create(cluster.bootstrap, "timeouts")
    assert confluent_send(cluster.bootstrap, "timeouts", [b"first"], "all") == [None]
    leader_id = state(zk, "timeouts")["leader"]
    follower = cluster.brokers[next(b for b in state(zk, "timeouts")["isr"] if b != leader_id)]
    wait_for(lambda: end_offset(cluster.brokers[leader_id].port, "timeouts") == 1, 10, "the high watermark at 1")
    timeout_ms = 1500
    wire = WireClient(stream=None)
    requests = b"".join(
        wire.encode("Produce", 9, {"acks": -1, "timeout_ms": timeout_ms, "topic_data": [
            {"name": "timeouts", "partition_data": [
                {"index": 0, "records": bytearray(build_batch([(None, value, [], 1_700_000_000_000)]))}]}]})
        for value in (b"one", b"two"))
    os.kill(follower.pid, signal.SIGSTOP)
    try:
        with socket.create_connection(("127.0.0.1", cluster.brokers[leader_id].port), timeout=30) as sock:
            sent = time.monotonic()
            sock.sendall(requests)
            frames = [read_frame(sock) for _ in range(2)]
            answered_after_s = time.monotonic() - sent
    finally:
        os.kill(follower.pid, signal.SIGCONT)
    assert [p.error_code for f in frames for p in wire.decode("Produce", 9, f)[1].responses[0].partition_responses] \
        == [ErrorCode.REQUEST_TIMED_OUT] * 2
    assert answered_after_s < 2 * timeout_ms / 1000 - 0.5


def test_acks_all_is_refused_below_min_insync_replicas(cluster, zk):
    create(cluster.bootstrap, "minisr")
    leader_id = state(zk, "minisr")["leader"]
    followers = [b for b in (1, 2, 3) if b != leader_id]
    for b in followers:
        cluster.brokers[b].kill9()
    wait_for(lambda: state(zk, "minisr")["isr"] == [leader_id], SESSION_TIMEOUT_S + 20,
             "the ISR down to the leader")
    bootstrap = cluster.brokers[leader_id].bootstrap
    # librdkafka and kafka-python, without retries, get NOT_ENOUGH_REPLICAS.
    errors = confluent_send(bootstrap, "minisr", [b"ck-all"], "all")
    assert errors[0] is not None and errors[0].code() == CkKafkaError.NOT_ENOUGH_REPLICAS
    for acks in ("all", 1):
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks, retries=0)
        try:
            if acks == "all":
                with pytest.raises(NotEnoughReplicasError):
                    producer.send("minisr", b"kp-all", partition=0).get(timeout=30)
            else:  # acks=1 doesn't ask for replicas
                assert producer.send("minisr", b"kp-one", partition=0).get(timeout=30).offset == 0
        finally:
            producer.close()
    assert confluent_send(bootstrap, "minisr", [b"ck-one"], "1") == [None]

    for b in followers:
        restart_after_crash(cluster.brokers[b], SESSION_TIMEOUT_S + 20)
    wait_for(lambda: len(state(zk, "minisr")["isr"]) == 3, 30, "the followers back in the ISR")
    assert confluent_send(cluster.bootstrap, "minisr", [b"ck-all-again"], "all") == [None]
    consumer = KafkaConsumer("minisr", bootstrap_servers=cluster.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=10_000)
    try:
        assert [m.value for _, m in zip(range(3), consumer)] == [b"kp-one", b"ck-one", b"ck-all-again"]
    finally:
        consumer.close()
