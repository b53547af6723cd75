"""Exactly once end to end through one broker killed with SIGKILL midway
(issue 12): the Java client's consume-transform-produce loop
(sendOffsetsToTransaction) over 100,000 records, and Kafka Streams' word
count with processing.guarantee=exactly_once_v2.

What was committed is compared with what can be read back, record by record:
every input record is in the output exactly once, transformed, in its
partition's order, and the group's committed offsets are the input's ends;
every word's count history at read_committed only ever grows, to the
exact count. INTEROP_TXN_BROKER=kafka runs them against
Apache Kafka (tests/interop/txn_brokers.py).
"""
from __future__ import annotations

import uuid
from collections import Counter

import pytest

from interop import admin, streams_app, transactions
from interop.java_client import ConsumeTransformProduce
from interop.streams_app import WordCountApp

from .test_interop_streams import (DOWN_LINES, INPUT_PARTITIONS, STREAM_LINES, LineStream, corpus,
                                   stream_until_processing, word_counts)
from .txn_brokers import TxnBroker

PARTITIONS = 4
MESSAGES = 100_000


@pytest.fixture
def txn_broker(tmp_path):
    broker = TxnBroker(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_consume_transform_produce_exactly_once_through_broker_kill9(txn_broker, topic_name):
    """100,000 records through the Java client's read_committed consumer and
    transactional producer, offsets sent to each transaction; the broker is
    killed (SIGKILL) once half are committed and restarted on the same data.
    The output at read_committed is the input transformed, each record once,
    in order; the group committed exactly the input's end offsets."""
    bootstrap = txn_broker.bootstrap
    source, sink = topic_name("-in"), topic_name("-out")
    admin.create_topic(bootstrap, source, partitions=PARTITIONS)
    admin.create_topic(bootstrap, sink, partitions=PARTITIONS)
    sent = transactions.produce_spread(bootstrap, source, MESSAGES, PARTITIONS)
    group = f"ctp-{uuid.uuid4().hex[:8]}"

    with ConsumeTransformProduce(bootstrap, source, sink, group, f"ctp-{uuid.uuid4().hex}") as ctp:
        ctp.wait_until(lambda: ctp.committed >= MESSAGES // 2, "half committed", timeout=300)
        killed_at = ctp.committed
        txn_broker.kill9()
        txn_broker.start()
        ctp.wait(timeout=600)
    assert killed_at < MESSAGES, "the broker was killed after the loop had committed everything"

    output = transactions.read_committed_until(bootstrap, sink, MESSAGES)
    for partition, values in sent.items():
        got = [r.value for r in output.get(partition, [])]
        expected = [b"t:" + v for v in values]
        if got != expected:
            first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
                         min(len(got), len(expected)))
            pytest.fail(f"partition {partition}: {len(got)} records read, {len(expected)} expected; "
                        f"first difference at index {first}: {got[first:first + 3]} against "
                        f"{expected[first:first + 3]} (recoveries: {ctp.recoveries[:5]})")
    ends = streams_app.end_offsets(bootstrap, source)
    assert streams_app.committed(bootstrap, group, source, list(ends)) == ends


def test_streams_word_count_exactly_once_v2_through_broker_kill9(txn_broker, topic_name, tmp_path):
    """Kafka Streams' word count with processing.guarantee=exactly_once_v2:
    a steady stream of lines, the broker killed (SIGKILL) while the app is
    busy and restarted on the same data. At read_committed, the output's and
    the changelog's last count of each word is its exact count in the input
    (as stored, each line once), and each word's count history in the output
    only grows (a record counted twice, or a replayed aborted write, would
    show as a repeat or a step back)."""
    bootstrap = txn_broker.bootstrap
    source, sink = topic_name("-lines"), topic_name("-counts")
    admin.create_topic(bootstrap, source, partitions=INPUT_PARTITIONS)
    admin.create_topic(bootstrap, sink, partitions=2)
    lines = corpus(STREAM_LINES, seed=12)
    app = WordCountApp(bootstrap, source, sink, f"wc-eos-{uuid.uuid4().hex[:8]}",
                       tmp_path / "state", tmp_path / "streams.log",
                       configs={"processing.guarantee": "exactly_once_v2"})
    stream = LineStream(bootstrap, source, lines)
    with app:
        app.wait_for_state("RUNNING", timeout=90)
        stream_until_processing(stream, app)
        txn_broker.kill9()
        stream.send(DOWN_LINES)
        txn_broker.start()
        stream.finish()
        stored = streams_app.read_topic(bootstrap, source)
        assert Counter(int(key) for _, _, key, _ in stored) == Counter(range(len(lines))), (
            "the input topic should hold each line once")
        expected = dict(word_counts(value.decode() for _, _, _, value in stored))
        app.wait_until(lambda: _latest(bootstrap, sink) == expected, "exact counts in the output",
                       timeout=240)
        app.check()

    assert _latest(bootstrap, app.changelog_topic) == expected
    histories: dict[str, list[int]] = {}
    for records in transactions.read_all(bootstrap, sink).values():
        for r in records:
            histories.setdefault(r.key.decode(), []).append(streams_app.decode_count(r.value))
    not_growing = {w: h for w, h in histories.items() if any(b <= a for a, b in zip(h, h[1:]))}
    assert not not_growing, f"count histories that repeat or go back: {dict(list(not_growing.items())[:5])}"


def _latest(bootstrap: str, topic: str) -> dict[str, int]:
    """word -> its last count at read_committed ({} while the topic can't be read)."""
    try:
        output = transactions.read_all(bootstrap, topic, timeout=30)
    except Exception:  # the broker restarting, the topic not created yet
        return {}
    latest: dict[str, int] = {}
    for records in output.values():
        for r in records:
            latest[r.key.decode()] = streams_app.decode_count(r.value)
    return latest


def _output_words(bootstrap: str, topic: str) -> int:
    return len(_latest(bootstrap, topic))

