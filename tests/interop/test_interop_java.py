"""The Java client (kafka-clients, interop/java) beyond the shared matrix:
acks 0 and 1, a custom partitioner, seekToBeginning/seekToEnd, subscribing
with each assignor, and its admin client creating, describing and deleting
topics (by name and by id)."""
from __future__ import annotations

import pytest

from interop import java_client
from interop.admin import offset_range
from interop.clients import CONSUMERS
from interop.messages import Message, binary_messages
from interop.verify import assert_delivered_in_order, assert_same_messages


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"group.initial.rebalance.delay.ms": "0"}


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, new_topic, acks):
    topic = new_topic()
    sent = binary_messages(2_000, seed=21)
    offsets = java_client.produce(broker.bootstrap, topic, sent, acks=acks)
    if acks == "0":
        # No answer, no offset: the Java client reports -1 for each.
        assert offsets == [-1] * len(sent)
    else:
        assert_delivered_in_order(offsets, len(sent))
    assert_same_messages(sent, CONSUMERS["confluent-kafka"](broker.bootstrap, topic, len(sent)))


def test_custom_partitioner(broker, new_topic):
    """KeyModulo (a Partitioner class): key n goes to partition n % 3."""
    topic = new_topic(partitions=3)
    sent = [Message(b"%d" % i, b"value-%d" % i, (("i", b"%d" % i),), 1_700_000_000_000 + i)
            for i in range(300)]
    acked = java_client.produce_to_partitions(broker.bootstrap, topic, sent, partition=None,
                                              partitioner="modulo")
    assert [p for p, _ in acked] == [i % 3 for i in range(300)]
    for partition in range(3):
        mine = sent[partition::3]
        assert [o for p, o in acked if p == partition] == list(range(len(mine)))
        records = java_client.consume(broker.bootstrap, topic, len(mine), partition=partition)
        assert_same_messages(mine, records)


def test_seek_to_beginning_and_end(broker, new_topic):
    topic = new_topic()
    sent = binary_messages(500, seed=22)
    java_client.produce(broker.bootstrap, topic, sent[:400])
    assert_same_messages(sent[:400], java_client.consume(broker.bootstrap, topic, 400,
                                                         start_offset="beginning"))
    # From the end nothing is there until more arrives: a short wait, nothing read.
    assert java_client.consume(broker.bootstrap, topic, 1, start_offset="end", timeout=2) == []
    java_client.produce(broker.bootstrap, topic, sent[400:])
    assert_same_messages(sent[300:], java_client.consume(broker.bootstrap, topic, 200, start_offset=300),
                         base_offset=300)


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "sticky", "cooperative-sticky"])
def test_subscribe_with_each_assignor(broker, new_topic, assignor):
    topic = new_topic()
    sent = binary_messages(1_000, seed=23)
    java_client.produce(broker.bootstrap, topic, sent)
    records = java_client.consume(broker.bootstrap, topic, len(sent), group="new", assignor=assignor)
    assert_same_messages(sent, records)


def test_admin_creates_describes_and_deletes_topics(broker, topic_name):
    by_name, by_id = topic_name("-a"), topic_name("-b")
    id_a = java_client.create_topic(broker.bootstrap, by_name, partitions=3,
                                    configs={"retention.ms": "3600000"})
    id_b = java_client.create_topic(broker.bootstrap, by_id)
    described = java_client.describe_topic(broker.bootstrap, by_name)
    assert described["id"] == id_a and not described["internal"]
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    for p in described["partitions"]:
        assert p["replicas"] == p["isr"] == [p["leader"]]
    assert java_client.describe_topic(broker.bootstrap, by_id)["id"] == id_b

    sent = binary_messages(10, seed=24)
    java_client.produce(broker.bootstrap, by_name, sent, partition=2)
    assert offset_range(broker.bootstrap, by_name, 2) == (0, 10)

    java_client.delete_topic(broker.bootstrap, topic=by_name)
    java_client.delete_topic(broker.bootstrap, topic_id=id_b)
    for name in (by_name, by_id):
        with pytest.raises(java_client.JavaClientError, match="UnknownTopicOrPartitionException"):
            java_client.describe_topic(broker.bootstrap, name)


def test_describe_cluster(broker):
    cluster = java_client.describe_cluster(broker.bootstrap)
    host, port = broker.bootstrap.rsplit(":", 1)
    assert [(n["host"], n["port"]) for n in cluster["nodes"]] == [(host, int(port))]
    assert cluster["controller"] == cluster["nodes"][0]["id"]
    assert cluster["cluster_id"]
