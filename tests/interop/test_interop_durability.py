"""What survives a broker restart: everything after a graceful stop, every
acknowledged message after kill -9."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from confluent_kafka import Producer
from kafka.admin import ConfigResource, ConfigResourceType

from interop import confluent_client
from interop.admin import admin_client, offset_range
from interop.clients import CONSUMERS, PRODUCERS
from interop.messages import Message, binary_messages, now_ms
from interop.verify import assert_delivered_in_order, assert_same_messages


def test_graceful_restart_keeps_topics_configs_and_messages(own_broker, new_topic):
    configs = {"retention.ms": "86400000", "max.message.bytes": "2000000"}
    wide = new_topic(partitions=3, configs=configs)
    narrow = new_topic()
    sent_wide = {p: binary_messages(300, seed=p) for p in range(3)}
    for partition, messages in sent_wide.items():
        PRODUCERS["confluent-kafka"](own_broker.bootstrap, wide, messages, partition=partition)
    sent_narrow = binary_messages(500, seed=10)
    PRODUCERS["kafka-python"](own_broker.bootstrap, narrow, sent_narrow)

    assert own_broker.stop() == 0, "SIGTERM should shut the broker down cleanly (exit code 0)"
    own_broker.start()

    with admin_client(own_broker.bootstrap) as client:
        assert {wide, narrow} <= set(client.list_topics())
        [described] = client.describe_topics([wide])
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]
        modified = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, wide)])
        assert {k: v["value"] for k, v in modified["topic"][wide].items()} == configs
    for partition, messages in sent_wide.items():
        records = CONSUMERS["aiokafka"](own_broker.bootstrap, wide, len(messages),
                                        partition=partition)
        assert_same_messages(messages, records)

    # Appends carry on from the recovered log end offset.
    more = binary_messages(100, seed=11, base_timestamp=now_ms() - 1_000)
    offsets = PRODUCERS["confluent-kafka"](own_broker.bootstrap, narrow, more)
    assert_delivered_in_order(offsets, len(more), base_offset=len(sent_narrow))
    records = CONSUMERS["kafka-python"](own_broker.bootstrap, narrow, len(sent_narrow) + len(more))
    assert_same_messages(sent_narrow + more, records)


# --- kill -9 in the middle of a produce stream ----------------------------

KILL_AFTER_ACKED = 1_500  # kill -9 once this many messages are acknowledged,
QUEUED_WHILE_DOWN = 1_000  # queue this many more while the broker is down,
SENT_AFTER_RESTART = 1_500  # and send this many more after the restart
MAX_QUEUED = 2_000  # unacknowledged messages to hold before waiting (broker up)
STREAM_TIMEOUT = 60.0


def payload(index: int) -> bytes:
    return b"crash-%07d" % index


@dataclass
class CrashRun:
    sent: int = 0
    acked: dict[int, int] = field(default_factory=dict)  # message index -> acked offset
    failed: dict[int, str] = field(default_factory=dict)
    acked_before_kill: set[int] = field(default_factory=set)
    unacked_at_kill: int = 0


def produce_through_crash(broker, topic: str, *, idempotent: bool) -> CrashRun:
    """Stream messages with acks=all; kill -9 the broker mid-stream, queue more
    while it is down, restart it on the same port and data, send more, flush."""
    run = CrashRun()
    producer = Producer(confluent_client.producer_config(
        broker.bootstrap, idempotent=idempotent,
        **{"max.in.flight.requests.per.connection": 5 if idempotent else 1,
           "linger.ms": 2, "batch.num.messages": 100, "message.timeout.ms": 90_000,
           "retry.backoff.ms": 50, "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200}))

    def reporter(index):
        def on_delivery(err, msg):
            if err is None:
                run.acked[index] = msg.offset()
            else:
                run.failed[index] = str(err)
        return on_delivery

    def send(until) -> None:
        deadline = time.monotonic() + STREAM_TIMEOUT
        while not until():
            assert time.monotonic() < deadline, (
                f"stream stalled: {run.sent} sent, {len(run.acked)} acknowledged, "
                f"{len(run.failed)} failed: {list(run.failed.values())[:3]}")
            if broker.running() and len(producer) >= MAX_QUEUED:
                producer.poll(0.05)
                continue
            confluent_client.send_with_backpressure(
                producer, topic, Message(b"k%d" % (run.sent % 16), payload(run.sent)), 0,
                reporter(run.sent))
            run.sent += 1

    # (Until some are unreported too: on a busy machine every report can be
    # in by the time the count is reached, and the kill must find writes in
    # flight for the retries to be tested.)
    send(until=lambda: len(run.acked) >= KILL_AFTER_ACKED and run.sent > len(run.acked) + len(run.failed))
    # Delivery callbacks run only inside poll() on this thread, so this
    # snapshot can't race with them.
    run.acked_before_kill = set(run.acked)
    run.unacked_at_kill = run.sent - len(run.acked) - len(run.failed)
    broker.kill9()
    down_until = run.sent + QUEUED_WHILE_DOWN
    send(until=lambda: run.sent >= down_until)
    broker.start()
    total = run.sent + SENT_AFTER_RESTART
    send(until=lambda: run.sent >= total)
    unreported = producer.flush(120)
    assert unreported == 0, f"{unreported} messages without a delivery report after flush"
    return run


def log_payloads(broker, topic: str) -> list[bytes]:
    """Every record of partition 0, checked to sit at contiguous offsets."""
    start, end = offset_range(broker.bootstrap, topic)
    assert start == 0
    records = CONSUMERS["confluent-kafka"](broker.bootstrap, topic, end)
    assert [r.offset for r in records] == list(range(end)), "log offsets are not contiguous"
    return [r.value for r in records]


def test_kill9_keeps_every_acknowledged_message(own_broker, new_topic):
    """Without idempotence a batch written just before the kill but never
    acknowledged is retried after the restart, so it may be in the log twice;
    everything acknowledged before the kill is there exactly once, and every
    acknowledgement points at its own message."""
    topic = new_topic()
    run = produce_through_crash(own_broker, topic, idempotent=False)
    assert run.unacked_at_kill > 0, "the kill came while nothing was in flight"
    assert set(run.acked) - run.acked_before_kill, "nothing was acknowledged after the restart"

    log = log_payloads(own_broker, topic)
    sent = {payload(i): i for i in range(run.sent)}
    strangers = [p for p in log if p not in sent]
    assert not strangers, f"records nobody sent: {strangers[:5]}"
    for index, offset in run.acked.items():
        assert log[offset] == payload(index), (
            f"message {index} was acknowledged at offset {offset}, which holds {log[offset]!r}")
    copies = Counter(log)
    for index in run.acked_before_kill:
        assert copies[payload(index)] == 1, f"message {index} (acked before the kill) " \
                                            f"is in the log {copies[payload(index)]} times"
    assert max(copies.values()) <= 2, "one crash can duplicate a message at most once"
    # One request in flight at a time: acknowledgements follow send order.
    acked_in_send_order = [run.acked[i] for i in sorted(run.acked)]
    assert acked_in_send_order == sorted(acked_in_send_order), "acknowledged out of order"


def test_kill9_with_idempotent_producer_keeps_exactly_once(own_broker, new_topic):
    """With idempotence the retried batch carries its old sequence number: a
    broker that rebuilt its producer state from the log after the crash
    recognises the duplicate, so the log holds every message exactly once."""
    topic = new_topic()
    run = produce_through_crash(own_broker, topic, idempotent=True)
    assert run.unacked_at_kill > 0, "the kill came while nothing was in flight"
    assert not run.failed, f"{len(run.failed)} deliveries failed: {list(run.failed.items())[:3]}"

    log = log_payloads(own_broker, topic)
    assert len(log) == run.sent, f"{len(log)} records for {run.sent} messages"
    for offset, value in enumerate(log):
        assert value == payload(offset), f"offset {offset} holds {value!r}"
    assert run.acked == {i: i for i in range(run.sent)}, "acknowledged offsets differ from the log"


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill9"])
def test_topic_survives_restart_on_the_same_port(own_broker, new_topic, crash):
    topic = new_topic()
    port = own_broker.port
    if crash:
        own_broker.kill9()
    own_broker.restart()
    assert own_broker.port == port
    sent = binary_messages(50, seed=12)
    PRODUCERS["aiokafka"](own_broker.bootstrap, topic, sent)
    assert_same_messages(sent, CONSUMERS["confluent-kafka"](own_broker.bootstrap, topic, 50))
