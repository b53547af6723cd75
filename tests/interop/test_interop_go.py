"""The Go clients (interop/go) beyond the shared matrix: franz-go's kgo
producer (acks 0/1/all, its default murmur2 key partitioner) and group
consumer (committing, resuming), its kadm admin client (topics, configs,
offsets, groups, offset deletion, lag), and IBM/sarama's sync and async
producers (acks, its hash partitioner) and consumer group (committing,
resuming); and both clients speaking older releases' request versions."""
from __future__ import annotations

import time
import uuid

import pytest
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.partitioner.default import murmur2

from interop import franz_go_client, java_client, sarama_client
from interop.admin import admin_client
from interop.clients import CONSUMERS, PRODUCERS
from interop.go_program import GoClientError
from interop.group_member import BROKER_OVERRIDES, ConsumerGroup
from interop.messages import Message, binary_messages
from interop.verify import assert_delivered_in_order, assert_same_messages

GO_CLIENTS = {"franz-go": franz_go_client, "sarama": sarama_client}


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return BROKER_OVERRIDES


def wait_until(condition, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.05)
    return result


def keyed_messages(count: int) -> list[Message]:
    return [Message(b"key-%d" % (i % 37), b"value-%d" % i, (("i", b"%d" % i),), 1_700_000_000_000 + i)
            for i in range(count)]


def assert_partitioned_as(bootstrap: str, topic: str, sent: list[Message],
                          acked: list[tuple[int, int]], expected: list[int], partitions: int) -> None:
    """Each message went to its expected partition, and each partition holds
    exactly its messages, in order, byte for byte (read by confluent-kafka)."""
    assert [p for p, _ in acked] == expected
    for partition in range(partitions):
        mine = [m for m, p in zip(sent, expected) if p == partition]
        assert [o for p, o in acked if p == partition] == list(range(len(mine)))
        records = CONSUMERS["confluent-kafka"](bootstrap, topic, len(mine), partition=partition)
        assert_same_messages(mine, records)


# --- producers -------------------------------------------------------------------------

@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("producer", ["franz-go", "sarama", "sarama-async"])
def test_acks(broker, new_topic, producer, acks):
    topic = new_topic()
    sent = binary_messages(2_000, seed=31)
    offsets = PRODUCERS[producer](broker.bootstrap, topic, sent, acks=acks)
    if acks == "0":
        assert offsets == [-1] * len(sent)  # no answer, no offset
    else:
        assert_delivered_in_order(offsets, len(sent))
    assert_same_messages(sent, CONSUMERS["confluent-kafka"](broker.bootstrap, topic, len(sent)))


def test_franz_go_default_partitioner_hashes_keys_as_java(broker, new_topic):
    """kgo's default partitioner puts a keyed record where Java's does:
    murmur2(key) mod the partition count."""
    topic = new_topic(partitions=5)
    sent = keyed_messages(400)
    acked = franz_go_client.produce_to_partitions(broker.bootstrap, topic, sent, partition=None)
    expected = [(murmur2(m.key) & 0x7FFFFFFF) % 5 for m in sent]
    assert_partitioned_as(broker.bootstrap, topic, sent, acked, expected, 5)


def fnv1a_32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


@pytest.mark.parametrize("producer", ["sync", "async"])
def test_sarama_hash_partitioner(broker, new_topic, producer):
    """sarama's default partitioner: FNV-1a of the key, as a signed 32-bit
    number, mod the partition count, made non-negative."""
    topic = new_topic(partitions=5)
    sent = keyed_messages(400)
    acked = sarama_client.produce_to_partitions(broker.bootstrap, topic, sent, partition=None,
                                                producer=producer)

    def partition(key: bytes) -> int:
        h = fnv1a_32(key)
        signed = h - (1 << 32) if h >= 1 << 31 else h
        return abs(signed) % 5  # Go's % keeps the dividend's sign; sarama negates a negative

    assert_partitioned_as(broker.bootstrap, topic, sent, acked, [partition(m.key) for m in sent], 5)


# --- consumers -------------------------------------------------------------------------

@pytest.mark.parametrize("client", GO_CLIENTS)
def test_group_consumer_commits_and_resumes(broker, new_topic, client):
    """A group member reads everything from the earliest offset and commits;
    the next member of the same group starts at the commit, and reads only
    what came after it."""
    module = GO_CLIENTS[client]
    topic, group = new_topic(), f"{client}-resume-{uuid.uuid4().hex[:8]}"
    sent = binary_messages(1_500, seed=32)
    PRODUCERS["confluent-kafka"](broker.bootstrap, topic, sent[:1_000])
    assert_same_messages(sent[:1_000], module.consume(broker.bootstrap, topic, 1_000, group=group,
                                                      commit=True))
    assert committed_offsets(broker.bootstrap, group) == {(topic, 0): 1_000}
    # Nothing new: a member of the same group reads nothing.
    assert module.consume(broker.bootstrap, topic, 1, group=group, timeout=3) == []

    PRODUCERS["confluent-kafka"](broker.bootstrap, topic, sent[1_000:])
    assert_same_messages(sent[1_000:], module.consume(broker.bootstrap, topic, 500, group=group,
                                                      commit=True), base_offset=1_000)
    assert committed_offsets(broker.bootstrap, group) == {(topic, 0): 1_500}


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets, through kadm (the metadata varies by
    client: kgo commits its member id, sarama an empty string)."""
    return {tp: offset for tp, (offset, _) in franz_go_client.fetch_offsets(bootstrap, group).items()}


@pytest.mark.parametrize("client", GO_CLIENTS)
def test_consume_from_beginning_and_end(broker, new_topic, client):
    module = GO_CLIENTS[client]
    topic = new_topic()
    sent = binary_messages(500, seed=33)
    module.produce(broker.bootstrap, topic, sent[:400])
    assert_same_messages(sent[:400], module.consume(broker.bootstrap, topic, 400,
                                                    start_offset="beginning"))
    assert module.consume(broker.bootstrap, topic, 1, start_offset="end", timeout=2) == []
    module.produce(broker.bootstrap, topic, sent[400:])
    assert_same_messages(sent[350:], module.consume(broker.bootstrap, topic, 150, start_offset=350),
                         base_offset=350)


# --- kadm: topics and configs ----------------------------------------------------------

def kafka_python_configs(bootstrap: str, topic: str) -> dict[str, tuple[str, str]]:
    with admin_client(bootstrap) as client:
        configs = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                          config_filter="all")["topic"][topic]
    return {name: (c["value"], c["config_source"]) for name, c in configs.items()}


def test_kadm_create_list_describe_delete_topics(broker, topic_name):
    name = topic_name()
    created = franz_go_client.create_topic(broker.bootstrap, name, partitions=3,
                                           configs={"retention.ms": "3600000"})
    assert (created["name"], created["partitions"], created["replication_factor"]) == (name, 3, 1)
    # The id CreateTopics answered is the one the topic keeps.
    assert java_client.describe_topic(broker.bootstrap, name)["id"] == created["id"]
    assert franz_go_client.list_topics(broker.bootstrap)[name] == 3

    configs = franz_go_client.describe_configs(broker.bootstrap, name)
    assert configs["retention.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG",
                                       "sensitive": False}
    assert configs["cleanup.policy"] == {"value": "delete", "source": "DEFAULT_CONFIG",
                                         "sensitive": False}
    # Every config, value and source as kafka-python sees them.
    assert {k: (c["value"], c["source"]) for k, c in configs.items()} == (
        kafka_python_configs(broker.bootstrap, name))

    with pytest.raises(GoClientError, match="TOPIC_ALREADY_EXISTS"):
        franz_go_client.create_topic(broker.bootstrap, name)
    with pytest.raises(GoClientError, match="INVALID_CONFIG"):
        franz_go_client.create_topic(broker.bootstrap, topic_name("-bad"),
                                     configs={"retention.ms": "soon"})
    with pytest.raises(GoClientError, match="INVALID_REPLICATION_FACTOR"):
        franz_go_client.create_topic(broker.bootstrap, topic_name("-rf2"), replication_factor=2)

    franz_go_client.delete_topic(broker.bootstrap, name)
    wait_until(lambda: name not in franz_go_client.list_topics(broker.bootstrap),
               f"{name} gone from kadm's topic list")
    with pytest.raises(GoClientError, match="UNKNOWN_TOPIC_OR_PARTITION"):
        franz_go_client.delete_topic(broker.bootstrap, name)


def test_kadm_incremental_alter_configs(broker, new_topic):
    topic = new_topic()
    franz_go_client.alter_configs(broker.bootstrap, topic,
                                  set={"retention.ms": "1000000", "cleanup.policy": "compact"})
    configs = franz_go_client.describe_configs(broker.bootstrap, topic)
    for name, value in {"retention.ms": "1000000", "cleanup.policy": "compact"}.items():
        assert (configs[name]["value"], configs[name]["source"]) == (value, "DYNAMIC_TOPIC_CONFIG")
    assert kafka_python_configs(broker.bootstrap, topic)["retention.ms"] == ("1000000",
                                                                            "DYNAMIC_TOPIC_CONFIG")

    # DELETE drops the override: the default is back, and the other override stays.
    franz_go_client.alter_configs(broker.bootstrap, topic, delete=["retention.ms"])
    configs = franz_go_client.describe_configs(broker.bootstrap, topic)
    assert (configs["retention.ms"]["value"], configs["retention.ms"]["source"]) == (
        "604800000", "DEFAULT_CONFIG")
    assert configs["cleanup.policy"]["value"] == "compact"

    with pytest.raises(GoClientError, match="INVALID_CONFIG"):
        franz_go_client.alter_configs(broker.bootstrap, topic, set={"retention.ms": "soon"})
    with pytest.raises(GoClientError, match="UNKNOWN_TOPIC_OR_PARTITION"):
        franz_go_client.alter_configs(broker.bootstrap, topic + "-missing", set={"retention.ms": "1"})
    assert franz_go_client.describe_configs(broker.bootstrap, topic)["retention.ms"]["value"] == "604800000"


# --- kadm: offsets ---------------------------------------------------------------------

def test_kadm_list_offsets(broker, new_topic):
    topic = new_topic(partitions=3)
    base = 1_700_000_000_000
    for partition, count in {0: 10, 1: 20}.items():
        messages = [Message(b"k", b"p%d-%d" % (partition, i), (), base + 10 * i) for i in range(count)]
        franz_go_client.produce(broker.bootstrap, topic, messages, partition=partition)

    assert franz_go_client.list_offsets(broker.bootstrap, topic, "start") == {0: 0, 1: 0, 2: 0}
    assert franz_go_client.list_offsets(broker.bootstrap, topic, "end") == {0: 10, 1: 20, 2: 0}
    # The first offset whose timestamp is at or after the one asked for
    # (kadm reports the end offset where there is none).
    assert franz_go_client.list_offsets(broker.bootstrap, topic, base + 55) == {0: 6, 1: 6, 2: 0}
    assert franz_go_client.list_offsets(broker.bootstrap, topic, base + 150) == {0: 10, 1: 15, 2: 0}
    assert franz_go_client.list_offsets(broker.bootstrap, topic, base) == {0: 0, 1: 0, 2: 0}


def test_kadm_commit_and_fetch_offsets(broker, new_topic):
    topic, group = new_topic(partitions=3), f"kadm-offsets-{uuid.uuid4().hex[:8]}"
    franz_go_client.commit_offsets(broker.bootstrap, group, topic,
                                   {0: (7, "seven"), 1: (0, ""), 2: (123, "x" * 100)})
    expected = {(topic, 0): (7, "seven"), (topic, 1): (0, ""), (topic, 2): (123, "x" * 100)}
    assert franz_go_client.fetch_offsets(broker.bootstrap, group) == expected
    with admin_client(broker.bootstrap) as client:
        listed = client.list_group_offsets(group)[group]
    assert {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in listed.items()} == expected

    franz_go_client.commit_offsets(broker.bootstrap, group, topic, {0: (9, "nine")})
    assert franz_go_client.fetch_offsets(broker.bootstrap, group) == {**expected, (topic, 0): (9, "nine")}
    # The group exists, without members, as Kafka keeps a group that only commits.
    assert franz_go_client.list_groups(broker.bootstrap)[group] == {"state": "Empty", "protocol_type": ""}


# --- kadm: groups ----------------------------------------------------------------------

def test_kadm_list_describe_delete_groups(broker, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    franz_go_client.produce(broker.bootstrap, topic, binary_messages(30, seed=34), partition=0)
    franz_go_client.produce(broker.bootstrap, topic, binary_messages(20, seed=35), partition=1)
    with ConsumerGroup(broker.bootstrap, topic, 2, tmp_path) as group:
        member = group.join("franz-go")
        group.wait_balanced([member])
        group.wait_consumed({0: 30, 1: 20})
        group.wait_for(lambda: member.committed == {0: 30, 1: 20}, "commits of every record")

        assert franz_go_client.list_groups(broker.bootstrap)[group.group] == {
            "state": "Stable", "protocol_type": "consumer"}
        described = franz_go_client.describe_groups(broker.bootstrap, group.group)[group.group]
        assert (described["state"], described["protocol_type"], described["protocol"]) == (
            "Stable", "consumer", "cooperative-sticky")
        [m] = described["members"]
        assert (m["client_id"], m["instance_id"], m["assigned"]) == (
            "interop-franz-go", None, {topic: [0, 1]})
        # kgo commits with its member id as the metadata.
        assert franz_go_client.fetch_offsets(broker.bootstrap, group.group) == {
            (topic, 0): (30, m["member_id"]), (topic, 1): (20, m["member_id"])}
        assert franz_go_client.delete_groups(broker.bootstrap, group.group) == {
            group.group: "NON_EMPTY_GROUP"}
        assert franz_go_client.delete_offsets(broker.bootstrap, group.group, topic, [0, 1]) == {
            0: "GROUP_SUBSCRIBED_TO_TOPIC", 1: "GROUP_SUBSCRIBED_TO_TOPIC"}
        franz_go_client.produce(broker.bootstrap, topic, binary_messages(5, seed=36), partition=1)
        group.wait_consumed({0: 30, 1: 25})
        group.wait_for(lambda: member.committed == {0: 30, 1: 25}, "commits of the new records")
        assert franz_go_client.lag(broker.bootstrap, group.group) == (
            "Stable", {(topic, 0): 0, (topic, 1): 0})

        member.stop()  # leaves the group
    franz_go_client.produce(broker.bootstrap, topic, binary_messages(7, seed=37), partition=0)
    assert franz_go_client.lag(broker.bootstrap, group.group) == ("Empty", {(topic, 0): 7, (topic, 1): 0})
    # An empty group's offsets can be deleted one partition at a time.
    assert franz_go_client.delete_offsets(broker.bootstrap, group.group, topic, [1]) == {1: None}
    assert franz_go_client.fetch_offsets(broker.bootstrap, group.group) == {
        (topic, 0): (30, m["member_id"])}

    described = franz_go_client.describe_groups(broker.bootstrap, group.group)[group.group]
    assert (described["state"], described["members"]) == ("Empty", [])
    assert franz_go_client.list_groups(broker.bootstrap)[group.group]["state"] == "Empty"
    missing = f"never-{uuid.uuid4().hex[:8]}"
    assert franz_go_client.delete_groups(broker.bootstrap, group.group, missing) == {
        group.group: None, missing: "GROUP_ID_NOT_FOUND"}
    assert group.group not in franz_go_client.list_groups(broker.bootstrap)
    assert franz_go_client.fetch_offsets(broker.bootstrap, group.group) == {}


# --- older protocol levels ------------------------------------------------------------

# sarama speaks the request versions of the Kafka release its Config.Version
# names: 0.11 (the first with record batches and headers: Produce v3,
# Fetch v5), 1.0, 2.1 (zstd), 2.8 (sarama's default), 3.9 and 4.0.
SARAMA_VERSIONS = ["0.11.0.0", "1.0.0", "2.1.0", "2.8.0", "3.9.0", "4.0.0"]


@pytest.mark.parametrize("version", SARAMA_VERSIONS)
def test_sarama_protocol_levels(broker, new_topic, version):
    """Produce (idempotent from 0.11 on, compressed), consume by partition and
    through a committing group at each level, byte for byte."""
    topic, group = new_topic(), f"sarama-{version}-{uuid.uuid4().hex[:8]}"
    sent = binary_messages(1_000, seed=36)
    codec = "zstd" if version >= "2.1" else "lz4"
    offsets = sarama_client.produce(broker.bootstrap, topic, sent, idempotent=True,
                                    compression=codec, kafka_version=version)
    assert_delivered_in_order(offsets, len(sent))
    assert_same_messages(sent, sarama_client.consume(broker.bootstrap, topic, len(sent),
                                                     kafka_version=version))
    assert_same_messages(sent[:600], sarama_client.consume(broker.bootstrap, topic, 600, group=group,
                                                           commit=True, kafka_version=version))
    assert committed_offsets(broker.bootstrap, group) == {(topic, 0): 600}
    assert_same_messages(sent[600:], sarama_client.consume(broker.bootstrap, topic, 400, group=group,
                                                           kafka_version=version), base_offset=600)
    assert_same_messages(sent, CONSUMERS["confluent-kafka"](broker.bootstrap, topic, len(sent)))


@pytest.mark.parametrize("version", ["0.11.0", "1.0.0", "2.1.0", "2.8.0", "3.9.0"])
def test_franz_go_protocol_levels(broker, new_topic, version):
    """kgo capped at an older release's request versions (kgo.MaxVersions):
    idempotent compressed produce, partition consume, committing group
    consume and resume, byte for byte."""
    topic, group = new_topic(), f"kgo-{version}-{uuid.uuid4().hex[:8]}"
    sent = binary_messages(1_000, seed=37)
    codec = "zstd" if version >= "2.1" else "lz4"
    offsets = franz_go_client.produce(broker.bootstrap, topic, sent, idempotent=True,
                                      compression=codec, max_version=version)
    assert_delivered_in_order(offsets, len(sent))
    assert_same_messages(sent, franz_go_client.consume(broker.bootstrap, topic, len(sent),
                                                       max_version=version))
    assert_same_messages(sent[:600], franz_go_client.consume(
        broker.bootstrap, topic, 600, group=group, commit=True, max_version=version))
    assert committed_offsets(broker.bootstrap, group) == {(topic, 0): 600}
    assert_same_messages(sent[600:], franz_go_client.consume(
        broker.bootstrap, topic, 400, group=group, max_version=version), base_offset=600)
    assert_same_messages(sent, CONSUMERS["confluent-kafka"](broker.bootstrap, topic, len(sent)))
