"""The coordinators' internal topics, created on first use as Kafka does (a
FindCoordinator for a key whose topic doesn't exist yet creates it and answers
COORDINATOR_NOT_AVAILABLE until it is ready).

Kafka creates them with its configured replication factor (3 by default) and
fails while fewer brokers are alive. A single local broker could then never
coordinate a group, so here the replication factor is clamped to the live
brokers, with one warning. ``min.insync.replicas`` of ``__transaction_state``
is clamped the same way, or its acks=all writes could never succeed.
"""
from __future__ import annotations

import logging

from ..protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"


def _offsets_topic(config) -> tuple[int, int, dict[str, str]]:
    return config.offsets_topic_num_partitions, config.offsets_topic_replication_factor, {
        "cleanup.policy": "compact",
        "segment.bytes": str(config.offsets_topic_segment_bytes),
        "compression.type": "producer",
    }


def _transaction_topic(config) -> tuple[int, int, dict[str, str]]:
    return config.transaction_state_log_num_partitions, config.transaction_state_log_replication_factor, {
        "unclean.leader.election.enable": "false",
        "min.insync.replicas": str(config.transaction_state_log_min_isr),
        "cleanup.policy": "compact",
        "compression.type": "uncompressed",
        "segment.bytes": str(config.transaction_state_log_segment_bytes),
    }


_DEFINITIONS = {OFFSETS_TOPIC: _offsets_topic, TRANSACTION_STATE_TOPIC: _transaction_topic}


def partition_count(broker, name: str, configured: int) -> int:
    """Partitions of an internal topic: those of the existing topic, else the
    configured number (Kafka reads it once at start-up the same way)."""
    meta = broker.topics.get(name)
    return configured if meta is None else meta.partitions


async def create_internal_topic(broker, name: str) -> None:
    """Create ``__consumer_offsets`` or ``__transaction_state`` with Kafka's
    configs for it; a no-op if it exists."""
    if broker.topics.get(name) is not None:
        return
    partitions, replication, configs = _DEFINITIONS[name](broker.config)
    alive = len(broker.metadata.brokers())
    if replication > alive:
        log.warning("%s needs replication factor %d but %d broker(s) are alive: creating it with %d",
                    name, replication, alive, alive)
        replication = alive
    if "min.insync.replicas" in configs and int(configs["min.insync.replicas"]) > replication:
        configs["min.insync.replicas"] = str(replication)
    try:
        replicas, _ = broker.topics.plan_create(name, partitions, replication, {}, configs)
        await broker.topics.create(name, replicas, configs)
    except KafkaError as e:
        if e.code != ErrorCode.TOPIC_ALREADY_EXISTS:
            raise
