"""Several listeners, as Kafka has them: each request is answered with the
advertised endpoints of the listener it arrived on, and a broker without an
endpoint there is left out (LISTENER_NOT_FOUND for the partitions it leads,
COORDINATOR_NOT_AVAILABLE for the groups it coordinates)."""
from __future__ import annotations

import trio

from kafka_compat.broker import Broker
from kafka_compat.cluster.metadata import Endpoint
from kafka_compat.config import BrokerConfig
from kafka_compat.protocol.errors import ErrorCode as E

from .wire import WireClient

PROTOCOL_MAP = "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,REPLICATION:PLAINTEXT"


async def start(nursery, tmp_path, **props) -> tuple[Broker, dict[str, tuple[str, int]]]:
    """A broker with ``props`` and where each of its listeners is bound, by name."""
    config = BrokerConfig.from_properties({
        "log.dirs": str(tmp_path / "data"), "listener.security.protocol.map": PROTOCOL_MAP,
        "inter.broker.listener.name": "INTERNAL", "offsets.topic.num.partitions": "2", **props})
    broker = Broker(config)
    bound = await nursery.start(broker.run)
    assert len(bound) == len(config.listeners)  # one socket each: 127.0.0.x addresses
    return broker, {listener.name: address for listener, address in zip(config.listeners, bound)}


async def connect(address: tuple[str, int]) -> WireClient:
    return WireClient(await trio.open_tcp_stream(*address))


async def create_offsets_topic(address: tuple[str, int]) -> None:
    """The first FindCoordinator creates __consumer_offsets and answers
    COORDINATOR_NOT_AVAILABLE (the client retries)."""
    client = await connect(address)
    assert (await coordinator(client, 3))[0] == E.COORDINATOR_NOT_AVAILABLE
    await client.aclose()


async def coordinator(client: WireClient, version: int, key: str = "group") -> tuple:
    """FindCoordinator's answer as (error, node id, host, port)."""
    if version >= 4:
        resp = await client.request("FindCoordinator", version, {"key_type": 0, "coordinator_keys": [key]})
        resp = resp.coordinators[0]
    else:
        resp = await client.request("FindCoordinator", version, {"key": key, "key_type": 0})
    return resp.error_code, resp.node_id, resp.host, resp.port


async def test_each_listener_answers_its_own_advertised_endpoint(nursery, tmp_path):
    broker, bound = await start(
        nursery, tmp_path, **{
            "listeners": "INTERNAL://127.0.0.2:0,EXTERNAL://127.0.0.1:0",
            "broker.rack": "rack-a", "broker.id": "7"})
    # advertised.listeners unset: each listener advertises where it is bound.
    assert broker.info.endpoints == {name: Endpoint(*bound[name], "PLAINTEXT") for name in ("INTERNAL", "EXTERNAL")}
    assert broker.info.endpoint(broker.config.inter_broker_listener_name) == Endpoint(*bound["INTERNAL"], "PLAINTEXT")
    await create_offsets_topic(bound["EXTERNAL"])
    for name in ("INTERNAL", "EXTERNAL"):
        host, port = bound[name]
        client = await connect(bound[name])
        meta = await client.request("Metadata", 12, {"topics": [{"name": "t"}], "allow_auto_topic_creation": True})
        assert [(b.node_id, b.host, b.port, b.rack) for b in meta.brokers] == [(7, host, port, "rack-a")]
        cluster = await client.request("DescribeCluster", 1, {"include_cluster_authorized_operations": False})
        assert [(b.broker_id, b.host, b.port, b.rack) for b in cluster.brokers] == [(7, host, port, "rack-a")]
        for version in (0, 3, 4):
            assert await coordinator(client, version) == (E.NONE, 7, host, port)
        await client.aclose()

        # The advertised endpoint leads back to the same listener.
        client = await connect((host, port))
        meta = await client.request("Metadata", 1, {"topics": [{"name": "t"}]})
        assert [(b.host, b.port) for b in meta.brokers] == [(host, port)]
        assert [(p.error_code, p.leader_id) for p in meta.topics[0].partitions] == [(E.NONE, 7)]
        await client.aclose()
    broker.shutdown()


async def test_advertised_endpoints_differ_from_bound_ones(nursery, tmp_path):
    """The container set-up: other containers reach the broker by an internal
    name, the host by localhost; a listener that is not advertised (REPLICATION)
    reaches a broker that is not in its own answers, as in Kafka."""
    broker, bound = await start(
        nursery, tmp_path, **{
            "listeners": "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0,REPLICATION://127.0.0.1:0",
            "advertised.listeners": "EXTERNAL://localhost:29092,INTERNAL://kafka-1.internal:0"})
    internal = Endpoint("kafka-1.internal", bound["INTERNAL"][1], "PLAINTEXT")
    assert broker.info.endpoints == {"EXTERNAL": Endpoint("localhost", 29092, "PLAINTEXT"), "INTERNAL": internal}
    assert list(broker.info.endpoints) == ["EXTERNAL", "INTERNAL"]  # advertised.listeners order
    assert broker.info.endpoint("REPLICATION") is None
    assert broker.info.rack is None

    await create_offsets_topic(bound["REPLICATION"])
    for name, (host, port) in (("EXTERNAL", ("localhost", 29092)), ("INTERNAL", ("kafka-1.internal", internal.port))):
        client = await connect(bound[name])
        meta = await client.request("Metadata", 12, {"topics": [{"name": "t"}], "allow_auto_topic_creation": True})
        assert [(b.host, b.port, b.rack) for b in meta.brokers] == [(host, port, None)]
        cluster = await client.request("DescribeCluster", 0, {"include_cluster_authorized_operations": False})
        assert [(b.host, b.port) for b in cluster.brokers] == [(host, port)]
        assert await coordinator(client, 4) == (E.NONE, 0, host, port)
        await client.aclose()

    client = await connect(bound["REPLICATION"])
    for version, error in ((12, E.LISTENER_NOT_FOUND), (6, E.LISTENER_NOT_FOUND), (5, E.LEADER_NOT_AVAILABLE),
                           (0, E.LEADER_NOT_AVAILABLE)):
        meta = await client.request("Metadata", version, {"topics": [{"name": "t"}]})
        assert meta.brokers == []
        (partition,) = meta.topics[0].partitions
        # v0 leaves out the replicas that cannot be reached on this listener.
        replicas = [] if version == 0 else [0]
        assert (partition.error_code, partition.leader_id, partition.replica_nodes, partition.isr_nodes) == \
            (error, -1, replicas, replicas)
    cluster = await client.request("DescribeCluster", 1, {"include_cluster_authorized_operations": False})
    assert cluster.error_code == E.NONE and cluster.brokers == [] and cluster.controller_id == 0
    for version in (3, 4):
        assert await coordinator(client, version) == (E.COORDINATOR_NOT_AVAILABLE, -1, "", -1)
    await client.aclose()
    broker.shutdown()
