"""Exactly once in a three-broker cluster through the death of the
transaction coordinator's broker (issue 12): the Java client's
consume-transform-produce loop (read_committed consumer, transactional
producer, sendOffsetsToTransaction) over 100,000 records; once half are
committed, the broker leading the transactional id's __transaction_state
partition is killed (SIGKILL) and stays dead. Another replica takes the
partition over, loads the transaction state and coordinates the rest; the
output at read_committed is the input transformed, each record once, in
order, and the group's committed offsets are the input's ends."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from interop import streams_app, transactions
from interop.cluster import wait_for
from interop.java_client import ConsumeTransformProduce

PARTITIONS = 4
MESSAGES = 100_000
TXN_PARTITIONS = 3
OVERRIDES = {"zookeeper.session.timeout.ms": "6000", "group.initial.rebalance.delay.ms": "0",
             "offsets.topic.num.partitions": "3",
             "transaction.state.log.num.partitions": str(TXN_PARTITIONS)}


@pytest.fixture
def cluster_overrides():
    return OVERRIDES


def create_topics(bootstrap: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, PARTITIONS, 3, config={"min.insync.replicas": "2"})
                                   for n in names], operation_timeout=30)
    for future in futures.values():
        future.result(30)


def coordinator(bootstrap: str, transactional_id: str) -> int:
    """The leader of the transactional id's __transaction_state partition (-1: none now)."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics("__transaction_state", timeout=10)
    topic = metadata.topics.get("__transaction_state")
    partition = topic.partitions.get(transactions.coordinator_partition(transactional_id, TXN_PARTITIONS)) \
        if topic is not None else None
    return -1 if partition is None else partition.leader


def test_consume_transform_produce_exactly_once_through_coordinator_kill9(cluster):
    bootstrap = cluster.bootstrap
    source, sink = f"ctp-in-{uuid.uuid4().hex[:8]}", f"ctp-out-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, source, sink)
    sent = transactions.produce_spread(bootstrap, source, MESSAGES, PARTITIONS)
    group = f"ctp-{uuid.uuid4().hex[:8]}"
    transactional_id = f"ctp-{uuid.uuid4().hex}"

    with ConsumeTransformProduce(bootstrap, source, sink, group, transactional_id) as ctp:
        ctp.wait_until(lambda: ctp.committed >= MESSAGES // 2, "half committed", timeout=300)
        victim = coordinator(bootstrap, transactional_id)
        assert victim in cluster.brokers, f"no coordinator for {transactional_id}: {victim}"
        killed_at = ctp.committed
        cluster.brokers[victim].kill9()
        survivors = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != victim)
        wait_for(lambda: coordinator(survivors, transactional_id) not in (victim, -1), 60,
                 "another broker coordinating the transactional id")
        ctp.wait(timeout=600)
    assert killed_at < MESSAGES, "the coordinator was killed after the loop had committed everything"

    output = transactions.read_committed_until(survivors, sink, MESSAGES)
    for partition, values in sent.items():
        got = [r.value for r in output.get(partition, [])]
        expected = [b"t:" + v for v in values]
        assert len(got) == len(expected) and got == expected, (
            f"partition {partition}: {len(got)} records read, {len(expected)} expected; "
            f"recoveries: {ctp.recoveries[:5]}")
    ends = streams_app.end_offsets(survivors, source)
    wait_for(lambda: streams_app.committed(survivors, group, source, list(ends)) == ends, 30,
             f"the group's committed offsets at the input's ends {ends}")
