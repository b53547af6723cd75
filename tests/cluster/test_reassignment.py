"""Partition reassignment (KIP-455: AlterPartitionReassignments and
ListPartitionReassignments, answered by the controller) in a three-broker
cluster: replicas move while idempotent acks=all producers of two client
families keep writing, nothing acknowledged is lost, the new replicas are
byte-identical copies and the removed ones delete their logs; a
reassignment that can't finish is listed (kafka-python, kafkajs) and can be
cancelled."""
from __future__ import annotations

import json

import pytest
import trio
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import KafkaConnectionError

from interop import kafkajs_client
from interop.cluster import wait_for
from kafka_compat.protocol.errors import ErrorCode
from tests.cluster.test_cluster_leadership import ContinuousProducers, read_partitions
from tests.integration.wire import WireClient

OVERRIDES = {"zookeeper.session.timeout.ms": "6000", "offsets.topic.replication.factor": "1",
             "replica.fetch.backoff.ms": "200", "group.initial.rebalance.delay.ms": "0"}


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def assignment(zk, topic: str) -> dict:
    return json.loads(zk.get(f"/brokers/topics/{topic}")[0])


def state(zk, topic: str) -> dict:
    return json.loads(zk.get(f"/brokers/topics/{topic}/partitions/0/state")[0])


def settled_on(zk, topic: str, replicas: list[int]):
    """The znode's assignment is ``replicas``, with no reassignment left."""
    a = assignment(zk, topic)
    return a["partitions"]["0"] == replicas and not a["adding_replicas"] and not a["removing_replicas"] and a


def segments(cluster, broker_id: int, topic: str) -> dict[str, bytes]:
    directory = cluster.brokers[broker_id].data_dir / f"{topic}-0"
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.log"))}


def kp_admin(bootstrap: str, call):
    """``call(admin)`` with a kafka-python admin client, again while it fails
    to connect (it may pick a killed broker the metadata still lists)."""
    def attempt():
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        except KafkaConnectionError:
            return None
        try:
            return [call(admin)]
        except KafkaConnectionError:
            return None
        finally:
            admin.close()
    return wait_for(attempt, 60, "a kafka-python admin request answered")[0]


def kp_reassign(bootstrap: str, changes: dict) -> dict:
    return kp_admin(bootstrap, lambda admin: admin.alter_partition_reassignments(changes))


def test_replicas_move_while_producers_write(cluster, zk):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic("moving", 1, replica_assignment=[[1, 2]])])["moving"].result(30)
    tp = KpTopicPartition("moving", 0)
    with ContinuousProducers(cluster.bootstrap, "moving") as producers:
        wait_for(lambda: producers.progressed(0), 30, "the producers under way")
        # kafka-python: the leader (1) leaves, broker 3 joins.
        assert kp_reassign(cluster.bootstrap, {tp: [3, 2]}) == {tp: None}
        wait_for(lambda: settled_on(zk, "moving", [3, 2]), 60, "the move to [3, 2] to complete")
        assert state(zk, "moving")["leader"] in (3, 2) and sorted(state(zk, "moving")["isr"]) == [2, 3]
        wait_for(lambda: not (cluster.brokers[1].data_dir / "moving-0").exists(), 30,
                 "broker 1 to delete its replica (renamed *-delete)")
        acked = len(producers.acked)
        wait_for(lambda: producers.progressed(acked), 60, "the producers past the move")
        # kafkajs: back to three replicas, 1 preferred.
        kafkajs_client.reassign(cluster.bootstrap, "moving", 0, [1, 2, 3])
        wait_for(lambda: settled_on(zk, "moving", [1, 2, 3]), 60, "the move to [1, 2, 3] to complete")
        acked = len(producers.acked)
        wait_for(lambda: producers.progressed(acked), 60, "the producers past the second move")
    assert producers.errors == []
    read = read_partitions(cluster.bootstrap, "moving", 1)[0]
    assert sorted(read) == sorted(producers.acked)  # nothing acknowledged lost, nothing twice
    wait_for(lambda: len(state(zk, "moving")["isr"]) == 3, 30, "all three replicas in sync")
    wait_for(lambda: segments(cluster, 1, "moving") == segments(cluster, 2, "moving") == segments(cluster, 3, "moving"),
             30, "every replica's segments equal")


def test_a_stuck_reassignment_is_listed_and_cancelled(cluster, zk):
    # The victim is killed: registered until its session expires, so a move
    # to it may start, but it never catches up: the move waits. (Not the
    # controller, which answers the admin requests.)
    controller = json.loads(zk.get("/controller")[0])["brokerid"]
    victim = next(b for b in (3, 2, 1) if b != controller)
    first, second = (b for b in (1, 2, 3) if b != victim)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic("stuck", 1, replica_assignment=[[first, second]])])["stuck"].result(30)
    tp = KpTopicPartition("stuck", 0)
    cluster.brokers[victim].kill9()
    bootstrap = ",".join(cluster.brokers[b].bootstrap for b in (first, second))
    assert kp_reassign(bootstrap, {tp: [first, victim]}) == {tp: None}
    expected = ([first, victim, second], [victim], [second])  # target first, then the original replicas
    assert kafkajs_client.reassignments(bootstrap) == {("stuck", 0): expected}
    listed = kp_admin(bootstrap, lambda admin: admin.list_partition_reassignments())
    assert listed == {tp: {"replicas": expected[0], "adding_replicas": [victim], "removing_replicas": [second]}}
    a = assignment(zk, "stuck")
    assert (a["partitions"]["0"], a["adding_replicas"], a["removing_replicas"]) == (
        expected[0], {"0": [victim]}, {"0": [second]})
    # Cancelled: back to the original replicas; a second cancel finds none.
    assert kp_reassign(bootstrap, {tp: None}) == {tp: None}
    wait_for(lambda: settled_on(zk, "stuck", [first, second]), 30, "the cancelled move undone")
    assert kafkajs_client.reassignments(bootstrap) == {}
    # (Once the victim's registration is gone clients stop trying it.)
    wait_for(lambda: not zk.exists(f"/brokers/ids/{victim}"), 20, f"broker {victim}'s session to expire")
    errors = kp_reassign(bootstrap, {tp: None})
    assert errors[tp] is not None and errors[tp].errno == 85  # NO_REASSIGNMENT_IN_PROGRESS
    # Kafka's checks: a duplicated list, a broker that isn't alive, and (on
    # the wire: kafka-python refuses to send it) an empty list.
    for bad in ([first, first], [first, 7]):
        errors = kp_reassign(bootstrap, {tp: bad})
        assert errors[tp] is not None and errors[tp].errno == 39, bad  # INVALID_REPLICA_ASSIGNMENT

    async def empty():
        client = await WireClient.connect(cluster.brokers[controller].port)
        try:
            resp = await client.request("AlterPartitionReassignments", 0, {"timeout_ms": 10000, "topics": [
                {"name": "stuck", "partitions": [{"partition_index": 0, "replicas": []}]}]})
        finally:
            await client.aclose()
        p = resp.responses[0].partitions[0]
        return resp.error_code, p.error_code, p.error_message
    assert trio.run(empty) == (0, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                               "Empty replica list specified in partition reassignment.")
