"""A kafka-python group member for interop.group_worker."""
from __future__ import annotations

import threading

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import KafkaError

from .group_worker import MemberOptions, Reporter

ASSIGNORS = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "cooperative-sticky": CooperativeStickyAssignor,
}


class _Listener(ConsumerRebalanceListener):
    """Reports the callbacks. kafka-python runs them on its I/O loop, where a
    blocking commit can't be made. Every poll's records are committed right
    after the poll; offsets whose commit failed are tried again after the
    next poll unless their partition was revoked meanwhile, so they never
    overwrite the next owner's commits."""

    def __init__(self, reporter: Reporter, pending: dict[int, int], incremental: bool):
        self.reporter = reporter
        self.pending = pending
        self.incremental = incremental

    def on_partitions_revoked(self, revoked):
        for tp in revoked:
            self.pending.pop(tp.partition, None)
        self.reporter.revoked([tp.partition for tp in revoked], incremental=self.incremental)

    def on_partitions_assigned(self, assigned):
        self.reporter.assigned([tp.partition for tp in assigned], incremental=self.incremental)

    def on_partitions_lost(self, lost):
        for tp in lost:
            self.pending.pop(tp.partition, None)
        self.reporter.lost([tp.partition for tp in lost])


def run(options: MemberOptions, reporter: Reporter, stop: threading.Event) -> None:
    settings = dict(
        bootstrap_servers=options.bootstrap,
        client_id=f"interop-kafka-python-{options.name}",
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
        settings["partition_assignment_strategy"] = [ASSIGNORS[options.assignor]]
    consumer = KafkaConsumer(**settings)
    pending: dict[int, int] = {}
    consumer.subscribe([options.topic], listener=_Listener(
        reporter, pending, incremental=options.assignor == "cooperative-sticky"))
    # kafka-python 3.0.12 can lose a completed rejoin: a leader whose first
    # assignment lacked the topic's metadata rejoins once it has it, and if a
    # poll() times out between its assignment and the SyncGroup response the
    # member waits forever, without heartbeats. Fetching metadata after
    # subscribing, before the first join, avoids that rejoin.
    consumer.topics()
    try:
        while not stop.is_set():
            pairs = []
            for batch in consumer.poll(timeout_ms=100).values():
                for record in batch:
                    pairs.append((record.partition, record.offset))
                    pending[record.partition] = record.offset + 1
            reporter.records(pairs)
            if pending and _commit(consumer, options.topic, dict(pending), reporter):
                pending.clear()
    finally:
        consumer.close(autocommit=False)


def _commit(consumer: KafkaConsumer, topic: str, offsets: dict[int, int],
            reporter: Reporter) -> bool:
    """Commit synchronously; True when done."""
    try:
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1)
                         for p, o in offsets.items()})
    except KafkaError as exc:
        reporter.commit_failed(exc)
        return False
    reporter.committed(offsets)
    return True
