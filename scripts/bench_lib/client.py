"""One workload step driven with librdkafka (confluent-kafka), in a process
of its own so that client state never leaks from one run into the next.

    python -m bench_lib.client '{"step": "produce", "bootstrap": "...", "topic": "...", ...}'

When the step is about to start its timed part (the topic exists, the client
is connected, the optional warm-up is done) it prints ``ready`` and waits for
a line on stdin, so that whoever runs it can start measuring the broker (CPU
time, a profile) over exactly that part. Then it prints one JSON object:
what the step measured, including its own CPU time per message, so the
client's share of the two cores can be read too.
"""
from __future__ import annotations

import json
import math
import struct
import sys
import threading
import time
from typing import Callable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Records handed to produce_batch per call, all to one partition (the calls
# go round the partitions): far cheaper per message than produce() from Python.
CHUNK = 1000
TIMEOUT_S = 30

# librdkafka's consumer stops prefetching once queued.min.messages are queued
# and then waits fetch.queue.backoff.ms (1 s by default) before fetching again;
# with the defaults that pause would be measured as the broker's.
CONSUMER_PREFETCH = {"queued.min.messages": 1_000_000, "fetch.queue.backoff.ms": 1}


def _common(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, "log_level": 3}


def create_topic(bootstrap: str, topic: str, partitions: int, admin: AdminClient | None = None,
                 replication_factor: int = 1, replica_assignment: list[list[int]] | None = None) -> None:
    """Create ``topic``: ``partitions`` partitions of ``replication_factor``
    replicas placed by the broker, or as ``replica_assignment`` says (one
    list of broker ids per partition, the preferred leader first)."""
    admin = admin or AdminClient(_common(bootstrap))
    new = (NewTopic(topic, len(replica_assignment), -1, replica_assignment=replica_assignment)
           if replica_assignment is not None
           else NewTopic(topic, partitions, replication_factor))
    for future in admin.create_topics([new], operation_timeout=TIMEOUT_S).values():
        future.result(TIMEOUT_S)


def _producer_config(bootstrap: str, acks: str, idempotent: bool) -> dict:
    config = {**_common(bootstrap), "acks": acks, "delivery.report.only.error": True}
    if idempotent:
        config["enable.idempotence"] = True
    return config


def _produce_share(producer: Producer, topic: str, partitions: int, count: int, payload: bytes,
                   first_partition: int, errors: list) -> None:
    """Produce ``count`` copies of ``payload`` in chunks that go round the partitions."""
    chunk = [{"value": payload} for _ in range(min(CHUNK, max(1, count // partitions)))]
    partition = first_partition % partitions
    remaining = count
    while remaining:
        batch = chunk if remaining >= len(chunk) else chunk[:remaining]
        queued = producer.produce_batch(topic, batch, partition=partition)
        remaining -= queued
        if queued < len(batch):  # the local queue is full: let deliveries drain it
            for message in batch:
                message.pop("_error", None)
            producer.poll(0.001)
        else:
            partition = (partition + 1) % partitions
    producer.flush()
    errors.extend(producer.errors)


class _Producer(Producer):
    """A producer that keeps its delivery errors (only errors are reported)."""

    def __init__(self, config: dict):
        self.errors: list[str] = []
        super().__init__({**config, "error_cb": self._on_error, "on_delivery": self._on_delivery})

    def _on_error(self, error) -> None:
        if error.fatal():
            self.errors.append(str(error))

    def _on_delivery(self, error, message) -> None:
        if error is not None:
            self.errors.append(str(error))


def _no_wait() -> None:
    pass


def _produce_transactions(producer: Producer, topic: str, partitions: int, count: int, payload: bytes,
                          per_transaction: int, commit_ns: list[int]) -> None:
    """Produce ``count`` copies of ``payload`` in transactions of
    ``per_transaction`` messages spread over the partitions, each committed.
    The time of each commit alone (EndTxn, answered once the markers are
    written) goes to ``commit_ns``: the messages are flushed before it."""
    remaining = count
    while remaining:
        size = min(per_transaction, remaining)
        producer.begin_transaction()
        share = -(-size // partitions)
        queued = 0
        for partition in range(partitions):
            n = min(share, size - queued)
            if n <= 0:
                break
            left = n
            while left:
                batch = [{"value": payload} for _ in range(left)]
                left -= producer.produce_batch(topic, batch, partition=partition)
                if left:  # the local queue is full: let deliveries drain it
                    producer.poll(0.001)
            queued += n
        producer.flush(TIMEOUT_S)
        t0 = time.perf_counter_ns()
        producer.commit_transaction(TIMEOUT_S)
        commit_ns.append(time.perf_counter_ns() - t0)
        remaining -= size


def produce(bootstrap: str, topic: str, partitions: int, count: int, size: int, acks: str = "all",
            idempotent: bool = False, producers: int = 1, replication_factor: int = 1, existing: bool = False,
            transaction_size: int = 0, ready: Callable[[], None] = _no_wait) -> dict:
    """Throughput of ``producers`` producers writing ``count`` messages of
    ``size`` bytes in all (after warm-up messages), timed from the
    first message to the last ack, into a new topic of ``replication_factor``
    (or an ``existing`` one).
    Every message must be acked without error (high watermarks are not
    checked: Tansu 0.6 reports them wrong). With ``transaction_size``, one
    transactional producer writes them in committed transactions of that many
    messages, and the figures include the commits' latency."""
    if transaction_size:
        return _produce_transactional(bootstrap, topic, partitions, count, size, transaction_size,
                                      replication_factor, existing, ready)
    if not existing:
        create_topic(bootstrap, topic, partitions, replication_factor=replication_factor)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    clients = [_Producer(_producer_config(bootstrap, acks, idempotent)) for _ in range(producers)]
    for client in clients:
        # Connected to every partition's leader, metadata known, and
        # (idempotent) a producer id acquired: librdkafka holds messages back
        # until it has one, and its first attempt may wait a retry interval, a
        # client start-up stall that the sink showed as much as the brokers.
        # The warm-up messages (one per partition) are not counted.
        client.list_topics(topic, timeout=TIMEOUT_S)
        for partition in range(partitions):
            client.produce(topic, payload, partition=partition)
        client.flush(TIMEOUT_S)
    shares = [count // producers + (i < count % producers) for i in range(producers)]
    errors: list[str] = []
    threads = [
        threading.Thread(target=_produce_share, args=(c, topic, partitions, n, payload, i, errors))
        for i, (c, n) in enumerate(zip(clients, shares))
    ]
    ready()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, the first: {errors[0]}")
    return _throughput(count, size, seconds, cpu)


def _produce_transactional(bootstrap: str, topic: str, partitions: int, count: int, size: int,
                           transaction_size: int, replication_factor: int, existing: bool,
                           ready: Callable[[], None]) -> dict:
    if not existing:
        create_topic(bootstrap, topic, partitions, replication_factor=replication_factor)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    producer = _Producer({**_producer_config(bootstrap, "all", True), "transactional.id": f"bench-{topic}"})
    producer.init_transactions(TIMEOUT_S)
    producer.list_topics(topic, timeout=TIMEOUT_S)
    commit_ns: list[int] = []
    # Warm-up: one transaction through every partition (not counted).
    _produce_transactions(producer, topic, partitions, partitions, payload, partitions, [])
    ready()
    cpu0, t0 = time.process_time(), time.perf_counter()
    _produce_transactions(producer, topic, partitions, count, payload, transaction_size, commit_ns)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if producer.errors:
        raise RuntimeError(f"{len(producer.errors)} delivery errors, the first: {producer.errors[0]}")
    return {**_throughput(count, size, seconds, cpu), **_latency_figures("commit", commit_ns)}


def consume(bootstrap: str, topic: str, partitions: int, count: int, size: int, isolation: str = "read_uncommitted",
            ready: Callable[[], None] = _no_wait) -> dict:
    """Throughput of one consumer reading ``count`` messages from offset 0 of
    every partition (assigned, no group: group coordination is not measured)
    at the given isolation level (``read_committed`` or ``read_uncommitted``;
    the transaction markers among the records are not counted)."""
    consumer = Consumer({**_common(bootstrap), **CONSUMER_PREFETCH, "group.id": "bench",
                         "enable.auto.commit": False, "auto.offset.reset": "error", "isolation.level": isolation})
    leaders = {p.leader: p.id for p in consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic].partitions.values()}
    if len(leaders) > 1:  # a cluster: connected to every leader before the timed part (the sink has no ListOffsets)
        for partition in leaders.values():
            consumer.get_watermark_offsets(TopicPartition(topic, partition), TIMEOUT_S)
    received = 0
    ready()
    cpu0, t0 = time.process_time(), time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    last_progress = t0
    while received < count:
        # Asking for no more than is left: consume() returns when the batch is full.
        messages = consumer.consume(min(10_000, count - received), 0.5)
        for message in messages:
            if message.error() is not None:
                raise KafkaException(message.error())
        received += len(messages)
        now = time.perf_counter()
        if messages:
            last_progress = now
        elif now - last_progress > TIMEOUT_S:
            raise RuntimeError(f"consumed {received} of {count} messages, then nothing for {TIMEOUT_S} s")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    consumer.close()
    return _throughput(count, size, seconds, cpu)


def rounds(bootstrap: str, topic: str, partitions: int, count: int, size: int, rounds: int, acks: str = "all",
           ready: Callable[[], None] = _no_wait) -> dict:
    """``rounds`` rounds on one new topic, each timed on its own: one
    producer writes ``count`` messages, then one consumer reads them from
    where the round began (for whoever runs it to change something between
    rounds, such as whether a log cleaner works). Before each round it waits
    for its go; after each it prints that round's figures (a JSON line), and
    at the end returns the number of rounds."""
    create_topic(bootstrap, topic, partitions)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    producer = _Producer(_producer_config(bootstrap, acks, False))
    producer.list_topics(topic, timeout=TIMEOUT_S)
    for partition in range(partitions):  # connected, the first batch of each partition not timed
        producer.produce(topic, payload, partition=partition)
    producer.flush(TIMEOUT_S)
    consumer = Consumer({**_common(bootstrap), **CONSUMER_PREFETCH, "group.id": "bench", "enable.auto.commit": False,
                         "auto.offset.reset": "error"})
    # Where each round starts: the ends of the warm-up, then where the
    # consumer stopped (it reads every message of a round). Asked of the
    # broker only now: with the consumer fetching, a ListOffsets would wait
    # behind its fetch's long poll.
    starts = [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT_S)[1])
              for p in range(partitions)]
    for done in range(rounds):
        ready()
        errors: list[str] = []
        t0 = time.perf_counter()
        _produce_share(producer, topic, partitions, count, payload, done, errors)
        produce_s = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"{len(errors)} delivery errors, the first: {errors[0]}")
        producer.errors.clear()
        t1 = time.perf_counter()
        consumer.assign(starts)
        received = 0
        while received < count:
            messages = consumer.consume(min(10_000, count - received), TIMEOUT_S)
            if not messages:
                raise RuntimeError(f"round {done + 1}: consumed {received} of {count} messages, then nothing "
                                   f"for {TIMEOUT_S} s")
            for message in messages:
                if message.error() is not None:
                    raise KafkaException(message.error())
            received += len(messages)
        consume_s = time.perf_counter() - t1
        starts = consumer.position(starts)
        print(json.dumps({"produce_msg_per_s": count / produce_s, "consume_msg_per_s": count / consume_s,
                          "produce_s": produce_s, "consume_s": consume_s}), flush=True)
    consumer.close()
    return {"rounds": rounds}


def _throughput(count: int, size: int, seconds: float, cpu: float) -> dict:
    return {"messages": count, "seconds": seconds, "msg_per_s": count / seconds,
            "mb_per_s": count * size / seconds / 1e6, "client_cpu_us_per_msg": cpu / count * 1e6}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _latency_figures(prefix: str, samples_ns: list[int]) -> dict:
    values = sorted(v / 1e6 for v in samples_ns)
    if not values:
        raise RuntimeError(f"no {prefix} latency samples")
    return {f"{prefix}_p50_ms": percentile(values, 50), f"{prefix}_p99_ms": percentile(values, 99),
            f"{prefix}_p999_ms": percentile(values, 99.9), f"{prefix}_max_ms": values[-1]}


def latency(bootstrap: str, topic: str, rate: int, seconds: float, size: int, with_consumer: bool,
            warmup_seconds: float = 1.0, replication_factor: int = 1, linger_ms: float = 0,
            ready: Callable[[], None] = _no_wait) -> dict:
    """Produce at a steady ``rate`` into one partition and time each message's
    ack (delivery report) and, ``with_consumer``, its arrival at a consumer
    that uses the default fetch wait. The producer sends at once
    (linger.ms=0) unless told otherwise: a linger would be measured as the
    broker's latency."""
    create_topic(bootstrap, topic, 1, replication_factor=replication_factor)
    total = int(rate * (warmup_seconds + seconds))
    skip = int(rate * warmup_seconds)
    sent = [0] * total
    acked = [0] * total
    arrived = [0] * total
    seq = struct.Struct(">Q")
    padding = bytes(max(0, size - seq.size))
    errors: list[str] = []
    done = threading.Event()

    def on_delivery(error, message) -> None:
        now = time.perf_counter_ns()
        if error is not None:
            errors.append(str(error))
        else:
            acked[seq.unpack_from(message.value())[0]] = now

    producer = Producer({**_common(bootstrap), "acks": "all", "linger.ms": linger_ms})
    producer.list_topics(topic, timeout=TIMEOUT_S)
    # One message acknowledged before anything is timed (the consumer starts
    # after it). With replication, a follower whose first fetch reaches the
    # leader before the leader has taken the new partition on (LeaderAndIsr
    # reaches the brokers in no set order) is answered NOT_LEADER_OR_FOLLOWER
    # or UNKNOWN_TOPIC_ID and backs off for replica.fetch.backoff.ms (1 s), as
    # Kafka's fetcher does; acks=all then waits about a second, which the 1 s
    # warm-up did not always cover (p99s of 461-578 ms in the runs it hit).
    producer.produce(topic, b"", partition=0)
    if producer.flush(TIMEOUT_S):
        raise RuntimeError("the first message was not acknowledged")

    def serve_acks() -> None:
        while not done.is_set():
            producer.poll(0.05)

    consumer_started = threading.Event()

    def read() -> None:
        consumer = Consumer({**_common(bootstrap), **CONSUMER_PREFETCH, "group.id": "bench-latency",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, 0, 1)])  # (after the first message)
        consumer_started.set()
        received = 0
        while received < total and not done.is_set():
            message = consumer.poll(0.1)
            if message is None:
                continue
            now = time.perf_counter_ns()
            if message.error() is not None:
                errors.append(str(message.error()))
                continue
            arrived[seq.unpack_from(message.value())[0]] = now
            received += 1
        consumer.close()

    threads = [threading.Thread(target=serve_acks, daemon=True)]
    if with_consumer:
        threads.append(threading.Thread(target=read, daemon=True))
    for t in threads:
        t.start()
    try:
        if with_consumer and not consumer_started.wait(TIMEOUT_S):
            raise RuntimeError("the consumer did not start")
        ready()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(total):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent[i] = time.perf_counter_ns()
            producer.produce(topic, seq.pack(i) + padding, partition=0, on_delivery=on_delivery)
        elapsed = time.perf_counter() - t0
        producer.flush(TIMEOUT_S)
        deadline = time.perf_counter() + TIMEOUT_S
        while with_consumer and not all(arrived[skip:]) and time.perf_counter() < deadline:
            time.sleep(0.01)
    finally:
        done.set()
        for t in threads:
            t.join()
    cpu = time.process_time() - cpu0
    if errors:
        raise RuntimeError(f"{len(errors)} errors, the first: {errors[0]}")
    measured = range(skip, total)
    unacked = sum(1 for i in measured if not acked[i])
    if unacked:
        raise RuntimeError(f"{unacked} messages were never acked")
    figures = {"messages": total, "achieved_rate": total / elapsed, "client_cpu_us_per_msg": cpu / total * 1e6}
    figures.update(_latency_figures("ack", [acked[i] - sent[i] for i in measured]))
    if with_consumer:
        missing = sum(1 for i in measured if not arrived[i])
        if missing:
            raise RuntimeError(f"{missing} messages never reached the consumer")
        figures.update(_latency_figures("e2e", [arrived[i] - sent[i] for i in measured]))
    return figures


def create(bootstrap: str, topic: str, partitions: int, replication_factor: int = 1,
           replica_assignment: list[list[int]] | None = None, ready: Callable[[], None] = _no_wait) -> dict:
    """The time a CreateTopics of ``partitions`` partitions (replication
    factor 1 unless told otherwise) takes to be answered: Kafka answers once
    the topic exists, every partition with a leader."""
    admin = AdminClient(_common(bootstrap))
    admin.list_topics(timeout=TIMEOUT_S)  # connected: the client's start-up is not timed
    ready()
    t0 = time.perf_counter()
    create_topic(bootstrap, topic, partitions, admin, replication_factor, replica_assignment)
    return {"messages": 1, "create_s": time.perf_counter() - t0}


def metadata(bootstrap: str, topic: str, partitions: int, requests: int, ready: Callable[[], None] = _no_wait) -> dict:
    """Latency of a Metadata request (v12, as librdkafka sends) for one topic
    of ``partitions`` partitions, one request at a time on one connection to
    the first broker, the answer read but not decoded (the client's decoding
    is not the broker's time)."""
    from .cluster import MetadataConnection

    create_topic(bootstrap, topic, partitions)
    host, port = bootstrap.split(",")[0].split(":")
    connection = MetadataConnection(host, int(port), topic)
    deadline = time.perf_counter() + TIMEOUT_S
    while not all(p.leader_id >= 0 for t in connection.ask().topics for p in t.partitions):
        if time.perf_counter() > deadline:  # (a cluster's other brokers learn of a topic a moment later)
            raise RuntimeError(f"the broker at {host}:{port} does not show a leader for every partition")
        time.sleep(0.01)
    # CreateTopics is answered once the partitions have leaders; their logs are
    # made just after (on every broker of a cluster): not part of this figure.
    # Once every partition has taken a message, every leader has its log.
    producer = _Producer(_producer_config(bootstrap, "1", False))
    for partition in range(partitions):
        producer.produce(topic, b"", partition=partition)
    producer.flush(TIMEOUT_S)
    if producer.errors or len(producer):
        raise RuntimeError(f"the topic's partitions did not all take a message: {producer.errors[:1]}")
    for _ in range(100):
        connection.round_trip()
    samples = []
    ready()
    cpu0 = time.process_time()
    for _ in range(requests):
        t0 = time.perf_counter_ns()
        connection.round_trip()
        samples.append(time.perf_counter_ns() - t0)
    cpu = time.process_time() - cpu0
    connection.close()
    return {"messages": requests, "client_cpu_us_per_msg": cpu / requests * 1e6,
            **_latency_figures("metadata", samples)}


def warm_up(bootstrap: str, topic: str) -> None:
    """Produce and fetch once, so that neither side's first-use costs land
    in a measurement."""
    produce(bootstrap, topic, 1, 2 * CHUNK, 100, "1")
    consume(bootstrap, topic, 1, 2 * CHUNK, 100)


STEPS = {"produce": produce, "consume": consume, "rounds": rounds, "latency": latency, "create": create,
         "metadata": metadata}


def _wait_for_go() -> None:
    print("ready", flush=True)
    if not sys.stdin.readline():
        raise SystemExit("stdin closed before the go")


def main() -> None:
    spec = json.loads(sys.argv[1])
    step = STEPS[spec.pop("step")]
    warm_up_topic = spec.pop("warm_up", None)
    if warm_up_topic:
        warm_up(spec["bootstrap"], warm_up_topic)
    print(json.dumps(step(**spec, ready=_wait_for_go)), flush=True)


if __name__ == "__main__":
    main()
