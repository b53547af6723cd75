"""Differential cases through clients (tests/differential/clients.py): the
admin calls users make with confluent-kafka (librdkafka), kafka-python and
the Java Admin, error paths first, each run against Apache Kafka 4.4 and
kafka-compat and what the client returned or raised compared."""
from __future__ import annotations

import pytest

from .clients import ClientCase, client_params, futures, run_client_case
from .harness import commit, coordinator_ready, group, records, topic


def coordinator(ctx):
    """A setup step: the group's coordinator found and loaded (Kafka answers
    COORDINATOR_LOAD_IN_PROGRESS to a first group request while its
    __consumer_offsets partition loads)."""
    coordinator_ready(ctx, ctx.group)


# Known differences, the reasons as docs/compatibility.md gives them.
KIP_848_DESCRIBE = ("describing a group that doesn't exist: Kafka 4.4 answers ConsumerGroupDescribe (KIP-848), "
                    "which clients try first, with GROUP_ID_NOT_FOUND; 3.9 and we have only DescribeGroups, "
                    "which answers the group Dead and empty")
KRAFT_WORDING = ("the error codes agree; the message is ZooKeeper-mode 3.9's (AdminZkClient/ZkAdminManager), "
                 "Kafka 4.4's KRaft controller words it its own way")

UNKNOWN_TOPIC_PARTITIONS = ("CreatePartitions of an unknown topic: 3.9 (ZkAdminManager, ours) says \"The topic "
                            "'X' does not exist.\"; Kafka 4.4's controller gives the code alone (librdkafka "
                            "then shows the code's description)")

AUTO_CREATE = ("Metadata auto-creating a topic: ZooKeeper-mode 3.9 creates it in ZooKeeper and answers "
               "LEADER_NOT_AVAILABLE (AutoTopicCreationManager.createTopicsInZk, ours); Kafka 4.4 forwards the "
               "creation to its controller and answers UNKNOWN_TOPIC_OR_PARTITION meanwhile")

# ------------------------------------------------------------------ confluent-kafka (librdkafka)


def ck(call):
    """A confluent-kafka AdminClient call: call(admin, env) -> futures -> compared per key."""
    def op(env):
        return futures(call(env.shared.ck_admin, env))
    return op


def ck_new_topic(name_key="topic", partitions=1, rf=1, configs=None, validate_only=False, name=None):
    from confluent_kafka.admin import NewTopic
    return ck(lambda a, env: a.create_topics(
        [NewTopic(name or env.names[name_key], partitions, rf, config=configs or {})],
        validate_only=validate_only, operation_timeout=20, request_timeout=20))


def ck_incremental(ops, name_key="topic", validate_only=False):
    """ops: [(name, "SET"|"DELETE"|"APPEND"|"SUBTRACT", value)]"""
    def call(a, env):
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
        entries = [ConfigEntry(n, v, incremental_operation=AlterConfigOpType[o]) for n, o, v in ops]
        return a.incremental_alter_configs([ConfigResource("TOPIC", env.names[name_key],
                                                           incremental_configs=entries)],
                                           validate_only=validate_only, request_timeout=20)
    return ck(call)


def ck_describe_configs(names, name_key="topic"):
    def op(env):
        from confluent_kafka.admin import ConfigResource
        fs = env.shared.ck_admin.describe_configs([ConfigResource("TOPIC", env.names[name_key])],
                                                   request_timeout=20)
        (f,) = fs.values()
        configs = f.result()
        return {n: (configs[n].value, configs[n].source, configs[n].is_default) for n in names}
    return op


def ck_create_partitions(count, name_key="topic", validate_only=False):
    from confluent_kafka.admin import NewPartitions
    return ck(lambda a, env: a.create_partitions([NewPartitions(env.names[name_key], count)],
                                                 validate_only=validate_only, operation_timeout=20,
                                                 request_timeout=20))


def ck_delete_records(offset, partition=0, name_key="topic"):
    from confluent_kafka import TopicPartition

    def call(a, env):
        return a.delete_records([TopicPartition(env.names[name_key], partition, offset)],
                                operation_timeout=20, request_timeout=20)

    def op(env):
        result = futures(call(env.shared.ck_admin, env))
        return {k: ({"ok": {"low_watermark": v["ok"].low_watermark}} if "ok" in v else v)
                for k, v in result.items()}
    return op


def ck_list_offsets(spec, partition=0, name_key="topic"):
    """spec: "earliest", "latest", "max_timestamp" or a timestamp."""
    def op(env):
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec
        s = getattr(OffsetSpec, spec)() if isinstance(spec, str) else OffsetSpec.for_timestamp(spec)
        result = futures(env.shared.ck_admin.list_offsets(
            {TopicPartition(env.names[name_key], partition): s}, request_timeout=20))
        return {k: ({"ok": {"offset": v["ok"].offset, "timestamp": v["ok"].timestamp,
                            "leader_epoch": v["ok"].leader_epoch}} if "ok" in v else v)
                for k, v in result.items()}
    return op


def ck_describe_groups(include_members=False):
    def op(env):
        result = futures(env.shared.ck_admin.describe_consumer_groups([env.group], request_timeout=20))
        out = {}
        for k, v in result.items():
            if "ok" in v:
                g = v["ok"]
                v = {"ok": {"state": str(g.state), "simple": g.is_simple_consumer_group,
                            "assignor": g.partition_assignor, "coordinator": g.coordinator.id,
                            "members": len(g.members) if include_members else None}}
            out[k] = v
        return out
    return op


def ck_group_offsets(partitions=None):
    def op(env):
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        tps = None if partitions is None else [TopicPartition(env.topic, p) for p in partitions]
        result = futures(env.shared.ck_admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(env.group, tps)], request_timeout=20))
        # no metadata: confluent-kafka 2.16 reads a committed metadata string
        # past its length (garbage after the text, at times not UTF-8: a
        # client bug); the kafka-python cases compare it
        return {k: ({"ok": sorted((f"{tp.topic == env.topic}:{tp.partition}", tp.offset,
                                   tp.error.name() if tp.error else None) for tp in v["ok"].topic_partitions)}
                    if "ok" in v else v) for k, v in result.items()}
    return op


def ck_alter_group_offsets(offset=2):
    def op(env):
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        result = futures(env.shared.ck_admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(env.group, [TopicPartition(env.topic, 0, offset)])],
            request_timeout=20))
        return {k: ({"ok": [(tp.partition, tp.offset, tp.error.name() if tp.error else None)
                            for tp in v["ok"].topic_partitions]} if "ok" in v else v)
                for k, v in result.items()}
    return op


def ck_describe_cluster(env):
    c = env.shared.ck_admin.describe_cluster(request_timeout=20).result()
    return {"controller": c.controller.id, "nodes": sorted(n.id for n in c.nodes),
            "hosts": sorted(n.host for n in c.nodes)}


def ck_describe_topic(env):
    from confluent_kafka import TopicCollection
    result = futures(env.shared.ck_admin.describe_topics(TopicCollection([env.topic]), request_timeout=20))
    return {k: ({"ok": {"partitions": len(v["ok"].partitions), "internal": v["ok"].is_internal}}
                if "ok" in v else v) for k, v in result.items()}


def ck_describe_with_ops(env):
    """describe_topics and describe_cluster with authorized operations (no authorizer: all supported ones)."""
    from confluent_kafka import TopicCollection
    a = env.shared.ck_admin
    (t,) = a.describe_topics(TopicCollection([env.topic]), include_authorized_operations=True,
                             request_timeout=20).values()
    c = a.describe_cluster(include_authorized_operations=True, request_timeout=20).result()
    return {"topic": sorted(str(op) for op in t.result().authorized_operations),
            "cluster": sorted(str(op) for op in c.authorized_operations)}


def ck_list_topic(env):
    """Metadata of one unknown topic through list_topics: librdkafka asks
    with allow_auto_topic_creation, so both brokers create it."""
    md = env.shared.ck_admin.list_topics(topic=env.topic, timeout=20)
    t = md.topics[env.topic]
    return {"error": t.error.name() if t.error else None, "partitions": sorted(t.partitions)}


def ck_describe_broker(broker_id, names=("log.retention.hours",)):
    def op(env):
        from confluent_kafka.admin import ConfigResource
        fs = env.shared.ck_admin.describe_configs([ConfigResource("BROKER", broker_id)], request_timeout=20)
        (f,) = fs.values()
        configs = f.result()
        return {n: (configs[n].value, configs[n].source) for n in names}
    return op


def ck_list_groups(env):
    """The case's group among all listed (other cases' groups are on the same brokers)."""
    result = env.shared.ck_admin.list_consumer_groups(request_timeout=20).result()
    mine = [(g.group_id, str(g.state), g.is_simple_consumer_group, str(g.type))
            for g in result.valid if g.group_id == env.group]
    return {"mine": mine, "errors": [str(e) for e in result.errors]}


LONG_NAME = "x" * 250

CK_CASES = [
    # CreateTopics
    ClientCase("create-ok", "confluent", ck_new_topic(partitions=3)),
    ClientCase("create-validate-only", "confluent", ck_new_topic(validate_only=True)),
    ClientCase("create-exists", "confluent", ck_new_topic(), setup=(topic(),)),
    ClientCase("create-invalid-chars", "confluent", ck_new_topic(name="bad/name")),
    ClientCase("create-name-dot-dot", "confluent", ck_new_topic(name="..")),
    ClientCase("create-name-too-long", "confluent", ck_new_topic(name=LONG_NAME)),
    ClientCase("create-rf-too-large", "confluent", ck_new_topic(rf=3),
               differs=KRAFT_WORDING),
    ClientCase("create-bad-config-value", "confluent", ck_new_topic(configs={"retention.ms": "soon"})),
    ClientCase("create-unknown-config", "confluent", ck_new_topic(configs={"no.such.config": "1"})),
    ClientCase("create-bad-cleanup-policy", "confluent", ck_new_topic(configs={"cleanup.policy": "forever"})),
    ClientCase("create-min-isr-above-rf", "confluent", ck_new_topic(configs={"min.insync.replicas": "2"})),
    # DeleteTopics / DescribeTopics / Metadata
    ClientCase("delete-unknown", "confluent", ck(lambda a, env: a.delete_topics([env.topic],
                                                                                 operation_timeout=20))),
    ClientCase("delete-ok", "confluent", ck(lambda a, env: a.delete_topics([env.topic], operation_timeout=20)),
               setup=(topic(),)),
    ClientCase("describe-topic-unknown", "confluent", ck_describe_topic),
    ClientCase("describe-topic-ok", "confluent", ck_describe_topic, setup=(topic(2),)),
    ClientCase("describe-authorized-operations", "confluent", ck_describe_with_ops, setup=(topic(),)),
    ClientCase("list-topics-auto-creates", "confluent", ck_list_topic, differs=AUTO_CREATE),
    # Configs
    ClientCase("describe-configs-unknown-topic", "confluent", ck_describe_configs(["retention.ms"])),
    ClientCase("describe-configs-set", "confluent",
               ck_describe_configs(["retention.ms", "cleanup.policy", "max.message.bytes"]),
               setup=(topic(configs={"retention.ms": "1234"}),)),
    ClientCase("incremental-set-ok", "confluent", ck_incremental([("retention.ms", "SET", "5000")]),
               setup=(topic(),)),
    ClientCase("incremental-bad-value", "confluent", ck_incremental([("retention.ms", "SET", "soon")]),
               setup=(topic(),),
               differs=KRAFT_WORDING),
    ClientCase("incremental-unknown-config", "confluent", ck_incremental([("no.such.config", "SET", "1")]),
               setup=(topic(),)),
    ClientCase("incremental-append-non-list", "confluent",
               ck_incremental([("retention.ms", "APPEND", "5")]), setup=(topic(),),
               differs=KRAFT_WORDING),
    ClientCase("incremental-subtract-list", "confluent",
               ck_incremental([("cleanup.policy", "SUBTRACT", "compact")]),
               setup=(topic(configs={"cleanup.policy": "compact,delete"}),)),
    ClientCase("incremental-unknown-topic", "confluent", ck_incremental([("retention.ms", "SET", "5000")])),
    ClientCase("incremental-duplicate-key", "confluent",
               ck_incremental([("retention.ms", "SET", "5000"), ("retention.ms", "DELETE", None)]),
               setup=(topic(),)),
    # CreatePartitions
    ClientCase("partitions-decrease", "confluent", ck_create_partitions(1), setup=(topic(3),),
               differs=KRAFT_WORDING),
    ClientCase("partitions-same", "confluent", ck_create_partitions(2), setup=(topic(2),),
               differs=KRAFT_WORDING),
    ClientCase("partitions-unknown-topic", "confluent", ck_create_partitions(4),
               differs=UNKNOWN_TOPIC_PARTITIONS),
    ClientCase("partitions-ok", "confluent", ck_create_partitions(4), setup=(topic(2),)),
    # DeleteRecords / ListOffsets
    ClientCase("delete-records-ok", "confluent", ck_delete_records(2), setup=(topic(), records(5))),
    ClientCase("delete-records-beyond-hw", "confluent", ck_delete_records(9), setup=(topic(), records(5))),
    ClientCase("delete-records-unknown-partition", "confluent", ck_delete_records(1, partition=3),
               setup=(topic(),)),
    ClientCase("list-offsets-earliest", "confluent", ck_list_offsets("earliest"), setup=(topic(), records(4))),
    ClientCase("list-offsets-latest", "confluent", ck_list_offsets("latest"), setup=(topic(), records(4))),
    ClientCase("list-offsets-max-timestamp", "confluent", ck_list_offsets("max_timestamp"),
               setup=(topic(), records(4))),
    ClientCase("list-offsets-for-time", "confluent", ck_list_offsets(1_700_000_000_002),
               setup=(topic(), records(4))),
    ClientCase("list-offsets-for-time-past-end", "confluent", ck_list_offsets(1_800_000_000_000),
               setup=(topic(), records(4))),
    # Groups
    ClientCase("describe-group-unknown", "confluent", ck_describe_groups(), setup=(coordinator,)),
    ClientCase("describe-group-stable", "confluent", ck_describe_groups(include_members=True),
               setup=(topic(), group(subscribe="topic"))),
    ClientCase("delete-group-unknown", "confluent",
               ck(lambda a, env: a.delete_consumer_groups([env.group], request_timeout=20)),
               setup=(coordinator,)),
    ClientCase("delete-group-non-empty", "confluent",
               ck(lambda a, env: a.delete_consumer_groups([env.group], request_timeout=20)),
               setup=(topic(), group(subscribe="topic"))),
    ClientCase("delete-group-empty", "confluent",
               ck(lambda a, env: a.delete_consumer_groups([env.group], request_timeout=20)),
               setup=(topic(), commit(3))),
    ClientCase("group-offsets-unknown-group", "confluent", ck_group_offsets(), setup=(coordinator,)),
    ClientCase("group-offsets-unknown-group-partitions", "confluent", ck_group_offsets([0]),
               setup=(coordinator,)),
    ClientCase("group-offsets-committed", "confluent", ck_group_offsets(), setup=(topic(), commit(3))),
    ClientCase("alter-group-offsets-active-member", "confluent", ck_alter_group_offsets(),
               setup=(topic(), group(subscribe="topic"))),
    ClientCase("alter-group-offsets-empty-group", "confluent", ck_alter_group_offsets(),
               setup=(topic(), commit(3))),
    ClientCase("describe-cluster", "confluent", ck_describe_cluster),
    # more input users get wrong
    ClientCase("create-broker-defaults", "confluent", ck_new_topic(partitions=-1, rf=-1)),
    ClientCase("delete-records-unknown-topic", "confluent", ck_delete_records(1)),
    ClientCase("list-offsets-unknown-topic", "confluent", ck_list_offsets("latest")),
    ClientCase("describe-configs-broker", "confluent",
               ck_describe_broker("1", ("log.retention.hours", "num.partitions", "message.max.bytes",
                                        "auto.create.topics.enable", "broker.id"))),
    ClientCase("list-groups-states", "confluent", ck_list_groups,
               setup=(topic(), group(subscribe="topic"))),
]


@pytest.mark.parametrize("case", client_params(CK_CASES))
def test_confluent_admin(case, brokers, shared):
    run_client_case(case, brokers, shared)


# ------------------------------------------------------------------ confluent-kafka Producer / Consumer


def ck_produce(size=10, partition=0, **config):
    """Produce one record and flush: the delivery report's partition/offset or error."""
    def op(env):
        from confluent_kafka import Producer
        producer = Producer({"bootstrap.servers": env.bootstrap, "message.timeout.ms": 20000,
                             "retries": 0, **config})
        reports = []
        producer.produce(env.topic, b"x" * size, partition=partition,
                         on_delivery=lambda err, msg: reports.append((err, msg)))
        producer.flush(30)
        ((err, msg),) = reports
        if err is not None:
            raise KafkaException(err)
        return {"partition": msg.partition(), "offset": msg.offset()}
    return op


def KafkaException(err):  # noqa: N802 - confluent_kafka.KafkaException, imported lazily
    from confluent_kafka import KafkaException as K
    return K(err)


def records_of(size, count):
    """A setup step: `count` one-record batches of `size`-byte values."""
    def step(ctx):
        from .harness import batch, produce
        for i in range(count):
            resp = produce(ctx, ctx.topic, batch([bytes([65 + i]) * size]))
            assert resp["responses"][0]["partition_responses"][0]["error_code"] == 0, resp
    return step


def ck_consume(start, reset="error", count=3, **config):
    """Assign partition 0 at `start` (None: from the reset policy); poll until
    `count` records or the first error event."""
    def op(env):
        import time

        from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition
        consumer = Consumer({"bootstrap.servers": env.bootstrap, "group.id": env.group,
                             "auto.offset.reset": reset, "enable.auto.commit": False, **config})
        try:
            consumer.assign([TopicPartition(env.topic, 0, OFFSET_INVALID if start is None else start)])
            got = []
            deadline = time.monotonic() + 20
            while len(got) < count and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    raise KafkaException(msg.error())
                got.append((msg.offset(), msg.value() if len(msg.value()) < 100 else len(msg.value())))
            return {"got": got}
        finally:
            consumer.close()
    return op


def ck_log_append_time(env):
    """Produce to a LogAppendTime topic, read it back: the timestamp type
    (the times themselves are each broker's clock: compared only as set)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    producer = Producer({"bootstrap.servers": env.bootstrap, "compression.type": "zstd"})
    reports = []
    producer.produce(env.topic, b"v", key=b"k", partition=0, timestamp=1_600_000_000_000,
                     headers=[("h", b"1")], on_delivery=lambda err, msg: reports.append((err, msg)))
    producer.flush(30)
    ((err, msg),) = reports
    if err is not None:
        raise KafkaException(err)
    consumer = Consumer({"bootstrap.servers": env.bootstrap, "group.id": env.group})
    try:
        consumer.assign([TopicPartition(env.topic, 0, 0)])
        got = consumer.consume(1, timeout=20)
        (m,) = got
        return {"delivered": (msg.offset(), msg.timestamp()[0], msg.timestamp()[1] > 1_600_000_000_000),
                "read": (m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[0],
                         m.timestamp()[1] > 1_600_000_000_000)}
    finally:
        consumer.close()


def ck_consumer_offsets(env):
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": env.bootstrap, "group.id": env.group})
    try:
        tp = TopicPartition(env.topic, 0)
        times = consumer.offsets_for_times([TopicPartition(env.topic, 0, 1_700_000_000_001),
                                            TopicPartition(env.topic, 1, 1_800_000_000_000)], timeout=20)
        return {"watermarks": consumer.get_watermark_offsets(tp, timeout=20),
                "for_times": [(t.partition, t.offset, t.error.name() if t.error else None) for t in times],
                "committed": [(t.partition, t.offset) for t in consumer.committed([tp], timeout=20)]}
    finally:
        consumer.close()


def ck_group_member(env):
    """A subscribed group consumer reads every record of a 2-partition topic
    and commits; then the admin describes the group and lists its offsets."""
    import time

    from confluent_kafka import ConsumerGroupTopicPartitions, Consumer
    consumer = Consumer({"bootstrap.servers": env.bootstrap, "group.id": env.group, "client.id": "ck-member",
                        "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([env.topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append((msg.partition(), msg.offset(), msg.value()))
        consumer.commit(asynchronous=False)
        admin = env.shared.ck_admin
        (d,) = admin.describe_consumer_groups([env.group], request_timeout=20).values()
        d = d.result()
        (o,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(env.group)],
                                                 request_timeout=20).values()
        return {"got": sorted(got), "state": str(d.state), "assignor": d.partition_assignor,
                "members": [(m.client_id, m.host, sorted(tp.partition for tp in m.assignment.topic_partitions))
                            for m in d.members],
                "offsets": sorted((tp.partition, tp.offset) for tp in o.result().topic_partitions)}
    finally:
        consumer.close()


CK_PRODUCER_CASES = [
    ClientCase("produce-ok", "confluent", ck_produce(), setup=(topic(), records(2))),
    ClientCase("produce-idempotent", "confluent", ck_produce(**{"enable.idempotence": True, "retries": 5}),
               setup=(topic(), records(2))),
    ClientCase("produce-too-large-for-topic", "confluent", ck_produce(size=3000),
               setup=(topic(configs={"max.message.bytes": "1000"}),)),
    ClientCase("produce-invalid-required-acks", "confluent", ck_produce(**{"acks": 2}), setup=(topic(),)),
    ClientCase("produce-unknown-partition", "confluent", ck_produce(partition=5), setup=(topic(),)),
    ClientCase("produce-timestamp-too-old", "confluent",
               ck_produce(**{"message.timeout.ms": 20000}),
               setup=(topic(configs={"message.timestamp.before.max.ms": "0",
                                     "message.timestamp.type": "CreateTime"}),)),
    ClientCase("consume-out-of-range-reset-error", "confluent", ck_consume(50), setup=(topic(), records(3))),
    ClientCase("consume-past-end-reset-earliest", "confluent", ck_consume(50, reset="earliest"),
               setup=(topic(), records(3))),
    ClientCase("consume-no-commit-reset-error", "confluent", ck_consume(None), setup=(topic(), records(3))),
    ClientCase("consume-committed-position", "confluent", ck_consume(None, count=1),
               setup=(topic(), records(3), commit(2))),
    ClientCase("group-member-consumes-and-commits", "confluent", ck_group_member,
               setup=(topic(2), records(2), records(1, partition=1))),
    ClientCase("produce-auto-creates-topic", "confluent", ck_produce()),
    ClientCase("consume-record-over-fetch-limits", "confluent",
               ck_consume(0, count=2, **{"fetch.max.bytes": 1000, "max.partition.fetch.bytes": 1000,
                                         "message.max.bytes": 1000, "receive.message.max.bytes": 10000}),
               setup=(topic(), records_of(4000, 2))),
    ClientCase("log-append-time-zstd", "confluent", ck_log_append_time,
               setup=(topic(configs={"message.timestamp.type": "LogAppendTime"}),)),
    ClientCase("consumer-offsets", "confluent", ck_consumer_offsets, setup=(topic(2), records(3), commit(1))),
]


@pytest.mark.parametrize("case", client_params(CK_PRODUCER_CASES))
def test_confluent_producer_consumer(case, brokers, shared):
    run_client_case(case, brokers, shared)
