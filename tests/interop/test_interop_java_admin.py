"""The Java admin client (kafka-clients' Admin, interop/java AdminSession.java)
beyond creating, describing and deleting topics: createPartitions,
describeConfigs/incrementalAlterConfigs, deleteRecords, listOffsets,
describeLogDirs and the consumer group calls, each with Kafka's error for its
obvious misuse. One admin JVM per test runs the whole sequence
(java_client.admin_session). The expected answers, error classes and
messages included, are what Apache Kafka 4.4 gives (checked by running this
module against reference-kafka)."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from interop import confluent_client, java_client
from interop.admin import admin_client
from interop.messages import Message

BASE_TS = 1_700_000_000_000


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"group.initial.rebalance.delay.ms": "0"}


def messages(count: int, timestamps: list[int] | None = None) -> list[Message]:
    timestamps = timestamps or [BASE_TS + 100 * i for i in range(count)]
    return [Message(b"k%d" % i, b"v%d" % i, (), timestamps[i]) for i in range(count)]


def failure(call, op: str, **fields) -> tuple[str, str]:
    """(exception class, message) of a request expected to fail."""
    with pytest.raises(java_client.JavaCallError) as failed:
        call(op, **fields)
    return failed.value.error, failed.value.message


def test_create_partitions(broker, new_topic):
    topic = new_topic(partitions=2)
    with java_client.admin_session(broker.bootstrap) as admin:
        assert admin.call("create-partitions", topic=topic, count=5, validate_only=True) is None
        assert admin.call("describe-topic", topic=topic)["partitions"] == 2
        assert admin.call("create-partitions", topic=topic, count=4) is None
        assert admin.call("describe-topic", topic=topic)["partitions"] == 4

        # The messages are Kafka 3.9's (ZooKeeper mode, which we follow); Kafka
        # 4's KRaft controller words them differently ("Topic already has 4
        # partition(s).", "The topic T currently has 4 partition(s); 3 would
        # not be an increase.").
        for count in (4, 3):
            error, message = failure(admin.call, "create-partitions", topic=topic, count=count)
            assert error == "InvalidPartitionsException", message
            assert "has 4 partition" in message, message
        assert failure(admin.call, "create-partitions", topic=f"{topic}-none", count=3)[0] == (
            "UnknownTopicOrPartitionException")
    # The new partitions take records.
    assert confluent_client.produce(broker.bootstrap, topic, messages(3), partition=3) == [0, 1, 2]


def test_describe_and_incrementally_alter_topic_configs(broker, new_topic):
    topic = new_topic()
    names = ["retention.ms", "cleanup.policy", "max.message.bytes"]
    with java_client.admin_session(broker.bootstrap) as admin:
        def describe() -> dict:
            return admin.call("describe-configs", type="topic", name=topic, names=names)

        def alter(*ops, validate_only=False):
            return admin.call("alter-configs", type="topic", name=topic, ops=[list(o) for o in ops],
                              validate_only=validate_only)

        configs = describe()
        assert set(configs) == set(names)
        assert configs["retention.ms"] == {
            "value": "604800000", "source": "DEFAULT_CONFIG", "default": True,
            "read_only": False, "sensitive": False, "type": "LONG"}
        assert configs["cleanup.policy"]["value"] == "delete"
        assert configs["cleanup.policy"]["type"] == "LIST"
        assert configs["max.message.bytes"]["value"] == "1048588"

        alter(("set", "retention.ms", "3600000"), ("append", "cleanup.policy", "compact"))
        configs = describe()
        assert configs["retention.ms"]["value"] == "3600000"
        assert configs["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
        assert not configs["retention.ms"]["default"]
        assert configs["cleanup.policy"]["value"] == "delete,compact"
        alter(("subtract", "cleanup.policy", "delete"))
        assert describe()["cleanup.policy"]["value"] == "compact"
        # Appending what is there already changes nothing.
        alter(("append", "cleanup.policy", "compact"))
        assert describe()["cleanup.policy"]["value"] == "compact"
        # validate_only checks without changing.
        alter(("set", "retention.ms", "1000"), validate_only=True)
        assert describe()["retention.ms"]["value"] == "3600000"
        alter(("delete", "retention.ms"), ("delete", "cleanup.policy"))
        configs = describe()
        assert configs["retention.ms"]["source"] == "DEFAULT_CONFIG"
        assert configs["retention.ms"]["value"] == "604800000"
        assert configs["cleanup.policy"]["value"] == "delete"

        # Invalid values, names and operations, and an unknown topic.
        # (3.9 puts "Invalid config value for resource ConfigResource(...): "
        # before the reason, Kafka 4.4 gives the reason alone.)
        error, message = failure(alter, ("set", "retention.ms", "soon"))
        assert error == "InvalidConfigurationException", message
        assert message.endswith(
            "Invalid value soon for configuration retention.ms: Not a number of type LONG"), message
        error, message = failure(alter, ("set", "no.such.config", "1"))
        assert error == "InvalidConfigurationException", message
        # 3.9's words (4.4's KRaft controller: "Can't APPEND to key retention.ms
        # because its type is not LIST.").
        error, message = failure(alter, ("append", "retention.ms", "1"))
        assert error == "InvalidConfigurationException", message
        assert "retention.ms" in message, message
        error, message = failure(alter, ("set", "cleanup.policy", "sometimes"))
        assert error == "InvalidConfigurationException", message
        assert describe()["cleanup.policy"]["value"] == "delete"
        assert failure(admin.call, "describe-configs", type="topic", name=f"{topic}-none")[0] == (
            "UnknownTopicOrPartitionException")
        assert failure(admin.call, "alter-configs", type="topic", name=f"{topic}-none",
                       ops=[["set", "retention.ms", "1"]])[0] == "UnknownTopicOrPartitionException"

        # The broker's own configs: static, read from its properties.
        node = admin.call("describe-cluster")["nodes"][0]
        broker_configs = admin.call("describe-configs", type="broker", name=str(node),
                                    names=["message.max.bytes", "num.partitions"])
        assert broker_configs["message.max.bytes"]["value"] == "1048588"
        assert broker_configs["num.partitions"]["value"] == "1"


def test_delete_records_and_list_offsets(broker, new_topic):
    topic = new_topic(partitions=2)
    # The greatest timestamp is in the middle of partition 0.
    timestamps = [BASE_TS + 100 * i for i in range(10)]
    timestamps[5] = BASE_TS + 60_000
    confluent_client.produce(broker.bootstrap, topic, messages(10, timestamps), partition=0)
    p0, p1 = [topic, 0], [topic, 1]
    k0, k1 = f"{topic}:0", f"{topic}:1"
    with java_client.admin_session(broker.bootstrap) as admin:
        def offsets(spec: str, **fields) -> dict:
            answer = admin.call("list-offsets", partitions=[p0, p1], spec=spec, **fields)
            return {k: (v["offset"], v["timestamp"]) for k, v in answer.items()}

        assert offsets("earliest") == {k0: (0, -1), k1: (0, -1)}
        assert offsets("latest") == {k0: (10, -1), k1: (0, -1)}
        assert offsets("max-timestamp") == {k0: (5, BASE_TS + 60_000), k1: (-1, -1)}
        assert offsets("for-time", timestamp=BASE_TS + 250) == {k0: (3, BASE_TS + 300),
                                                                k1: (-1, -1)}
        assert offsets("for-time", timestamp=BASE_TS + 450) == {k0: (5, BASE_TS + 60_000),
                                                                k1: (-1, -1)}
        assert offsets("for-time", timestamp=BASE_TS + 60_001) == {k0: (-1, -1), k1: (-1, -1)}

        assert admin.call("delete-records", offsets=[[topic, 0, 4]]) == {k0: 4}
        assert offsets("earliest") == {k0: (4, -1), k1: (0, -1)}
        assert offsets("for-time", timestamp=BASE_TS) == {k0: (4, BASE_TS + 400), k1: (-1, -1)}
        # Deleting below the log start changes nothing; past the high
        # watermark is out of range; -1 means the high watermark.
        assert admin.call("delete-records", offsets=[[topic, 0, 2]]) == {k0: 4}
        assert failure(admin.call, "delete-records", offsets=[[topic, 0, 11]])[0] == (
            "OffsetOutOfRangeException")
        assert admin.call("delete-records", offsets=[[topic, 0, -1], [topic, 1, -1]]) == {
            k0: 10, k1: 0}
        assert offsets("earliest") == {k0: (10, -1), k1: (0, -1)}
        assert offsets("latest") == {k0: (10, -1), k1: (0, -1)}
        # (A partition the topic doesn't have: the Java admin keeps looking
        # its leader up until its API timeout, against Kafka as against us.)


def test_describe_log_dirs(broker, new_topic):
    topic = new_topic(partitions=2)
    confluent_client.produce(broker.bootstrap, topic, messages(10), partition=0)
    with java_client.admin_session(broker.bootstrap) as admin:
        node = admin.call("describe-cluster")["nodes"][0]
        answer = admin.call("describe-log-dirs", brokers=[node])
    assert list(answer) == [str(node)]
    [(path, log_dir)] = answer[str(node)].items()
    assert log_dir["error"] is None
    assert log_dir["total_bytes"] >= log_dir["usable_bytes"] > 0
    replicas = log_dir["replicas"]
    on_disk = {p: sum(f.stat().st_size for f in (Path(path) / f"{topic}-{p}").glob("*.log"))
               for p in (0, 1)}
    assert on_disk[0] > 0 and on_disk[1] == 0
    for p in (0, 1):
        assert replicas[f"{topic}:{p}"] == {"size": on_disk[p], "offset_lag": 0, "future": False}


def test_consumer_group_admin(broker, new_topic):
    topic = new_topic(partitions=2)
    for partition in (0, 1):
        confluent_client.produce(broker.bootstrap, topic, messages(10), partition=partition)
    group = f"java-admin-{uuid.uuid4().hex[:8]}"
    t0, t1 = f"{topic}:0", f"{topic}:1"
    with java_client.admin_session(broker.bootstrap) as admin, \
            java_client.consumer_session(broker.bootstrap, topic, group=group,
                                         instance_id="static-1", client_id="java-member") as consumer:
        # A static member reads everything and commits.
        consumer.call("subscribe")
        assert len(consumer.call("poll", count=20, timeout_ms=30_000)) == 20
        consumer.call("commit-sync")

        listed = {g["group"]: g for g in admin.call("list-groups")}
        assert listed[group] == {"group": group, "state": "Stable", "type": "Classic",
                                 "simple": False}
        assert group not in {g["group"] for g in admin.call("list-groups", states=["Empty"])}
        assert group in {g["group"] for g in admin.call("list-groups", states=["Stable"])}
        described = admin.call("describe-groups", groups=[group])[group]
        node = admin.call("describe-cluster")["nodes"][0]
        [member] = described.pop("members")
        assert described == {"state": "Stable", "type": "Classic", "assignor": "range",
                             "simple": False, "coordinator": node}
        assert member["instance_id"] == "static-1" and member["client_id"] == "java-member"
        assert member["assignment"] == [t0, t1]
        assert admin.call("list-group-offsets", group=group) == {
            t0: {"offset": 10, "metadata": "", "leader_epoch": 0},
            t1: {"offset": 10, "metadata": "", "leader_epoch": 0}}

        # What a group with a member refuses.
        assert admin.call("delete-groups", groups=[group]) == {group: {
            "error": "GroupNotEmptyException", "message": "The group is not empty."}}
        assert failure(admin.call, "alter-group-offsets", group=group,
                       offsets=[[topic, 0, 3, "rewound"]])[0] == "UnknownMemberIdException"
        answer = admin.call("delete-group-offsets", group=group, partitions=[[topic, 0]])
        assert answer[t0]["error"] == "GroupSubscribedToTopicException", answer
        assert failure(admin.call, "remove-members", group=group,
                       instance_ids=["no-such-instance"])[0] == "UnknownMemberIdException"

        # A static member's close leaves it in the group (no LeaveGroup)...
        consumer.close()
        assert [m["instance_id"] for m in
                admin.call("describe-groups", groups=[group])[group]["members"]] == ["static-1"]
        # ...until an admin removes it.
        assert admin.call("remove-members", group=group, instance_ids=["static-1"]) is None
        described = admin.call("describe-groups", groups=[group])[group]
        assert (described["state"], described["members"]) == ("Empty", [])

        # An empty group's offsets can be changed and deleted.
        assert admin.call("alter-group-offsets", group=group,
                          offsets=[[topic, 0, 3, "rewound"]]) is None
        assert admin.call("list-group-offsets", group=group) == {
            t0: {"offset": 3, "metadata": "rewound", "leader_epoch": None},
            t1: {"offset": 10, "metadata": "", "leader_epoch": 0}}
        with admin_client(broker.bootstrap) as client:
            seen = client.list_group_offsets(group)[group]
        assert {(tp.topic, tp.partition): (o.offset, o.metadata) for tp, o in seen.items()} == {
            (topic, 0): (3, "rewound"), (topic, 1): (10, "")}
        assert admin.call("delete-group-offsets", group=group, partitions=[[topic, 1]]) == {
            t1: None}
        assert admin.call("list-group-offsets", group=group) == {
            t0: {"offset": 3, "metadata": "rewound", "leader_epoch": None}}

        # Deleted, the group is gone; deleting it again is an error.
        assert admin.call("delete-groups", groups=[group]) == {group: None}
        assert group not in {g["group"] for g in admin.call("list-groups")}
        assert admin.call("list-group-offsets", group=group) == {}
        assert admin.call("delete-groups", groups=[group]) == {group: {
            "error": "GroupIdNotFoundException", "message": "The group id does not exist."}}
        answer = admin.call("delete-group-offsets", group=group, partitions=[[topic, 0]])
        assert answer[t0]["error"] == "GroupIdNotFoundException", answer


def test_remove_all_members_and_unknown_groups(broker, new_topic):
    """removeMembersFromConsumerGroup without names removes every member (a
    dynamic one here, by member id), which then rejoins on its next poll;
    and the answers about a group that doesn't exist."""
    topic = new_topic(partitions=2)
    confluent_client.produce(broker.bootstrap, topic, messages(10), partition=0)
    group = f"java-remove-all-{uuid.uuid4().hex[:8]}"
    with java_client.admin_session(broker.bootstrap) as admin, \
            java_client.consumer_session(broker.bootstrap, topic, group=group) as consumer:
        consumer.call("subscribe")
        assert len(consumer.call("poll", count=10, timeout_ms=30_000)) == 10
        consumer.call("commit-sync", offsets=[[0, 6, ""]])  # less than it read
        [member] = admin.call("describe-groups", groups=[group])[group]["members"]
        assert member["instance_id"] is None

        assert admin.call("remove-members", group=group) is None
        described = admin.call("describe-groups", groups=[group])[group]
        assert (described["state"], described["members"]) == ("Empty", [])
        # Removed, the member finds out on a heartbeat and joins again under a
        # new member id; its new assignment starts at the commit, so what it
        # read past it comes again (and nothing more was produced).
        records = consumer.call("poll", count=4, timeout_ms=30_000)
        assert [r[:2] for r in records] == [[0, o] for o in range(6, 10)]
        [again] = admin.call("describe-groups", groups=[group])[group]["members"]
        assert again["member_id"] != member["member_id"]

        unknown = f"{group}-none"
        assert admin.call("list-group-offsets", group=unknown) == {}
        assert admin.call("delete-groups", groups=[unknown])[unknown]["error"] == (
            "GroupIdNotFoundException")
        # Kafka 4 answers GroupIdNotFoundException (DescribeGroups v6 and
        # ConsumerGroupDescribe, KIP-1043/848); a 3.9 broker, and we, answer
        # DescribeGroups v5 with the group Dead and empty.
        answer = admin.answer("describe-groups", groups=[unknown])
        if "error" in answer:
            assert answer["error"] == "GroupIdNotFoundException", answer
        else:
            described = answer["result"][unknown]
            assert (described["state"], described["members"]) == ("Dead", []), answer
