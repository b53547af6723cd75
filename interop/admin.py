"""Topic set-up and partition offsets, through kafka-python's admin client."""
from __future__ import annotations

from contextlib import contextmanager

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition


@contextmanager
def admin_client(bootstrap: str):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="interop-admin",
                              request_timeout_ms=15_000)
    try:
        yield client
    finally:
        client.close()


def create_topic(bootstrap: str, name: str, *, partitions: int = 1,
                 configs: dict[str, str] | None = None) -> None:
    """Create a topic and wait until metadata shows a leader for every partition."""
    with admin_client(bootstrap) as client:
        client.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1,
                    "configs": dict(configs or {})}},
            wait_for_metadata=True)


def offset_range(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    """(log start offset, log end offset) of one partition."""
    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="interop-offsets",
                             group_id=None, enable_auto_commit=False, request_timeout_ms=15_000)
    try:
        return consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
    finally:
        consumer.close(autocommit=False)
