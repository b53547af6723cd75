"""Transactions (KIP-98) through every client family: one transactional
producer running a list of transactions (each committed or aborted), and
readers at either isolation level, in one shape for all of them.

`transact(family, ...)` and `read(family, ...)` take the family's name:
"confluent" (librdkafka), "kafka-python", "aiokafka" in-process, "kafkajs"
and "java" through their programs (interop/node/client.js `transact`/`read`,
interop/java Transactions.java `txn-session`/`read`).
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass

from . import java_client, kafkajs_client
from .messages import Record, record_from_consumer_record, record_from_json

FAMILIES = ("confluent", "kafka-python", "aiokafka", "kafkajs", "java")
Partition = tuple[str, int]


@dataclass(frozen=True)
class Transaction:
    """Records (topic, partition, key, value) sent in one transaction, then
    committed or aborted."""
    records: tuple[tuple[str, int, bytes | None, bytes], ...]
    commit: bool


def transact(family: str, bootstrap: str, transactional_id: str, transactions: list[Transaction],
             *, timeout: float = 90.0) -> None:
    """Initialise a producer with `transactional_id` and run `transactions`
    in order; raises on any failure."""
    {"confluent": _transact_confluent, "kafka-python": _transact_kafka_python,
     "aiokafka": _transact_aiokafka, "kafkajs": _transact_kafkajs,
     "java": _transact_java}[family](bootstrap, transactional_id, transactions, timeout)


def read(family: str, bootstrap: str, counts: dict[Partition, int], *,
         isolation: str = "read_committed", timeout: float = 60.0) -> dict[Partition, list[Record]]:
    """Read each partition from its beginning until `counts[partition]`
    records of it arrived (or `timeout` passed: the caller's comparison says
    what is missing), at `isolation` ("read_committed" or "read_uncommitted")."""
    reader = {"confluent": _read_confluent, "kafka-python": _read_kafka_python,
              "aiokafka": _read_aiokafka, "kafkajs": _read_kafkajs, "java": _read_java}[family]
    got: dict[Partition, list[Record]] = {p: [] for p in counts}
    for topic, record in reader(bootstrap, counts, isolation, timeout):
        got[(topic, record.partition)].append(record)
    return got


def _complete(counts: dict[Partition, int], got: dict[Partition, int]) -> bool:
    return all(got.get(p, 0) >= n for p, n in counts.items())


# --- confluent-kafka -----------------------------------------------------------

def _transact_confluent(bootstrap, transactional_id, transactions, timeout):
    from confluent_kafka import KafkaException, Producer
    from .confluent_client import producer_config
    producer = Producer(producer_config(bootstrap, idempotent=True,
                                        **{"transactional.id": transactional_id}))
    failed = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))

    producer.init_transactions(timeout)
    for t in transactions:
        producer.begin_transaction()
        for topic, partition, key, value in t.records:
            producer.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
        if producer.flush(timeout) or failed:
            raise KafkaException(f"transactional sends failed: {failed[:5]}")
        if t.commit:
            producer.commit_transaction(timeout)
        else:
            producer.abort_transaction(timeout)


def _read_confluent(bootstrap, counts, isolation, timeout):
    from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition
    from .confluent_client import _record, consumer
    c = consumer(bootstrap, **{"isolation.level": isolation})
    got: dict[Partition, int] = {}
    try:
        c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in counts])
        deadline = time.monotonic() + timeout
        while not _complete(counts, got) and time.monotonic() < deadline:
            for msg in c.consume(num_messages=1000, timeout=0.2):
                if msg.error():
                    raise KafkaException(msg.error())
                got[(msg.topic(), msg.partition())] = got.get((msg.topic(), msg.partition()), 0) + 1
                yield msg.topic(), _record(msg)
    finally:
        c.close()


# --- kafka-python ----------------------------------------------------------------

def _transact_kafka_python(bootstrap, transactional_id, transactions, timeout):
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="interop-kafka-python",
                             transactional_id=transactional_id, enable_idempotence=True,
                             acks="all", linger_ms=5, request_timeout_ms=15_000)
    try:
        producer.init_transactions()
        for t in transactions:
            producer.begin_transaction()
            futures = [producer.send(topic, key=key, value=value, partition=partition)
                       for topic, partition, key, value in t.records]
            producer.flush(timeout=timeout)
            for future in futures:
                future.get(timeout=0)
            if t.commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(timeout=5)


def _read_kafka_python(bootstrap, counts, isolation, timeout):
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="interop-kafka-python",
                             group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100,
                             request_timeout_ms=15_000, isolation_level=isolation)
    got: dict[Partition, int] = {}
    try:
        tps = [TopicPartition(t, p) for t, p in counts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while not _complete(counts, got) and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                got[(tp.topic, tp.partition)] = got.get((tp.topic, tp.partition), 0) + len(batch)
                for r in batch:
                    yield tp.topic, record_from_consumer_record(r)
    finally:
        consumer.close(autocommit=False)


# --- aiokafka -------------------------------------------------------------------

def _transact_aiokafka(bootstrap, transactional_id, transactions, timeout):
    asyncio.run(asyncio.wait_for(_atransact(bootstrap, transactional_id, transactions), timeout))


async def _atransact(bootstrap, transactional_id, transactions):
    from aiokafka import AIOKafkaProducer
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="interop-aiokafka",
                                transactional_id=transactional_id, enable_idempotence=True,
                                acks="all", linger_ms=5, request_timeout_ms=15_000)
    await producer.start()
    try:
        for t in transactions:
            await producer.begin_transaction()
            futures = [await producer.send(topic, key=key, value=value, partition=partition)
                       for topic, partition, key, value in t.records]
            for future in futures:
                await future
            if t.commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()


def _read_aiokafka(bootstrap, counts, isolation, timeout):
    return asyncio.run(_aread(bootstrap, counts, isolation, timeout))


async def _aread(bootstrap, counts, isolation, timeout):
    from aiokafka import AIOKafkaConsumer, TopicPartition
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="interop-aiokafka",
                                group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100,
                                request_timeout_ms=15_000, isolation_level=isolation)
    await consumer.start()
    out = []
    got: dict[Partition, int] = {}
    try:
        tps = [TopicPartition(t, p) for t, p in counts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not _complete(counts, got) and loop.time() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                got[(tp.topic, tp.partition)] = got.get((tp.topic, tp.partition), 0) + len(batch)
                out += [(tp.topic, record_from_consumer_record(r)) for r in batch]
        return out
    finally:
        await consumer.stop()


# --- kafkajs and the Java client (programs) ---------------------------------------------

def wire_records(records) -> list:
    """(topic, partition, key, value) tuples as the programs take them: bytes in base64."""
    return [[t, p, _b64(k), _b64(v)] for t, p, k, v in records]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _transaction_lines(transactions) -> bytes:
    return "".join(json.dumps({"records": wire_records(tx.records), "commit": tx.commit}) + "\n"
                   for tx in transactions).encode()


def _transact_kafkajs(bootstrap, transactional_id, transactions, timeout):
    kafkajs_client.run(["transact", "--bootstrap", bootstrap, "--transactional-id", transactional_id],
                       stdin=_transaction_lines(transactions), timeout=timeout)


def _partition_args(counts) -> list[str]:
    args = []
    for (topic, partition), count in counts.items():
        args += ["--partition", f"{topic}:{partition}:{count}"]
    return args


def _read_kafkajs(bootstrap, counts, isolation, timeout):
    args = ["read", "--bootstrap", bootstrap, "--group", f"interop-{uuid.uuid4().hex}",
            "--timeout-ms", str(int(timeout * 1000)), *_partition_args(counts)]
    if isolation == "read_uncommitted":
        args.append("--read-uncommitted")
    out = kafkajs_client.run(args, timeout=timeout + 30)
    return [(json.loads(line)["topic"], record_from_json(line)) for line in out.splitlines() if line.strip()]


def _transact_java(bootstrap, transactional_id, transactions, timeout):
    with java_client.txn_session(bootstrap, transactional_id, timeout=timeout) as session:
        session.call("init")
        for t in transactions:
            session.call("begin")
            session.call("send", records=wire_records(t.records))
            session.call("commit" if t.commit else "abort")


def _read_java(bootstrap, counts, isolation, timeout):
    args = ["read", "--bootstrap", bootstrap, "--isolation", isolation,
            "--timeout-ms", str(int(timeout * 1000)), *_partition_args(counts)]
    out = java_client.run(args, timeout=timeout + 30, ok_codes=(0, 3)).stdout.decode()
    return [(json.loads(line)["topic"], record_from_json(line)) for line in out.splitlines() if line.strip()]


def read_all(bootstrap: str, topic: str, *, isolation: str = "read_committed",
             timeout: float = 120.0) -> dict[int, list[Record]]:
    """Every partition of `topic` from its beginning to its end offset (the
    last stable offset at read_committed) as the read starts, through the
    Java client, whose position moves past control records: partition ->
    its records in offset order."""
    out = java_client.run(["read-all", "--bootstrap", bootstrap, "--isolation", isolation,
                           "--topic", topic, "--timeout-ms", str(int(timeout * 1000))],
                          timeout=timeout + 30).stdout.decode()
    got: dict[int, list[Record]] = {}
    for line in out.splitlines():
        if line.strip():
            record = record_from_json(line)
            got.setdefault(record.partition, []).append(record)
    return got


def read_committed_until(bootstrap: str, topic: str, count: int, timeout: float = 120.0
                         ) -> dict[int, list[Record]]:
    """read_all at read_committed until it holds `count` records or `timeout`
    passed: commitTransaction returns once the commit is decided, the markers
    (and so the last stable offset) follow."""
    deadline = time.monotonic() + timeout
    while True:
        output = read_all(bootstrap, topic, timeout=timeout)
        if sum(map(len, output.values())) >= count or time.monotonic() > deadline:
            return output
        time.sleep(0.5)


def produce_spread(bootstrap: str, topic: str, count: int, partitions: int) -> dict[int, list[bytes]]:
    """`count` records (key i, value "p:i") spread round-robin over the
    partitions by confluent-kafka, idempotent and acks=all: the input of a
    consume-transform-produce run. partition -> its values in order."""
    from confluent_kafka import KafkaException, Producer
    from .confluent_client import producer_config, send_with_backpressure
    from .messages import Message
    producer = Producer(producer_config(bootstrap, idempotent=True, **{"linger.ms": 20}))
    failed = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))

    sent: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for i in range(count):
        partition = i % partitions
        value = b"%d:%d" % (partition, i)
        send_with_backpressure(producer, topic, Message(b"%d" % i, value), partition, on_delivery)
        sent[partition].append(value)
    remaining = producer.flush(120)
    if remaining or failed:
        raise KafkaException(f"{remaining} records unreported after 120 s, failures: {failed[:5]}")
    return sent


def coordinator_partition(transactional_id: str, partitions: int) -> int:
    """The __transaction_state partition whose leader coordinates
    `transactional_id`: Utils.abs(String.hashCode) % partitions, as Kafka's
    TransactionStateManager.partitionFor."""
    h = 0
    for unit in _utf16_units(transactional_id):
        h = (31 * h + unit) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
