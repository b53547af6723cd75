"""Differential cases for the admin APIs: CreateTopics, DeleteTopics,
CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
DeleteRecords, OffsetForLeaderEpoch, InitProducerId, and malformed frames."""
from __future__ import annotations

import struct

import pytest

from kafka_compat.protocol import schema

from .harness import Case, params, records, run_case, topic, wait_for
from .wire import plain

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def create(name="topic", partitions=1, rf=1, configs=None, assignments=None, validate_only=False):
    def body(ctx):
        return {"topics": [{"name": ctx.names.get(name, name), "num_partitions": partitions,
                            "replication_factor": rf,
                            "assignments": [{"partition_index": i, "broker_ids": b}
                                            for i, b in enumerate(assignments or [])],
                            "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}],
                "timeout_ms": 30000, "validate_only": validate_only}
    return body


def delete_topics(*names):
    return lambda ctx: {"topic_names": [ctx.names.get(n, n) for n in names],
                        "topics": [{"name": ctx.names.get(n, n), "topic_id": bytes(16)} for n in names],
                        "timeout_ms": 30000}


def create_partitions(count, name="topic", assignments=None, validate_only=False):
    return lambda ctx: {"topics": [{"name": ctx.names.get(name, name), "count": count,
                                    "assignments": assignments}],
                        "timeout_ms": 30000, "validate_only": validate_only}


def ConfigsCase(*args, **kw):  # noqa: N802 - a Case whose config lists are compared sorted
    return Case(*args, sort={"results.*.configs": "name"}, **kw)  # Kafka lists them in a hash map's order


def describe_configs(keys=None, rtype=TOPIC, name="topic", synonyms=False, docs=False):
    return lambda ctx: {"resources": [{"resource_type": rtype, "resource_name": ctx.names.get(name, name),
                                       "configuration_keys": keys}],
                        "include_synonyms": synonyms, "include_documentation": docs}


def alter_configs(configs, rtype=TOPIC, name="topic", validate_only=False):
    return lambda ctx: {"resources": [{"resource_type": rtype, "resource_name": ctx.names.get(name, name),
                                       "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
                        "validate_only": validate_only}


def incremental(ops, rtype=TOPIC, name="topic", validate_only=False):
    """ops: [(name, operation, value)]"""
    return lambda ctx: {"resources": [{"resource_type": rtype, "resource_name": ctx.names.get(name, name),
                                       "configs": [{"name": k, "config_operation": op, "value": v}
                                                   for k, op, v in ops]}],
                        "validate_only": validate_only}


def delete_records(offset, partition=0, name="topic"):
    return lambda ctx: {"topics": [{"name": ctx.names.get(name, name), "partitions": [
        {"partition_index": partition, "offset": offset}]}], "timeout_ms": 30000}


def epochs(epoch, partition=0, current=-1, name="topic"):
    return lambda ctx: {"replica_id": -1, "topics": [{"topic": ctx.names.get(name, name), "partitions": [
        {"partition": partition, "current_leader_epoch": current, "leader_epoch": epoch}]}]}


def init_producer(transactional_id=None, timeout=60000, pid=-1, epoch=-1):
    return {"transactional_id": transactional_id, "transaction_timeout_ms": timeout,
            "producer_id": pid, "producer_epoch": epoch}


def producer_ids_ready(ctx):
    """Kafka answers COORDINATOR_LOAD_IN_PROGRESS until its first block of
    producer ids is allocated."""
    wait_for(lambda: ctx.request("InitProducerId", 4, init_producer())["error_code"] == 0,
             f"producer ids on {ctx.side}")


def api_versions_too_new(ctx, version):
    """ApiVersions v99 (KIP-511): answered in v0 with UNSUPPORTED_VERSION."""
    frame = ctx.wire.send_frame(raw_header(18, 99) + b"\x00")
    return None if frame is None else plain(schema.codec("ApiVersions", 0, "response").parse(frame[4:]))


def then_describe(keys):
    """A custom exchange after the request: describe these configs of the topic."""
    def run(ctx, version):
        return ctx.request("DescribeConfigs", 4, describe_configs(keys)(ctx))
    return run


def raw_header(api_key, version, client_id=b"differential", correlation=1):
    return struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id


# New topics' configs in a CreateTopics v5+ answer are every config with its
# default: the sets differ between Kafka 4.4 and 3.9 (new and removed configs),
# so a success is compared on everything else here; describe cases compare
# named configs.
CREATED_CONFIGS = {"topics.*.configs": "the full config list of a new topic differs between Kafka 4.4 and "
                                       "3.9 (configs added/removed); named configs are compared by the "
                                       "describe-configs cases"}
CREATE_VERSIONS = (2, 4, 5, 7)
CONFIG_KEYS = ["cleanup.policy", "retention.ms", "max.message.bytes", "segment.bytes",
               "message.timestamp.type", "compression.type"]

CASES = [
    # ---------------------------------------------------------------- CreateTopics
    Case("create-ok", "CreateTopics", CREATE_VERSIONS, create(partitions=3), ignore=CREATED_CONFIGS),
    Case("create-validate-only", "CreateTopics", (2, 5), create(validate_only=True), ignore=CREATED_CONFIGS),
    Case("create-exists", "CreateTopics", CREATE_VERSIONS, create(), setup=(topic(1),)),
    Case("create-invalid-name", "CreateTopics", CREATE_VERSIONS, create(name="bad name!")),
    Case("create-name-too-long", "CreateTopics", (2, 7), create(name="t" * 250)),
    Case("create-name-dot", "CreateTopics", (5,), create(name=".")),
    Case("create-name-dotdot", "CreateTopics", (5,), create(name="..")),
    Case("create-name-empty", "CreateTopics", (5,), create(name="")),
    Case("create-zero-partitions", "CreateTopics", (2, 7), create(partitions=0)),
    Case("create-negative-partitions", "CreateTopics", (2, 7), create(partitions=-5)),
    Case("create-default-partitions", "CreateTopics", (4, 7), create(partitions=-1, rf=-1),
         ignore=CREATED_CONFIGS),
    Case("create-zero-replication", "CreateTopics", (2, 7), create(rf=0)),
    Case("create-replication-too-large", "CreateTopics", (2, 7), create(rf=3)),
    Case("create-negative-replication", "CreateTopics", (5,), create(rf=-3)),
    Case("create-assignment-unknown-broker", "CreateTopics", (2, 7),
         create(partitions=-1, rf=-1, assignments=[[7]])),
    Case("create-assignment-ok", "CreateTopics", (4,), create(partitions=-1, rf=-1, assignments=[[1], [1]])),
    Case("create-assignment-and-count", "CreateTopics", (4,), create(partitions=2, rf=1, assignments=[[1]])),
    Case("create-assignment-duplicate-broker", "CreateTopics", (4,),
         create(partitions=-1, rf=-1, assignments=[[1, 1]])),
    Case("create-unknown-config", "CreateTopics", (2, 7), create(configs={"no.such.config": "1"})),
    Case("create-bad-config-value", "CreateTopics", (2, 7), create(configs={"retention.ms": "soon"})),
    Case("create-bad-cleanup-policy", "CreateTopics", (5,), create(configs={"cleanup.policy": "sometimes"})),
    Case("create-config-below-minimum", "CreateTopics", (5,), create(configs={"segment.bytes": "10"})),
    Case("create-null-config-value", "CreateTopics", (5,), create(configs={"retention.ms": None})),
    Case("create-internal-name", "CreateTopics", (5,), create(name="__consumer_offsets"),
         ignore=CREATED_CONFIGS),
    Case("create-two-same-name", "CreateTopics", (5,),
         lambda ctx: {"topics": [create()(ctx)["topics"][0], create()(ctx)["topics"][0]],
                      "timeout_ms": 30000, "validate_only": False}),
    # ---------------------------------------------------------------- DeleteTopics
    Case("delete-ok", "DeleteTopics", (1, 4, 6), delete_topics("topic"), setup=(topic(1),)),
    Case("delete-unknown", "DeleteTopics", (1, 4, 6), delete_topics("topic")),
    Case("delete-internal", "DeleteTopics", (4,), delete_topics("__consumer_offsets")),
    Case("delete-unknown-id", "DeleteTopics", (6,),
         lambda ctx: {"topics": [{"name": None, "topic_id": b"\x01" * 16}], "timeout_ms": 30000}),
    Case("delete-name-and-id", "DeleteTopics", (6,),
         lambda ctx: {"topics": [{"name": ctx.topic, "topic_id": b"\x01" * 16}], "timeout_ms": 30000},
         setup=(topic(1),)),
    Case("delete-invalid-name", "DeleteTopics", (4,), delete_topics("bad name!")),
    # ---------------------------------------------------------------- CreatePartitions
    Case("partitions-grow", "CreatePartitions", (0, 1, 3), create_partitions(3), setup=(topic(1),)),
    Case("partitions-same-count", "CreatePartitions", (0, 3), create_partitions(2), setup=(topic(2),)),
    Case("partitions-shrink", "CreatePartitions", (0, 3), create_partitions(1), setup=(topic(2),)),
    Case("partitions-unknown-topic", "CreatePartitions", (0, 3), create_partitions(3)),
    Case("partitions-validate-only", "CreatePartitions", (1,), create_partitions(4, validate_only=True),
         setup=(topic(1),)),
    Case("partitions-bad-assignment-count", "CreatePartitions", (1,),
         create_partitions(3, assignments=[{"broker_ids": [1]}]), setup=(topic(1),)),
    Case("partitions-assignment-unknown-broker", "CreatePartitions", (1,),
         create_partitions(2, assignments=[{"broker_ids": [9]}]), setup=(topic(1),)),
    Case("partitions-assignment-ok", "CreatePartitions", (1,),
         create_partitions(2, assignments=[{"broker_ids": [1]}]), setup=(topic(1),)),
    Case("partitions-internal-topic", "CreatePartitions", (3,), create_partitions(60, name="__consumer_offsets")),
    Case("partitions-zero", "CreatePartitions", (3,), create_partitions(0), setup=(topic(1),)),
    # ---------------------------------------------------------------- DescribeConfigs
    ConfigsCase("describe-configs-named", "DescribeConfigs", (1, 2, 3, 4), describe_configs(CONFIG_KEYS),
         setup=(topic(1),)),
    ConfigsCase("describe-configs-overridden", "DescribeConfigs", (1, 4),
         describe_configs(CONFIG_KEYS, synonyms=True),
         setup=(topic(1, {"retention.ms": "12345", "cleanup.policy": "compact"}),)),
    ConfigsCase("describe-configs-documentation", "DescribeConfigs", (3, 4),
         describe_configs(["retention.ms"], docs=True), setup=(topic(1),)),
    ConfigsCase("describe-configs-unknown-topic", "DescribeConfigs", (1, 4), describe_configs(CONFIG_KEYS)),
    ConfigsCase("describe-configs-unknown-key", "DescribeConfigs", (4,), describe_configs(["no.such.config"]),
         setup=(topic(1),)),
    ConfigsCase("describe-configs-invalid-topic-name", "DescribeConfigs", (4,),
         describe_configs(["retention.ms"], name="bad name!")),
    ConfigsCase("describe-configs-empty-topic-name", "DescribeConfigs", (4,), describe_configs(["retention.ms"], name="")),
    ConfigsCase("describe-configs-unknown-resource-type", "DescribeConfigs", (4,),
         describe_configs(["x"], rtype=99, name="x")),
    ConfigsCase("describe-configs-broker-named", "DescribeConfigs", (4,),
         describe_configs(["num.partitions", "auto.create.topics.enable", "log.retention.hours",
                           "message.max.bytes"], rtype=BROKER, name="1")),
    ConfigsCase("describe-configs-other-broker", "DescribeConfigs", (4,),
         describe_configs(["num.partitions"], rtype=BROKER, name="7")),
    ConfigsCase("describe-configs-bad-broker-id", "DescribeConfigs", (4,),
         describe_configs(["num.partitions"], rtype=BROKER, name="one")),
    ConfigsCase("describe-configs-broker-logger-unknown", "DescribeConfigs", (4,),
         describe_configs(["no.such.logger"], rtype=BROKER_LOGGER, name="1")),
    # ---------------------------------------------------------------- AlterConfigs
    Case("alter-configs-ok", "AlterConfigs", (0, 1, 2), alter_configs({"retention.ms": "1000"}),
         setup=(topic(1),)),
    Case("alter-configs-ok-then-describe", "AlterConfigs", (1,), alter_configs({"retention.ms": "1000"}),
         setup=(topic(1, {"cleanup.policy": "compact"}),), run=None),
    Case("alter-configs-unknown-topic", "AlterConfigs", (0, 2), alter_configs({"retention.ms": "1000"})),
    Case("alter-configs-default-topic", "AlterConfigs", (0, 2), alter_configs({"retention.ms": "1000"}, name="")),
    Case("alter-configs-unknown-config", "AlterConfigs", (0, 2), alter_configs({"no.such.config": "1"}),
         setup=(topic(1),)),
    Case("alter-configs-bad-value", "AlterConfigs", (0, 2), alter_configs({"retention.ms": "forever"}),
         setup=(topic(1),)),
    Case("alter-configs-bad-enum", "AlterConfigs", (2,), alter_configs({"cleanup.policy": "never"}),
         setup=(topic(1),)),
    Case("alter-configs-null-value", "AlterConfigs", (2,), alter_configs({"retention.ms": None}),
         setup=(topic(1),)),
    Case("alter-configs-validate-only", "AlterConfigs", (1,),
         alter_configs({"retention.ms": "1000"}, validate_only=True), setup=(topic(1),)),
    Case("alter-configs-broker", "AlterConfigs", (2,), alter_configs({"num.partitions": "3"}, rtype=BROKER, name="1")),
    Case("alter-configs-unknown-resource-type", "AlterConfigs", (2,),
         alter_configs({"x": "1"}, rtype=99, name="x")),
    # ---------------------------------------------------------------- IncrementalAlterConfigs
    Case("incremental-set", "IncrementalAlterConfigs", (0, 1), incremental([("retention.ms", SET, "1000")]),
         setup=(topic(1),)),
    Case("incremental-delete", "IncrementalAlterConfigs", (0, 1), incremental([("retention.ms", DELETE, None)]),
         setup=(topic(1, {"retention.ms": "5000"}),)),
    Case("incremental-append-list", "IncrementalAlterConfigs", (1,),
         incremental([("cleanup.policy", APPEND, "compact")]), setup=(topic(1),)),
    Case("incremental-append-non-list", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", APPEND, "1")]), setup=(topic(1),)),
    Case("incremental-subtract-non-list", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", SUBTRACT, "1")]), setup=(topic(1),)),
    Case("incremental-unknown-operation", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", 9, "1")]), setup=(topic(1),)),
    Case("incremental-unknown-config", "IncrementalAlterConfigs", (0, 1),
         incremental([("no.such.config", SET, "1")]), setup=(topic(1),)),
    Case("incremental-bad-value", "IncrementalAlterConfigs", (0, 1),
         incremental([("retention.ms", SET, "soon")]), setup=(topic(1),)),
    Case("incremental-duplicate-key", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", SET, "1000"), ("retention.ms", SET, "2000")]), setup=(topic(1),)),
    Case("incremental-unknown-topic", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", SET, "1000")])),
    Case("incremental-default-topic", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", SET, "1000")], name="")),
    Case("incremental-validate-only", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", SET, "1000")], validate_only=True), setup=(topic(1),)),
    Case("incremental-set-null-value", "IncrementalAlterConfigs", (1,),
         incremental([("retention.ms", SET, None)]), setup=(topic(1),)),
    Case("incremental-logger-unknown", "IncrementalAlterConfigs", (1,),
         incremental([("no.such.logger", SET, "DEBUG")], rtype=BROKER_LOGGER, name="1")),
    Case("incremental-logger-bad-level", "IncrementalAlterConfigs", (1,),
         incremental([("kafka.server.KafkaApis", SET, "LOUD")], rtype=BROKER_LOGGER, name="1")),
    # ---------------------------------------------------------------- DeleteRecords
    Case("delete-records-ok", "DeleteRecords", (0, 2), delete_records(2), setup=(topic(1), records(5))),
    Case("delete-records-to-end", "DeleteRecords", (1,), delete_records(-1), setup=(topic(1), records(5))),
    Case("delete-records-beyond-end", "DeleteRecords", (0, 2), delete_records(9), setup=(topic(1), records(5))),
    Case("delete-records-negative", "DeleteRecords", (2,), delete_records(-5), setup=(topic(1), records(5))),
    Case("delete-records-unknown-topic", "DeleteRecords", (0, 2), delete_records(1)),
    Case("delete-records-unknown-partition", "DeleteRecords", (2,), delete_records(1, partition=3),
         setup=(topic(1),)),
    # ---------------------------------------------------------------- OffsetForLeaderEpoch
    Case("epochs-current", "OffsetForLeaderEpoch", (2, 3, 4), epochs(0), setup=(topic(1), records(3))),
    Case("epochs-future", "OffsetForLeaderEpoch", (3, 4), epochs(5), setup=(topic(1), records(3))),
    Case("epochs-fenced", "OffsetForLeaderEpoch", (3, 4), epochs(0, current=7), setup=(topic(1), records(3))),
    Case("epochs-unknown-topic", "OffsetForLeaderEpoch", (2, 4), epochs(0)),
    Case("epochs-unknown-partition", "OffsetForLeaderEpoch", (4,), epochs(0, partition=2), setup=(topic(1),)),
    # ---------------------------------------------------------------- InitProducerId
    Case("init-producer-idempotent", "InitProducerId", (0, 2, 4, 5), init_producer(),
         setup=(producer_ids_ready,)),
    Case("init-producer-unknown-pid", "InitProducerId", (3, 5), init_producer(pid=123456, epoch=0),
         setup=(producer_ids_ready,)),
    # ---------------------------------------------------------------- cluster
    Case("api-versions", "ApiVersions", (0, 3),
         {"client_software_name": "differential", "client_software_version": "1.0"},
         differs="we list the ZooKeeper-mode inter-broker APIs (LeaderAndIsr, StopReplica, UpdateMetadata, "
                 "ControlledShutdown, AlterPartition); Kafka 4.4 KRaft lists its own and APIs we don't "
                 "implement (quotas, SCRAM, tokens, DescribeTopicPartitions, KIP-848/share groups), and EndTxn "
                 "v5 (transaction protocol v2), which 3.9 does not advertise"),
    Case("describe-cluster", "DescribeCluster", (0, 1),
         {"include_cluster_authorized_operations": True, "endpoint_type": 1}),
    Case("describe-acls-no-authorizer", "DescribeAcls", (1, 3),
         {"resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 3,
          "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1}),
    # ---------------------------------------------------------------- malformed frames
    Case("raw-truncated-produce", "Produce", (9,), raw=lambda ctx, v: raw_header(0, v) + b"\x00"),
    Case("raw-unknown-api-key", "ApiVersions", (0,), raw=lambda ctx, v: raw_header(999, 0)),
    Case("raw-header-only-metadata", "Metadata", (4,), raw=lambda ctx, v: raw_header(3, v)),
    Case("raw-api-versions-unsupported-version", "ApiVersions", (0,), run=api_versions_too_new,
         ignore={"api_keys.*.max_version": "Kafka 4.4 serves ApiVersions v5, we serve up to v4"}),
]


# Kafka 4.4's KRaft controller words its topic and config validation errors
# its own way; ours are ZooKeeper-mode 3.9's (AdminZkClient, ZkAdminManager,
# KafkaApis), as docs/compatibility.md says. The error codes agree.
ZK_TEXT = ("same error code; the message is ZooKeeper-mode 3.9's ({}), Kafka 4.4's KRaft controller "
           "words it differently")
EXPECTED_DIFFERENCES = {
    "create-zero-partitions": ZK_TEXT.format("ZkAdminManager.createTopics"),
    "create-negative-partitions": ZK_TEXT.format("ZkAdminManager.createTopics"),
    "create-zero-replication": ZK_TEXT.format("ZkAdminManager.createTopics"),
    "create-negative-replication": ZK_TEXT.format("ZkAdminManager.createTopics"),
    "create-replication-too-large": ZK_TEXT.format("AdminUtils.assignReplicasToBrokers"),
    "create-assignment-unknown-broker": ZK_TEXT.format("AdminZkClient.validateReplicaAssignment"),
    "create-assignment-and-count": ZK_TEXT.format("ZkAdminManager.createTopics"),
    "create-assignment-duplicate-broker": ZK_TEXT.format("AdminZkClient.validateReplicaAssignment"),
    "create-two-same-name": ZK_TEXT.format("KafkaApis: 'Create topics request from client ... contains "
                                           "multiple entries for the following topics'"),
    "delete-name-and-id": ZK_TEXT.format("KafkaApis.handleDeleteTopicsRequest"),
    "partitions-same-count": ZK_TEXT.format("AdminZkClient.createPartitions"),
    "partitions-shrink": ZK_TEXT.format("AdminZkClient.createPartitions"),
    "partitions-zero": ZK_TEXT.format("AdminZkClient.createPartitions"),
    "partitions-unknown-topic": ZK_TEXT.format("ZkAdminManager.createPartitions: \"The topic 'x' does not "
                                               "exist.\"; Kafka 4.4 sends none"),
    "partitions-internal-topic": ZK_TEXT.format("ZkAdminManager.createPartitions"),
    "partitions-bad-assignment-count": ZK_TEXT.format("AdminZkClient.createPartitions"),
    "partitions-assignment-unknown-broker": ZK_TEXT.format("AdminZkClient.validateReplicaAssignment"),
    "alter-configs-bad-value": ZK_TEXT.format("ZkAdminManager: 'Invalid config value for resource ...: '"),
    "alter-configs-bad-enum": ZK_TEXT.format("ZkAdminManager: 'Invalid config value for resource ...: '"),
    "incremental-bad-value": ZK_TEXT.format("ZkAdminManager: 'Invalid config value for resource ...: '"),
    "alter-configs-broker": ZK_TEXT.format("DynamicBrokerConfig prints a Scala Set(...)"),
    "incremental-append-non-list": "INVALID_CONFIG in both; ZooKeeper-mode 3.9 (ConfigAdminManager) says "
                                   "'Config value append is not allowed for config key: X' (ours), Kafka 4.4 "
                                   "KRaft 'Can't APPEND to key X because its type is not LIST.'",
    "incremental-subtract-non-list": "INVALID_CONFIG in both; ZooKeeper-mode 3.9 (ConfigAdminManager) says "
                                     "'Config value subtract is not allowed for config key: X' (ours), Kafka "
                                     "4.4 KRaft 'Can't SUBTRACT to key X because its type is not LIST.'",
    "incremental-unknown-operation": "Kafka 4.4 answers UNKNOWN_SERVER_ERROR for an operation id it doesn't "
                                     "know; we answer INVALID_REQUEST 'Unknown operations type 9'",
    "incremental-logger-bad-level": "we check that the logger exists before its level ('Logger X does not "
                                    "exist!'): our loggers are kafka_compat's, Kafka's named loggers don't exist here",
    "describe-configs-unknown-resource-type": "Kafka 4.4 gives INVALID_REQUEST with the error's default text; "
                                              "we say 'Unsupported resource type 99'",
    "describe-configs-documentation": "we send no config documentation (null): Kafka's doc strings are its prose",
    "create-config-below-minimum": "Kafka 4 raised segment.bytes's minimum to 1 MiB; 3.9's (ours) is 14 bytes",
}
for _case in CASES:
    if _case.id in EXPECTED_DIFFERENCES:
        _case.differs = EXPECTED_DIFFERENCES[_case.id]
assert set(EXPECTED_DIFFERENCES) <= {c.id for c in CASES}


@pytest.mark.parametrize("case,version", params(CASES))
def test_admin(brokers, case, version):
    run_case(case, version, brokers)
