"""Failure modes beyond kill -9, with three broker processes, a real
ZooKeeper and real clients; each test fails if an acknowledged message is lost.

1. A paused leader (SIGSTOP for longer than zookeeper.session.timeout.ms,
   as a long GC pause or a frozen VM): the controller elects a new leader
   from the ISR while idempotent acks=all producers of both client families
   (confluent-kafka, kafka-python) write (interop/chaos.py's producers).
   Resumed, the old leader must not acknowledge an acks=all write: its
   followers fetch from the new leader, so its high watermark cannot move,
   and once the controller's LeaderAndIsr reaches it, it answers
   NOT_LEADER_OR_FOLLOWER. Every acknowledged message is read back once, in
   order, at its offset, and the replicas' segment files are equal. Run with
   the paused leader the controller too (the session expiry also moves the
   controller) and not.

2. Unclean leader election: a follower out of the ISR (paused until its
   leader drops it) is the only replica left when the leader dies. With
   unclean.leader.election.enable=false (the default) the partition stays
   offline (leader -1, LEADER_NOT_AVAILABLE) rather than lose data. With
   unclean election allowed (the topic's config, or an admin's ElectLeaders
   UNCLEAN), the follower leads and the messages written after it left the
   ISR are lost, exactly those offsets; the old leader, back, truncates its
   divergent suffix and the replicas are equal again.
"""
from __future__ import annotations

import json
import os
import signal
import time

import pytest
import trio
from confluent_kafka import ElectionType, Producer
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from kafka import KafkaProducer

from interop.chaos import (PRODUCERS, ChaosConfig, ChaosRun, compare_replicas, controller_of, describe_states,
                           high_watermarks, isr_full, partition_states, poll_until, read_topic, registration)
from interop.cluster import wait_for
from kafka_compat.protocol.errors import ErrorCode
from kafka_compat.protocol.records import build_batch
from tests.integration.wire import WireClient

SESSION_TIMEOUT_MS = 4000
LAG_MAX_MS = 2000


@pytest.fixture
def cluster_overrides():
    # A paused or killed broker's session expires in a few seconds and a
    # follower that stops fetching leaves the ISR in two; no automatic
    # preferred election moves a leader back behind a test's back.
    return {
        "zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS),
        "replica.lag.time.max.ms": str(LAG_MAX_MS),
        "replica.fetch.backoff.ms": "200",
        "offsets.topic.replication.factor": "3",
        "offsets.topic.num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
        "controlled.shutdown.retry.backoff.ms": "500",
        "auto.leader.rebalance.enable": "false",
    }


# -- on the wire -----------------------------------------------------------------------


def raw_produce(port: int, topic: str, partition: int, acks: int, timeout_ms: int, value: bytes) -> tuple[int, int]:
    """(error code, base offset) of one Produce v9 sent straight to one broker
    (a real client would go to whichever broker its metadata names)."""
    async def go():
        with trio.fail_after(timeout_ms / 1000 + 15):
            client = await WireClient.connect(port)
            try:
                resp = await client.request("Produce", 9, {"acks": acks, "timeout_ms": timeout_ms, "topic_data": [
                    {"name": topic, "partition_data": [
                        {"index": partition,
                         "records": bytearray(build_batch([(None, value, [], int(time.time() * 1000))]))}]}]})
            finally:
                await client.aclose()
        p = resp.responses[0].partition_responses[0]
        return p.error_code, p.base_offset
    return trio.run(go)


def partition_metadata(port: int, topic: str, partition: int) -> tuple[int, int]:
    """(error code, leader id) a broker's Metadata v9 answers for a partition."""
    async def go():
        with trio.fail_after(15):
            client = await WireClient.connect(port)
            try:
                resp = await client.request("Metadata", 9, {"topics": [{"name": topic}],
                                                            "allow_auto_topic_creation": False,
                                                            "include_topic_authorized_operations": False})
            finally:
                await client.aclose()
        for p in resp.topics[0].partitions:
            if p.partition_index == partition:
                return p.error_code, p.leader_id
        raise AssertionError(f"no partition {partition} in {resp}")
    return trio.run(go)


def state(zk, topic: str, partition: int = 0) -> dict:
    return json.loads(zk.get(f"/brokers/topics/{topic}/partitions/{partition}/state")[0])


def create_topic(bootstrap: str, topic: str, assignment: list[list[int]], config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, len(assignment), replica_assignment=assignment, config=config)],
                        operation_timeout=30)[topic].result(30)


# -- 1. a leader paused past its session -------------------------------------------------

# What an acks=all produce to a deposed leader may be answered with in Kafka:
# NOT_LEADER_OR_FOLLOWER once the controller's LeaderAndIsr has reached it,
# meanwhile REQUEST_TIMED_OUT (its followers fetch from the new leader, so its
# high watermark stays), or NOT_ENOUGH_REPLICAS(_AFTER_APPEND).
FENCED = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_ENOUGH_REPLICAS,
          ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND}


@pytest.mark.parametrize("pause", ["until-elected", "until-clients-moved"])
@pytest.mark.parametrize("role", ["controller", "not-controller"])
def test_a_leader_paused_past_its_session_is_fenced_and_no_acknowledged_message_is_lost(cluster, zk, role, pause):
    """``until-elected``: resumed as soon as the new leader is in ZooKeeper
    (the clients' requests to the old leader still in flight, answered after
    the resume); ``until-clients-moved``: resumed once both producers have
    been acknowledged on partition 0 by the new leader (their requests to the
    old leader timed out and were retried there, the stale copies still in
    the old leader's sockets)."""
    topic, partitions = "paused", 3
    controller = wait_for(lambda: controller_of(zk), 10, "a controller")
    victim = controller if role == "controller" else min(b for b in cluster.brokers if b != controller)
    a, b = sorted(x for x in cluster.brokers if x != victim)
    # The victim leads partition 0 (its first replica) and follows the others.
    create_topic(cluster.bootstrap, topic, [[victim, a, b], [a, b, victim], [b, victim, a]],
                 {"min.insync.replicas": "2"})
    wait_for(lambda: isr_full(partition_states(zk, topic, partitions), 3), 30, "every partition's ISR full")
    before = state(zk, topic)
    assert before["leader"] == victim

    config = ChaosConfig(topic=topic, partitions=partitions, replication_factor=3, min_insync_replicas=2,
                         kills=0, rate=100.0, delivery_timeout_s=30.0, group_read=False)
    run = ChaosRun(cluster, config, log=print)
    run.zk = zk
    run.started = time.monotonic()
    run.producers = [PRODUCERS[family](i, cluster.bootstrap, config, run.started)
                     for i, family in enumerate(config.families)]
    for producer in run.producers:
        producer.start()
    probes: list[tuple[float, bytes, int, int]] = []  # (seconds after SIGCONT, value, error, base offset)
    try:
        # Both families acknowledged on every partition before the pause.
        wait_for(lambda: all(len(p.last_ack_in) == partitions and p.acks >= 30 for p in run.producers), 30,
                 "both producers acknowledged on every partition")
        run.progress()
        victim_broker = cluster.brokers[victim]
        os.kill(victim_broker.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            # The session expires; the controller (a new one, if the victim was
            # it) elects partition 0's leader from the rest of the ISR.
            elected = wait_for(lambda: (s := state(zk, topic))["leader"] not in (victim, -1) and s,
                               SESSION_TIMEOUT_MS / 1000 + 20, "a new leader for partition 0")
            assert elected["leader"] in before["isr"] and elected["leader_epoch"] > before["leader_epoch"]
            assert victim not in elected["isr"]
            if role == "controller":
                assert wait_for(lambda: controller_of(zk) not in (None, victim) and controller_of(zk), 10,
                                "a new controller") != victim
            else:
                assert controller_of(zk) == controller
            print(f"paused broker {victim} ({role}); after {time.monotonic() - stopped_at:.1f} s partition 0: "
                  f"{elected}")
            if pause == "until-clients-moved":
                elected_at = time.monotonic()
                for producer in run.producers:
                    wait_for(lambda: producer.last_ack_in.get(0, 0) > elected_at, 40,
                             f"{producer.family} acknowledged on partition 0 by the new leader")
                print(f"both producers acknowledged by broker {elected['leader']} "
                      f"{time.monotonic() - stopped_at:.1f} s after the pause began")
            run.progress()
        finally:
            os.kill(victim_broker.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        # At once, and until it says it no longer leads: an acks=all write to
        # the old leader is never acknowledged.
        while True:
            value = f"probe-{len(probes):04d}".encode()
            error, offset = raw_produce(victim_broker.port, topic, 0, -1, 1500, value)
            probes.append((time.monotonic() - resumed_at, value, error, offset))
            assert error != ErrorCode.NONE, (
                f"the old leader acknowledged an acks=all write at offset {offset} {probes[-1][0]:.1f} s after "
                f"SIGCONT though broker {elected['leader']} leads at epoch {elected['leader_epoch']}: {probes}\n"
                + victim_broker.log_tail(60))
            assert error in FENCED, probes
            if error == ErrorCode.NOT_LEADER_OR_FOLLOWER:
                break
            assert time.monotonic() - resumed_at < 30, f"the old leader still takes writes 30 s after SIGCONT: {probes}"
        print("acks=all produces to the old leader after SIGCONT: "
              + ", ".join(f"{ErrorCode(e).name} at +{t:.1f} s" for t, _, e, _ in probes))

        # The old leader rejoins as a follower; both producers go on.
        wait_for(lambda: isr_full(partition_states(zk, topic, partitions), 3), 30,
                 f"every partition's ISR full again ({describe_states(partition_states(zk, topic, partitions))})")
        for producer in run.producers:
            wait_for(lambda: (producer.last_ack_at or 0) > resumed_at and all(
                t > resumed_at for t in producer.last_ack_in.values()), 30,
                f"{producer.family} acknowledged on every partition after the resume")
        after = state(zk, topic)
        assert after["leader"] == elected["leader"], "no preferred election was expected"
    finally:
        for producer in run.producers:
            producer.stop()
        for producer in run.producers:
            producer.join()
    run.progress()

    # Every acknowledged message once, at its offset, in order; replicas equal.
    for producer in run.producers:
        if producer.crash:
            run.fail(f"{producer.family} producer thread crashed:\n{producer.crash}")
    run.verify()
    print(run.verdict.report())
    assert run.verdict.ok, run.verdict.report()
    for broker_id, broker in cluster.brokers.items():
        data = b"".join(f.read_bytes() for f in (broker.data_dir / f"{topic}-0").glob("*.log"))
        values = [v for _, v, _, _ in probes if v in data]
        assert not values, f"broker {broker_id} kept the deposed leader's unacknowledged writes {values}"


# -- 2. unclean leader election ------------------------------------------------------------


class UncleanNotElected(AssertionError):
    """The out-of-sync replica was not elected though unclean election was allowed."""


def send_confluent(bootstrap: str, topic: str, values: list[bytes], acks: str) -> list[int]:
    """Each value's offset in partition 0 (all acknowledged, or the test fails)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": acks == "all",
                         "linger.ms": 0, "message.timeout.ms": 30000})
    results = {}
    for v in values:
        producer.produce(topic, v, partition=0,
                         on_delivery=lambda err, msg, v=v: results.__setitem__(v, err if err else msg.offset()))
    assert producer.flush(40) == 0
    assert all(isinstance(r, int) for r in results.values()), results
    return [results[v] for v in values]


def send_kafka_python(bootstrap: str, topic: str, values: list[bytes], acks) -> list[int]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks, enable_idempotence=acks == "all",
                             max_in_flight_requests_per_connection=1 if acks != "all" else 5)
    try:
        futures = [producer.send(topic, v, partition=0) for v in values]
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close()


@pytest.mark.parametrize("allow", ["topic-config", "elect-leaders"])
def test_unclean_leader_election_stays_offline_unless_allowed_then_loses_exactly_the_unreplicated_suffix(
        cluster, zk, allow):
    topic = "unclean"
    controller = wait_for(lambda: controller_of(zk), 10, "a controller")
    leader, follower = sorted(x for x in cluster.brokers if x != controller)  # neither is the controller
    create_topic(cluster.bootstrap, topic, [[leader, follower]], {})
    wait_for(lambda: sorted(state(zk, topic)["isr"]) == sorted([leader, follower]), 20, "both replicas in the ISR")
    live = ",".join(cluster.brokers[x].bootstrap for x in (controller, follower))

    # Replicated to both (acks=all): offsets 0..19.
    kept = [f"kept-{i:02d}".encode() for i in range(20)]
    assert send_confluent(cluster.bootstrap, topic, kept[:10], "all") == list(range(10))
    assert send_kafka_python(cluster.bootstrap, topic, kept[10:], "all") == list(range(10, 20))
    before = state(zk, topic)
    assert before["leader"] == leader and sorted(before["isr"]) == sorted([leader, follower])

    follower_broker, leader_broker = cluster.brokers[follower], cluster.brokers[leader]
    os.kill(follower_broker.pid, signal.SIGSTOP)
    try:
        # The leader drops the stopped follower after replica.lag.time.max.ms.
        shrunk = wait_for(lambda: (s := state(zk, topic))["isr"] == [leader] and s, LAG_MAX_MS / 1000 + 10,
                          "the leader alone in the ISR")
        assert shrunk["leader"] == leader
        # Acknowledged by the leader alone (acks=1): offsets 20..29, which the follower never gets.
        lost = [f"lost-{i:02d}".encode() for i in range(10)]
        assert send_confluent(leader_broker.bootstrap, topic, lost[:5], "1") == list(range(20, 25))
        assert send_kafka_python(leader_broker.bootstrap, topic, lost[5:], 1) == list(range(25, 30))
        leader_broker.kill9()
    finally:
        os.kill(follower_broker.pid, signal.SIGCONT)
    killed_at = time.monotonic()

    # The leader's session expires: its only in-sync replica is gone and the
    # follower is not eligible: no leader (the ISR keeps its last member).
    offline = wait_for(lambda: (s := state(zk, topic))["leader"] != leader and s, SESSION_TIMEOUT_MS / 1000 + 15,
                       f"broker {leader}'s leadership to end")
    assert offline["leader"] == -1, f"an out-of-sync replica was elected with unclean election disabled: {offline}"
    assert offline["isr"] == [leader] and offline["leader_epoch"] >= before["leader_epoch"]
    wait_for(lambda: registration(zk, follower) is not None, 20, f"broker {follower} registered")
    for x in (controller, follower):
        port = cluster.brokers[x].port
        wait_for(lambda: partition_metadata(port, topic, 0) == (ErrorCode.LEADER_NOT_AVAILABLE, -1), 15,
                 f"broker {x}'s Metadata to answer LEADER_NOT_AVAILABLE")
    # ... and stays so with the follower alive and registered (a broker
    # change, e.g. its re-registration after its own session expired, elects
    # nothing either).
    held = poll_until(lambda: state(zk, topic)["leader"] != -1, 3.0)
    assert not held, f"an out-of-sync replica was elected with unclean election disabled: {state(zk, topic)}"
    assert raw_produce(follower_broker.port, topic, 0, 1, 1000, b"offline")[0] == ErrorCode.NOT_LEADER_OR_FOLLOWER
    print(f"partition offline {time.monotonic() - killed_at:.1f} s after the leader's kill: {state(zk, topic)}")

    admin = AdminClient({"bootstrap.servers": live})
    if allow == "topic-config":
        resource = ConfigResource("topic", topic, incremental_configs=[
            ConfigEntry("unclean.leader.election.enable", "true", incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([resource])[resource].result(30)
        stored = json.loads(zk.get(f"/config/topics/{topic}")[0])["config"]
        assert stored.get("unclean.leader.election.enable") == "true", stored
        wait_for(lambda: list(admin.describe_configs([ConfigResource("topic", topic)]).values())[0].result()[
            "unclean.leader.election.enable"].value == "true", 15, "DescribeConfigs to show the change")
        # Kafka's controller elects at once (its TopicUncleanLeaderElectionEnable event).
        try:
            wait_for(lambda: state(zk, topic)["leader"] == follower, 10,
                     "the follower elected after the topic's unclean.leader.election.enable=true")
        except TimeoutError as e:
            logs = "\n".join(line for b in cluster.brokers.values()
                             for line in b.log_path.read_text(errors="replace").splitlines()
                             if "unclean" in line.lower() or "controller" in line.lower())
            raise UncleanNotElected(f"{e}; state {state(zk, topic)}, /config/topics/{topic} {stored}; "
                                    f"broker log lines naming unclean or controller:\n{logs[-3000:]}") from e
    else:
        results = admin.elect_leaders(ElectionType.UNCLEAN, [CkTopicPartition(topic, 0)]).result(30)
        assert list(results.values()) == [None], results
    elected = wait_for(lambda: (s := state(zk, topic))["leader"] == follower and s, 10, "the follower elected")
    assert elected["isr"] == [follower] and elected["leader_epoch"] > offline["leader_epoch"]
    wait_for(lambda: partition_metadata(cluster.brokers[controller].port, topic, 0) == (ErrorCode.NONE, follower),
             15, "Metadata naming the new leader")

    # The new leader's log ends where it left the ISR: new writes take offsets 20.. again.
    after = [f"after-{i:02d}".encode() for i in range(10)]
    assert send_kafka_python(live, topic, after[:5], "all") == list(range(20, 25))
    assert send_confluent(live, topic, after[5:], "all") == list(range(25, 30))

    # The old leader returns (its session long gone), truncates its divergent suffix and rejoins.
    assert registration(zk, leader) is None
    leader_broker.start()
    wait_for(lambda: sorted(state(zk, topic)["isr"]) == sorted([leader, follower]), 30,
             "the old leader back in the ISR")
    assert state(zk, topic)["leader"] == follower

    # Exactly offsets 0..19 survive; 20..29 hold what was written after the election.
    ends = high_watermarks(cluster.bootstrap, topic, 1)
    assert ends == {0: 30}
    records, errors = read_topic(cluster.bootstrap, topic, ends, 30)
    assert not errors
    assert records[0] == list(enumerate(kept + after))

    cluster.stop()
    failures, notes = compare_replicas(cluster, topic, 0, [leader, follower], must_reach=30)
    assert not failures, failures
    print(notes)
    for broker_id in (leader, follower):
        data = b"".join(f.read_bytes() for f in (cluster.brokers[broker_id].data_dir / f"{topic}-0").glob("*.log"))
        assert b"lost-" not in data, f"broker {broker_id}'s segments still hold the lost suffix"
        assert all(v in data for v in kept + after)
