"""AlterPartitionReassignments and ListPartitionReassignments on a single
broker: it is every partition's only possible replica, so a move to itself
is done at once and any other broker is not alive (Kafka's checks and
messages); nothing is ever being reassigned."""
from __future__ import annotations

from kafka_compat.protocol.errors import ErrorCode

from .test_requests import create_topic


async def test_reassignments_on_a_single_broker(broker):
    client = await broker.client()
    await create_topic(client, "alone")
    me = broker.broker.config.broker_id

    async def reassign(replicas, topic="alone"):
        resp = await client.request("AlterPartitionReassignments", 0, {"timeout_ms": 1000, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "replicas": replicas}]}]})
        assert resp.error_code == ErrorCode.NONE
        p = resp.responses[0].partitions[0]
        return p.error_code, p.error_message

    assert await reassign([me]) == (ErrorCode.NONE, None)
    assert await reassign(None) == (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, None)
    assert await reassign([]) == (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                  "Empty replica list specified in partition reassignment.")
    assert await reassign([me, me + 1]) == (
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        f"Replica assignment has brokers that are not alive. Replica list: [{me + 1}], live broker list: [{me}]")
    assert await reassign([me], topic="nowhere") == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                      "The partition does not exist.")
    listed = await client.request("ListPartitionReassignments", 0, {"timeout_ms": 1000, "topics": None})
    assert (listed.error_code, listed.topics) == (ErrorCode.NONE, [])
