"""An aiokafka group member for interop.group_worker."""
from __future__ import annotations

import asyncio
import threading

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import KafkaError

from .group_worker import MemberOptions, Reporter

ASSIGNORS = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}


def run(options: MemberOptions, reporter: Reporter, stop: threading.Event) -> None:
    asyncio.run(_run(options, reporter, stop))


class _Listener(ConsumerRebalanceListener):
    """Reports the callbacks; on revocation first commits what was consumed
    from the revoked partitions and not committed yet."""

    def __init__(self, consumer: AIOKafkaConsumer, pending: dict[int, int], topic: str,
                 reporter: Reporter):
        self.consumer = consumer
        self.pending = pending
        self.topic = topic
        self.reporter = reporter

    async def on_partitions_revoked(self, revoked):
        partitions = {tp.partition for tp in revoked}
        await _commit(self.consumer, self.topic,
                      {p: o for p, o in self.pending.items() if p in partitions}, self.reporter)
        for partition in partitions:
            self.pending.pop(partition, None)
        self.reporter.revoked(partitions, incremental=False)

    async def on_partitions_assigned(self, assigned):
        self.reporter.assigned([tp.partition for tp in assigned], incremental=False)


async def _run(options: MemberOptions, reporter: Reporter, stop: threading.Event) -> None:
    settings = dict(
        bootstrap_servers=options.bootstrap,
        client_id=f"interop-aiokafka-{options.name}",
        group_id=options.group,
        group_instance_id=options.instance_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=options.session_timeout_ms,
        heartbeat_interval_ms=options.heartbeat_interval_ms,
        fetch_max_wait_ms=100,
        request_timeout_ms=15_000,
    )
    if options.assignor:
        settings["partition_assignment_strategy"] = (ASSIGNORS[options.assignor],)
    consumer = AIOKafkaConsumer(**settings)
    pending: dict[int, int] = {}
    consumer.subscribe([options.topic],
                       listener=_Listener(consumer, pending, options.topic, reporter))
    await consumer.start()
    try:
        while not stop.is_set():
            pairs = []
            for batch in (await consumer.getmany(timeout_ms=100)).values():
                for record in batch:
                    pairs.append((record.partition, record.offset))
                    pending[record.partition] = record.offset + 1
            reporter.records(pairs)
            if await _commit(consumer, options.topic, pending, reporter):
                pending.clear()
    finally:
        await consumer.stop()


async def _commit(consumer: AIOKafkaConsumer, topic: str, offsets: dict[int, int],
                  reporter: Reporter) -> bool:
    """Commit; True when done (or nothing to do)."""
    if not offsets:
        return True
    try:
        await consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
    except KafkaError as exc:
        reporter.commit_failed(exc)
        return False
    reporter.committed(offsets)
    return True
