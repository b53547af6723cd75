"""Apache Kafka's own command-line tools (./scripts/kafka-tool, the release
pinned in interop/java/kafka-version) against a kafka-compat broker."""
from __future__ import annotations

import re
import subprocess

from interop import admin
from interop.reference_kafka import ROOT
from tests.interop.kafka_tools import TOOL, kafka_tool


def test_unknown_tool_names_the_tools():
    result = kafka_tool("kafka-nonesuch")
    assert result.returncode == 2
    assert result.stdout == ""
    line, = result.stderr.splitlines()
    assert line.startswith("kafka-tool: unknown tool 'kafka-nonesuch'; the tools are: ")
    assert "kafka-topics" in line and "kafka-console-consumer" in line


def test_every_tool_names_a_class_in_the_jars(tmp_path):
    """Each tool's main class is in the release's jars and has a main method."""
    names = kafka_tool("--list").stdout.split()
    for name in ("kafka-topics", "kafka-configs", "kafka-console-producer",
                 "kafka-console-consumer", "kafka-consumer-groups", "kafka-delete-records",
                 "kafka-log-dirs", "kafka-get-offsets", "kafka-broker-api-versions",
                 "kafka-verifiable-producer", "kafka-verifiable-consumer",
                 "kafka-producer-perf-test", "kafka-consumer-perf-test"):
        assert name in names
    libs = subprocess.run([str(ROOT / "scripts" / "kafka-jars")], capture_output=True,
                          text=True, check=True).stdout.strip()
    script = TOOL.read_text()
    classes = dict(re.findall(r"^\s+\[([a-z0-9-]+)\]=([\w.]+)$", script, re.M))
    assert set(classes) == set(names)
    # One JVM checks every class (faster than one per tool).
    probe = subprocess.run(
        ["java", "-cp", f"{libs}/*", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
         "-Dlog4j2.level=OFF", "ClassCheck.java"],
        capture_output=True, text=True, timeout=120, cwd=_class_check(tmp_path, classes.values()))
    assert probe.returncode == 0, probe.stdout + probe.stderr


def _class_check(directory, class_names) -> str:
    """A directory holding ClassCheck.java, which loads every class named
    (Class.forName fails on a missing one) and finds its main method."""
    names = ", ".join(f'"{name}"' for name in class_names)
    source = (
        "public class ClassCheck { public static void main(String[] a) throws Exception {"
        f" for (String n : new String[]{{{names}}}) {{"
        " Class.forName(n, false, ClassCheck.class.getClassLoader())"
        ".getMethod(\"main\", String[].class); } } }")
    with open(f"{directory}/ClassCheck.java", "w") as file:
        file.write(source)
    return directory


def test_kafka_topics_create_list_describe(broker, topic_name):
    # Neither '_' nor '.', which would make kafka-topics print a warning first.
    topic = re.sub(r"[_.]", "-", topic_name())
    created = kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, "--create",
                         "--topic", topic, "--partitions", "3", "--replication-factor", "1",
                         "--config", "retention.ms=3600000")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"Created topic {topic}."

    listed = kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, "--list")
    assert listed.returncode == 0, listed.stderr
    assert topic in listed.stdout.split()

    described = kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap,
                           "--describe", "--topic", topic)
    assert described.returncode == 0, described.stderr
    header, *partitions = described.stdout.strip().splitlines()
    fields = dict(re.findall(r"(\w+): (\S*)", header))
    assert fields["Topic"] == topic
    assert fields["PartitionCount"] == "3"
    assert fields["ReplicationFactor"] == "1"
    assert "retention.ms=3600000" in header
    assert len(partitions) == 3
    for number, line in enumerate(partitions):
        fields = dict(re.findall(r"(\w+): (\S*)", line))
        assert fields["Partition"] == str(number)
        assert fields["Replicas"] == fields["Leader"] == fields["Isr"]

    # The topic exists for the broker too.
    with admin.admin_client(broker.bootstrap) as client:
        assert topic in client.list_topics()

    again = kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, "--create",
                       "--topic", topic, "--partitions", "1")
    assert again.returncode == 1
    assert f"Topic '{topic}' already exists." in again.stdout + again.stderr


def test_kafka_broker_api_versions(broker):
    result = kafka_tool("kafka-broker-api-versions", "--bootstrap-server", broker.bootstrap)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(rf"{re.escape(broker.bootstrap)} \(id: \d+ rack: null isFenced: false\) -> \($",
                    lines[0]), lines[0]
    versions = dict(re.findall(r"^\t(\w+)\(\d+\): (.*?),?$", result.stdout, re.M))
    # The APIs a 4.x client uses to produce, fetch and run groups are usable.
    for api in ("Produce", "Fetch", "ListOffsets", "Metadata", "ApiVersions", "CreateTopics",
                "FindCoordinator", "JoinGroup", "SyncGroup", "Heartbeat", "OffsetCommit",
                "OffsetFetch", "DescribeConfigs", "DeleteRecords", "DescribeLogDirs",
                "InitProducerId"):
        assert "[usable: " in versions[api], (api, versions.get(api))
