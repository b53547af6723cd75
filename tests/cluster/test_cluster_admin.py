"""Admin operations across a three-broker ZooKeeper-mode cluster, as Kafka 3.9
does them: topic config changes reach every broker, CreatePartitions and
auto-creation through any broker, producer ids unique across brokers, the
real controller named everywhere, Kafka's replication-factor check and
explicit replica assignments. Real ZooKeeper, real broker processes;
confluent-kafka, kafka-python, and aiokafka's client where a request must go
to one broker in particular."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import DescribeConfigsRequest
from aiokafka.protocol.transaction import InitProducerIdRequest
from confluent_kafka import KafkaError as CkError
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType
from kafka.admin import NewPartitions as KpNewPartitions
from kafka.admin import NewTopic as KpNewTopic
from kafka.errors import InvalidReplicationFactorError, MessageSizeTooLargeError
from kazoo.client import KazooClient

from interop.cluster import Cluster, wait_for
from tests.cluster.readers import consume_all

TOPIC_RESOURCE = 2
# Without replication (not built yet) a controlled shutdown can't move the
# leaders of the replication-factor-2 topics here and would spend its retries
# (3 x 5 s) on every broker stop; it is not what these tests are about.
OVERRIDES = {"zookeeper.session.timeout.ms": "6000", "group.initial.rebalance.delay.ms": "0",
             "offsets.topic.num.partitions": "3", "offsets.topic.replication.factor": "1", "num.partitions": "3",
             "controlled.shutdown.enable": "false"}


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def create(bootstrap: str, topic: NewTopic) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the answer: destroying it fails the future
    admin.create_topics([topic])[topic.topic].result(30)


def topic_metadata(bootstrap: str, topic: str):
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic]


def all_led(bootstrap: str, topic: str, count: int) -> dict[int, int] | None:
    """partition -> leader, once the topic has ``count`` partitions all led."""
    partitions = topic_metadata(bootstrap, topic).partitions
    led = {p: info.leader for p, info in partitions.items()}
    return led if len(led) == count and min(led.values()) >= 0 else None


def at_broker(cluster: Cluster, broker_id: int, request):
    """Send one request to one broker in particular (aiokafka's client)."""
    async def send():
        client = AIOKafkaClient(bootstrap_servers=cluster.bootstrap)
        await client.bootstrap()
        try:
            return await client.send(broker_id, request)
        finally:
            await client.close()
    return asyncio.run(send())


def topic_config_at(cluster: Cluster, broker_id: int, topic: str, name: str) -> str | None:
    response = at_broker(cluster, broker_id, DescribeConfigsRequest([(TOPIC_RESOURCE, topic, [name])]))
    (resource,) = response.resources
    assert resource[0] == 0, resource
    return {entry[0]: entry[1] for entry in resource[4]}.get(name)


def produce_confluent(bootstrap: str, topic: str, values: list[bytes], partition: int = -1) -> list[bytes]:
    """The values acknowledged; every delivery error is raised."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    acked, failed = [], []
    for value in values:
        producer.produce(topic, value, partition=partition,
                         on_delivery=lambda err, msg: failed.append(err) if err else acked.append(msg.value()))
    assert producer.flush(30) == 0
    if failed:
        raise KafkaException(failed[0])
    return acked


def produce_kafka_python(bootstrap: str, topic: str, values: list[bytes], partition: int | None = None,
                         **config) -> list[bytes]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000, **config)
    try:
        futures = [(value, producer.send(topic, value, partition=partition)) for value in values]
        return [value for value, future in futures if future.get(timeout=30)]
    finally:
        producer.close()


def test_a_topic_config_change_reaches_every_broker_and_its_logs(cluster):
    """Set through one broker, max.message.bytes is what DescribeConfigs says
    on every broker at once, and what each leader's log enforces once the
    change notification reaches it."""
    admin = AdminClient({"bootstrap.servers": cluster.brokers[1].bootstrap})
    admin.create_topics([NewTopic("limited", 3, replica_assignment=[[1], [2], [3]])])["limited"].result(30)
    wait_for(lambda: all_led(cluster.bootstrap, "limited", 3), 20, "leaders")
    big = b"x" * 5000
    acked = produce_confluent(cluster.bootstrap, "limited", [big], partition=2)

    resource = ConfigResource("topic", "limited", incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(30)
    # Every broker describes it at once (read from ZooKeeper, as Kafka does).
    assert [topic_config_at(cluster, b, "limited", "max.message.bytes") for b in cluster.brokers] == ["2000"] * 3

    def refused(produce, partition: int, error) -> bool:
        """Whether the big message is refused; one accepted before its leader
        applied the change notification is acknowledged like any other."""
        try:
            acked.extend(produce(cluster.bootstrap, "limited", [big], partition=partition))
        except error as e:
            return e
        return False
    # Partition 2 is led by broker 3 and partition 1 by broker 2, neither of which took the change.
    refusal = wait_for(lambda: refused(produce_confluent, 2, KafkaException), 20, "broker 3's log to apply it")
    assert refusal.args[0].code() == CkError.MSG_SIZE_TOO_LARGE
    wait_for(lambda: refused(produce_kafka_python, 1, MessageSizeTooLargeError), 20, "broker 2's log to apply it")
    acked += produce_kafka_python(cluster.bootstrap, "limited", [b"small"] * 10, partition=1)

    # kafka-python's (non-incremental) AlterConfigs through broker 2 lifts the limit again.
    kp_admin = KafkaAdminClient(bootstrap_servers=cluster.brokers[2].bootstrap)
    try:
        kp_admin.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, "limited",
                                                 configs={"max.message.bytes": "100000"})])
    finally:
        kp_admin.close()
    assert [topic_config_at(cluster, b, "limited", "max.message.bytes") for b in cluster.brokers] == ["100000"] * 3
    described = admin.describe_configs([ConfigResource("topic", "limited")])
    assert list(described.values())[0].result()["max.message.bytes"].value == "100000"
    wait_for(lambda: not refused(produce_confluent, 1, KafkaException), 20, "broker 2's log to lift the limit")
    wait_for(lambda: not refused(produce_kafka_python, 0, MessageSizeTooLargeError), 20,
             "broker 1's log to lift the limit")
    assert sorted(consume_all(cluster.bootstrap, "limited", len(acked))) == sorted(acked)


def test_create_partitions_through_any_broker(cluster, zk):
    create(cluster.bootstrap, NewTopic("grown", 2, 1))
    kp_admin = KafkaAdminClient(bootstrap_servers=cluster.brokers[2].bootstrap)
    try:
        kp_admin.create_partitions({"grown": KpNewPartitions(4)})
    finally:
        kp_admin.close()
    wait_for(lambda: all_led(cluster.bootstrap, "grown", 4), 20, "4 partitions led")
    admin = AdminClient({"bootstrap.servers": cluster.brokers[3].bootstrap})
    admin.create_partitions([NewPartitions("grown", 6, replica_assignment=[[3], [1]])])["grown"].result(30)
    led = wait_for(lambda: all_led(cluster.bootstrap, "grown", 6), 20, "6 partitions led")
    assert (led[4], led[5]) == (3, 1)
    assignment = json.loads(zk.get("/brokers/topics/grown")[0])["partitions"]
    assert sorted(assignment) == [str(p) for p in range(6)] and assignment["4"] == [3] and assignment["5"] == [1]
    acked = []
    for partition in range(6):
        acked += produce_confluent(cluster.bootstrap, "grown", [f"c{partition}".encode()] * 5, partition)
        acked += produce_kafka_python(cluster.bootstrap, "grown", [f"k{partition}".encode()] * 5, partition)
    assert sorted(consume_all(cluster.bootstrap, "grown", len(acked))) == sorted(acked)


def test_auto_creation_through_metadata_in_the_cluster(cluster):
    """Producers of both families write to topics that don't exist yet: the
    broker they ask creates them (num.partitions=3), spread over the brokers."""
    acked_c = produce_confluent(cluster.brokers[1].bootstrap, "auto-c", [f"c{i}".encode() for i in range(30)])
    acked_k = produce_kafka_python(cluster.brokers[3].bootstrap, "auto-k", [f"k{i}".encode() for i in range(30)])
    for topic, acked in (("auto-c", acked_c), ("auto-k", acked_k)):
        led = wait_for(lambda: all_led(cluster.bootstrap, topic, 3), 20, f"{topic} led")
        assert set(led.values()) == {1, 2, 3}
        assert sorted(consume_all(cluster.brokers[2].bootstrap, topic, len(acked))) == sorted(acked)


def test_producer_ids_are_unique_across_brokers(cluster, zk):
    """Each broker hands out producer ids from blocks of 1,000 it reserves in
    /latest_producer_id_block; a broker that runs out reserves the next free block."""
    async def init_producer_ids(broker_id: int, count: int) -> list[int]:
        client = AIOKafkaClient(bootstrap_servers=cluster.bootstrap)
        await client.bootstrap()
        try:
            responses = await asyncio.gather(*(client.send(broker_id, InitProducerIdRequest(None, 60_000))
                                               for _ in range(count)))
        finally:
            await client.close()
        assert {r.error_code for r in responses} == {0}
        return [r.producer_id for r in responses]

    async def from_every_broker() -> dict[int, list[int]]:
        # Broker 1 is asked over two connections at once and crosses into a
        # second block; Kafka reserves one block at a time per broker.
        asks = [(1, 600), (1, 600), (2, 300), (3, 300)]
        results = await asyncio.gather(*(init_producer_ids(b, n) for b, n in asks))
        ids: dict[int, list[int]] = {}
        for (broker_id, _), pids in zip(asks, results):
            ids.setdefault(broker_id, []).extend(pids)
        return ids

    ids = asyncio.run(from_every_broker())
    every = [pid for pids in ids.values() for pid in pids]
    assert len(set(every)) == len(every) == 1800
    blocks = {broker_id: {pid // 1000 for pid in pids} for broker_id, pids in ids.items()}
    assert len(blocks[1]) == 2 and all(len(blocks[b]) == 1 for b in (2, 3))
    assert not blocks[1] & blocks[2] and not blocks[1] & blocks[3] and not blocks[2] & blocks[3]
    latest = json.loads(zk.get("/latest_producer_id_block")[0])
    assert latest["block_end"] == str(4 * 1000 - 1)  # four blocks reserved: 0-999 .. 3000-3999

    # Idempotent producers of both families, bootstrapped on different brokers,
    # write to one partition: a shared producer id would make the broker drop
    # or refuse some of them.
    create(cluster.bootstrap, NewTopic("pids", 1, replica_assignment=[[2]]))
    acked = []
    for broker in cluster.brokers.values():
        acked += produce_confluent(broker.bootstrap, "pids", [f"c-{broker.port}-{i}".encode() for i in range(20)])
        acked += produce_kafka_python(broker.bootstrap, "pids", [f"k-{broker.port}-{i}".encode() for i in range(20)],
                                      enable_idempotence=True)
    assert sorted(consume_all(cluster.bootstrap, "pids", len(acked))) == sorted(acked)


def zk_controller(zk: KazooClient) -> int | None:
    stat = zk.exists("/controller")
    return json.loads(zk.get("/controller")[0])["brokerid"] if stat else None


def controllers_named(cluster: Cluster) -> set[int]:
    """The controller each running broker names, through both families' clients."""
    named = set()
    for broker in cluster.brokers.values():
        if not broker.running():
            continue
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        named.add(admin.list_topics(timeout=10).controller_id)
        named.add(admin.describe_cluster().result(10).controller.id)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            named.add(admin.describe_cluster()["controller_id"])
        finally:
            admin.close()
    return named


def test_describe_cluster_and_metadata_name_the_real_controller(cluster, zk):
    controller = zk_controller(zk)
    assert controllers_named(cluster) == {controller}
    cluster.brokers[controller].stop()  # a clean stop: another broker takes over at once
    successor = wait_for(lambda: zk_controller(zk) not in (None, controller) and zk_controller(zk), 20,
                         "a new controller")
    wait_for(lambda: controllers_named(cluster) == {successor}, 20, "every broker to name the new controller")
    cluster.brokers[controller].start()
    cluster.wait_until_formed(20)
    assert controllers_named(cluster) == {zk_controller(zk)} == {successor}


def test_a_replication_factor_above_the_live_broker_count_is_refused(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    with pytest.raises(KafkaException) as refused:
        admin.create_topics([NewTopic("too-many", 2, 4)])["too-many"].result(30)
    error = refused.value.args[0]
    assert error.code() == CkError.INVALID_REPLICATION_FACTOR
    assert error.str() == "Replication factor: 4 larger than available brokers: 3."

    cluster.brokers[3].stop()
    survivors = ",".join(b.bootstrap for b in cluster.brokers.values() if b.running())
    kp_admin = KafkaAdminClient(bootstrap_servers=survivors)
    try:
        def refused_now():  # once the survivors know broker 3 is gone
            try:
                kp_admin.create_topics([KpNewTopic("three", 1, 3)])
            except InvalidReplicationFactorError as e:
                return str(e)
            pytest.fail("a topic with replication factor 3 was created on 2 live brokers")
        message = wait_for(refused_now, 20, "INVALID_REPLICATION_FACTOR")
    finally:
        kp_admin.close()
    assert "Replication factor: 3 larger than available brokers: 2." in message
    assert "three" not in AdminClient({"bootstrap.servers": survivors}).list_topics(timeout=10).topics


def test_explicit_replica_assignments_are_honoured(cluster, zk):
    assignment = [[3, 1], [1, 2], [2, 3], [3, 2]]
    create(cluster.bootstrap, NewTopic("placed", len(assignment), replica_assignment=assignment))
    kp_admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        kp_admin.create_topics([KpNewTopic("placed-kp", -1, -1, replica_assignments={0: [2], 1: [2], 2: [1]})])
    finally:
        kp_admin.close()
    assert json.loads(zk.get("/brokers/topics/placed")[0])["partitions"] == {
        str(p): replicas for p, replicas in enumerate(assignment)}
    assert json.loads(zk.get("/brokers/topics/placed-kp")[0])["partitions"] == {"0": [2], "1": [2], "2": [1]}
    # The first replica leads (the preferred leader); Metadata lists the replicas as assigned.
    led = wait_for(lambda: all_led(cluster.bootstrap, "placed", 4), 20, "placed led")
    assert led == {0: 3, 1: 1, 2: 2, 3: 3}
    partitions = topic_metadata(cluster.bootstrap, "placed").partitions
    assert {p: info.replicas for p, info in partitions.items()} == dict(enumerate(assignment))
    assert wait_for(lambda: all_led(cluster.bootstrap, "placed-kp", 3), 20, "placed-kp led") == {0: 2, 1: 2, 2: 1}
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap)
    try:
        assert consumer.partitions_for_topic("placed-kp") == {0, 1, 2}
    finally:
        consumer.close()
    acked = produce_kafka_python(cluster.bootstrap, "placed", [f"{i}".encode() for i in range(40)])
    acked += produce_confluent(cluster.bootstrap, "placed-kp", [f"kp{i}".encode() for i in range(30)])
    assert sorted(consume_all(cluster.bootstrap, "placed", 40)) == sorted(acked[:40])
    assert sorted(consume_all(cluster.bootstrap, "placed-kp", 30)) == sorted(acked[40:])
