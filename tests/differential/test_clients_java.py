"""Differential cases through the Java Admin client (kafka-clients 4.4,
interop/java AdminSession.java): one admin JVM per broker for the whole
module (each JVM costs about a second), every call run against Apache Kafka
4.4 and kafka-compat and what it returned or threw (exception class and
message) compared (tests/differential/clients.py)."""
from __future__ import annotations

import pytest

from .clients import ClientCase, client_params, run_client_case
from .harness import commit, group, records, topic
from .test_clients import KIP_848_DESCRIBE, KRAFT_WORDING, UNKNOWN_TOPIC_PARTITIONS, coordinator

FAMILY = "java"


def java(op, **fields):
    """A session request; fields may be functions of the env (names known per case)."""
    def run(env):
        return env.shared.java.call(op, **{k: (v(env) if callable(v) else v) for k, v in fields.items()})
    return run


def parts(*partitions, key="topic"):
    return lambda env: [[env.names[key], p] for p in partitions]


def name(key="topic"):
    return lambda env: env.names[key]


def groups(env):
    return [env.group]


def java_list_groups(env):
    """The case's group among the Stable ones listed (other cases' groups are on the same brokers)."""
    return [g for g in env.shared.java.call("list-groups", states=["Stable"]) if g["group"] == env.group]


CASES = [
    ClientCase("partitions-decrease", FAMILY, java("create-partitions", topic=name(), count=1),
               setup=(topic(2),), differs=KRAFT_WORDING),
    ClientCase("partitions-unknown-topic", FAMILY, java("create-partitions", topic=name(), count=3),
               differs=UNKNOWN_TOPIC_PARTITIONS),
    ClientCase("partitions-validate-only", FAMILY,
               java("create-partitions", topic=name(), count=3, validate_only=True), setup=(topic(2),)),
    ClientCase("describe-topic-unknown", FAMILY, java("describe-topic", topic=name())),
    ClientCase("describe-configs-unknown-topic", FAMILY,
               java("describe-configs", type="topic", name=name(), names=["retention.ms"])),
    ClientCase("describe-configs-topic", FAMILY,
               java("describe-configs", type="topic", name=name(),
                    names=["retention.ms", "cleanup.policy", "max.message.bytes", "compression.type"]),
               setup=(topic(configs={"retention.ms": "1234"}),)),
    ClientCase("alter-configs-unknown-name", FAMILY,
               java("alter-configs", type="topic", name=name(), ops=[["set", "no.such.config", "1"]]),
               setup=(topic(),)),
    ClientCase("alter-configs-bad-value", FAMILY,
               java("alter-configs", type="topic", name=name(), ops=[["set", "retention.ms", "soon"]]),
               setup=(topic(),), differs=KRAFT_WORDING),
    ClientCase("alter-configs-unknown-topic", FAMILY,
               java("alter-configs", type="topic", name=name(), ops=[["set", "retention.ms", "10"]])),
    ClientCase("alter-configs-append-existing", FAMILY,
               java("alter-configs", type="topic", name=name(), ops=[["append", "cleanup.policy", "compact"]]),
               setup=(topic(configs={"cleanup.policy": "compact"}),)),
    ClientCase("delete-records-beyond-hw", FAMILY,
               java("delete-records", offsets=lambda env: [[env.topic, 0, 7]]), setup=(topic(), records(3))),
    ClientCase("delete-records-hw", FAMILY,
               java("delete-records", offsets=lambda env: [[env.topic, 0, -1]]), setup=(topic(), records(3))),
    ClientCase("list-offsets-for-time", FAMILY,
               java("list-offsets", partitions=parts(0), spec="for-time", timestamp=1_700_000_000_001),
               setup=(topic(), records(3))),
    ClientCase("list-offsets-max-timestamp", FAMILY,
               java("list-offsets", partitions=parts(0, 1), spec="max-timestamp"), setup=(topic(2), records(3))),
    ClientCase("describe-group-unknown", FAMILY, java("describe-groups", groups=groups), setup=(coordinator,),
               differs=KIP_848_DESCRIBE),
    ClientCase("describe-group-stable", FAMILY, java("describe-groups", groups=groups),
               setup=(topic(2), group(subscribe="topic"))),
    ClientCase("list-groups-stable", FAMILY, java_list_groups, setup=(topic(), group(subscribe="topic"))),
    ClientCase("delete-group-unknown", FAMILY, java("delete-groups", groups=groups), setup=(coordinator,)),
    ClientCase("delete-group-non-empty", FAMILY, java("delete-groups", groups=groups),
               setup=(topic(), group(subscribe="topic"))),
    ClientCase("group-offsets-unknown-group", FAMILY, java("list-group-offsets", group=lambda env: env.group),
               setup=(coordinator,)),
    ClientCase("alter-group-offsets-active-member", FAMILY,
               java("alter-group-offsets", group=lambda env: env.group,
                    offsets=lambda env: [[env.topic, 0, 1, "x"]]),
               setup=(topic(), group(subscribe="topic"))),
    ClientCase("delete-group-offsets-subscribed", FAMILY,
               java("delete-group-offsets", group=lambda env: env.group, partitions=parts(0)),
               setup=(topic(), commit(2), group(subscribe="topic"))),
    ClientCase("remove-unknown-instance", FAMILY,
               java("remove-members", group=lambda env: env.group, instance_ids=["nobody"]),
               setup=(topic(), group(subscribe="topic"))),
    ClientCase("describe-cluster", FAMILY, java("describe-cluster")),
]


@pytest.mark.parametrize("case", client_params(CASES))
def test_java_admin(case, brokers, shared):
    run_client_case(case, brokers, shared)
