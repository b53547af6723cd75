"""Metadata and DescribeCluster: brokers, controller, cluster id, topics and
partitions (with auto-creation when allowed)."""
from __future__ import annotations

from ..cluster.metadata import is_internal, validate_topic_name
from ..protocol import schema
from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.primitives import Encoded
from .common import ALL_CLUSTER_OPERATIONS, ALL_TOPIC_OPERATIONS, OPERATIONS_NOT_REQUESTED
from .registry import handles

ZERO_UUID = bytes(16)


class Nodes:
    """The brokers a request may be sent to, as seen from the listener it
    arrived on: each alive broker's advertised endpoint there, and which
    alive brokers have none (Kafka's MetadataCache.getAliveBrokerNodes and
    getAliveBrokerNode for a listener name)."""

    def __init__(self, broker, listener: str):
        self.alive: set[int] = set()
        self.by_id: dict[int, tuple] = {}  # node id -> (BrokerInfo, Endpoint)
        for info in broker.metadata.brokers():
            self.alive.add(info.node_id)
            endpoint = info.endpoint(listener)
            if endpoint is not None:
                self.by_id[info.node_id] = (info, endpoint)

    def entries(self, id_field: str = "node_id") -> list[dict]:
        return [
            {id_field: info.node_id, "host": ep.host, "port": ep.port, "rack": info.rack}
            for info, ep in self.by_id.values()
        ]


def partition_entries(broker, meta, nodes: Nodes, version: int) -> list[dict]:
    """As Kafka's ZkMetadataCache.getPartitionMetadata: a leader that is not
    alive is LEADER_NOT_AVAILABLE; one that is alive but has no endpoint on the
    request's listener is LISTENER_NOT_FOUND from v6 (LEADER_NOT_AVAILABLE
    before); v0 leaves out replicas without an endpoint and says
    REPLICA_NOT_AVAILABLE."""
    store = broker.metadata
    entries = []
    for index, replicas in enumerate(meta.replicas):
        leader = store.leader(meta.name, index)
        isr = store.isr(meta.name, index)
        error = ErrorCode.NONE
        if version == 0:
            shown_replicas = [r for r in replicas if r in nodes.by_id]
            shown_isr = [r for r in isr if r in nodes.by_id]
        else:
            shown_replicas, shown_isr = replicas, isr
        if leader not in nodes.by_id:
            if leader in nodes.alive and version >= 6:
                error = ErrorCode.LISTENER_NOT_FOUND
            else:
                error = ErrorCode.LEADER_NOT_AVAILABLE
            leader = -1
        elif len(shown_replicas) < len(replicas) or len(shown_isr) < len(isr):
            error = ErrorCode.REPLICA_NOT_AVAILABLE
        entries.append({
            "error_code": error,
            "partition_index": index,
            "leader_id": leader,
            "leader_epoch": store.leader_epoch(meta.name, index),
            "replica_nodes": shown_replicas,
            "isr_nodes": shown_isr,
            "offline_replicas": store.offline_replicas(meta.name, index),
        })
    return entries


class PartitionArrays:
    """Each topic's partitions array of a Metadata response, encoded once per
    (version, listener) and kept until the metadata changes (its store's
    generation moves): clients ask for the same topics again and again, and
    building and encoding 1,000 partitions' entries takes milliseconds."""

    def __init__(self):
        self._generation = None
        self._arrays: dict[tuple[str, int, str], Encoded] = {}

    def get(self, broker, meta, nodes: Nodes, version: int, listener: str) -> Encoded:
        generation = broker.metadata.generation
        if generation != self._generation:
            self._arrays.clear()
            self._generation = generation
        key = (meta.name, version, listener)
        array = self._arrays.get(key)
        if array is None:
            codec = schema.field_codec("Metadata", version, "response", ("topics", "partitions"))
            array = self._arrays[key] = Encoded(codec.build(partition_entries(broker, meta, nodes, version)))
        return array


def _topic_entry(ctx, meta, include_ops: bool, nodes: Nodes) -> dict:
    broker = ctx.broker
    return {
        "error_code": ErrorCode.NONE,
        "name": meta.name,
        "topic_id": meta.topic_id,
        "is_internal": is_internal(meta.name),
        "partitions": broker.metadata_partitions.get(broker, meta, nodes, ctx.api_version, ctx.listener),
        "topic_authorized_operations": ALL_TOPIC_OPERATIONS if include_ops else OPERATIONS_NOT_REQUESTED,
    }


def _error_entry(name, topic_id, code: ErrorCode) -> dict:
    return {"error_code": code, "name": name, "topic_id": topic_id or ZERO_UUID, "partitions": []}


async def _lookup(broker, name: str, allow_auto_create: bool) -> dict | None:
    """None when the topic exists; else the error entry (auto-creating it first
    when allowed, which Kafka answers with LEADER_NOT_AVAILABLE)."""
    topics = broker.topics
    if topics.get(name) is not None:
        return None
    try:
        validate_topic_name(name)
    except KafkaError:
        return _error_entry(name, None, ErrorCode.INVALID_TOPIC_EXCEPTION)
    if allow_auto_create and broker.config.auto_create_topics_enable and not is_internal(name):
        try:
            await topics.auto_create(name)
        except KafkaError as e:
            if e.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                return _error_entry(name, None, e.code)
        return _error_entry(name, None, ErrorCode.LEADER_NOT_AVAILABLE)
    return _error_entry(name, None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


@handles("Metadata")
async def metadata(ctx, request) -> dict:
    broker = ctx.broker
    version = ctx.api_version
    include_ops = bool(request.include_topic_authorized_operations)
    # v0: an empty list means all topics; v1+: null means all topics.
    wants_all = request.topics is None or (version == 0 and not request.topics)
    if version < 12 and not wants_all and any(
        t.name is None or (t.topic_id and t.topic_id != ZERO_UUID) for t in request.topics
    ):
        # Kafka: InvalidRequestException ("Topic IDs are not supported in requests for version
        # N", or null names), answered by MetadataRequest.getErrorResponse: each topic with the
        # error, a null name as "" (v10-11 responses cannot carry null), nothing else.
        return {"brokers": [], "cluster_id": None, "controller_id": -1, "topics": [
            {"name": t.name or "", "topic_id": t.topic_id, "error_code": ErrorCode.INVALID_REQUEST,
             "is_internal": False, "partitions": []} for t in request.topics]}
    nodes = Nodes(broker, ctx.listener)
    topic_entries = []
    if wants_all:
        for meta in list(broker.metadata.topics().values()):
            topic_entries.append(_topic_entry(ctx, meta, include_ops, nodes))
    else:
        allow_auto_create = request.allow_auto_topic_creation if version >= 4 else True
        for wanted in request.topics:
            name, topic_id = wanted.name, wanted.topic_id
            if topic_id and topic_id != ZERO_UUID:
                meta = broker.metadata.topic_by_id(topic_id)
                if meta is None:
                    topic_entries.append(_error_entry(None, topic_id, ErrorCode.UNKNOWN_TOPIC_ID))
                    continue
            else:
                error = await _lookup(broker, name, allow_auto_create)
                if error is not None:
                    # Kafka sets the operations on every topic looked up by
                    # name, unknown or invalid ones too (not on unknown ids).
                    error["topic_authorized_operations"] = (
                        ALL_TOPIC_OPERATIONS if include_ops else OPERATIONS_NOT_REQUESTED)
                    topic_entries.append(error)
                    continue
                meta = broker.topics.get(name)
            topic_entries.append(_topic_entry(ctx, meta, include_ops, nodes))
    return {
        "brokers": nodes.entries(),
        "cluster_id": broker.metadata.cluster_id,
        "controller_id": broker.metadata.controller_id,
        "topics": topic_entries,
        "cluster_authorized_operations": (
            ALL_CLUSTER_OPERATIONS if request.include_cluster_authorized_operations else OPERATIONS_NOT_REQUESTED
        ),
    }


@handles("DescribeCluster")
async def describe_cluster(ctx, request) -> dict:
    broker = ctx.broker
    if request.endpoint_type not in (1,):  # 1 = brokers; 2 = controllers (KRaft only)
        return {
            "error_code": ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            "error_message": "Unsupported endpoint type " + str(request.endpoint_type),
            "endpoint_type": request.endpoint_type,
        }
    return {
        "error_code": ErrorCode.NONE,
        "endpoint_type": request.endpoint_type,
        "cluster_id": broker.metadata.cluster_id,
        "controller_id": broker.metadata.controller_id,
        "brokers": Nodes(broker, ctx.listener).entries("broker_id"),
        "cluster_authorized_operations": (
            ALL_CLUSTER_OPERATIONS if request.include_cluster_authorized_operations else OPERATIONS_NOT_REQUESTED
        ),
    }
