"""FindCoordinator: which broker coordinates a group or a transactional id.

The coordinator is the leader of the key's partition of ``__consumer_offsets``
or ``__transaction_state``. A topic that doesn't exist yet is created, and the
answer is COORDINATOR_NOT_AVAILABLE until it exists (the client retries), as
in Kafka. v4+ looks up a batch of keys.
"""
from __future__ import annotations

import logging

from ..group.internal_topics import (
    OFFSETS_TOPIC,
    TRANSACTION_STATE_TOPIC,
    create_internal_topic,
    partition_count,
)
from ..group.partitioner import partition_for
from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles

log = logging.getLogger(__name__)

GROUP_KEY, TRANSACTION_KEY = 0, 1
NO_NODE = (-1, "", -1)
# Kafka's Errors.message(): the name for NONE, the exception's text otherwise.
_MESSAGES = {
    ErrorCode.NONE: "NONE",
    ErrorCode.COORDINATOR_NOT_AVAILABLE: "The coordinator is not available.",
    ErrorCode.INVALID_REQUEST: (
        "This most likely occurs because of a request being malformed by the client library or the message "
        "was sent to an incompatible broker. See the broker logs for more details."
    ),
}


def _key_partition(broker, key_type: int, key: str) -> tuple[str, int]:
    if key_type == GROUP_KEY:
        return OFFSETS_TOPIC, broker.groups.manager.partition_for(key)
    partitions = partition_count(broker, TRANSACTION_STATE_TOPIC, broker.config.transaction_state_log_num_partitions)
    return TRANSACTION_STATE_TOPIC, partition_for(key, partitions)


async def _coordinator(broker, listener: str, key_type: int, key: str) -> tuple[ErrorCode, tuple[int, str, int]]:
    """The leader of the key's partition, at its endpoint on the request's
    listener; COORDINATOR_NOT_AVAILABLE when it has none there, as Kafka's
    getCoordinator answers."""
    topic, partition = _key_partition(broker, key_type, key)
    meta = broker.topics.get(topic)
    if meta is None:
        try:
            await create_internal_topic(broker, topic)
        except KafkaError as e:
            log.warning("cannot create %s: %s", topic, e)
        if topic == OFFSETS_TOPIC:
            broker.groups.start_loading()
        else:
            broker.transactions.start_loading()
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, NO_NODE
    if partition >= meta.partitions:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, NO_NODE
    leader = broker.metadata.leader(topic, partition)
    for info in broker.metadata.brokers():
        endpoint = info.endpoint(listener)
        if info.node_id == leader and endpoint is not None:
            return ErrorCode.NONE, (info.node_id, endpoint.host, endpoint.port)
    return ErrorCode.COORDINATOR_NOT_AVAILABLE, NO_NODE


@handles("FindCoordinator")
async def find_coordinator(ctx, request) -> dict:
    broker = ctx.broker
    batched = ctx.api_version >= 4
    keys = list(request.coordinator_keys) if batched else [request.key]
    if request.key_type not in (GROUP_KEY, TRANSACTION_KEY):
        # Kafka fails the whole request (an unknown coordinator type).
        answers = [(ErrorCode.INVALID_REQUEST, NO_NODE, _MESSAGES[ErrorCode.INVALID_REQUEST]) for _ in keys]
    else:
        answers = []
        for key in keys:
            error, node = await _coordinator(broker, ctx.listener, request.key_type, key)
            # v4+ carries no message for a key (Kafka leaves the field at its
            # default, the empty string); earlier versions carry the error's text.
            answers.append((error, node, "" if batched else _MESSAGES.get(error, error.name)))
    if batched:
        return {"coordinators": [
            {"key": key, "node_id": node[0], "host": node[1], "port": node[2], "error_code": error,
             "error_message": message}
            for key, (error, node, message) in zip(keys, answers)
        ]}
    error, node, message = answers[0]
    return {"error_code": error, "error_message": message, "node_id": node[0], "host": node[1], "port": node[2]}
