"""A confluent-kafka (librdkafka) group member for interop.group_worker."""
from __future__ import annotations

import threading

from confluent_kafka import Consumer, KafkaException, TopicPartition

from .group_worker import MemberOptions, Reporter


def run(options: MemberOptions, reporter: Reporter, stop: threading.Event) -> None:
    config = {
        "bootstrap.servers": options.bootstrap,
        "client.id": f"interop-confluent-{options.name}",
        "group.id": options.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": options.session_timeout_ms,
        "heartbeat.interval.ms": options.heartbeat_interval_ms,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 15_000,
    }
    if options.instance_id:
        config["group.instance.id"] = options.instance_id
    if options.assignor:
        config["partition.assignment.strategy"] = options.assignor
    consumer = Consumer(config)
    pending: dict[int, int] = {}
    # librdkafka's rebalance protocol follows from the assignor; the callbacks
    # get the whole assignment (eager) or only what changes (cooperative).
    incremental = options.assignor == "cooperative-sticky"

    # Without an explicit (incremental_)assign/unassign in these callbacks
    # confluent-kafka does it after they return.
    def on_assign(_, partitions):
        reporter.assigned([tp.partition for tp in partitions], incremental=incremental)

    def on_revoke(_, partitions):
        revoked = {tp.partition for tp in partitions}
        _commit(consumer, options.topic, {p: o for p, o in pending.items() if p in revoked},
                reporter)
        for partition in revoked:
            pending.pop(partition, None)
        reporter.revoked(revoked, incremental=incremental)

    def on_lost(_, partitions):
        for tp in partitions:
            pending.pop(tp.partition, None)
        reporter.lost([tp.partition for tp in partitions])

    consumer.subscribe([options.topic], on_assign=on_assign, on_revoke=on_revoke,
                       on_lost=on_lost)
    try:
        while not stop.is_set():
            pairs = []
            for msg in consumer.consume(num_messages=500, timeout=0.1):
                if msg.error():
                    raise KafkaException(msg.error())
                pairs.append((msg.partition(), msg.offset()))
                pending[msg.partition()] = msg.offset() + 1
            reporter.records(pairs)
            if _commit(consumer, options.topic, pending, reporter):
                pending.clear()
    finally:
        consumer.close()


def _commit(consumer: Consumer, topic: str, offsets: dict[int, int], reporter: Reporter) -> bool:
    """Commit synchronously; True when done (or nothing to do)."""
    if not offsets:
        return True
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                        asynchronous=False)
    except KafkaException as exc:
        reporter.commit_failed(exc)
        return False
    reporter.committed(offsets)
    return True
