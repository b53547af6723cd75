"""The transaction coordinator with real clients: confluent-kafka's
transactional producer (init_transactions, begin/commit/abort,
send_offsets_to_transaction) against a broker process, read back at both
isolation levels, and a coordinator killed with -9 in the middle."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from interop.confluent_client import producer_config

TIMEOUT = 60


def _producer(bootstrap, transactional_id, **extra):
    return Producer(producer_config(bootstrap, idempotent=True, **{"transactional.id": transactional_id}, **extra))


def _send(producer, topic, values, partitions=2):
    for i, value in enumerate(values):
        producer.produce(topic, value=value, partition=i % partitions)
    assert producer.flush(TIMEOUT) == 0


def _read_all(bootstrap, topic, isolation, expected, partitions=2):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + TIMEOUT
    idle_until = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                # Once the expected count is in, wait a little longer for anything extra.
                if len(got) >= expected:
                    idle_until = idle_until or time.monotonic() + 1.0
                    if time.monotonic() > idle_until:
                        break
                continue
            if msg.error():
                continue
            got.append(msg.value())
    finally:
        consumer.close()
    return sorted(got)


def test_confluent_transactions_commit_and_abort(broker, new_topic):
    topic = new_topic(partitions=2)
    producer = _producer(broker.bootstrap, f"txn-{topic}")
    producer.init_transactions(TIMEOUT)
    committed = []
    for n, commit in ((10, True), (5, False), (7, True), (3, False)):
        values = [f"{n}-{i}-{commit}".encode() for i in range(n)]
        producer.begin_transaction()
        _send(producer, topic, values)
        if commit:
            producer.commit_transaction(TIMEOUT)
            committed += values
        else:
            producer.abort_transaction(TIMEOUT)
    assert _read_all(broker.bootstrap, topic, "read_committed", len(committed)) == sorted(committed)
    assert len(_read_all(broker.bootstrap, topic, "read_uncommitted", 25)) == 25


def test_confluent_a_new_producer_fences_the_old_one(broker, new_topic):
    topic = new_topic(partitions=2)
    old = _producer(broker.bootstrap, f"fence-{topic}")
    old.init_transactions(TIMEOUT)
    old.begin_transaction()
    _send(old, topic, [b"zombie-1", b"zombie-2"])
    new = _producer(broker.bootstrap, f"fence-{topic}")
    new.init_transactions(TIMEOUT)  # aborts the old one's transaction, bumping the epoch
    new.begin_transaction()
    _send(new, topic, [b"new-1", b"new-2"])
    new.commit_transaction(TIMEOUT)
    try:
        old.commit_transaction(TIMEOUT)
    except KafkaException as e:
        assert e.args[0].fatal() or e.args[0].txn_requires_abort(), e
    else:
        raise AssertionError("the fenced producer committed")
    assert _read_all(broker.bootstrap, topic, "read_committed", 2) == [b"new-1", b"new-2"]


def test_confluent_send_offsets_to_transaction(broker, new_topic):
    source, sink = new_topic(partitions=2), new_topic(partitions=2)
    seed = Producer(producer_config(broker.bootstrap))
    _send(seed, source, [f"in-{i}".encode() for i in range(20)])
    group = f"ctp-{source}"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([source])
    producer = _producer(broker.bootstrap, f"ctp-{source}")
    producer.init_transactions(TIMEOUT)
    seen = 0
    deadline = time.monotonic() + TIMEOUT
    try:
        while seen < 20 and time.monotonic() < deadline:
            batch = consumer.consume(10, 0.5)
            batch = [m for m in batch if not m.error()]
            if not batch:
                continue
            producer.begin_transaction()
            for m in batch:
                producer.produce(sink, value=m.value().replace(b"in-", b"out-"), partition=m.partition())
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), TIMEOUT)
            producer.commit_transaction(TIMEOUT)
            seen += len(batch)
        assert seen == 20
        committed = consumer.committed([TopicPartition(source, p) for p in range(2)], TIMEOUT)
        assert sum(tp.offset for tp in committed) == 20
    finally:
        consumer.close()
    assert _read_all(broker.bootstrap, sink, "read_committed", 20) == sorted(f"out-{i}".encode() for i in range(20))


def test_confluent_transactions_stay_atomic_across_kill9(own_broker, new_topic):
    """A producer commits transaction after transaction over two partitions
    while the broker (coordinator and leader) is killed with -9: after the
    restart every transaction is visible whole or not at all at
    read_committed, every acknowledged commit is there, and a new producer
    with the same transactional.id goes on."""
    import threading

    topic = new_topic(partitions=2)
    per_txn = 10
    acknowledged: list[int] = []
    stop = threading.Event()

    def run():
        producer = _producer(own_broker.bootstrap, f"crash-{topic}", **{"message.timeout.ms": 10_000,
                                                                       "transaction.timeout.ms": 20_000})
        try:
            producer.init_transactions(TIMEOUT)
            for i in range(10_000):
                if stop.is_set():
                    return
                producer.begin_transaction()
                _send(producer, topic, [f"{i}-{j}".encode() for j in range(per_txn)])
                producer.commit_transaction(10)
                acknowledged.append(i)
        except KafkaException:
            return  # the broker died under it

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while len(acknowledged) < 30 and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.01)
    assert len(acknowledged) >= 30, own_broker.log_tail()
    own_broker.kill9()
    stop.set()
    thread.join(TIMEOUT)
    own_broker.start()
    # The next producer of the id: init_transactions finishes or aborts what was left.
    producer = _producer(own_broker.bootstrap, f"crash-{topic}")
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    final = [f"final-{j}".encode() for j in range(per_txn)]
    _send(producer, topic, final)
    producer.commit_transaction(TIMEOUT)
    expected_at_least = (len(acknowledged) + 1) * per_txn
    values = _read_all(own_broker.bootstrap, topic, "read_committed", expected_at_least)
    by_txn: dict[str, int] = {}
    for value in values:
        txn = value.decode().split("-")[0]
        by_txn[txn] = by_txn.get(txn, 0) + 1
    assert {t: n for t, n in by_txn.items() if n != per_txn} == {}, "a transaction is partly visible"
    assert {str(i) for i in acknowledged} | {"final"} <= set(by_txn)
