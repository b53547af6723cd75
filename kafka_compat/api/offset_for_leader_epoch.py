"""OffsetForLeaderEpoch: where a leader epoch ends in the leader's log (Kafka's
ReplicaManager.lastOffsetForLeaderEpoch). Followers ask it after a leadership
change to find where their logs diverge (KIP-101/KIP-279); consumers to check
that their position survived one (KIP-320).

Only the leader answers, whoever asks (replica_id is not looked at, as in
Kafka). Errors in Kafka's order: UNKNOWN_TOPIC_OR_PARTITION /
NOT_LEADER_OR_FOLLOWER for a partition not hosted here, KAFKA_STORAGE_ERROR,
FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a current_leader_epoch older /
newer than ours, NOT_LEADER_OR_FOLLOWER on a follower. An epoch the log
can't place gets no error and -1 for both epoch and offset.
"""
from __future__ import annotations

from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles


def _end_offset(broker, topic: str, p) -> dict:
    out = {"partition": p.partition, "error_code": ErrorCode.NONE, "leader_epoch": -1, "end_offset": -1}
    try:
        log = broker.replicas.leader_log(topic, p.partition, p.current_leader_epoch)
        found = log.end_offset_for_epoch(p.leader_epoch)
    except KafkaError as e:
        out["error_code"] = e.code
        return out
    if found is not None:
        out.update(leader_epoch=found.epoch, end_offset=found.end_offset)
    return out


@handles("OffsetForLeaderEpoch")
async def offset_for_leader_epoch(ctx, request) -> dict:
    return {"throttle_time_ms": 0, "topics": [
        {"topic": t.topic, "partitions": [_end_offset(ctx.broker, t.topic, p) for p in t.partitions]}
        for t in request.topics
    ]}
