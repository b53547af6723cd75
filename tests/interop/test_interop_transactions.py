"""Transactions (KIP-98, issue 12) through real clients against one broker:
every client family's transactional producer committing and aborting across
several partitions of two topics, read back at read_committed by every family
(and at read_uncommitted, which does show the aborted records); interleaved
transactions of two producers on the same partitions, where an open one holds
read_committed readers back at the last stable offset; a zombie producer
fenced by a new one with the same transactional id; and a transaction left
open by a killed client, aborted by the coordinator after its timeout.

Every check compares what was committed with what is read back, record by
record, in offset order. INTEROP_TXN_BROKER=kafka runs the same tests against
Apache Kafka (tests/interop/txn_brokers.py).
"""
from __future__ import annotations

import time
import uuid

import pytest

from interop import admin, java_client, transactions
from interop.transactions import FAMILIES, Transaction, wire_records

from .txn_brokers import TxnBroker


@pytest.fixture(scope="module")
def txn_broker(tmp_path_factory):
    broker = TxnBroker(tmp_path_factory.mktemp("txn-broker"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topics(txn_broker, topic_name):
    """Two fresh topics, of 3 and 2 partitions: their partitions as (topic, partition)."""
    a, b = topic_name("-a"), topic_name("-b")
    admin.create_topic(txn_broker.bootstrap, a, partitions=3)
    admin.create_topic(txn_broker.bootstrap, b, partitions=2)
    return [(a, 0), (a, 1), (a, 2), (b, 0), (b, 1)]


def txn_id() -> str:
    return f"txn-{uuid.uuid4().hex}"


def records(tag: str, partitions, per_partition: int = 3):
    return tuple((topic, p, f"k{i}".encode(), f"{tag}:{topic[-10:]}:{p}:{i}".encode())
                 for topic, p in partitions for i in range(per_partition))


def values_by_partition(partitions, batches) -> dict:
    """partition -> the values of `batches` (records tuples) sent to it, in order."""
    return {tp: [value for batch in batches for t, p, _, value in batch if (t, p) == tp]
            for tp in partitions}


def assert_reads(bootstrap: str, families, expected: dict, *, isolation: str = "read_committed",
                 timeout: float = 60.0) -> None:
    """Each family reads exactly `expected` (partition -> values in order), with
    offsets strictly increasing: no record missing, extra, repeated or out of order."""
    for family in families:
        got = transactions.read(family, bootstrap, {tp: len(v) for tp, v in expected.items()},
                                isolation=isolation, timeout=timeout)
        for tp, values in expected.items():
            read = got[tp]
            assert [r.value for r in read] == values, (family, isolation, tp)
            offsets = [r.offset for r in read]
            assert offsets == sorted(set(offsets)), (family, tp, offsets)


@pytest.mark.parametrize("producer", FAMILIES)
def test_commit_and_abort_across_partitions_and_topics(txn_broker, topics, producer):
    """Five transactions over five partitions of two topics, the 2nd and 4th
    aborted: read_committed readers of every family see the committed ones
    only, in order; a read_uncommitted reader sees the aborted ones too."""
    plan = [Transaction(records(f"{producer}-{i}", topics), commit=i % 2 == 0) for i in range(5)]
    transactions.transact(producer, txn_broker.bootstrap, txn_id(), plan)

    committed = values_by_partition(topics, [t.records for t in plan if t.commit])
    assert_reads(txn_broker.bootstrap, FAMILIES, committed)
    everything = values_by_partition(topics, [t.records for t in plan])
    assert_reads(txn_broker.bootstrap, ["kafka-python"], everything, isolation="read_uncommitted")


def test_interleaved_transactions_and_the_last_stable_offset(txn_broker, topics):
    """Two producers' transactions interleave on the same partitions. While
    A's is open, read_committed readers get nothing past its first record,
    though B's later one is committed; once A aborts they get B's records
    alone (A's are between them in the log); A's next transaction, committed,
    follows."""
    bootstrap = txn_broker.bootstrap
    with java_client.txn_session(bootstrap, txn_id()) as a, \
            java_client.txn_session(bootstrap, txn_id()) as b:
        a.call("init")
        b.call("init")
        a.call("begin")
        b.call("begin")
        sent = {name: [] for name in ("a", "b")}
        for round_ in range(2):
            for name, session in (("a", a), ("b", b)):
                batch = records(f"{name}{round_}", topics, per_partition=2)
                session.call("send", records=wire_records(batch))
                sent[name].append(batch)
        b.call("commit")

        # A's open transaction began before B's records: the last stable
        # offset is A's first offset, so nothing at all is readable.
        waiting = transactions.read("confluent", bootstrap, {tp: 1 for tp in topics}, timeout=3)
        assert waiting == {tp: [] for tp in topics}

        a.call("abort")
        committed = values_by_partition(topics, sent["b"])
        assert_reads(bootstrap, FAMILIES, committed)

        a.call("begin")
        last = records("a-last", topics, per_partition=2)
        a.call("send", records=wire_records(last))
        a.call("commit")
    committed = values_by_partition(topics, [*sent["b"], last])
    assert_reads(bootstrap, ["confluent", "aiokafka", "java"], committed)
    everything = values_by_partition(topics, [sent["a"][0], sent["b"][0], sent["a"][1], sent["b"][1], last])
    assert_reads(bootstrap, ["kafka-python"], everything, isolation="read_uncommitted")


def test_zombie_producer_is_fenced(txn_broker, topics):
    """A producer whose transactional id a new producer initialised again is
    fenced: its open transaction is aborted, its next send or commit fails
    with ProducerFencedException (InvalidProducerEpochException on some
    paths), and only the new producer's transaction is readable."""
    bootstrap = txn_broker.bootstrap
    same_id = txn_id()
    zombie_records = records("zombie", topics)
    new_records = records("new", topics)
    with java_client.txn_session(bootstrap, same_id) as zombie:
        zombie.call("init")
        zombie.call("begin")
        zombie.call("send", records=wire_records(zombie_records))
        with java_client.txn_session(bootstrap, same_id) as successor:
            successor.call("init")
            with pytest.raises(java_client.JavaCallError) as fenced:
                zombie.call("send", records=wire_records(zombie_records[:1]))
                zombie.call("commit")
            assert fenced.value.error in ("ProducerFencedException", "InvalidProducerEpochException"), fenced.value
            with pytest.raises(java_client.JavaCallError) as again:
                zombie.call("commit")
            assert again.value.error in ("ProducerFencedException", "InvalidProducerEpochException",
                                         "KafkaException"), again.value
            successor.call("begin")
            successor.call("send", records=wire_records(new_records))
            successor.call("commit")
    assert_reads(bootstrap, ["confluent", "kafkajs", "java"], values_by_partition(topics, [new_records]))
    assert_reads(bootstrap, ["kafka-python"], values_by_partition(topics, [zombie_records, new_records]),
                 isolation="read_uncommitted")


def test_transaction_of_killed_client_is_aborted_after_its_timeout(txn_broker, topics):
    """A client killed (SIGKILL) inside a transaction leaves it open: it holds
    read_committed readers back, also from records committed after it by
    another producer, until the coordinator aborts it once its
    transaction.timeout.ms passed; then they read the later records and never
    the killed client's."""
    bootstrap = txn_broker.bootstrap
    timeout_ms = 6000
    orphan = records("orphan", topics)
    later = records("later", topics)
    with java_client.txn_session(bootstrap, txn_id(), transaction_timeout_ms=timeout_ms) as client:
        client.call("init")
        began = time.monotonic()
        client.call("begin")
        client.call("send", records=wire_records(orphan))
        client.kill()
    transactions.transact("confluent", bootstrap, txn_id(), [Transaction(later, commit=True)])

    blocked = transactions.read("aiokafka", bootstrap, {tp: 1 for tp in topics}, timeout=1)
    if time.monotonic() - began < timeout_ms / 1000:
        assert blocked == {tp: [] for tp in topics}, "read past an open transaction before its timeout"

    # Aborted within the timeout plus the coordinator's 1 s check interval
    # (and some slack for a busy machine): the readers' deadline.
    assert_reads(bootstrap, ["confluent", "aiokafka", "java"], values_by_partition(topics, [later]),
                 timeout=timeout_ms / 1000 + 30)
    assert time.monotonic() - began >= timeout_ms / 1000, "aborted before its timeout"
    assert_reads(bootstrap, ["kafka-python"], values_by_partition(topics, [orphan, later]),
                 isolation="read_uncommitted")


@pytest.mark.parametrize("successor", ["confluent", "kafka-python", "aiokafka", "kafkajs"])
def test_zombie_java_producer_is_fenced_by_another_family(txn_broker, topics, successor):
    """The transactional id is taken over by another client family's producer
    (its InitProducerId bumps the epoch): the Java zombie's open transaction
    is aborted and its commit refused; the successor's transaction is read."""
    bootstrap = txn_broker.bootstrap
    same_id = txn_id()
    zombie_records = records("zombie", topics)
    new_records = records(successor, topics)
    with java_client.txn_session(bootstrap, same_id) as zombie:
        zombie.call("init")
        zombie.call("begin")
        zombie.call("send", records=wire_records(zombie_records))
        transactions.transact(successor, bootstrap, same_id, [Transaction(new_records, commit=True)])
        with pytest.raises(java_client.JavaCallError) as fenced:
            zombie.call("commit")
        assert fenced.value.error in ("ProducerFencedException", "InvalidProducerEpochException"), fenced.value
    assert_reads(bootstrap, ["confluent", "java"], values_by_partition(topics, [new_records]))
    assert_reads(bootstrap, ["kafka-python"], values_by_partition(topics, [zombie_records, new_records]),
                 isolation="read_uncommitted")
