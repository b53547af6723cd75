"""Committed offsets: they survive a broker restart (graceful and kill -9),
a restarted consumer resumes at them, and the admin APIs of kafka-python
and confluent-kafka report groups, members, offsets and lag as committed."""
from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from interop import confluent_client
from interop.admin import admin_client
from interop.group_member import BROKER_OVERRIDES, ConsumerGroup
from interop.messages import Message


@pytest.fixture(scope="module")
def broker_overrides():
    return BROKER_OVERRIDES


def produce(bootstrap: str, topic: str, counts: dict[int, int], tag: str) -> None:
    for partition, count in counts.items():
        messages = [Message(None, f"{tag}-{partition}-{i}".encode()) for i in range(count)]
        confluent_client.produce(bootstrap, topic, messages, partition=partition)


def subscribed_consumer(bootstrap: str, topic: str, group: str, partitions: int,
                        timeout: float = 30.0) -> KafkaConsumer:
    """A kafka-python group member that owns all `partitions` of `topic`."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             client_id="interop-lag", enable_auto_commit=False,
                             session_timeout_ms=6000, heartbeat_interval_ms=500,
                             request_timeout_ms=15_000)
    deadline = time.monotonic() + timeout
    while len(consumer.assignment()) < partitions:
        assert time.monotonic() < deadline, f"assignment {consumer.assignment()} after {timeout}s"
        consumer.poll(timeout_ms=100)
    return consumer


def commit(consumer: KafkaConsumer, topic: str, offsets: dict[int, tuple[int, str]]) -> None:
    consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, meta, -1)
                     for p, (o, meta) in offsets.items()})


def committed_through_kafka_python(bootstrap: str, group: str) -> dict[tuple[str, int], tuple]:
    with admin_client(bootstrap) as client:
        offsets = client.list_group_offsets(group)[group]
    return {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in offsets.items()}


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill9"])
def test_committed_offsets_survive_a_broker_restart(own_broker, new_topic, tmp_path, crash):
    topic, group_id = new_topic(partitions=3), f"restart-{uuid.uuid4().hex[:8]}"
    produce(own_broker.bootstrap, topic, {0: 40, 1: 40, 2: 40}, "before")
    offsets = {0: (13, "first"), 1: (40, ""), 2: (27, "x" * 100)}
    consumer = subscribed_consumer(own_broker.bootstrap, topic, group_id, 3)
    try:
        commit(consumer, topic, offsets)
    finally:
        consumer.close(autocommit=False)

    if crash:
        own_broker.kill9()
    else:
        assert own_broker.stop() == 0
    own_broker.start()

    assert committed_through_kafka_python(own_broker.bootstrap, group_id) == {
        (topic, p): committed for p, committed in offsets.items()}
    produce(own_broker.bootstrap, topic, {0: 10, 1: 10, 2: 10}, "after")
    # A member of the same group, another client, resumes where the commits say.
    expected = {(p, o) for p, (start, _) in offsets.items() for o in range(start, 50)}
    with ConsumerGroup(own_broker.bootstrap, topic, 3, tmp_path, group=group_id) as group:
        member = group.join("confluent-kafka")
        group.wait_for(lambda: expected <= set(member.consumed), "the records after the commits")
    assert sorted(member.consumed) == sorted(expected), (
        f"resumed at {sorted(min(o for q, o in member.consumed if q == p) for p in offsets)}, "
        f"committed {[offsets[p][0] for p in sorted(offsets)]}")


PRODUCED = {0: 30, 1: 20, 2: 10}
COMMITTED = {0: (12, "twelve"), 1: (20, "")}  # partition 2: nothing committed
LAG = {0: 18, 1: 0}


def lag_through_kafka_python(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    committed = committed_through_kafka_python(bootstrap, group)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in PRODUCED])
    finally:
        consumer.close(autocommit=False)
    return {p: ends[TopicPartition(t, p)] - o for (t, p), (o, _) in committed.items()}


def lag_through_confluent(admin: AdminClient, topic: str, group: str) -> dict[int, int]:
    request = [ConsumerGroupTopicPartitions(group)]
    committed = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
    latest = admin.list_offsets({CkTopicPartition(topic, p): OffsetSpec.latest() for p in PRODUCED})
    ends = {tp.partition: future.result(timeout=30).offset for tp, future in latest.items()}
    return {tp.partition: ends[tp.partition] - tp.offset for tp in committed.topic_partitions
            if tp.topic == topic}


def test_admin_apis_report_group_members_offsets_and_lag(broker, new_topic):
    topic, group_id = new_topic(partitions=3), f"lag-{uuid.uuid4().hex[:8]}"
    produce(broker.bootstrap, topic, PRODUCED, "lag")
    consumer = subscribed_consumer(broker.bootstrap, topic, group_id, 3)
    confluent_admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    try:
        commit(consumer, topic, COMMITTED)

        with admin_client(broker.bootstrap) as client:
            listed = {g["group_id"]: g for g in client.list_groups()}
            described = client.describe_groups([group_id])[group_id]
        assert listed[group_id]["protocol_type"] == "consumer"
        assert listed[group_id]["group_state"] == "Stable"
        assert (described["group_state"], described["protocol_type"], described["error"]) == (
            "Stable", "consumer", None)
        assert described["protocol_data"] == "range"  # kafka-python's first assignor
        [member] = described["members"]
        assert member["client_id"] == "interop-lag"
        assert member["member_assignment"]["assigned_partitions"] == [
            {"topic": topic, "partitions": [0, 1, 2]}]
        assert committed_through_kafka_python(broker.bootstrap, group_id) == {
            (topic, p): committed for p, committed in COMMITTED.items()}
        assert lag_through_kafka_python(broker.bootstrap, topic, group_id) == LAG

        listings = {g.group_id: g for g in confluent_admin.list_consumer_groups().result(30).valid}
        assert listings[group_id].state == ConsumerGroupState.STABLE
        assert not listings[group_id].is_simple_consumer_group
        description = confluent_admin.describe_consumer_groups([group_id])[group_id].result(30)
        assert description.state == ConsumerGroupState.STABLE
        assert description.partition_assignor == "range"
        [member] = description.members
        assert member.client_id == "interop-lag"
        assert sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions) == [
            (topic, p) for p in range(3)]
        assert lag_through_confluent(confluent_admin, topic, group_id) == LAG
    finally:
        consumer.close(autocommit=False)

    # The last member left: the group is empty but keeps its offsets.
    with admin_client(broker.bootstrap) as client:
        described = client.describe_groups([group_id])[group_id]
    assert (described["group_state"], described["members"]) == ("Empty", [])
    description = confluent_admin.describe_consumer_groups([group_id])[group_id].result(30)
    assert (description.state, description.members) == (ConsumerGroupState.EMPTY, [])
    assert lag_through_kafka_python(broker.bootstrap, topic, group_id) == LAG
    assert lag_through_confluent(confluent_admin, topic, group_id) == LAG


def test_admin_apis_report_a_group_that_only_commits(broker, new_topic):
    """A consumer with assign() and a group id (as Kafka Connect, Flink and
    Spark use them) commits without joining: a simple, empty group."""
    topic, group_id = new_topic(partitions=3), f"simple-{uuid.uuid4().hex[:8]}"
    produce(broker.bootstrap, topic, PRODUCED, "simple")
    consumer = confluent_client.consumer(broker.bootstrap, **{"group.id": group_id})
    try:
        consumer.commit(offsets=[CkTopicPartition(topic, p, o) for p, (o, _) in COMMITTED.items()],
                        asynchronous=False)
    finally:
        consumer.close()

    with admin_client(broker.bootstrap) as client:
        listed = {g["group_id"]: g for g in client.list_groups()}
    assert (listed[group_id]["protocol_type"], listed[group_id]["group_state"]) == ("", "Empty")
    assert lag_through_kafka_python(broker.bootstrap, topic, group_id) == LAG
    confluent_admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listings = {g.group_id: g for g in confluent_admin.list_consumer_groups().result(30).valid}
    assert listings[group_id].is_simple_consumer_group
    assert listings[group_id].state == ConsumerGroupState.EMPTY
    assert lag_through_confluent(confluent_admin, topic, group_id) == LAG
