"""A broker with two listeners, as in a container: INTERNAL (for other
containers) and EXTERNAL (for the host). Real clients bootstrapped on either
one are told that listener's advertised endpoint, for the cluster, the
partition leaders and the group coordinator, and produce and consume through it."""
from __future__ import annotations

import socket
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

from interop import admin
from interop.broker_process import BrokerProcess, free_port, venv_executable
from interop.clients import CONSUMERS, PRODUCERS
from interop.messages import binary_messages
from interop.verify import assert_delivered_in_order, assert_same_messages

RACK = "rack-1"


def free_port_on(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def listeners(tmp_path_factory) -> dict[str, str]:
    """Start the broker; its bootstrap address by listener name. Each listener
    is bound where it is advertised (127.0.0.2 stands for the internal name)."""
    directory = tmp_path_factory.mktemp("broker")
    internal = f"127.0.0.2:{free_port_on('127.0.0.2')}"
    external = f"127.0.0.1:{free_port()}"
    process = BrokerProcess(
        venv_executable("kafka-compat"), data_dir=directory / "data", log_path=directory / "broker.log",
        port=int(external.rsplit(":", 1)[1]),
        overrides={
            "listeners": f"INTERNAL://{internal},EXTERNAL://{external}",
            "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "broker.rack": RACK,
            "group.initial.rebalance.delay.ms": "0",
        })
    process.start()
    try:
        yield {"INTERNAL": internal, "EXTERNAL": external}
    finally:
        process.stop()


LISTENERS = ["INTERNAL", "EXTERNAL"]


@pytest.mark.parametrize("listener", LISTENERS)
def test_clients_are_told_the_endpoint_of_their_listener(listeners, listener):
    bootstrap = listeners[listener]
    host, port = bootstrap.rsplit(":", 1)
    expected = [(0, host, int(port), RACK)]

    confluent = AdminClient({"bootstrap.servers": bootstrap})
    cluster = confluent.describe_cluster(request_timeout=15).result()
    assert [(n.id, n.host, n.port, n.rack) for n in cluster.nodes] == expected
    brokers = confluent.list_topics(timeout=15).brokers
    assert [(b.id, b.host, b.port) for b in brokers.values()] == [expected[0][:3]]

    with admin.admin_client(bootstrap) as kafka_python:
        described = kafka_python.describe_cluster()
    assert [(b["broker_id"], b["host"], b["port"], b["rack"]) for b in described["brokers"]] == expected


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("producer, consumer", [("confluent-kafka", "kafka-python"), ("kafka-python", "confluent-kafka")])
def test_produce_and_consume_through_each_listener(listeners, listener, producer, consumer):
    bootstrap = listeners[listener]
    topic = f"listeners-{listener}-{producer}-{uuid.uuid4().hex[:8]}"
    admin.create_topic(bootstrap, topic, partitions=2)
    sent = binary_messages(500, seed=3)
    for partition in (0, 1):
        assert_delivered_in_order(PRODUCERS[producer](bootstrap, topic, sent, partition=partition), len(sent))
        assert_same_messages(sent, CONSUMERS[consumer](bootstrap, topic, len(sent), partition=partition))


@pytest.mark.parametrize("listener", LISTENERS)
def test_consumer_group_through_each_listener(listeners, listener):
    """The group coordinator is found on the listener's endpoint: a librdkafka
    group consumer commits, confluent's admin client names the coordinator,
    and kafka-python reads the committed offsets back through its coordinator."""
    bootstrap = listeners[listener]
    host, port = bootstrap.rsplit(":", 1)
    topic = f"listeners-group-{listener}-{uuid.uuid4().hex[:8]}"
    group = f"group-{listener}-{uuid.uuid4().hex[:8]}"
    admin.create_topic(bootstrap, topic)
    sent = binary_messages(100, seed=5)
    PRODUCERS["confluent-kafka"](bootstrap, topic, sent)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "socket.timeout.ms": 15_000})
    try:
        consumer.subscribe([topic])
        values = []
        deadline = time.monotonic() + 60
        while len(values) < len(sent) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                if msg.error():
                    raise KafkaException(msg.error())
                values.append(msg.value())
        assert values == [m.value for m in sent]
        consumer.commit(asynchronous=False)

        confluent = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its answer arrives
        description = confluent.describe_consumer_groups([group])[group].result(30)
        assert (description.coordinator.host, description.coordinator.port) == (host, int(port))
        assert len(description.members) == 1
    finally:
        consumer.close()

    with admin.admin_client(bootstrap) as kafka_python:
        offsets = kafka_python.list_group_offsets(group)[group]
    assert {(tp.topic, tp.partition): o.offset for tp, o in offsets.items()} == {(topic, 0): len(sent)}
