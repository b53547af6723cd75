"""Differential cases for the data path: Metadata, Produce, Fetch, ListOffsets."""
from __future__ import annotations

import pytest

from kafka_compat.protocol.records import build_batch

from .harness import Case, batch, params, records, run_case, topic, topic_id

NOW_ISH = 1_700_000_000_000  # the records' explicit timestamps (2023-11-14)
TIMESTAMP_BOUNDS = {"message.timestamp.before.max.ms": "3600000",
                    "message.timestamp.after.max.ms": "3600000"}
# "The timestamp should be within [now - before, now + after]": each broker's clock.
CLOCK_IN_MESSAGE = {r"within \[-?\d+, -?\d+\]": ("within [<clock bounds>]",
                                                   "the bounds are the broker's clock at validation")}


def metadata(*names, auto=False):
    return lambda ctx: {"topics": [{"name": ctx.names.get(n, n)} for n in names],
                        "allow_auto_topic_creation": auto, "include_topic_authorized_operations": False}


def produce_body(data=None, partition=0, acks=-1, name="topic", values=(b"a", b"b"), **kw):
    def body(ctx):
        records_ = data(ctx) if callable(data) else (data if data is not None else batch(list(values), **kw))
        return {"transactional_id": None, "acks": acks, "timeout_ms": 30000,
                "topic_data": [{"name": ctx.names.get(name, name),
                                "partition_data": [{"index": partition, "records": records_}]}]}
    return body


def corrupt(data: bytes, pos: int, value: int) -> bytes:
    out = bytearray(data)
    out[pos] = value
    return bytes(out)


def fetch_body(offset=0, partition=0, partition_max=1 << 20, max_bytes=50 << 20, name="topic",
               min_bytes=1, max_wait=0):
    def body(ctx):
        tname = ctx.names.get(name, name)
        return {"replica_id": -1, "max_wait_ms": max_wait, "min_bytes": min_bytes, "max_bytes": max_bytes,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": tname, "topic_id": _topic_id_or_zero(ctx, tname),
                            "partitions": [{"partition": partition, "current_leader_epoch": -1,
                                            "fetch_offset": offset, "last_fetched_epoch": -1,
                                            "log_start_offset": -1, "partition_max_bytes": partition_max}]}],
                "forgotten_topics_data": [], "rack_id": ""}
    return body


def _topic_id_or_zero(ctx, name):
    return topic_id(ctx, name)


def list_offsets_body(timestamp, partition=0, name="topic", isolation=0):
    return lambda ctx: {"replica_id": -1, "isolation_level": isolation, "timeout_ms": 30000,
                        "topics": [{"name": ctx.names.get(name, name),
                                    "partitions": [{"partition_index": partition, "current_leader_epoch": -1,
                                                    "timestamp": timestamp, "max_num_offsets": 1}]}]}


FETCH_VERSIONS = (4, 7, 11, 12, 13, 17)
PRODUCE_VERSIONS = (3, 5, 8, 9, 11)
LIST_OFFSETS_VERSIONS = (1, 4, 7, 10)

CASES = [
    # ---------------------------------------------------------------- Metadata
    Case("metadata-unknown-topic", "Metadata", (4, 9, 12), metadata("topic")),
    Case("metadata-invalid-name", "Metadata", (4, 12), metadata("bad name!", auto=True)),
    Case("metadata-name-too-long", "Metadata", (4, 12), metadata("x" * 250, auto=True)),
    Case("metadata-name-dot", "Metadata", (12,), metadata("..", auto=True)),
    Case("metadata-existing", "Metadata", (1, 5, 9, 12), metadata("topic"), setup=(topic(3),)),
    Case("metadata-existing-and-unknown", "Metadata", (12,), metadata("topic", "topic2"),
         setup=(topic(2),)),
    Case("metadata-authorized-operations", "Metadata", (8, 10),
         lambda ctx: {"topics": [{"name": ctx.topic}], "allow_auto_topic_creation": False,
                      "include_cluster_authorized_operations": True,
                      "include_topic_authorized_operations": True},
         setup=(topic(1),)),
    Case("metadata-authorized-operations-unknown-topic", "Metadata", (8, 10),
         lambda ctx: {"topics": [{"name": ctx.topic}, {"name": "bad name!"}], "allow_auto_topic_creation": False,
                      "include_cluster_authorized_operations": False,
                      "include_topic_authorized_operations": True},
         sort={"topics": "name"}),  # Kafka answers unknown topics in a hash set's order
    # ---------------------------------------------------------------- Produce
    Case("produce-unknown-topic", "Produce", PRODUCE_VERSIONS, produce_body()),
    Case("produce-unknown-partition", "Produce", (3, 9, 11), produce_body(partition=4),
         setup=(topic(1),)),
    Case("produce-negative-partition", "Produce", (9,), produce_body(partition=-1),
         setup=(topic(1),)),
    Case("produce-ok", "Produce", PRODUCE_VERSIONS, produce_body(), setup=(topic(1),)),
    Case("produce-ok-after-records", "Produce", (9,), produce_body(), setup=(topic(1), records(5))),
    Case("produce-acks-invalid", "Produce", (3, 9, 11), produce_body(acks=2), setup=(topic(1),)),
    Case("produce-acks-minus-two", "Produce", (9,), produce_body(acks=-2), setup=(topic(1),)),
    Case("produce-not-enough-replicas", "Produce", (3, 9, 11), produce_body(),
         setup=(topic(1, {"min.insync.replicas": "2"}),),
         differs="Kafka 4.4 (KRaft, KIP-966) takes min(min.insync.replicas, replication factor) as the "
                 "minimum ISR and accepts the write; 3.9, which we follow, answers NOT_ENOUGH_REPLICAS"),
    Case("produce-not-enough-replicas-acks-one", "Produce", (9,), produce_body(acks=1),
         setup=(topic(1, {"min.insync.replicas": "2"}),)),
    Case("produce-acks-one", "Produce", (9,), produce_body(acks=1), setup=(topic(1),)),
    Case("produce-too-large-for-topic", "Produce", (3, 9, 11), produce_body(values=[b"x" * 500]),
         setup=(topic(1, {"max.message.bytes": "200"}),)),
    Case("produce-compacted-no-key", "Produce", (3, 7, 8, 11), produce_body(key=None),
         setup=(topic(1, {"cleanup.policy": "compact"}),)),
    Case("produce-compacted-with-key", "Produce", (9,), produce_body(),
         setup=(topic(1, {"cleanup.policy": "compact"}),)),
    # Both bounds are set: Kafka 4 changed message.timestamp.after.max.ms's
    # default from Long.MAX_VALUE (3.x, which we keep) to one hour.
    Case("produce-timestamp-too-old", "Produce", (3, 7, 8, 11), produce_body(),
         setup=(topic(1, TIMESTAMP_BOUNDS),), subs=CLOCK_IN_MESSAGE),
    Case("produce-timestamp-too-new", "Produce", (8, 11), produce_body(timestamp=NOW_ISH * 2),
         setup=(topic(1, TIMESTAMP_BOUNDS),), subs=CLOCK_IN_MESSAGE),
    Case("produce-timestamp-too-new-after-only", "Produce", (11,), produce_body(timestamp=NOW_ISH * 2),
         setup=(topic(1, {"message.timestamp.after.max.ms": "3600000"}),), subs=CLOCK_IN_MESSAGE),
    Case("produce-timestamp-log-append-ignores-bounds", "Produce", (9,), produce_body(),
         setup=(topic(1, {**TIMESTAMP_BOUNDS, "message.timestamp.type": "LogAppendTime"}),),
         ignore={"responses.*.partition_responses.*.log_append_time_ms": "the broker's clock at append"}),
    Case("produce-log-append-time", "Produce", (3, 9, 11), produce_body(),
         setup=(topic(1, {"message.timestamp.type": "LogAppendTime"}),),
         ignore={"responses.*.partition_responses.*.log_append_time_ms":
                 "the broker's clock at append (-1, CreateTime, still compares)"}),
    Case("produce-bad-crc", "Produce", (3, 9, 11),
         produce_body(lambda ctx: corrupt(batch([b"a"]), 17, 0)), setup=(topic(1),)),
    Case("produce-magic-1", "Produce", (3, 9), produce_body(lambda ctx: corrupt(batch([b"a"]), 16, 1)),
         setup=(topic(1),)),
    Case("produce-magic-3", "Produce", (9,), produce_body(lambda ctx: corrupt(batch([b"a"]), 16, 3)),
         setup=(topic(1),),
         differs="Kafka 4.4 puts the exception's text ('Invalid magic found in record: 3') in error_message "
                 "for a partition its request validation rejects; 3.9 (whose answers we keep) sent only "
                 "the code"),
    Case("produce-empty-records", "Produce", (3, 9), produce_body(b""), setup=(topic(1),)),
    Case("produce-truncated-batch", "Produce", (9,), produce_body(lambda ctx: batch([b"abc"])[:-2]),
         setup=(topic(1),)),
    Case("produce-two-batches", "Produce", (9,),
         produce_body(lambda ctx: batch([b"a"]) + batch([b"b"])), setup=(topic(1),)),
    # ---------------------------------------------------------------- Fetch
    Case("fetch-unknown-topic", "Fetch", (4, 11, 12), fetch_body()),
    Case("fetch-records", "Fetch", FETCH_VERSIONS, fetch_body(), setup=(topic(1), records(3))),
    Case("fetch-from-middle-of-batch", "Fetch", (4, 12), fetch_body(offset=1),
         setup=(topic(1), records(3))),
    Case("fetch-at-end", "Fetch", (4, 12), fetch_body(offset=3), setup=(topic(1), records(3))),
    Case("fetch-out-of-range", "Fetch", FETCH_VERSIONS, fetch_body(offset=100),
         setup=(topic(1), records(3))),
    Case("fetch-negative-offset", "Fetch", (4, 12), fetch_body(offset=-1), setup=(topic(1), records(3))),
    Case("fetch-unknown-partition", "Fetch", (4, 12, 13), fetch_body(partition=3), setup=(topic(1),)),
    Case("fetch-partition-max-bytes-tiny", "Fetch", (4, 12), fetch_body(partition_max=10),
         setup=(topic(1), records(3), records(2))),
    Case("fetch-max-bytes-tiny", "Fetch", (4, 12), fetch_body(max_bytes=1),
         setup=(topic(1), records(3), records(2))),
    Case("fetch-partition-max-bytes-one-batch", "Fetch", (12,), fetch_body(partition_max=90),
         setup=(topic(1), records(3), records(2))),
    Case("fetch-empty-topic", "Fetch", (4, 12), fetch_body(), setup=(topic(1),)),
    # ---------------------------------------------------------------- ListOffsets
    Case("list-offsets-latest", "ListOffsets", LIST_OFFSETS_VERSIONS, list_offsets_body(-1),
         setup=(topic(1), records(3))),
    Case("list-offsets-earliest", "ListOffsets", LIST_OFFSETS_VERSIONS, list_offsets_body(-2),
         setup=(topic(1), records(3))),
    Case("list-offsets-max-timestamp", "ListOffsets", (7, 10), list_offsets_body(-3),
         setup=(topic(1), records(3))),
    Case("list-offsets-max-timestamp-empty", "ListOffsets", (7, 10), list_offsets_body(-3),
         setup=(topic(1),)),
    Case("list-offsets-earliest-local", "ListOffsets", (8, 10), list_offsets_body(-4),
         setup=(topic(1), records(3))),
    Case("list-offsets-earliest-pending-upload", "ListOffsets", (9, 10), list_offsets_body(-5),
         setup=(topic(1), records(3))),
    Case("list-offsets-unknown-special", "ListOffsets", (10,), list_offsets_body(-7),
         setup=(topic(1), records(3)),
         differs="Kafka 4.4 answers UNSUPPORTED_VERSION for a negative timestamp it doesn't know (-7); "
                 "3.9 (which we follow) searched the time index for it like any timestamp, finding "
                 "the first record"),
    Case("list-offsets-for-time", "ListOffsets", (1, 7), list_offsets_body(NOW_ISH + 1),
         setup=(topic(1), records(3))),
    Case("list-offsets-for-time-after-all", "ListOffsets", (1, 7), list_offsets_body(NOW_ISH + 10),
         setup=(topic(1), records(3))),
    Case("list-offsets-unknown-topic", "ListOffsets", (1, 7, 10), list_offsets_body(-1)),
    Case("list-offsets-unknown-partition", "ListOffsets", (1, 7), list_offsets_body(-1, partition=2),
         setup=(topic(1),)),
]


@pytest.mark.parametrize("case,version", params(CASES))
def test_data(brokers, case, version):
    run_case(case, version, brokers)
