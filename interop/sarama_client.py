"""IBM/sarama (sync and async producers, partition consumer, consumer group):
interop/go/cmd/sarama, one whole produce or consume per process."""
from __future__ import annotations

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
    args = ["produce", "--bootstrap", bootstrap, "--topic", topic, "--producer", producer]
    if kafka_version:
        args += ["--kafka-version", kafka_version]
    return go_program.produce(PROGRAM, args, messages, timeout, partition=partition,
                              compression=compression, idempotent=idempotent, acks=acks)


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int | str = 0, group: str | None = None, commit: bool = False,
            kafka_version: str | None = None, timeout: float = 60.0) -> list[Record]:
    """Read `count` records: ConsumePartition of `partition` from
    `start_offset` (or "beginning"/"end"), or, with `group` ("new" for a
    fresh one), as a ConsumerGroup member from the oldest offset, keeping
    only `partition`'s records. Whatever arrived when `timeout` passed is
    returned. sarama does not expose timestamp types (timestamp_type None)."""
    args = ["consume", "--bootstrap", bootstrap, "--topic", topic]
    if kafka_version:
        args += ["--kafka-version", kafka_version]
    return go_program.consume(PROGRAM, args, count, timeout, partition=partition,
                              start_offset=start_offset, group=group, commit=commit)
