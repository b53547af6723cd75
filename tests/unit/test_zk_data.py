"""Kafka's znode formats, byte for byte.

Expected bytes come from Kafka 3.9's ZkData.scala encoders; those marked
"seen" were also read with zkCli from real Kafka clusters (Scala 2.13 builds),
key order included.
"""
from __future__ import annotations

import random
import string

import pytest

from kafka_compat.cluster import zk_data as zd
from kafka_compat.cluster.metadata import uuid_from_str

TOPIC_ID = uuid_from_str("cMr3GpVESX2L3byPGf93lQ")


def test_paths():
    assert zd.broker_path(1) == "/brokers/ids/1"
    assert zd.topic_path("t") == "/brokers/topics/t"
    assert zd.partitions_path("t") == "/brokers/topics/t/partitions"
    assert zd.partition_path("t", 3) == "/brokers/topics/t/partitions/3"
    assert zd.partition_state_path("t", 3) == "/brokers/topics/t/partitions/3/state"
    assert zd.delete_topic_path("t") == "/admin/delete_topics/t"
    assert zd.topic_config_path("t") == "/config/topics/t"
    assert zd.config_path("brokers", "<default>") == "/config/brokers/<default>"
    assert zd.config_change_path() == "/config/changes/config_change_"
    assert zd.PERSISTENT_PATHS == (
        "/consumers", "/brokers/ids", "/brokers/topics", "/config/changes", "/admin/delete_topics",
        "/brokers/seqid", "/isr_change_notification", "/latest_producer_id_block",
        "/log_dir_event_notification", "/config/topics", "/config/clients", "/config/users",
        "/config/brokers", "/config/ips")


def test_controller():  # seen
    data = zd.encode_controller(1, timestamp_ms=1704032949256)
    assert data == b'{"version":2,"brokerid":1,"timestamp":"1704032949256","kraftControllerEpoch":-1}'
    assert zd.decode_controller(data) == 1
    assert zd.decode_controller(b'{"version":1,"brokerid":2,"timestamp":"1"}') == 2
    assert zd.decode_controller(None) is None
    assert zd.encode_controller_epoch(7) == b"7"
    assert zd.decode_controller_epoch(b"7") == 7


def test_cluster_id():  # seen
    data = zd.encode_cluster_id("eQzK4lYlQ9y8P21IScOl_g")
    assert data == b'{"version":"1","id":"eQzK4lYlQ9y8P21IScOl_g"}'
    assert zd.decode_cluster_id(data) == "eQzK4lYlQ9y8P21IScOl_g"
    assert len(uuid_from_str(zd.new_cluster_id())) == 16


def plaintext(name: str, host: str, port: int) -> zd.Endpoint:
    return zd.Endpoint(name, host, port, "PLAINTEXT")


def test_broker_registration():  # seen
    registration = zd.BrokerRegistration(1, (plaintext("PLAINTEXT", "server1", 9092),))
    data = zd.encode_broker(registration, timestamp_ms=1704032948949)
    assert data == (
        b'{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},'
        b'"endpoints":["PLAINTEXT://server1:9092"],"jmx_port":-1,"port":9092,"host":"server1",'
        b'"version":5,"timestamp":"1704032948949"}')
    decoded = zd.decode_broker(1, data)
    assert decoded == zd.BrokerRegistration(1, registration.endpoints, timestamp_ms=1704032948949)


def test_broker_registration_two_listeners():  # seen
    endpoints = (plaintext("PLAINTEXT", "kafka-1", 9092), plaintext("PLAINTEXT_HOST", "localhost", 29092))
    data = zd.encode_broker(zd.BrokerRegistration(1, endpoints), timestamp_ms=1625336133848)
    assert data == (
        b'{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT",'
        b'"PLAINTEXT_HOST":"PLAINTEXT"},"endpoints":["PLAINTEXT://kafka-1:9092",'
        b'"PLAINTEXT_HOST://localhost:29092"],"jmx_port":-1,"port":9092,"host":"kafka-1",'
        b'"version":5,"timestamp":"1625336133848"}')
    assert zd.decode_broker(1, data).endpoints == endpoints


def test_broker_registration_rack_and_no_plaintext():
    endpoints = (zd.Endpoint("INTERNAL", "10.0.0.1", 9093, "SSL"),
                 zd.Endpoint("EXTERNAL", "::1", 9094, "SASL_SSL"))
    registration = zd.BrokerRegistration(3, endpoints, rack="r1")
    data = zd.encode_broker(registration, timestamp_ms=5)
    assert data == (
        b'{"features":{},"listener_security_protocol_map":{"INTERNAL":"SSL","EXTERNAL":"SASL_SSL"},'
        b'"endpoints":["INTERNAL://10.0.0.1:9093","EXTERNAL://[::1]:9094"],"rack":"r1",'
        b'"jmx_port":-1,"port":-1,"host":null,"version":5,"timestamp":"5"}')
    assert zd.decode_broker(3, data) == zd.BrokerRegistration(3, endpoints, rack="r1", timestamp_ms=5)


def test_broker_registration_older_versions():
    v1 = b'{"version":1,"host":"h","port":9092,"jmx_port":9999,"timestamp":"2233345666"}'
    assert zd.decode_broker(0, v1) == zd.BrokerRegistration(
        0, (plaintext("PLAINTEXT", "h", 9092),), jmx_port=9999, version=1, timestamp_ms=2233345666)
    v2 = (b'{"version":2,"host":"h","port":9092,"jmx_port":-1,"timestamp":"1",'
          b'"endpoints":["PLAINTEXT://h:9092","SSL://h:9093"]}')
    assert zd.decode_broker(0, v2).endpoints == (
        plaintext("PLAINTEXT", "h", 9092), zd.Endpoint("SSL", "h", 9093, "SSL"))
    with pytest.raises(ValueError, match="Failed to parse ZooKeeper registration for broker 0"):
        zd.decode_broker(0, b"")


def test_topic_assignment():  # seen
    assignment = zd.TopicAssignment({0: [2, 3, 1], 1: [3, 1, 2], 2: [1, 2, 3]}, topic_id=TOPIC_ID)
    data = zd.encode_topic(assignment)
    assert data == (
        b'{"partitions":{"0":[2,3,1],"1":[3,1,2],"2":[1,2,3]},"topic_id":"cMr3GpVESX2L3byPGf93lQ",'
        b'"adding_replicas":{},"removing_replicas":{},"version":3}')
    assert zd.decode_topic(data) == assignment


def test_topic_assignment_partition_order():  # seen: Scala's hash order, not numeric
    replicas = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 0], [4, 0, 1], [0, 2, 3], [1, 3, 4],
                [2, 4, 0], [3, 0, 1], [4, 1, 2], [1, 2, 3], [1, 3, 4]]
    data = zd.encode_topic(zd.TopicAssignment(dict(enumerate(replicas))))
    assert data == (
        b'{"partitions":{"11":[1,3,4],"0":[0,1,2],"1":[1,2,3],"2":[2,3,4],"3":[3,4,0],"4":[4,0,1],'
        b'"5":[0,2,3],"6":[1,3,4],"7":[2,4,0],"8":[3,0,1],"9":[4,1,2],"10":[1,2,3]},'
        b'"adding_replicas":{},"removing_replicas":{},"version":3}')
    assert list(zd.decode_topic(data).partitions) == list(range(12))


def test_topic_assignment_reassigning_and_older_versions():
    assignment = zd.TopicAssignment({0: [1, 2], 1: [2, 3]}, TOPIC_ID, adding_replicas={1: [3]},
                                    removing_replicas={1: [1], 0: []})
    data = zd.encode_topic(assignment)
    assert data == (
        b'{"partitions":{"0":[1,2],"1":[2,3]},"topic_id":"cMr3GpVESX2L3byPGf93lQ",'
        b'"adding_replicas":{"1":[3]},"removing_replicas":{"1":[1]},"version":3}')
    assert zd.decode_topic(data).removing_replicas == {1: [1]}
    v1 = zd.decode_topic(b'{"version":1,"partitions":{"1":[0],"0":[1]}}')
    assert v1 == zd.TopicAssignment({0: [1], 1: [0]})
    assert zd.decode_topic(None) == zd.TopicAssignment({})


def test_partition_state():  # seen
    state = zd.PartitionState(leader=2, leader_epoch=0, isr=[2, 3, 1], controller_epoch=1)
    data = zd.encode_partition_state(state)
    assert data == b'{"controller_epoch":1,"leader":2,"version":1,"leader_epoch":0,"isr":[2,3,1]}'
    assert zd.decode_partition_state(data) == state
    assert zd.decode_partition_state(b"") is None


def test_partition_state_recovering():
    state = zd.PartitionState(leader=1, leader_epoch=4, isr=[1], controller_epoch=3,
                              leader_recovery_state=zd.RECOVERING)
    data = zd.encode_partition_state(state)
    assert data == (b'{"controller_epoch":3,"leader":1,"version":1,"leader_recovery_state":1,'
                    b'"leader_epoch":4,"isr":[1]}')
    assert zd.decode_partition_state(data) == state


def test_topic_config():
    # __consumer_offsets' configs, in the order Kafka puts them (Java 9+ order).
    config = {"cleanup.policy": "compact", "segment.bytes": "104857600", "compression.type": "producer"}
    data = zd.encode_config(config)
    assert data == (b'{"version":1,"config":{"compression.type":"producer",'
                    b'"cleanup.policy":"compact","segment.bytes":"104857600"}}')
    assert zd.decode_config(data) == config
    assert zd.encode_config({}) == b'{"version":1,"config":{}}'
    assert zd.decode_config(None) == {}


def test_config_change():
    data = zd.encode_config_change("topics/t")
    assert data == b'{"version":2,"entity_path":"topics/t"}'
    assert zd.decode_config_change(data) == "topics/t"
    assert zd.decode_config_change(b'{"version":1,"entity_type":"topics","entity_name":"t"}') == "topics/t"


def test_producer_id_block():
    first = zd.next_producer_id_block(zd.decode_producer_id_block(None), broker_id=2)
    assert first == zd.ProducerIdBlock(2, 0, 1000)
    data = zd.encode_producer_id_block(first)
    assert data == b'{"version":1,"broker":2,"block_start":"0","block_end":"999"}'
    assert zd.decode_producer_id_block(data) == first
    second = zd.next_producer_id_block(first, broker_id=1)
    assert (second.first_producer_id, second.last_producer_id) == (1000, 1999)
    with pytest.raises(OverflowError):
        zd.next_producer_id_block(zd.ProducerIdBlock(1, 2**63 - 1000, 1000), broker_id=1)


def test_feature():
    assert zd.encode_feature() == b'{"features":{},"version":2,"status":1}'


def test_java_properties_order_with_resizes():
    """Pinned against a JDK 17: 30 keys go through a resize (at 12 and 24)."""
    keys = [f"k{i}" for i in range(30)]
    assert zd.java_properties_order(keys) == [
        "k11", "k10", "k13", "k12", "k15", "k14", "k17", "k16", "k19", "k18", "k0", "k1", "k2",
        "k3", "k20", "k4", "k5", "k22", "k6", "k21", "k7", "k24", "k8", "k23", "k9", "k26",
        "k25", "k28", "k27", "k29"]


def test_orders_are_permutations():
    rng = random.Random(9)
    for _ in range(200):
        keys = list({"".join(rng.choices(string.ascii_letters + ".", k=rng.randint(1, 12)))
                     for _ in range(rng.randint(0, 60))})
        for order in (zd.java_properties_order, zd.scala_mutable_map_order, zd.scala_immutable_map_order):
            assert sorted(order(keys)) == sorted(keys)
