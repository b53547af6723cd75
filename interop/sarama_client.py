"""IBM/sarama (sync and async producers, partition consumer, consumer group):
interop/go/cmd/sarama, one whole produce or consume per process."""
from __future__ import annotations

import uuid

from . import go_program
from .messages import Message, Record

PROGRAM = "sarama"


def command() -> list[str]:
    return go_program.command(PROGRAM)


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int | None = 0,
            compression: str | None = None, idempotent: bool = False, acks: str = "all",
            producer: str = "sync", kafka_version: str | None = None,
            timeout: float = 60.0) -> list[int]:
    """Send every message through sarama's SyncProducer (`producer="sync"`,
    SendMessages) or AsyncProducer (`"async"`) and return the offset of each;
    `partition=None` lets sarama's default (hash) partitioner choose.
    `kafka_version` is sarama's Config.Version (the protocol level it speaks;
    the program's default is 3.9.0)."""
    return [offset for _, offset in produce_to_partitions(
        bootstrap, topic, messages, partition=partition, compression=compression,
        idempotent=idempotent, acks=acks, producer=producer, kafka_version=kafka_version,
        timeout=timeout)]


def produce_async(bootstrap: str, topic: str, messages: list[Message], **options) -> list[int]:
    return produce(bootstrap, topic, messages, producer="async", **options)


def produce_to_partitions(bootstrap: str, topic: str, messages: list[Message], *,
                          partition: int | None = 0, compression: str | None = None,
                          idempotent: bool = False, acks: str = "all", producer: str = "sync",
                          kafka_version: str | None = None,
                          timeout: float = 60.0) -> list[tuple[int, int]]:
    args = ["produce", "--bootstrap", bootstrap, "--topic", topic, "--producer", producer,
            "--partition", "any" if partition is None else str(partition),
            "--acks", acks, "--timeout-ms", str(int(timeout * 1000))]
    if kafka_version:
        args += ["--kafka-version", kafka_version]
    if compression:
        args += ["--compression", compression]
    if idempotent:
        args.append("--idempotent")
    return go_program.produce(PROGRAM, args, messages, timeout)


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int | str = 0, group: str | None = None, commit: bool = False,
            kafka_version: str | None = None, timeout: float = 60.0) -> list[Record]:
    """Read `count` records: ConsumePartition of `partition` from
    `start_offset` (or "beginning"/"end"), or, with `group` ("new" for a
    fresh one), as a ConsumerGroup member from the oldest offset, keeping
    only `partition`'s records. Whatever arrived when `timeout` passed is
    returned. sarama does not expose timestamp types (timestamp_type None)."""
    args = ["consume", "--bootstrap", bootstrap, "--topic", topic, "--count", str(count),
            "--timeout-ms", str(int(timeout * 1000))]
    if kafka_version:
        args += ["--kafka-version", kafka_version]
    if group is not None:
        args += ["--group", f"interop-{uuid.uuid4().hex}" if group == "new" else group]
        if commit:
            args.append("--commit")
    else:
        args += ["--partition", str(partition)]
        args += ["--from", start_offset] if isinstance(start_offset, str) else ["--offset", str(start_offset)]
    records = go_program.consume(PROGRAM, args, timeout)
    return [r for r in records if group is None or r.partition == partition]
