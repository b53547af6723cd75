"""The Java consumer (kafka-clients, interop/java) beyond the shared matrix:
offsetsForTimes, commitSync and commitAsync with metadata (read back by the
consumer, the Java admin client and kafka-python), and pause/resume. Each
test drives one consumer JVM through a scripted session
(java_client.consumer_session)."""
from __future__ import annotations

import uuid

import pytest
from interop import confluent_client, java_client
from interop.admin import admin_client
from interop.messages import Message

BASE_TS = 1_700_000_000_000


def timed_messages(count: int, *, step: int = 100) -> list[Message]:
    """Message i has CreateTime BASE_TS + step * i."""
    return [Message(b"k%d" % i, b"v%d" % i, (), BASE_TS + step * i) for i in range(count)]


def test_offsets_for_times(broker, new_topic):
    topic = new_topic(partitions=2)
    confluent_client.produce(broker.bootstrap, topic, timed_messages(10), partition=0)
    with java_client.consumer_session(broker.bootstrap, topic) as consumer:
        def lookup(partition: int, timestamp: int):
            return consumer.call("offsets-for-times", timestamps={str(partition): timestamp})[
                str(partition)]

        # The first record whose timestamp is at or after the one asked for.
        assert lookup(0, 0) == {"offset": 0, "timestamp": BASE_TS}
        assert lookup(0, BASE_TS) == {"offset": 0, "timestamp": BASE_TS}
        assert lookup(0, BASE_TS + 250) == {"offset": 3, "timestamp": BASE_TS + 300}
        assert lookup(0, BASE_TS + 900) == {"offset": 9, "timestamp": BASE_TS + 900}
        # Nothing that late, and nothing at all in partition 1: null.
        assert lookup(0, BASE_TS + 901) is None
        assert lookup(1, BASE_TS) is None
        # Both partitions in one call.
        both = consumer.call("offsets-for-times",
                             timestamps={"0": BASE_TS + 401, "1": 0})
        assert both == {"0": {"offset": 5, "timestamp": BASE_TS + 500}, "1": None}

        # Seeking to the offset found reads from that record on.
        consumer.call("assign", partitions=[0])
        consumer.call("seek", partition=0, offset=lookup(0, BASE_TS + 650)["offset"])
        records = consumer.call("poll", count=3, timeout_ms=20_000)
        assert records == [[0, o, BASE_TS + 100 * o] for o in (7, 8, 9)]


def test_commit_sync_and_async_with_metadata(broker, new_topic):
    topic = new_topic(partitions=3)
    group = f"java-commits-{uuid.uuid4().hex[:8]}"
    for partition in range(3):
        confluent_client.produce(broker.bootstrap, topic, timed_messages(10), partition=partition)
    with java_client.consumer_session(broker.bootstrap, topic, group=group) as consumer:
        # A standalone consumer (assign, no subscribe) commits as a simple group.
        consumer.call("assign", partitions=[0, 1, 2])
        assert consumer.call("committed", partitions=[0, 1, 2]) == {"0": None, "1": None, "2": None}

        # commitSync() with no offsets commits every assigned partition's
        # position, with empty metadata: all of partition 2 read, none of the
        # paused others.
        consumer.call("pause", partitions=[0, 1])
        assert [r[:2] for r in consumer.call("poll", count=10, timeout_ms=20_000)] == [
            [2, o] for o in range(10)]
        consumer.call("commit-sync")
        assert consumer.call("committed", partitions=[0, 2]) == {
            "0": {"offset": 0, "metadata": "", "leader_epoch": None},
            "2": {"offset": 10, "metadata": "", "leader_epoch": 0},
        }

        consumer.call("commit-sync", offsets=[[0, 5, "sync metadata"]])
        answer = consumer.call("commit-async", offsets=[[1, 7, "async metadata \u00e9"]])
        assert answer == {"callback": {"1": {"offset": 7, "metadata": "async metadata \u00e9",
                                             "leader_epoch": None}},
                          "error": None}
        assert consumer.call("committed", partitions=[0, 1, 2]) == {
            "0": {"offset": 5, "metadata": "sync metadata", "leader_epoch": None},
            "1": {"offset": 7, "metadata": "async metadata \u00e9", "leader_epoch": None},
            "2": {"offset": 10, "metadata": "", "leader_epoch": 0},
        }

        # Metadata over offset.metadata.max.bytes (4096 by default) is refused,
        # synchronously and asynchronously alike, and the old commit stays.
        with pytest.raises(java_client.JavaCallError) as failed:
            consumer.call("commit-sync", offsets=[[0, 6, "x" * 4097]])
        assert failed.value.error == "OffsetMetadataTooLarge"
        answer = consumer.call("commit-async", offsets=[[0, 6, "y" * 4097]])
        assert answer["error"]["error"] == "OffsetMetadataTooLarge", answer
        assert consumer.call("committed", partitions=[0])["0"]["offset"] == 5

    # The Java admin client and kafka-python see the same offsets and metadata.
    with java_client.admin_session(broker.bootstrap) as admin:
        listed = admin.call("list-group-offsets", group=group)
    assert {k: (v["offset"], v["metadata"]) for k, v in listed.items()} == {
        f"{topic}:0": (5, "sync metadata"),
        f"{topic}:1": (7, "async metadata \u00e9"),
        f"{topic}:2": (10, ""),
    }
    with admin_client(broker.bootstrap) as client:
        offsets = client.list_group_offsets(group)[group]
    assert {(tp.topic, tp.partition): (o.offset, o.metadata) for tp, o in offsets.items()} == {
        (topic, 0): (5, "sync metadata"), (topic, 1): (7, "async metadata \u00e9"),
        (topic, 2): (10, "")}


def test_pause_and_resume(broker, new_topic):
    topic = new_topic(partitions=2)
    # Partition 0's records are written first: a fetch that brought partition
    # 1's would bring them too, were partition 0 fetched.
    confluent_client.produce(broker.bootstrap, topic, timed_messages(50), partition=0)
    confluent_client.produce(broker.bootstrap, topic, timed_messages(50), partition=1)
    with java_client.consumer_session(broker.bootstrap, topic) as consumer:
        consumer.call("assign", partitions=[0, 1])
        assert consumer.call("pause", partitions=[0]) == [0]

        records = consumer.call("poll", count=50, timeout_ms=30_000)
        assert [r[:2] for r in records] == [[1, o] for o in range(50)]
        assert consumer.call("poll", count=0, timeout_ms=1_000) == []
        assert consumer.call("position", partition=0) == 0

        # New records in both: only the resumed partition's arrive.
        confluent_client.produce(broker.bootstrap, topic, timed_messages(10), partition=0)
        confluent_client.produce(broker.bootstrap, topic, timed_messages(10), partition=1)
        records = consumer.call("poll", count=10, timeout_ms=30_000)
        assert [r[:2] for r in records] == [[1, o] for o in range(50, 60)]

        # Pausing both stops everything; resuming partition 0 delivers all of
        # it from where it stood, and partition 1 stays quiet while paused.
        assert consumer.call("pause", partitions=[1]) == [0, 1]
        confluent_client.produce(broker.bootstrap, topic, timed_messages(5), partition=1)
        assert consumer.call("poll", count=0, timeout_ms=1_000) == []
        assert consumer.call("resume", partitions=[0]) == [1]
        records = consumer.call("poll", count=60, timeout_ms=30_000)
        assert [r[:2] for r in records] == [[0, o] for o in range(60)]
        assert consumer.call("position", partition=1) == 60
        assert consumer.call("resume", partitions=[1]) == []
        records = consumer.call("poll", count=5, timeout_ms=30_000)
        assert [r[:2] for r in records] == [[1, o] for o in range(60, 65)]
