"""franz-go (github.com/twmb/franz-go: kgo producer and consumer, kadm admin):
interop/go/cmd/franz-go, one whole produce, consume or admin call per process."""
from __future__ import annotations

from . import go_program
from .messages import Message, Record

PROGRAM = "franz-go"


def command() -> list[str]:
    return go_program.command(PROGRAM)


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int | None = 0,
            compression: str | None = None, idempotent: bool = False, acks: str = "all",
            max_version: str | None = None, timeout: float = 60.0) -> list[int]:
    """Send every message and return the offset of each; `partition=None`
    lets kgo's default (sticky key) partitioner choose. `max_version` (a
    Kafka release, "2.1.0") caps the request versions kgo uses."""
    return [offset for _, offset in produce_to_partitions(
        bootstrap, topic, messages, partition=partition, compression=compression,
        idempotent=idempotent, acks=acks, max_version=max_version, timeout=timeout)]


def produce_to_partitions(bootstrap: str, topic: str, messages: list[Message], *,
                          partition: int | None = 0, compression: str | None = None,
                          idempotent: bool = False, acks: str = "all",
                          max_version: str | None = None,
                          timeout: float = 60.0) -> list[tuple[int, int]]:
    args = ["produce", "--bootstrap", bootstrap, "--topic", topic]
    if max_version:
        args += ["--max-version", max_version]
    return go_program.produce(PROGRAM, args, messages, timeout, partition=partition,
                              compression=compression, idempotent=idempotent, acks=acks)


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int | str = 0, group: str | None = None, commit: bool = False,
            max_version: str | None = None, timeout: float = 60.0) -> list[Record]:
    """Read `count` records: ConsumePartitions of `partition` from
    `start_offset` (or "beginning"/"end"), or, with `group` ("new" for a
    fresh one), as a group member from the earliest offset, keeping only
    `partition`'s records. Whatever arrived when `timeout` passed is returned."""
    args = ["consume", "--bootstrap", bootstrap, "--topic", topic]
    if max_version:
        args += ["--max-version", max_version]
    return go_program.consume(PROGRAM, args, count, timeout, partition=partition,
                              start_offset=start_offset, group=group, commit=commit)


# ---- kadm --------------------------------------------------------------------------------

def _admin(command: str, bootstrap: str, *args: str):
    return go_program.run_json(PROGRAM, [command, "--bootstrap", bootstrap, *args])


def create_topic(bootstrap: str, topic: str, *, partitions: int = 1, replication_factor: int = 1,
                 configs: dict[str, str] | None = None) -> dict:
    """{"name", "id", "partitions", "replication_factor"} as CreateTopics answered."""
    args = ["--topic", topic, "--partitions", str(partitions),
            "--replication-factor", str(replication_factor)]
    for name, value in (configs or {}).items():
        args += ["--config", f"{name}={value}"]
    return _admin("create-topic", bootstrap, *args)


def delete_topic(bootstrap: str, topic: str) -> None:
    _admin("delete-topic", bootstrap, "--topic", topic)


def list_topics(bootstrap: str) -> dict[str, int]:
    """Topic -> partition count (internal topics left out, as kadm does)."""
    return _admin("list-topics", bootstrap)


def describe_configs(bootstrap: str, topic: str) -> dict[str, dict]:
    """Config name -> {"value", "source" (kmsg's name, e.g. DYNAMIC_TOPIC_CONFIG), "sensitive"}."""
    return _admin("describe-configs", bootstrap, "--topic", topic)


def alter_configs(bootstrap: str, topic: str, *, set: dict[str, str] | None = None,
                  delete: list[str] = ()) -> None:
    """IncrementalAlterConfigs: SET and DELETE operations."""
    args = ["--topic", topic]
    for name, value in (set or {}).items():
        args += ["--set", f"{name}={value}"]
    for name in delete:
        args += ["--delete", name]
    _admin("alter-configs", bootstrap, *args)


def list_offsets(bootstrap: str, topic: str, at: str | int) -> dict[int, int]:
    """Partition -> offset: `at` "start", "end", or a timestamp in ms."""
    listed = _admin("list-offsets", bootstrap, "--topic", topic, "--at", str(at))
    return {int(p): o for p, o in listed.items()}


def commit_offsets(bootstrap: str, group: str, topic: str,
                   offsets: dict[int, tuple[int, str]]) -> None:
    """OffsetCommit outside any generation (an empty group's offsets):
    partition -> (offset, metadata)."""
    args = ["--group", group, "--topic", topic]
    for partition, (offset, metadata) in offsets.items():
        args += ["--offset", f"{partition}={offset}:{metadata}"]
    _admin("commit-offsets", bootstrap, *args)


def fetch_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, str]]:
    """(topic, partition) -> (committed offset, metadata)."""
    fetched = _admin("fetch-offsets", bootstrap, "--group", group)
    return {(topic, int(p)): (o["offset"], o["metadata"])
            for topic, ps in fetched.items() for p, o in ps.items()}


def list_groups(bootstrap: str) -> dict[str, dict]:
    """Group -> {"state", "protocol_type"}."""
    return _admin("list-groups", bootstrap)


def describe_groups(bootstrap: str, *groups: str) -> dict[str, dict]:
    """Group -> {"state", "protocol_type", "protocol", "members": [{"member_id",
    "instance_id", "client_id", "assigned": {topic: [partitions]}}]}."""
    args = []
    for group in groups:
        args += ["--group", group]
    return _admin("describe-groups", bootstrap, *args)


def delete_groups(bootstrap: str, *groups: str) -> dict[str, str | None]:
    """Group -> None when deleted, else Kafka's error name (e.g. NON_EMPTY_GROUP)."""
    args = []
    for group in groups:
        args += ["--group", group]
    return _admin("delete-groups", bootstrap, *args)


def delete_offsets(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, str | None]:
    """OffsetDelete: partition -> None when deleted, else Kafka's error name
    (e.g. GROUP_SUBSCRIBED_TO_TOPIC)."""
    args = ["--group", group, "--topic", topic]
    for partition in partitions:
        args += ["--partition", str(partition)]
    return {int(p): e for p, e in _admin("delete-offsets", bootstrap, *args).items()}


def lag(bootstrap: str, group: str) -> tuple[str, dict[tuple[str, int], int]]:
    """kadm's Lag: the group's state and (topic, partition) -> log end minus committed."""
    answer = _admin("lag", bootstrap, "--group", group)
    return answer["state"], {(topic, int(p)): lag for topic, ps in answer["lag"].items()
                             for p, lag in ps.items()}
