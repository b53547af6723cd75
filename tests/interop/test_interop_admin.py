"""Administration through kafka-python's KafkaAdminClient and confluent-kafka's
AdminClient (topics, configs, records, log dirs, ACLs): what each client
surfaces, errors included."""
from __future__ import annotations

import time

import kafka.errors
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, ResourcePatternType, ResourceType)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         ConfigResourceType, ResourcePatternFilter)
from kafka.admin import ResourceType as KpResourceType
from kafka.structs import TopicPartition as KpTopicPartition

from interop.admin import admin_client

INVALID_NAMES = ["has space", "slash/name", "..", "x" * 250]
TOPIC_CONFIGS = {"retention.ms": "3600000", "cleanup.policy": "compact"}


def wait_until(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)
    return result


# --- kafka-python ---------------------------------------------------------

@pytest.fixture
def kp_admin(broker):
    with admin_client(broker.bootstrap) as client:
        yield client


def kp_partitions(client, name) -> list[dict]:
    [topic] = client.describe_topics([name])
    assert topic["error_code"] == 0, topic
    return sorted(topic["partitions"], key=lambda p: p["partition_index"])


def test_kafka_python_create_describe_delete(kp_admin, topic_name):
    name = topic_name()
    kp_admin.create_topics({name: {"num_partitions": 3, "replication_factor": 1,
                                   "configs": TOPIC_CONFIGS}}, wait_for_metadata=True)
    assert name in kp_admin.list_topics()
    partitions = kp_partitions(kp_admin, name)
    assert [p["partition_index"] for p in partitions] == [0, 1, 2]
    for p in partitions:
        assert p["leader_id"] >= 0 and p["replica_nodes"] == [p["leader_id"]], p
        assert p["isr_nodes"] == [p["leader_id"]], p

    modified = kp_admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, name)])
    configs = modified["topic"][name]
    assert {k: v["value"] for k, v in configs.items()} == TOPIC_CONFIGS
    assert {v["config_source"] for v in configs.values()} == {"DYNAMIC_TOPIC_CONFIG"}
    everything = kp_admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, name)],
                                           config_filter="all")["topic"][name]
    assert everything["retention.ms"]["value"] == "3600000"
    assert everything["max.message.bytes"]["value"] == "1048588"
    assert everything["max.message.bytes"]["config_source"] == "DEFAULT_CONFIG"

    kp_admin.delete_topics([name])
    wait_until(lambda: name not in kp_admin.list_topics(), what=f"{name} gone from metadata")


def test_kafka_python_create_partitions(kp_admin, topic_name):
    name = topic_name()
    kp_admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}},
                           wait_for_metadata=True)
    kp_admin.create_partitions({name: 4})
    wait_until(lambda: len(kp_partitions(kp_admin, name)) == 4, what="4 partitions")
    with pytest.raises(kafka.errors.InvalidPartitionsError):
        kp_admin.create_partitions({name: 2})
    with pytest.raises(kafka.errors.UnknownTopicOrPartitionError):
        kp_admin.create_partitions({topic_name("-missing"): 2})


def test_kafka_python_create_errors(kp_admin, topic_name):
    name = topic_name()
    kp_admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(kafka.errors.TopicAlreadyExistsError):
        kp_admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(kafka.errors.InvalidReplicationFactorError):
        kp_admin.create_topics({topic_name("-rf2"): {"num_partitions": 1, "replication_factor": 2}})
    with pytest.raises(kafka.errors.InvalidPartitionsError):
        kp_admin.create_topics({topic_name("-p0"): {"num_partitions": 0, "replication_factor": 1}})
    for bad in INVALID_NAMES:
        with pytest.raises(kafka.errors.InvalidTopicError):
            kp_admin.create_topics({bad: {"num_partitions": 1, "replication_factor": 1}})
    with pytest.raises(kafka.errors.UnknownTopicOrPartitionError):
        kp_admin.delete_topics([topic_name("-missing")])


def test_kafka_python_validate_only_creates_nothing(kp_admin, topic_name):
    name = topic_name()
    kp_admin.create_topics({name: {"num_partitions": 2, "replication_factor": 1}},
                           validate_only=True)
    assert name not in kp_admin.list_topics()


# --- confluent-kafka ------------------------------------------------------

@pytest.fixture
def ck_admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, "client.id": "interop-admin"})


def ck_result(futures: dict, key):
    return futures[key].result(timeout=30)


def ck_error_code(futures: dict, key) -> int:
    with pytest.raises(KafkaException) as info:
        ck_result(futures, key)
    return info.value.args[0].code()


def test_confluent_create_describe_delete(ck_admin, topic_name):
    name = topic_name()
    ck_result(ck_admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1,
                                               config=TOPIC_CONFIGS)]), name)
    metadata = ck_admin.list_topics(name, timeout=10)
    topic = metadata.topics[name]
    assert topic.error is None
    assert sorted(topic.partitions) == [0, 1, 2]
    for p in topic.partitions.values():
        assert p.leader in metadata.brokers and p.replicas == [p.leader] and p.isrs == [p.leader]

    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = ck_result(ck_admin.describe_configs([resource]), resource)
    for key, value in TOPIC_CONFIGS.items():
        assert entries[key].value == value
        assert entries[key].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["segment.bytes"].value == "1073741824"
    assert entries["segment.bytes"].is_default

    ck_result(ck_admin.delete_topics([name], operation_timeout=10), name)
    wait_until(lambda: name not in ck_admin.list_topics(timeout=10).topics,
               what=f"{name} gone from metadata")


def test_confluent_default_partitions_and_create_partitions(ck_admin, topic_name):
    name = topic_name()
    ck_result(ck_admin.create_topics([NewTopic(name)]), name)  # broker defaults: 1 partition
    assert sorted(ck_admin.list_topics(name, timeout=10).topics[name].partitions) == [0]

    ck_result(ck_admin.create_partitions([NewPartitions(name, 3)]), name)
    wait_until(lambda: len(ck_admin.list_topics(name, timeout=10).topics[name].partitions) == 3,
               what="3 partitions")
    code = ck_error_code(ck_admin.create_partitions([NewPartitions(name, 3)]), name)
    assert code == KafkaError.INVALID_PARTITIONS


def test_confluent_create_errors(ck_admin, topic_name):
    name = topic_name()
    ck_result(ck_admin.create_topics([NewTopic(name, 1, 1)]), name)
    assert ck_error_code(ck_admin.create_topics([NewTopic(name, 1, 1)]), name) \
        == KafkaError.TOPIC_ALREADY_EXISTS
    rf2 = topic_name("-rf2")
    assert ck_error_code(ck_admin.create_topics([NewTopic(rf2, 1, 2)]), rf2) \
        == KafkaError.INVALID_REPLICATION_FACTOR
    for bad in INVALID_NAMES:
        assert ck_error_code(ck_admin.create_topics([NewTopic(bad, 1, 1)]), bad) \
            == KafkaError.TOPIC_EXCEPTION
    bad_config = topic_name("-cfg")
    assert ck_error_code(
        ck_admin.create_topics([NewTopic(bad_config, 1, 1, config={"retention.ms": "soon"})]),
        bad_config) == KafkaError.INVALID_CONFIG
    missing = topic_name("-missing")
    assert ck_error_code(ck_admin.delete_topics([missing]), missing) \
        == KafkaError.UNKNOWN_TOPIC_OR_PART


# --- altering configs, each client checked through the other ------------

def test_kafka_python_alter_configs_seen_by_confluent(kp_admin, ck_admin, topic_name):
    name = topic_name()
    kp_admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1,
                                   "configs": {"retention.ms": "3600000"}}}, wait_for_metadata=True)
    kp_admin.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, name,
                                             configs={"segment.ms": "600000"})], incremental=False)
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = ck_result(ck_admin.describe_configs([resource]), resource)
    # AlterConfigs replaces the whole set; kafka-python sends the topic's other
    # overrides along (it reads them first), so retention.ms stays
    assert entries["segment.ms"].value == "600000"
    assert entries["segment.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["retention.ms"].value == "3600000"
    assert entries["segment.bytes"].is_default
    result = kp_admin.alter_configs([KpConfigResource(ConfigResourceType.TOPIC, name,
                                                      configs={"no.such.config": "1"})],
                                    incremental=False, raise_on_unknown=False)
    assert result["topic"][name] == "[Error 40] InvalidConfigurationError: Unknown topic config name: no.such.config"


def test_confluent_incremental_alter_configs_seen_by_kafka_python(kp_admin, ck_admin, topic_name):
    name = topic_name()
    ck_result(ck_admin.create_topics([NewTopic(name, 1, 1, config={"retention.ms": "3600000"})]), name)
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("max.message.bytes", "2000000", incremental_operation=AlterConfigOpType.SET),
    ])
    ck_result(ck_admin.incremental_alter_configs([resource]), resource)
    configs = kp_admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, name)])["topic"][name]
    assert {k: v["value"] for k, v in configs.items()} == {
        "retention.ms": "3600000", "cleanup.policy": "delete,compact", "max.message.bytes": "2000000"}

    missing = ConfigResource(ResourceType.TOPIC, topic_name("-missing"), incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    assert ck_error_code(ck_admin.incremental_alter_configs([missing]), missing) == KafkaError.UNKNOWN_TOPIC_OR_PART
    bad = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    ck_result(ck_admin.incremental_alter_configs([bad]), bad)
    configs = kp_admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, name)])["topic"][name]
    assert "retention.ms" not in configs


# --- deleting records, log dirs --------------------------------------------

def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, f"m{i}".encode(), partition=0)
    assert producer.flush(30) == 0


def test_delete_records_from_both_clients(broker, kp_admin, ck_admin, topic_name):
    name = topic_name()
    ck_result(ck_admin.create_topics([NewTopic(name, 1, 1)]), name)
    _produce(broker.bootstrap, name, 20)
    result = kp_admin.delete_records({KpTopicPartition(name, 0): 5})
    assert result[KpTopicPartition(name, 0)]["low_watermark"] == 5
    futures = ck_admin.delete_records([TopicPartition(name, 0, 12)])
    deleted = futures[TopicPartition(name, 0, 12)].result(timeout=30)
    assert deleted.low_watermark == 12
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic_name("-g"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
        assert (low, high) == (12, 20)
        consumer.assign([TopicPartition(name, 0, OFFSET_BEGINNING)])
        first = None
        deadline = time.monotonic() + 20
        while first is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                first = message
        assert first is not None and first.offset() == 12 and first.value() == b"m12"
    finally:
        consumer.close()


def test_kafka_python_describe_log_dirs(broker, kp_admin, topic_name):
    name = topic_name()
    kp_admin.create_topics({name: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True)
    _produce(broker.bootstrap, name, 10)
    [per_broker] = kp_admin.describe_log_dirs(topic_partitions={name: [0, 1]})
    [log_dir] = per_broker["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["total_bytes"] >= log_dir["usable_bytes"] > 0
    [topic] = log_dir["topics"]
    sizes = {p["partition_index"]: (p["partition_size"], p["offset_lag"]) for p in topic["partitions"]}
    assert topic["name"] == name and sizes[1] == (0, 0) and sizes[0][0] > 0 and sizes[0][1] == 0


def test_acls_are_refused_as_kafka_without_an_authorizer_refuses_them(kp_admin, ck_admin):
    kp_filter = ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                          permission_type=ACLPermissionType.ANY,
                          resource_pattern=ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY))
    with pytest.raises(kafka.errors.SecurityDisabledError):
        kp_admin.describe_acls(kp_filter)
    ck_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
    # librdkafka drops DescribeAcls' error code: against Kafka too this is an empty list
    assert ck_admin.describe_acls(ck_filter).result(timeout=30) == []
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    for futures in (ck_admin.create_acls([binding]), ck_admin.delete_acls([ck_filter])):
        [future] = futures.values()
        with pytest.raises(KafkaException) as info:
            future.result(timeout=30)
        assert (info.value.args[0].code(), info.value.args[0].str()) == (
            KafkaError.SECURITY_DISABLED, "No Authorizer is configured.")
