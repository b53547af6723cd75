"""KIP-951: a Produce (v10+) or Fetch (v16+) answered NOT_LEADER_OR_FOLLOWER
(or, for Fetch, FENCED_LEADER_EPOCH) names the partition's current leader and
epoch, and the response lists that leader's endpoint on the listener the
request came in on, so a client can go there without a Metadata round trip
(Kafka's KafkaApis.getCurrentLeader)."""
from __future__ import annotations


def current_leader(broker, topic: str, partition: int, listener: str) -> tuple[dict, dict | None]:
    """The partition's current_leader field and the leader's node endpoint
    (None when the leader is unknown or has no endpoint on ``listener``).
    The leader is what this broker was last told for a partition it hosts,
    else what its metadata says."""
    state = broker.replicas.state(topic, partition)
    if state is not None:
        leader, epoch = state.leader, state.leader_epoch
    elif broker.metadata.has_partition(topic, partition):
        leader, epoch = broker.metadata.leader(topic, partition), broker.metadata.leader_epoch(topic, partition)
    else:
        leader, epoch = -1, -1
    node = None
    for info in broker.metadata.brokers():
        endpoint = info.endpoint(listener) if info.node_id == leader else None
        if endpoint is not None:
            node = {"node_id": leader, "host": endpoint.host, "port": endpoint.port, "rack": info.rack}
    return {"leader_id": leader, "leader_epoch": epoch}, node


def add_leader_hints(broker, entries, listener: str, errors) -> list[dict]:
    """Set current_leader on each (topic, partition, response entry) whose
    error is in ``errors``; the node endpoints of those leaders."""
    nodes = {}
    for topic, partition, entry in entries:
        if entry["error_code"] in errors:
            entry["current_leader"], node = current_leader(broker, topic, partition, listener)
            if node is not None:
                nodes[node["node_id"]] = node
    return list(nodes.values())
