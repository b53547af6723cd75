"""Kafka's admin tools (kafka-topics, kafka-configs, kafka-get-offsets,
kafka-delete-records, kafka-log-dirs) against kafka-compat and, side by side,
against Apache Kafka 4.4 (one reference broker for the module): the same
invocation must print the same thing, errors included. The few texts that
differ on purpose are `differs=` below, each listed with its reason in
docs/compatibility.md ("Kafka's command-line tools")."""
from __future__ import annotations

import json
import re
import time

from kafka import KafkaProducer

from tests.interop.kafka_tools import brokers, case, error_text, kafka_tool  # noqa: F401 (fixture)

BS = "{bootstrap}"  # each broker's address, filled in by Brokers.both


def topics(*args: str) -> tuple[str, ...]:
    return ("kafka-topics", "--bootstrap-server", BS, *args)


def configs(*args: str) -> tuple[str, ...]:
    return ("kafka-configs", "--bootstrap-server", BS, *args)


def same_output(brokers, *args: str, returncode: int = 0) -> list[str]:
    """Both brokers answer the invocation alike; our lines."""
    return brokers.same_error(*args, returncode=returncode)


def test_kafka_topics_create_alter_describe_delete(brokers):
    topic = "tools-topic"
    assert same_output(brokers, *topics("--create", "--topic", topic, "--partitions", "2",
                                        "--config", "retention.ms=3600000")) == [
        f"Created topic {topic}."]
    assert same_output(brokers, *topics("--alter", "--topic", topic, "--partitions", "3")) == []

    reference, ours = brokers.both(*topics("--describe", "--topic", topic))
    assert ours.returncode == reference.returncode == 0, ours.stderr
    # The topic ids are each broker's own. Known differences
    # (docs/compatibility.md): KRaft's cluster-wide min.insync.replicas shows
    # among a topic's configs; the ELR comes from DescribeTopicPartitions, a
    # KRaft API we don't serve, so the tool prints N/A for it.
    topic_id = re.compile(r"TopicId: \S+")
    theirs = (topic_id.sub("TopicId: ID", reference.stdout)
              .replace("Configs: min.insync.replicas=1,", "Configs: ")
              .replace("Elr: \tLastKnownElr: ", "Elr: N/A\tLastKnownElr: N/A"))
    assert topic_id.sub("TopicId: ID", ours.stdout) == theirs
    header, *partitions = ours.stdout.strip().splitlines()
    fields = dict(re.findall(r"(\w+): (\S*)", header))
    assert (fields["Topic"], fields["PartitionCount"], fields["ReplicationFactor"],
            fields["Configs"]) == (topic, "3", "1", "retention.ms=3600000")
    assert [dict(re.findall(r"(\w+): (\S*)", line)) for line in partitions] == [
        {"Topic": topic, "Partition": str(p), "Leader": "1", "Replicas": "1", "Isr": "1",
         "Elr": "N/A", "LastKnownElr": "N/A"} for p in range(3)]

    assert same_output(brokers, *topics("--list")) == [topic]
    assert same_output(brokers, *topics("--delete", "--topic", topic)) == []
    assert same_output(brokers, *topics("--list")) == []


def test_kafka_topics_errors(brokers):
    topic = "tools-topic-errors"
    brokers.same_error(*topics("--create", "--topic", topic, "--partitions", "2"), returncode=0)
    brokers.same_errors(
        case(*topics("--create", "--topic", topic)),
        case(*topics("--create", "--topic", "bad!name")),
        case(*topics("--create", "--topic", "other", "--config", "nonesuch=1")),
        case(*topics("--describe", "--topic", "nonesuch")),
        # ZooKeeper-mode (3.9) texts, kept: docs/compatibility.md.
        case(*topics("--create", "--topic", "other", "--replication-factor", "3"),
             differs=("Unable to replicate the partition 3 time(s): The target replication "
                      "factor of 3 cannot be reached because only 1 broker(s) are registered "
                      "or some brokers have all their log directories cordoned.",
                      "Replication factor: 3 larger than available brokers: 1.")),
        case(*topics("--create", "--topic", "other", "--replica-assignment", "1:5"),
             differs=("The manual partition assignment includes broker 5, but no such broker "
                      "is registered.", "Unknown broker(s) in replica assignment: 5.")),
        case(*topics("--alter", "--topic", topic, "--partitions", "1"),
             differs=(f"The topic {topic} currently has 2 partition(s); 1 would not be an "
                      "increase.",
                      "Topic currently has 2 partitions, which is higher than the requested 1.")),
        case(*topics("--alter", "--topic", topic, "--partitions", "2"),
             differs=("Topic already has 2 partition(s).", "Topic already has 2 partitions.")),
        case("kafka-leader-election", "--bootstrap-server", BS, "--election-type", "preferred",
             "--all-topic-partitions", returncode=0),
        case("kafka-leader-election", "--bootstrap-server", BS, "--election-type", "preferred",
             "--topic", "nonesuch", "--partition", "0",
             differs=("No such topic as nonesuch", "The partition does not exist.")))


# Topic configs Kafka 4.4 lists and 3.9 (which we follow) doesn't, and the
# other way round; and the defaults and synonyms that changed (see
# docs/compatibility.md).
ONLY_IN_KAFKA_4 = {"errors.deadletterqueue.group.enable", "max.decompressed.message.bytes",
                   "remote.copy.lag.bytes", "remote.copy.lag.ms"}
ONLY_IN_KAFKA_3 = {"message.downconversion.enable", "message.format.version",
                   "message.timestamp.difference.max.ms"}
CHANGED_IN_KAFKA_4 = {"message.timestamp.after.max.ms", "min.insync.replicas"}


def test_kafka_configs_topics(brokers):
    topic = "tools-configs"
    brokers.same_error(*topics("--create", "--topic", topic), returncode=0)
    entity = ("--entity-type", "topics", "--entity-name", topic)
    assert same_output(brokers, *configs("--alter", *entity, "--add-config",
                                         "retention.ms=1000,cleanup.policy=compact")) == [
        f"Completed updating config for topic {topic}."]
    assert same_output(brokers, *configs("--describe", *entity)) == [
        f"Dynamic configs for topic {topic} are:",
        "  cleanup.policy=compact sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy"
        "=compact, DEFAULT_CONFIG:log.cleanup.policy=delete}",
        "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000}"]
    same_output(brokers, *configs("--alter", *entity, "--delete-config", "retention.ms"))
    assert same_output(brokers, *configs("--describe", *entity))[1:] == [
        "  cleanup.policy=compact sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy"
        "=compact, DEFAULT_CONFIG:log.cleanup.policy=delete}"]

    reference, ours = brokers.both(*configs("--describe", *entity, "--all"))
    assert ours.returncode == reference.returncode == 0, ours.stderr
    theirs, ours_lines = set(reference.stdout.splitlines()), set(ours.stdout.splitlines())
    name = lambda line: line.split("=", 1)[0].strip()  # noqa: E731
    assert {name(line) for line in theirs - ours_lines} == ONLY_IN_KAFKA_4 | CHANGED_IN_KAFKA_4
    assert {name(line) for line in ours_lines - theirs} == ONLY_IN_KAFKA_3 | CHANGED_IN_KAFKA_4

    # Errors: the tool's own checks and the broker's.
    brokers.same_errors(
        case(*configs("--alter", *entity, "--add-config", "nonesuch=1")),
        case(*configs("--alter", *entity, "--add-config", "cleanup.policy=bogus"),
             differs=("InvalidConfigurationException: Invalid value bogus",
                      "InvalidConfigurationException: Invalid config value for resource "
                      f"ConfigResource(type=TOPIC, name='{topic}'): Invalid value bogus")),
        case(*configs("--alter", "--entity-type", "topics", "--entity-name", "nonesuch",
                      "--add-config", "retention.ms=5")),
        case(*configs("--describe", "--entity-type", "topics", "--entity-name", "nonesuch"),
             returncode=0),
        case(*configs("--describe", "--entity-type", "topics", "--entity-name", "bad!")))


def test_kafka_configs_broker_loggers(brokers):
    entity = ("--entity-type", "broker-loggers", "--entity-name", "1")
    logger = "kafka_compat.broker"
    # Kafka's loggers are log4j's and ours Python's: the lists differ, the
    # way they are set and shown does not.
    assert same_output(brokers, *configs("--alter", *entity, "--add-config", "root=WARN")) == [
        "Completed updating config for broker-logger 1."]
    reference, ours = brokers.both(*configs("--describe", *entity))
    assert ours.returncode == reference.returncode == 0, ours.stderr
    levels = _logger_levels(ours.stdout)
    assert levels["root"] == "WARN" and levels[logger] == "WARN"  # inherited
    assert _logger_levels(reference.stdout)["root"] == "WARN"
    try:
        # DEBUG on one logger (and so on those below it), TRACE shown as
        # DEBUG: Python's lowest level.
        assert _ours(brokers, "--alter", *entity, "--add-config",
                     f"{logger}=TRACE,kafka_compat.group=ERROR").returncode == 0
        levels = _logger_levels(_ours(brokers, "--describe", *entity).stdout)
        assert (levels["root"], levels[logger], levels["kafka_compat.group"]) == (
            "WARN", "DEBUG", "ERROR")
        assert all(level == "ERROR" for name, level in levels.items()
                   if name.startswith("kafka_compat.group."))
        assert _ours(brokers, "--alter", *entity, "--delete-config", logger).returncode == 0
        assert _logger_levels(_ours(brokers, "--describe", *entity).stdout)[logger] == "WARN"
    finally:
        _ours(brokers, "--alter", *entity, "--delete-config", "kafka_compat.group",
              "--add-config", "root=INFO")

    brokers.same_errors(
        case(*configs("--alter", *entity, "--add-config", "root=LOUD")),
        case(*configs("--alter", *entity, "--add-config", "no.such.logger=INFO")),
        case(*configs("--alter", *entity, "--delete-config", "root")),
        case(*configs("--describe", "--entity-type", "broker-loggers", "--entity-name", "x")),
        case(*configs("--describe", "--entity-type", "broker-loggers", "--entity-name", "7"),
             returncode=0))


def _ours(brokers, *args: str):
    return kafka_tool("kafka-configs", "--bootstrap-server", brokers.ours.bootstrap, *args)


def _logger_levels(output: str) -> dict[str, str]:
    header, *lines = output.strip().splitlines()
    assert header == "Dynamic configs for broker-logger 1 are:"
    levels = {}
    for line in lines:
        match = re.fullmatch(r"  (\S+)=(\w+) sensitive=false synonyms=\{\}", line)
        assert match, line
        levels[match[1]] = match[2]
    return levels


def _produce(bootstrap: str, topic: str, records: list[tuple[int, bytes, int]]) -> None:
    """Each (partition, value, timestamp) in a batch of its own, so both
    brokers hold the same batches byte for byte."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        for partition, value, timestamp in records:
            producer.send(topic, value=value, partition=partition, timestamp_ms=timestamp)
            producer.flush()
    finally:
        producer.close()


def test_get_offsets_delete_records_log_dirs(brokers, tmp_path):
    topic = "tools-offsets"
    brokers.same_error(*topics("--create", "--topic", topic, "--partitions", "2"), returncode=0)
    # An hour ago: records older than retention.ms (7 days) would be deleted
    # by the brokers' next retention check, taking the offsets with them.
    base = int(time.time() * 1000) - 3_600_000
    # Partition 0: 5 records, the largest timestamp at offset 3; partition 1: 2.
    records = [(0, b"a", base), (0, b"b", base + 10), (0, b"c", base + 5), (0, b"d", base + 50),
               (0, b"e", base + 20), (1, b"f", base + 1), (1, b"g", base + 2)]
    for bootstrap in (brokers.reference.bootstrap, brokers.ours.bootstrap):
        _produce(bootstrap, topic, records)

    get_offsets = ("kafka-get-offsets", "--bootstrap-server", BS)
    latest, max_timestamp, for_time, *_ = brokers.same_errors(
        case(*get_offsets, "--topic", topic, returncode=0),
        case(*get_offsets, "--topic", topic, "--time", "-3", returncode=0),
        case(*get_offsets, "--topic-partitions", f"{topic}:0", "--time", str(base + 6),
             returncode=0),
        case(*get_offsets, "--topic", "nonesuch"),
        case(*get_offsets, "--topic", topic, "--partitions", "7"))
    assert latest == [f"{topic}:0:5", f"{topic}:1:2"]
    assert max_timestamp == [f"{topic}:0:3", f"{topic}:1:1"]
    assert for_time == [f"{topic}:0:1"]

    delete = tmp_path / "delete.json"
    delete.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": 2},
        {"topic": topic, "partition": 1, "offset": -1}]}))
    # The tool prints the partitions in the order their answers complete.
    reference, ours = brokers.both("kafka-delete-records", "--bootstrap-server", BS,
                                   "--offset-json-file", str(delete))
    assert ours.returncode == reference.returncode == 0, ours.stderr
    assert sorted(error_text(ours)) == sorted(error_text(reference)) == sorted([
        "Executing records delete operation", "Records delete operation completed:",
        f"partition: {topic}-0\tlow_watermark: 2", f"partition: {topic}-1\tlow_watermark: 2"])
    beyond = tmp_path / "beyond.json"
    beyond.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": 100}]}))
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "offset": 1}, {"topic": topic, "partition": 0,
                                                        "offset": 1}]}))
    out_of_range, _, earliest, _ = brokers.same_errors(
        case("kafka-delete-records", "--bootstrap-server", BS, "--offset-json-file", str(beyond),
             returncode=0),
        case("kafka-delete-records", "--bootstrap-server", BS, "--offset-json-file", str(twice)),
        case(*get_offsets, "--topic", topic, "--time", "-2", returncode=0),
        case("kafka-log-dirs", "--bootstrap-server", BS, "--describe", "--broker-list", "5"))
    assert out_of_range[2] == (
        f"partition: {topic}-0\terror: org.apache.kafka.common.errors.OffsetOutOfRangeException: "
        "The requested offset is not within the range of offsets maintained by the server.")
    assert earliest == [f"{topic}:0:2", f"{topic}:1:2"]

    reference, ours = brokers.both("kafka-log-dirs", "--bootstrap-server", BS, "--describe",
                                   "--topic-list", topic)
    assert ours.returncode == reference.returncode == 0, ours.stderr
    assert error_text(ours)[:2] == error_text(reference)[:2] == [
        "Querying brokers for log directories information",
        "Received log directory information from brokers 1"]
    theirs, got = (json.loads(r.stdout.splitlines()[-1]) for r in (reference, ours))
    # Same batches, so the same sizes; only the directory differs.
    assert got["brokers"][0]["logDirs"][0].pop("logDir") == str(brokers.ours.data_dir)
    theirs["brokers"][0]["logDirs"][0].pop("logDir")
    by_partition = lambda d: sorted(d["brokers"][0]["logDirs"][0]["partitions"],  # noqa: E731
                                    key=lambda p: p["partition"])
    assert by_partition(got) == by_partition(theirs)
    assert got["brokers"][0]["logDirs"][0]["error"] is None and got["version"] == 1
    sizes = {p["partition"]: p["size"] for p in by_partition(got)}
    on_disk = {f"{topic}-{p}": sum(f.stat().st_size for f in
                                   (brokers.ours.data_dir / f"{topic}-{p}").glob("*.log"))
               for p in (0, 1)}
    assert sizes == on_disk and all(on_disk.values())
