"""Differential cases through kafka-python (KafkaAdminClient, KafkaProducer,
KafkaConsumer): the same call against Apache Kafka 4.4 and kafka-compat,
what it returned or raised compared (tests/differential/clients.py)."""
from __future__ import annotations

import pytest

from .clients import ClientCase, client_params, run_client_case
from .harness import commit, group, records, topic
from .test_clients import KIP_848_DESCRIBE, KRAFT_WORDING, coordinator

FAMILY = "kafka-python"
KIP_848_DESCRIBE_OPS = ("kafka-python asks for a group's authorized operations: Kafka 4 has group configs, so "
                        "they include DESCRIBE_CONFIGS and ALTER_CONFIGS; 3.9's and ours are READ, DELETE, "
                        "DESCRIBE")
DESCRIBE_CLUSTER_V2 = ("DescribeCluster v2 (Kafka 4.0, KIP-1073) adds each broker's is_fenced; 3.9 and we "
                       "answer up to v1, so kafka-python shows no is_fenced")


def tp(env, partition=0, key="topic"):
    from kafka import TopicPartition
    return TopicPartition(env.names[key], partition)


def errors_by_partition(result: dict) -> dict:
    """{TopicPartition: error class} -> {"partition": error class name}."""
    return {str(k.partition): v.__name__ for k, v in sorted(result.items())}


def kp_create(partitions=1, rf=1, configs=None, name=None):
    def op(env):
        from kafka.admin import NewTopic
        env.shared.kp_admin.create_topics([NewTopic(name or env.topic, partitions, rf,
                                                    topic_configs=configs or {})], timeout_ms=20000)
    return op


def kp_delete_topics(env):
    env.shared.kp_admin.delete_topics([env.topic], timeout_ms=20000)


def kp_describe_topics(env):
    out = env.shared.kp_admin.describe_topics([env.topic])
    return [{k: (len(v) if k == "partitions" else v) for k, v in t.items()} for t in out]


def kp_describe_configs(env):
    from kafka.admin import ConfigResource, ConfigResourceType
    result = env.shared.kp_admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, env.topic)])
    return repr(result)


def kp_alter(configs, raise_on_unknown=True):
    def op(env):
        from kafka.admin import ConfigResource, ConfigResourceType
        return repr(env.shared.kp_admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, env.topic, configs=configs)], incremental=True,
            raise_on_unknown=raise_on_unknown))
    return op


def kp_create_partitions(count):
    def op(env):
        from kafka.admin import NewPartitions
        env.shared.kp_admin.create_partitions({env.topic: NewPartitions(count)}, timeout_ms=20000)
    return op


def kp_delete_records(offset, partition=0):
    def op(env):
        result = env.shared.kp_admin.delete_records({tp(env, partition): offset}, timeout_ms=20000)
        return {str(k.partition): v for k, v in result.items()}
    return op


def kp_list_offsets(spec, partition=0):
    def op(env):
        from kafka.admin import OffsetSpec
        s = getattr(OffsetSpec, spec) if isinstance(spec, str) else spec
        result = env.shared.kp_admin.list_partition_offsets({tp(env, partition): s}, timeout_ms=20000)
        return {str(k.partition): tuple(v) for k, v in result.items()}
    return op


def kp_describe_group(env):
    return {g: {k: (len(v) if k == "members" else v) for k, v in d.items()}
            for g, d in env.shared.kp_admin.describe_groups([env.group]).items()}


def kp_delete_group(env):
    return {g: (e if isinstance(e, (str, type(None))) else getattr(e, "__name__", repr(e)))
            for g, e in dict(env.shared.kp_admin.delete_groups([env.group])).items()}


def kp_group_offsets(partitions=None):
    def op(env):
        spec = None if partitions is None else [tp(env, p) for p in partitions]
        result = env.shared.kp_admin.list_group_offsets({env.group: spec})
        return {g: {str(k.partition): (v.offset, v.metadata) for k, v in sorted(offsets.items())}
                for g, offsets in result.items()}
    return op


def kp_alter_group_offsets(env):
    from kafka.structs import OffsetAndMetadata
    return errors_by_partition(env.shared.kp_admin.alter_group_offsets(
        env.group, {tp(env): OffsetAndMetadata(2, "", -1)}))


def kp_alter_group_offsets_metadata(metadata, key="topic"):
    def op(env):
        from kafka.structs import OffsetAndMetadata
        return errors_by_partition(env.shared.kp_admin.alter_group_offsets(
            env.group, {tp(env, key=key): OffsetAndMetadata(2, metadata, -1)}))
    return op


def kp_list_groups(env):
    """The case's group among all listed (other cases' groups are on the same brokers)."""
    listed = env.shared.kp_admin.list_groups()
    return [g for g in listed if (g[0] if isinstance(g, tuple) else g.get("group_id")) == env.group]


def kp_consumer_commit(key):
    """A group consumer (no subscription) commits an offset, then reads it back."""
    def op(env):
        from kafka import KafkaConsumer
        from kafka.structs import OffsetAndMetadata
        consumer = KafkaConsumer(bootstrap_servers=env.bootstrap, group_id=env.group, enable_auto_commit=False,
                                 request_timeout_ms=20000)
        try:
            consumer.commit({tp(env, key=key): OffsetAndMetadata(3, "meta", -1)})
            committed = consumer.committed(tp(env, key=key), metadata=True)
            return None if committed is None else (committed.offset, committed.metadata)
        finally:
            consumer.close()
    return op


def kp_delete_group_offsets(env):
    return errors_by_partition(env.shared.kp_admin.delete_group_offsets(env.group, [tp(env)]))


def kp_remove_members(env):
    from kafka.admin import MemberToRemove
    return repr(env.shared.kp_admin.remove_group_members(env.group, [MemberToRemove(group_instance_id="nobody")]))


def kp_describe_cluster(env):
    c = env.shared.kp_admin.describe_cluster()
    return {**c, "brokers": [{k: v for k, v in b.items() if k != "port"} for b in c["brokers"]]}


# ------------------------------------------------------------------ producer / consumer


def kp_produce(size=10, partition=0, **config):
    def op(env):
        from kafka import KafkaProducer
        producer = KafkaProducer(bootstrap_servers=env.bootstrap, request_timeout_ms=20000,
                                 max_block_ms=20000, **{"retries": 0, **config})
        try:
            meta = producer.send(env.topic, b"x" * size, partition=partition).get(timeout=30)
            return {"partition": meta.partition, "offset": meta.offset}
        finally:
            producer.close(timeout=10)
    return op


def kp_log_dirs(env):
    """The case's partitions in the broker's log dir: sizes (the same record
    batches on disk), lag; the directory's path is each broker's own."""
    out = []
    for broker in env.shared.kp_admin.describe_log_dirs():
        for d in broker["log_dirs"]:
            topics = [t for t in d["topics"] if t["name"] == env.topic]
            out.append({"broker": broker["broker"], "error_code": d["error_code"],
                        "dir_set": bool(d["log_dir"]), "topics": topics})
    return out


def kp_consume(start, reset="none", count=3):
    """Assign partition 0, seek to `start` (None: from the reset policy), poll
    until `count` records or an error."""
    def op(env):
        import time

        from kafka import KafkaConsumer
        consumer = KafkaConsumer(bootstrap_servers=env.bootstrap, auto_offset_reset=reset,
                                 enable_auto_commit=False, request_timeout_ms=20000)
        try:
            consumer.assign([tp(env)])
            if start is not None:
                consumer.seek(tp(env), start)
            got = []
            deadline = time.monotonic() + 20
            while len(got) < count and time.monotonic() < deadline:
                for recs in consumer.poll(timeout_ms=500).values():
                    got += [(r.offset, r.value) for r in recs]
            return {"got": got[:count], "position": consumer.position(tp(env))}
        finally:
            consumer.close()
    return op


def kp_offsets(env):
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(bootstrap_servers=env.bootstrap, request_timeout_ms=20000)
    try:
        p = tp(env)
        at = consumer.offsets_for_times({p: 1_700_000_000_001})[p]
        past = consumer.offsets_for_times({p: 1_800_000_000_000})[p]
        return {"beginning": consumer.beginning_offsets([p])[p], "end": consumer.end_offsets([p])[p],
                "for_time": (at.offset, at.timestamp), "past_end": past}
    finally:
        consumer.close()


CASES = [
    ClientCase("create-ok", FAMILY, kp_create(3)),
    ClientCase("create-exists", FAMILY, kp_create(), setup=(topic(),)),
    ClientCase("create-invalid-chars", FAMILY, kp_create(name="bad name")),
    ClientCase("create-rf-too-large", FAMILY, kp_create(rf=2), differs=KRAFT_WORDING),
    ClientCase("create-bad-config-value", FAMILY, kp_create(configs={"max.message.bytes": "big"})),
    ClientCase("create-config-below-minimum", FAMILY, kp_create(configs={"min.insync.replicas": "0"})),
    ClientCase("delete-unknown", FAMILY, kp_delete_topics),
    ClientCase("describe-topic-unknown", FAMILY, kp_describe_topics),
    ClientCase("describe-configs-unknown-topic", FAMILY, kp_describe_configs),
    ClientCase("alter-configs-bad-enum", FAMILY, kp_alter({"cleanup.policy": ("SET", "never")}),
               setup=(topic(),), differs=KRAFT_WORDING),
    ClientCase("alter-configs-unknown-topic", FAMILY, kp_alter({"retention.ms": ("SET", "10")},
                                                                    raise_on_unknown=False)),
    ClientCase("alter-configs-delete-and-subtract", FAMILY,
               kp_alter({"retention.ms": ("DELETE", None), "cleanup.policy": ("SUBTRACT", "delete")}),
               setup=(topic(configs={"retention.ms": "10", "cleanup.policy": "delete,compact"}),)),
    ClientCase("partitions-decrease", FAMILY, kp_create_partitions(1), setup=(topic(2),),
               differs=KRAFT_WORDING),
    ClientCase("partitions-ok", FAMILY, kp_create_partitions(3), setup=(topic(2),)),
    ClientCase("delete-records-beyond-hw", FAMILY, kp_delete_records(10), setup=(topic(), records(3))),
    ClientCase("delete-records-to-hw", FAMILY, kp_delete_records(-1), setup=(topic(), records(3))),
    ClientCase("list-offsets-earliest", FAMILY, kp_list_offsets("EARLIEST"),
               setup=(topic(), records(3))),
    ClientCase("list-offsets-max-timestamp", FAMILY, kp_list_offsets("MAX_TIMESTAMP"),
               setup=(topic(), records(3))),
    ClientCase("list-offsets-unknown-partition", FAMILY, kp_list_offsets("LATEST", partition=4),
               setup=(topic(),)),
    ClientCase("describe-group-unknown", FAMILY, kp_describe_group, setup=(coordinator,),
               differs=KIP_848_DESCRIBE),
    ClientCase("describe-group-stable", FAMILY, kp_describe_group, setup=(topic(), group(subscribe="topic")),
               ignore={"ok.*.authorized_operations": KIP_848_DESCRIBE_OPS}),
    ClientCase("delete-group-unknown", FAMILY, kp_delete_group, setup=(coordinator,)),
    ClientCase("delete-group-non-empty", FAMILY, kp_delete_group, setup=(topic(), group(subscribe="topic"))),
    ClientCase("group-offsets-unknown-group", FAMILY, kp_group_offsets(), setup=(coordinator,)),
    ClientCase("group-offsets-committed", FAMILY, kp_group_offsets([0, 1]), setup=(topic(2), commit(4))),
    ClientCase("alter-group-offsets-active-member", FAMILY, kp_alter_group_offsets,
               setup=(topic(), group(subscribe="topic"))),
    ClientCase("delete-group-offsets-subscribed", FAMILY, kp_delete_group_offsets,
               setup=(topic(), commit(2), group(subscribe="topic"))),
    ClientCase("delete-group-offsets-unknown-group", FAMILY, kp_delete_group_offsets,
               setup=(topic(), coordinator)),
    ClientCase("remove-unknown-member", FAMILY, kp_remove_members, setup=(topic(), group(subscribe="topic"))),
    ClientCase("describe-cluster", FAMILY, kp_describe_cluster, differs=DESCRIBE_CLUSTER_V2),
    ClientCase("alter-group-offsets-metadata-too-large", FAMILY, kp_alter_group_offsets_metadata("m" * 5000),
               setup=(topic(), commit(1))),
    ClientCase("alter-group-offsets-unknown-topic", FAMILY, kp_alter_group_offsets_metadata("x", key="topic2"),
               setup=(topic(), commit(1))),
    ClientCase("list-groups-states", FAMILY, kp_list_groups, setup=(topic(), group(subscribe="topic"))),
    ClientCase("consumer-commit-and-read-back", FAMILY, kp_consumer_commit("topic"), setup=(topic(), coordinator)),
    # producer
    ClientCase("produce-ok", FAMILY, kp_produce(), setup=(topic(), records(2))),
    ClientCase("produce-too-large-for-topic", FAMILY, kp_produce(size=3000),
               setup=(topic(configs={"max.message.bytes": "1000"}),)),
    ClientCase("produce-acks-0-too-large", FAMILY, kp_produce(size=3000, acks=0),
               setup=(topic(configs={"max.message.bytes": "1000"}),)),
    ClientCase("produce-unknown-partition", FAMILY, kp_produce(partition=7), setup=(topic(),)),
    ClientCase("produce-idempotent-lz4", FAMILY, kp_produce(enable_idempotence=True, compression_type="lz4",
                                                           retries=3, acks="all"),
               setup=(topic(), records(2))),
    ClientCase("describe-log-dirs", FAMILY, kp_log_dirs, setup=(topic(2), records(3))),
    # consumer
    ClientCase("consume-out-of-range-reset-none", FAMILY, kp_consume(50), setup=(topic(), records(3))),
    ClientCase("consume-past-end-reset-earliest", FAMILY, kp_consume(50, reset="earliest"),
               setup=(topic(), records(3))),
    ClientCase("consume-no-position-reset-none", FAMILY, kp_consume(None), setup=(topic(), records(3))),
    ClientCase("consumer-offsets", FAMILY, kp_offsets, setup=(topic(), records(3))),
]


@pytest.mark.parametrize("case", client_params(CASES))
def test_kafka_python(case, brokers, shared):
    run_client_case(case, brokers, shared)
