"""Leadership in a three-broker cluster: controlled shutdown during a rolling
restart, ElectLeaders from two admin clients, the automatic leader rebalance,
and KIP-951's leader hints on the wire.

Kafka moves leadership (controlled shutdown, preferred election, auto
rebalance) only to a replica in the ISR: a broker that comes back after a
restart leads again once it has caught up and rejoined the ISR."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka import ElectionType
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.memory_records import MemoryRecordsBuilder

from interop.cluster import wait_for

BACKOFF_MS = 200
OVERRIDES = {"zookeeper.session.timeout.ms": "6000", "group.initial.rebalance.delay.ms": "0",
             "offsets.topic.num.partitions": "3", "controlled.shutdown.retry.backoff.ms": str(BACKOFF_MS),
             "leader.imbalance.check.interval.seconds": "1"}
NOT_LEADER_OR_FOLLOWER = 6
UNKNOWN_TOPIC_OR_PARTITION = 3
PREFERRED_LEADER_NOT_AVAILABLE = 80
ELECTION_NOT_NEEDED = 84


@pytest.fixture
def cluster_overrides(request):
    """OVERRIDES, plus what a test gives by indirect parametrization."""
    return {**OVERRIDES, **getattr(request, "param", {})}


def metadata(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, replicas), as a broker's Metadata answers (librdkafka)."""
    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions
    return {p: (partitions[p].leader, list(partitions[p].replicas)) for p in partitions}


def isrs(bootstrap: str, topic: str) -> dict[int, list[int]]:
    partitions = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions
    return {p: sorted(partitions[p].isrs) for p in partitions}


def all_led(bootstrap: str, topic: str, count: int):
    by_partition = metadata(bootstrap, topic)
    return len(by_partition) == count and all(leader >= 0 for leader, _ in by_partition.values()) and by_partition


def create(bootstrap: str, topic: str, partitions: int, replication: int) -> dict[int, tuple[int, list[int]]]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, replication)], operation_timeout=30)[topic].result(30)
    return wait_for(lambda: all_led(bootstrap, topic, partitions), 20, f"leaders for {topic}")


def read_partitions(bootstrap: str, topic: str, partitions: int) -> dict[int, list[bytes]]:
    """Every message of every partition, read to the end offsets (kafka-python)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             enable_auto_commit=False)
    try:
        tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        got = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading back"
            for tp, records in consumer.poll(timeout_ms=500).items():
                got[tp.partition] += [r.value for r in records]
        return got
    finally:
        consumer.close()


class ContinuousProducers:
    """An idempotent acks=all producer of each family (confluent-kafka and
    kafka-python) sending without pause from its own thread; what each had
    acknowledged, and every error it reported."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.acked: list[bytes] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._confluent, args=(bootstrap,)),
                         threading.Thread(target=self._kafka_python, args=(bootstrap,))]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _delivered(self, error, value: bytes) -> None:
        if error is None:
            self.acked.append(value)
        else:
            self.errors.append(str(error))

    def _confluent(self, bootstrap: str) -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                             "linger.ms": 5, "message.timeout.ms": 120_000})
        i = 0
        while not self._stop.is_set():
            value = f"ck-{i}".encode()
            producer.produce(self.topic, value, key=value,
                             on_delivery=lambda err, msg, v=value: self._delivered(err, v))
            producer.poll(0.002)
            i += 1
        assert producer.flush(120) == 0

    def _kafka_python(self, bootstrap: str) -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5,
                                 delivery_timeout_ms=120_000)
        i = 0
        while not self._stop.is_set():
            value = f"kp-{i}".encode()
            future = producer.send(self.topic, value, key=value)
            future.add_callback(lambda _, v=value: self._delivered(None, v))
            future.add_errback(lambda e, v=value: self._delivered(e, v))
            time.sleep(0.002)
            i += 1
        producer.flush(120)
        producer.close()

    def progressed(self, since: int, by: int = 50) -> bool:
        return len(self.acked) >= since + by


def test_rolling_restart_under_idempotent_producers(cluster):
    """Each broker in turn gets SIGTERM, asks the controller for a controlled
    shutdown (which moves the leadership of every partition it leads to
    another ISR member at once), exits cleanly and comes back, while two
    idempotent acks=all producers keep sending: no error reaches them and
    every acknowledged message reads back exactly once. Each broker waits
    for its partitions' ISRs to be whole again before the next one stops."""
    partitions = 6
    create(cluster.bootstrap, "rolling", partitions, 3)
    with ContinuousProducers(cluster.bootstrap, "rolling") as producers:
        wait_for(lambda: producers.progressed(0), 30, "the producers under way")
        for broker_id, broker in cluster.brokers.items():
            assert broker.stop() == 0
            log = broker.log_tail(400)
            assert "Starting controlled shutdown" in log
            assert "Controlled shutdown request returned successfully" in log, log
            assert "Retrying controlled shutdown" not in log, log
            survivors = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != broker_id)
            assert broker_id not in {leader for leader, _ in metadata(survivors, "rolling").values()}
            broker.start()
            wait_for(lambda: all(len(isr) == 3 for isr in isrs(cluster.bootstrap, "rolling").values()), 60,
                     f"broker {broker_id} back in every ISR")
            acked = len(producers.acked)
            wait_for(lambda: producers.progressed(acked), 60, f"the producers past broker {broker_id}'s restart")
    assert producers.errors == []
    assert {v[:3] for v in producers.acked} == {b"ck-", b"kp-"}
    sent = sorted(producers.acked)
    read = sorted(v for values in read_partitions(cluster.bootstrap, "rolling", partitions).values() for v in values)
    assert read == sent  # nothing acknowledged lost, nothing duplicated


def test_controlled_shutdown_of_rf1_partitions_is_immediate(cluster):
    """Kafka leaves partitions without other replicas alone: the first
    ControlledShutdown succeeds with nothing remaining, and the broker's
    partitions are offline until it returns."""
    create(cluster.bootstrap, "single", 6, 1)
    broker = cluster.brokers[2]
    assert broker.stop() == 0
    log = broker.log_tail(400)
    assert "Controlled shutdown request returned successfully" in log
    assert "Retrying controlled shutdown" not in log
    broker.start()
    wait_for(lambda: all_led(cluster.bootstrap, "single", 6), 30, "every partition led")


def kp_elect(bootstrap: str, election_type: int, topic_partitions) -> dict[tuple[str, int], tuple[int, str | None]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        response = admin.elect_leaders(election_type, topic_partitions, raise_errors=False)
    finally:
        admin.close()
    assert response.error_code == 0
    return {(r.topic, p.partition_id): (p.error_code, p.error_message)
            for r in response.replica_election_results for p in r.partition_result}


def ck_elect(bootstrap: str, election_type: ElectionType, partitions) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    results = admin.elect_leaders(election_type, partitions).result(30)
    return {(tp.topic, tp.partition): 0 if error is None else error.code() for tp, error in results.items()}


@pytest.mark.parametrize("cluster_overrides", [{"auto.leader.rebalance.enable": "false"}], indirect=True)
def test_elect_leaders_preferred_and_unclean_with_both_admin_clients(cluster):
    partitions = 6
    by_partition = create(cluster.bootstrap, "elect", partitions, 2)
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        controller = admin.describe_cluster()["controller_id"]
    finally:
        admin.close()
    victim = next(b for b in (1, 2, 3) if b != controller)
    moved = sorted(p for p, (leader, _) in by_partition.items() if leader == victim)
    assert moved and all(replicas[0] == leader for leader, replicas in by_partition.values())
    before = {p: [f"before-{p}-{i}".encode() for i in range(5)] for p in range(partitions)}
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True)
    for p, values in before.items():
        for value in values:
            producer.send("elect", value, partition=p)
    producer.flush(30)
    producer.close()

    # Every leader is its preferred replica: nothing to elect.
    assert kp_elect(cluster.bootstrap, 0, ["elect"]) == {
        ("elect", p): (ELECTION_NOT_NEEDED, None) for p in range(partitions)}
    # Null partitions (librdkafka sends null for None): all partitions, and
    # those not needing an election are left out of the answer.
    assert ck_elect(cluster.bootstrap, ElectionType.PREFERRED, None) == {}

    # A controlled shutdown moves the victim's partitions to their other replica.
    cluster.brokers[victim].stop()
    survivors = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim)
    after = all_led(survivors, "elect", partitions)
    assert after and {p: leader for p, (leader, _) in after.items() if p in moved} == {
        p: by_partition[p][1][1] for p in moved}
    # Their preferred replica is down: no preferred election; every partition
    # has a live leader: no unclean election needed either.
    preferred = kp_elect(survivors, 0, {"elect": list(range(partitions)) + [partitions]})
    assert {tp: code for tp, (code, _) in preferred.items()} == {
        **{("elect", p): PREFERRED_LEADER_NOT_AVAILABLE if p in moved else ELECTION_NOT_NEEDED
           for p in range(partitions)},
        ("elect", partitions): UNKNOWN_TOPIC_OR_PARTITION}
    assert preferred[("elect", moved[0])][1] == (
        f"Failed to elect leader for partition elect-{moved[0]} under strategy "
        "PreferredReplicaPartitionLeaderElectionStrategy")
    unclean = ck_elect(survivors, ElectionType.UNCLEAN, [CkTopicPartition("elect", p) for p in range(partitions)])
    assert unclean == {("elect", p): ELECTION_NOT_NEEDED for p in range(partitions)}

    # Back and in the ISR again, the victim is elected by a preferred election
    # (kafka-python), after which none is needed (librdkafka).
    cluster.brokers[victim].start()
    wait_for(lambda: all(len(isr) == 2 for isr in isrs(cluster.bootstrap, "elect").values()), 30,
             f"broker {victim} back in the ISRs")
    assert kp_elect(cluster.bootstrap, 0, {"elect": moved}) == {("elect", p): (0, None) for p in moved}
    assert ck_elect(cluster.bootstrap, ElectionType.PREFERRED, [CkTopicPartition("elect", p) for p in moved]) == {
        ("elect", p): ELECTION_NOT_NEEDED for p in moved}
    assert metadata(cluster.bootstrap, "elect") == by_partition

    after_values = {p: [f"after-{p}-{i}".encode() for i in range(5)] for p in range(partitions)}
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all"})
    failed = []
    for p, values in after_values.items():
        for value in values:
            producer.produce("elect", value, partition=p, on_delivery=lambda err, msg: err and failed.append(err))
    assert producer.flush(30) == 0 and not failed
    read = read_partitions(cluster.bootstrap, "elect", partitions)
    assert read == {p: before[p] + after_values[p] for p in range(partitions)}


def test_auto_leader_rebalance_moves_leadership_back_to_preferred_replicas(cluster):
    """auto.leader.rebalance.enable (leader.imbalance.check.interval.seconds=1
    here): once a restarted broker is back in the ISRs, the controller's
    imbalance check gives it back the partitions it is preferred for."""
    by_partition = create(cluster.bootstrap, "rebalance", 6, 3)
    victim = 2
    cluster.brokers[victim].stop()
    survivors = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim)
    assert victim not in {leader for leader, _ in all_led(survivors, "rebalance", 6).values()}
    cluster.brokers[victim].start()
    wait_for(lambda: metadata(cluster.bootstrap, "rebalance") == by_partition, 30,
             "every partition led by its preferred replica again")


def _request(bootstrap: str, request, response_class):
    """Send one framed request on a new connection and decode the answer
    with kafka-python's codecs."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request.with_header(correlation_id=7, client_id="kip951")
        sock.sendall(request.encode(header=True, framed=True))
        size = struct.unpack(">i", _recv(sock, 4))[0]
        return response_class.decode(_recv(sock, size), version=request.API_VERSION, header=True)


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_kip951_not_leader_names_the_leader_and_its_endpoint(cluster):
    by_partition = create(cluster.bootstrap, "hints", 3, 1)
    leader = by_partition[0][0]
    other = cluster.brokers[next(b for b in (1, 2, 3) if b != leader)]
    endpoint = cluster.brokers[leader].bootstrap.rsplit(":", 1)
    epoch = 0  # the partition's first leader

    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 16)
    builder.append(timestamp=None, key=None, value=b"misdirected", headers=[])
    builder.close()
    topic_data = ProduceRequest.TopicProduceData
    produce = ProduceRequest[11](transactional_id=None, acks=1, timeout_ms=5000, topic_data=[topic_data(
        name="hints", partition_data=[topic_data.PartitionProduceData(index=0, records=builder.buffer())])])
    response = _request(other.bootstrap, produce, ProduceResponse)
    partition = response.responses[0].partition_responses[0]
    assert partition.error_code == NOT_LEADER_OR_FOLLOWER
    assert (partition.current_leader.leader_id, partition.current_leader.leader_epoch) == (leader, epoch)
    assert [(n.node_id, n.host, n.port) for n in response.node_endpoints] == [(leader, endpoint[0], int(endpoint[1]))]

    topic_id = _topic_id(cluster.bootstrap, "hints")
    fetch = FetchRequest[16](max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0, session_id=0,
                             session_epoch=-1, topics=[FetchRequest.FetchTopic(topic_id=topic_id, partitions=[
                                 FetchRequest.FetchTopic.FetchPartition(partition=0, fetch_offset=0,
                                                                        partition_max_bytes=1 << 20)])],
                             forgotten_topics_data=[], rack_id="")
    response = _request(other.bootstrap, fetch, FetchResponse)
    partition = response.responses[0].partitions[0]
    assert partition.error_code == NOT_LEADER_OR_FOLLOWER
    assert (partition.current_leader.leader_id, partition.current_leader.leader_epoch) == (leader, epoch)
    assert [(n.node_id, n.host, n.port) for n in response.node_endpoints] == [(leader, endpoint[0], int(endpoint[1]))]

    # The leader itself answers without hints.
    response = _request(cluster.brokers[leader].bootstrap, produce, ProduceResponse)
    assert response.responses[0].partition_responses[0].error_code == 0 and not response.node_endpoints


def _topic_id(bootstrap: str, topic: str):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.describe_topics([topic])[0]["topic_id"]
    finally:
        admin.close()
