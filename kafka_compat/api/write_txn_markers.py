"""WriteTxnMarkers: the transaction coordinator has the partitions' leaders
write a COMMIT or ABORT marker for a producer (Kafka's
handleWriteTxnMarkersRequest).

For each marker and partition, in Kafka's order: a partition without an
online log here (none, or in a failed log dir) is UNKNOWN_TOPIC_OR_PARTITION;
then the append as Kafka's appendRecords with acks=-1, internal topics
allowed and origin COORDINATOR (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS
while the ISR is below min.insync.replicas, INVALID_PRODUCER_EPOCH,
TRANSACTION_COORDINATOR_FENCED from the producer state, KAFKA_STORAGE_ERROR
if the write fails); the answer waits
until every written marker is replicated to the whole ISR
(NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT after
request.timeout.ms). Markers of one producer id share one entry in the
response, as in Kafka's. Once a marker is replicated to a partition of
``__consumer_offsets``, the group coordinator makes the producer's pending
transactional offsets there committed or drops them (Kafka's
onTransactionCompleted).

The transaction coordinator calls ``write_markers`` directly for the
partitions this broker leads.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..group.internal_topics import OFFSETS_TOPIC
from ..protocol.errors import ErrorCode, KafkaError
from ..replica.acks_all import AcksAllAppend, await_replication, still_replicating
from .registry import handles


def _field(obj, name: str):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


@dataclass(eq=False)
class _AwaitingMarker(AcksAllAppend):
    """A marker's append; ``out`` is its partition's answer."""

    out: dict

    def fail(self, error: ErrorCode) -> None:
        self.out["error_code"] = error


def _append_marker(broker, topic: str, partition: int, marker, awaiting: list[_AwaitingMarker]) -> dict:
    out = {"partition_index": partition, "error_code": ErrorCode.NONE}
    hosted = broker.logs.get(topic, partition)
    if hosted is None or hosted.offline:  # (Kafka's getMagic: no online log here)
        out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return out
    try:
        log = broker.replicas.leader_log(topic, partition)
        state = broker.replicas.state(topic, partition)
        min_isr = broker.topics.effective_config(topic)["min.insync.replicas"]
        if len(state.isr) < min_isr:
            raise KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS)
        result = log.append_marker(_field(marker, "producer_id"), _field(marker, "producer_epoch"),
                                   bool(_field(marker, "transaction_result")), _field(marker, "coordinator_epoch"),
                                   state.leader_epoch)
    except KafkaError as e:
        out["error_code"] = e.code
        return out
    broker.waiters.notify(topic, partition)
    awaiting.append(_AwaitingMarker(topic, partition, log, state.leader_epoch, result.last_offset + 1,
                                    min_isr, out))
    return out


async def write_markers(broker, markers) -> list[dict]:
    """Write each marker to its partitions; the response's ``markers`` list
    once every written one is replicated (or failed)."""
    by_producer: dict[int, dict[str, list[dict]]] = {}
    awaiting: list[_AwaitingMarker] = []
    offsets_markers: list[tuple[object, dict]] = []  # (marker, its partition's answer) in __consumer_offsets
    for marker in markers:
        topics = by_producer.setdefault(_field(marker, "producer_id"), {})
        for topic in _field(marker, "topics"):
            name = _field(topic, "name")
            partitions = topics.setdefault(name, [])
            for partition in _field(topic, "partition_indexes"):
                out = _append_marker(broker, name, partition, marker, awaiting)
                partitions.append(out)
                if name == OFFSETS_TOPIC:
                    offsets_markers.append((marker, out))
    awaiting = still_replicating(broker.replicas, awaiting)
    if awaiting:
        await await_replication(broker, awaiting, broker.config.request_timeout_ms / 1000)
    for marker, out in offsets_markers:
        if out["error_code"] == ErrorCode.NONE:
            broker.groups.complete_txn_offsets(out["partition_index"], _field(marker, "producer_id"),
                                               bool(_field(marker, "transaction_result")))
    return [{"producer_id": pid, "topics": [{"name": name, "partitions": partitions}
                                            for name, partitions in topics.items()]}
            for pid, topics in by_producer.items()]


@handles("WriteTxnMarkers")
async def write_txn_markers(ctx, request) -> dict:
    return {"markers": await write_markers(ctx.broker, request.markers)}
