"""Kafka's client tools: kafka-console-producer and kafka-console-consumer
(keys, headers, from-beginning, groups), kafka-consumer-groups, the
verifiable producer and consumer (Kafka's system-test clients) and the perf
tests, against kafka-compat and, where they print errors, side by side
against Apache Kafka 4.4 (one reference broker for the module)."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from interop import admin
from tests.interop.kafka_tools import (  # noqa: F401 (brokers is a fixture)
    TOOL, brokers, case, error_text, kafka_tool, tool_env, wait_for)

BS = "{bootstrap}"  # each broker's address, filled in by Brokers.both

# key TAB value after headers ('|' between headers and the rest).
PRODUCER_PROPERTIES = (
    "--reader-property", "parse.key=true", "--reader-property", "key.separator=\t",
    "--reader-property", "parse.headers=true", "--reader-property", "headers.delimiter=|",
    "--reader-property", "headers.separator=,", "--reader-property", "headers.key.separator==")
# (headers, key, value), keyed so both brokers get the same partitions.
RECORDS = [
    ([("h1", "v1"), ("h2", "v2")], "k1", "first value"),
    ([("trace", "é✓")], "k2", "ünïcødé ✓ value"),
    ([("empty", "")], "k3", "  spaces  kept  "),
    ([("h", "x")], "k4", "{\"json\": [1, 2]}"),
    ([("h", "y")], "k1", "second for k1"),
]


def producer_input() -> str:
    return "".join(",".join(f"{k}={v}" for k, v in headers) + f"|{key}\t{value}\n"
                   for headers, key, value in RECORDS)


@pytest.fixture
def ours(brokers) -> str:
    """Our broker's address, for the tools checked on it alone."""
    return brokers.ours.bootstrap


def groups(*args: str) -> tuple[str, ...]:
    return ("kafka-consumer-groups", "--bootstrap-server", BS, *args)


def _read_all(bootstrap: str, topic: str, partitions: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        got = []
        deadline = time.monotonic() + 30
        while (any(consumer.position(tp) < ends[tp] for tp in tps)
               and time.monotonic() < deadline):
            for records in consumer.poll(timeout_ms=1000).values():
                got += records
        return got
    finally:
        consumer.close()


def test_console_producer_consumer_and_consumer_groups(brokers):
    topic, group = "tools-console", "tools-console-group"
    for bootstrap in (brokers.reference.bootstrap, brokers.ours.bootstrap):
        admin.create_topic(bootstrap, topic, partitions=2)
    produce = ("kafka-console-producer", "--bootstrap-server", BS, "--topic", topic,
               *PRODUCER_PROPERTIES)
    assert brokers.same_error(*produce, input=producer_input(), returncode=0) == []

    # The records as sent, byte for byte (UTF-8, as the tool reads its input).
    got = _read_all(brokers.ours.bootstrap, topic, 2)
    theirs = _read_all(brokers.reference.bootstrap, topic, 2)
    as_sent = sorted((key.encode(), value.encode(), [(k, v.encode()) for k, v in headers])
                     for headers, key, value in RECORDS)
    assert sorted((r.key, r.value, list(r.headers)) for r in got) == as_sent
    # Same partitions and offsets as Kafka's (keys hash alike).
    place = lambda records: sorted((r.partition, r.offset, r.key, r.value)  # noqa: E731
                                   for r in records)
    assert place(got) == place(theirs)

    consume = ("kafka-console-consumer", "--bootstrap-server", BS, "--topic", topic,
               "--from-beginning", "--group", group, "--max-messages", str(len(RECORDS)),
               "--formatter-property", "print.key=true", "--formatter-property",
               "print.headers=true", "--formatter-property", "print.partition=true",
               "--formatter-property", "print.offset=true")
    reference, ours = brokers.both(*consume)
    assert ours.returncode == reference.returncode == 0, ours.stderr
    printed = sorted(ours.stdout.splitlines())
    assert printed == sorted(reference.stdout.splitlines())
    assert printed == sorted(
        f"Partition:{r.partition}\tOffset:{r.offset}\t"
        + ",".join(f"{k}:{v.decode()}" for k, v in r.headers) + f"\t{r.key.decode()}\t"
        + r.value.decode() for r in got)
    assert ours.stderr.splitlines()[-1] == f"Processed a total of {len(RECORDS)} messages"

    ends = {p: max(r.offset for r in got if r.partition == p) + 1 for p in (0, 1)}
    listed, described, state, dry_run = brokers.same_errors(
        case(*groups("--list"), returncode=0),
        case(*groups("--describe", "--group", group), returncode=0),
        case(*groups("--describe", "--group", group, "--state"), returncode=0),
        case(*groups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
                     "--dry-run"), returncode=0))
    assert listed == [group]
    assert _table(described) == [
        {"GROUP": group, "TOPIC": topic, "PARTITION": str(p), "CURRENT-OFFSET": str(ends[p]),
         "LOG-END-OFFSET": str(ends[p]), "LAG": "0", "CONSUMER-ID": "-", "HOST": "-",
         "CLIENT-ID": "-"} for p in (0, 1)]
    assert described[-1] == f"Consumer group '{group}' has no active members."
    assert _table(state)[0]["STATE"] == "Empty"
    assert sorted(_rows(dry_run)) == [[group, topic, "0", "0"], [group, topic, "1", "0"]]
    # A group that doesn't exist: DescribeGroups v6 and ConsumerGroupDescribe
    # (Kafka 4) answer GROUP_ID_NOT_FOUND, which the tool prints with its
    # exception; DescribeGroups v5 (3.9, ours) a Dead group, which it prints
    # as not existing (docs/compatibility.md).
    reference, ours = brokers.both(*groups("--describe", "--group", "nonesuch"))
    assert ours.returncode == reference.returncode == 0
    assert error_text(ours) == ["Error: Consumer group 'nonesuch' does not exist."]
    assert any("GroupIdNotFoundException: Group nonesuch not found." in line
               for line in error_text(reference)), error_text(reference)

    reset = brokers.same_error(*groups("--reset-offsets", "--group", group, "--topic",
                                       f"{topic}:0", "--to-offset", "1", "--execute"),
                               returncode=0)
    assert _rows(reset) == [[group, topic, "0", "1"]]
    lagging, shifted, out_of_range, unknown_topic = brokers.same_errors(
        case(*groups("--describe", "--group", group, "--offsets"), returncode=0),
        case(*groups("--reset-offsets", "--group", group, "--topic", f"{topic}:1",
                     "--shift-by", "-100", "--dry-run"), returncode=0),
        case(*groups("--reset-offsets", "--group", group, "--topic", f"{topic}:7",
                     "--to-earliest", "--execute"), returncode=0),
        case(*groups("--reset-offsets", "--group", group, "--topic", "nonesuch",
                     "--to-earliest", "--execute"), returncode=0))
    assert [(row["PARTITION"], row["CURRENT-OFFSET"], row["LAG"]) for row in _table(lagging)] == [
        ("0", "1", str(ends[0] - 1)), ("1", str(ends[1]), "0")]
    assert _rows(shifted) == [[group, topic, "1", "0"]]
    assert out_of_range[0] == (f"Error: Executing consumer group command failed due to "
                               f"The partitions \"{topic}-7\" do not exist")
    assert unknown_topic[0].startswith("Error: Executing consumer group command failed due to")

    deleted_offsets, unknown_group = brokers.same_errors(
        case(*groups("--delete-offsets", "--group", group, "--topic", f"{topic}:0"), returncode=0),
        case(*groups("--delete-offsets", "--group", "nonesuch", "--topic", topic),
             returncode=0))
    assert deleted_offsets[0] == f"Request succeeded for deleting offsets from group {group}."
    assert [line.split() for line in deleted_offsets[1:]] == [
        ["TOPIC", "PARTITION", "STATUS"], [topic, "0", "Successful"]]
    assert unknown_group[0] == "Error: The group id does not exist."
    described = brokers.same_error(*groups("--describe", "--group", group, "--offsets"),
                                   returncode=0)
    assert [row["PARTITION"] for row in _table(described)] == ["1"]
    deleted, not_found = brokers.same_errors(
        case(*groups("--delete", "--group", group), returncode=0),
        case(*groups("--delete", "--group", "nonesuch"), returncode=0))
    assert deleted == [f"Deletion of requested consumer groups ('{group}') was successful."]
    assert brokers.same_error(*groups("--list"), returncode=0) == []


def test_consumer_groups_with_a_live_member(brokers):
    """A console consumer in a group on each broker: what the tool refuses
    while the group has a member, and the member as described."""
    topic, group = "tools-live", "tools-live-group"
    for bootstrap in (brokers.reference.bootstrap, brokers.ours.bootstrap):
        admin.create_topic(bootstrap, topic, partitions=2)
    members = [subprocess.Popen(
        [str(TOOL), "kafka-console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
         "--group", group, "--command-property", "client.id=live-member",
         "--formatter-property", "print.key=true"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=tool_env()) for bootstrap in (brokers.reference.bootstrap, brokers.ours.bootstrap)]
    printed = [_collect_lines(member_process) for member_process in members]
    try:
        for bootstrap in (brokers.reference.bootstrap, brokers.ours.bootstrap):
            wait_for(lambda: _stable(bootstrap, group), timeout=90,
                     message=f"{group} never became Stable on {bootstrap}")
        members_out, state, not_empty, active, subscribed = brokers.same_errors(
            case(*groups("--describe", "--group", group, "--members", "--verbose"), returncode=0),
            case(*groups("--describe", "--group", group, "--state"), returncode=0),
            case(*groups("--delete", "--group", group), returncode=0),
            case(*groups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest",
                         "--execute"), returncode=0),
            case(*groups("--delete-offsets", "--group", group, "--topic", topic), returncode=0))
        member, = _table(members_out)
        assert (member["CLIENT-ID"], member["HOST"], member["#PARTITIONS"],
                member["CURRENT-ASSIGNMENT"]) == ("live-member", "/127.0.0.1", "2", f"{topic}:0,1")
        assert member["CONSUMER-ID"] == "live-member-UUID"
        assert (_table(state)[0]["STATE"], _table(state)[0]["#MEMBERS"],
                _table(state)[0]["ASSIGNMENT-STRATEGY"]) == ("Stable", "1", "range")
        assert not_empty == [
            "Error: Deletion of some consumer groups failed:",
            f"* Group '{group}' could not be deleted due to: org.apache.kafka.common.errors."
            "GroupNotEmptyException: The group is not empty."]
        assert active[0] == (f"Error: Assignments can only be reset if the group '{group}' is "
                             "inactive, but the current state is Stable.")
        assert subscribed[0] == ("Error: Encountered some partition-level error, see the "
                                 "follow-up details.")
        assert all("GroupSubscribedToTopicException" in line for line in subscribed[2:])

        # The live member gets what is produced now, key and value as sent.
        produce = ("kafka-console-producer", "--bootstrap-server", BS, "--topic", topic,
                   "--reader-property", "parse.key=true", "--reader-property", "key.separator=:")
        brokers.same_error(*produce, input="a:1\nb:2\nc:3\n", returncode=0)
        for lines in printed:
            wait_for(lambda: len(lines) >= 3, timeout=60, message=f"the member printed {lines}")
            assert sorted(lines) == ["a\t1", "b\t2", "c\t3"]
    finally:
        for member_process in members:
            if member_process.poll() is None:
                member_process.send_signal(signal.SIGTERM)
        for member_process in members:
            try:
                member_process.wait(30)
            except subprocess.TimeoutExpired:
                member_process.kill()
                member_process.wait()


def _collect_lines(process: subprocess.Popen) -> list[str]:
    """The lines a running tool prints, as they come (a reader thread fills
    the list, so waiting on it can time out)."""
    lines: list[str] = []

    def read() -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def _stable(bootstrap: str, group: str) -> bool:
    try:
        with admin.admin_client(bootstrap) as client:
            described = client.describe_groups([group])[group]
    except KafkaError:  # e.g. the coordinator still loading, or not there yet
        return False
    return described["group_state"] == "Stable" and len(described["members"]) == 1


def _rows(lines: list[str]) -> list[list[str]]:
    """A table's data rows, split on whitespace (header dropped)."""
    return [line.split() for line in lines[1:] if line and not line.startswith(("Error", "WARN"))]


def _table(lines: list[str]) -> list[dict[str, str]]:
    """kafka-consumer-groups' table as dicts (columns split on whitespace;
    the COORDINATOR (ID) column is two words)."""
    header, *rows = [line for line in lines if line and not line.startswith("Consumer group '")]
    names = header.replace("COORDINATOR (ID)", "COORDINATOR").split()
    table = []
    for row in rows:
        values = row.replace("  (", "_(").split()
        assert len(values) == len(names), (names, row)
        table.append(dict(zip(names, values)))
    return table


def test_verifiable_producer_and_consumer(ours):
    bootstrap = ours
    topic, group = "tools-verifiable", "tools-verifiable-group"
    admin.create_topic(bootstrap, topic, partitions=3)
    produced = kafka_tool("kafka-verifiable-producer", "--bootstrap-server", bootstrap, "--topic",
                          topic, "--max-messages", "300", "--acks", "-1")
    assert produced.returncode == 0, produced.stderr
    events = [json.loads(line) for line in produced.stdout.splitlines()]
    assert events[0]["name"] == "startup_complete"
    sent = [e for e in events if e["name"] == "producer_send_success"]
    assert len(sent) == 300 and not [e for e in events if e["name"] == "producer_send_error"]
    # The values are 0..299; each partition's offsets are 0, 1, 2, ... in send order.
    assert sorted(int(e["value"]) for e in sent) == list(range(300))
    for partition in range(3):
        offsets = [e["offset"] for e in sent if e["partition"] == partition]
        assert offsets == list(range(len(offsets)))
    tool_data, = [e for e in events if e["name"] == "tool_data"]
    assert (tool_data["sent"], tool_data["acked"]) == (300, 300)

    consumed = kafka_tool("kafka-verifiable-consumer", "--bootstrap-server", bootstrap, "--topic",
                          topic, "--group-id", group, "--max-messages", "300")
    assert consumed.returncode == 0, consumed.stderr
    events = [json.loads(line) for line in consumed.stdout.splitlines()]
    names = [e["name"] for e in events]
    assert names[0] == "startup_complete" and "shutdown_complete" in names
    assigned = [p for e in events if e["name"] == "partitions_assigned" for p in e["partitions"]]
    assert sorted(p["partition"] for p in assigned) == [0, 1, 2]
    ranges = {}
    for e in events:
        if e["name"] == "records_consumed":
            for p in e["partitions"]:
                ranges.setdefault(p["partition"], []).append((p["minOffset"], p["maxOffset"],
                                                              p["count"]))
    # (The producer's sticky partitioner may leave a partition empty.)
    ends = {p: n for p in range(3) if (n := len([e for e in sent if e["partition"] == p]))}
    assert set(ranges) == set(ends)
    for partition, spans in ranges.items():
        # Contiguous, each record once, up to the end.
        assert spans[0][0] == 0 and spans[-1][1] == ends[partition] - 1
        assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:]))
        assert sum(count for _, _, count in spans) == ends[partition]
    commits = [e for e in events if e["name"] == "offsets_committed"]
    assert commits and all(e["success"] for e in commits)
    last = {o["partition"]: o["offset"] for e in commits for o in e["offsets"]}
    assert last == ends


def test_perf_tests(ours):
    bootstrap = ours
    topic = "tools-perf"
    admin.create_topic(bootstrap, topic, partitions=2)
    produced = kafka_tool("kafka-producer-perf-test", "--bootstrap-server", bootstrap, "--topic",
                          topic, "--num-records", "500", "--record-size", "100", "--throughput",
                          "-1", "--command-property", "acks=all")
    assert produced.returncode == 0, produced.stderr
    summary = produced.stdout.splitlines()[-1]
    assert summary.startswith("500 records sent, "), summary
    assert sum(admin.offset_range(bootstrap, topic, p)[1] for p in (0, 1)) == 500

    consumed = kafka_tool("kafka-consumer-perf-test", "--bootstrap-server", bootstrap, "--topic",
                          topic, "--num-records", "500")
    assert consumed.returncode == 0, consumed.stderr
    header, row = consumed.stdout.strip().splitlines()[-2:]
    stats = dict(zip(header.split(", "), row.split(", ")))
    assert stats["data.consumed.in.nMsg"] == "500"
    assert float(stats["data.consumed.in.MB"]) == round(500 * 100 / 1024 / 1024, 4)
