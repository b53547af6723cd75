"""Kafka Streams against our broker: the word-count application of
interop/streams (kafka-streams, the version in interop/java/kafka-version),
processing.guarantee=at_least_once, run as a process by interop/streams_app.py.

The app reads lines from a 4-partition input topic, splits them into words,
re-keys them by word (groupBy: the repartition topic <app>-words-repartition),
counts them into a RocksDB store backed by the changelog topic
<app>-counts-changelog and sends the counts to the output topic (as the
store's cache flushes, at each commit). Streams
creates the internal topics itself through the admin client (CreateTopics
with replication factor -1 and its own configs, after DescribeTopics and
DescribeConfigs), runs its own partition assignor over the classic group
protocol, commits offsets, restores the store from the changelog with a
separate assigned consumer and purges the repartition topic with
DeleteRecords: all of that is checked below through what the app writes.

The tests: exact counts without failures (and the internal topics as
Streams makes them, a restore from the changelog), a run through
kafka-streams-application-reset, at-least-once counts through a broker
kill -9 and through the app's own kill -9, and two instances sharing and
handing over the work.

The app commits every 200 ms and purges every second (Streams' defaults are
30 s each; interop/streams_app.py), and the broker starts groups without
Kafka's 3 s initial rebalance delay, so runs take seconds, not minutes.
"""
from __future__ import annotations

import random
import subprocess
import time
from collections import Counter

import pytest
from confluent_kafka import Producer
from kafka.admin import ConfigResource, ConfigResourceType

from interop import confluent_client, streams_app
from interop.admin import admin_client
from interop.reference_kafka import ROOT
from interop.streams_app import WordCountApp

INPUT_PARTITIONS = 4
KAFKA_TOOL = ROOT / "scripts" / "kafka-tool"
# A Zipf-ish vocabulary: a few words very often, many rarely, so counts range
# from a handful to thousands.
VOCABULARY = [f"w{i:03d}" for i in range(300)]
WEIGHTS = [1.0 / (rank + 1) for rank in range(len(VOCABULARY))]


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"group.initial.rebalance.delay.ms": "0"}


def corpus(lines: int, *, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(VOCABULARY, WEIGHTS, k=rng.randint(1, 12)))
            + (" " if rng.random() < 0.1 else "")  # and some trailing blanks
            for _ in range(lines)]


def word_counts(lines) -> Counter:
    counts = Counter()
    for line in lines:
        counts.update(line.lower().split())
    return counts


def produce_lines(bootstrap: str, topic: str, lines: list[str], *, first_key: int = 0) -> None:
    """Keyed by line number, so the default partitioner spreads them over
    every input partition."""
    producer = Producer(confluent_client.producer_config(bootstrap, idempotent=True))
    failed = []
    for index, line in enumerate(lines, start=first_key):
        _produce(producer, topic, index, line, failed)
    assert producer.flush(60) == 0, "input lines not delivered within 60 s"
    assert not failed, failed[:5]


def _produce(producer: Producer, topic: str, index: int, line: str, failed: list) -> None:
    def on_delivery(err, msg):
        if err is not None:
            failed.append(f"line {index}: {err}")
    while True:
        try:
            producer.produce(topic, key=b"%d" % index, value=line.encode(), on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)


def wait_until_caught_up(app: WordCountApp, timeout: float = 120.0) -> None:
    """Wait until the app's group has committed the input topic's end offsets,
    then the repartition topic's. With at_least_once, Streams flushes its
    producer (repartition, changelog and output records) before committing
    the offsets of what it consumed, so once both are committed to their
    ends everything the input produces is in the output topic."""
    deadline = time.monotonic() + timeout
    for topic in (app.input_topic, app.repartition_topic):
        while True:
            app.check()
            try:
                ends = streams_app.end_offsets(app.bootstrap, topic)
                done = streams_app.committed(app.bootstrap, app.application_id, topic, list(ends))
            except Exception as exc:  # the topic may not exist yet, the broker be restarting
                ends, done = {}, repr(exc)
            if ends and done == ends:
                break
            assert time.monotonic() < deadline, (
                f"{app.application_id} has not committed {topic}'s end offsets {ends} within "
                f"{timeout}s: committed {done}\n{app.log_tail()}")
            time.sleep(0.25)


def described_configs(bootstrap: str, topic: str) -> dict[str, tuple[str, str]]:
    """Config name -> (value, source) of a topic's configs that aren't defaults."""
    with admin_client(bootstrap) as client:
        answer = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return {name: (entry["value"], entry["config_source"])
            for name, entry in answer["topic"][topic].items()
            if entry["config_source"] != "DEFAULT_CONFIG"}


def count_histories(bootstrap: str, topic: str) -> dict[str, list[int]]:
    """word -> every count the output topic holds for it, in offset order."""
    histories: dict[str, list[int]] = {}
    partition_of: dict[str, int] = {}
    for partition, _, key, value in sorted(streams_app.read_topic(bootstrap, topic)):
        word = key.decode()
        assert partition_of.setdefault(word, partition) == partition, (
            f"{word!r} in partitions {partition_of[word]} and {partition} of {topic}")
        histories.setdefault(word, []).append(streams_app.decode_count(value))
    return histories


def test_word_count_exact(broker, new_topic, tmp_path):
    """No failures: every word's count in the output topic is exactly its
    count in the input, every count on the way was smaller (nothing counted
    twice), Streams' internal topics are as Streams asks for them, and a
    second run, its store restored from the changelog, counts on from there."""
    input_topic = new_topic(partitions=INPUT_PARTITIONS)
    output_topic = new_topic(partitions=2)
    first = corpus(3_000, seed=1)
    produce_lines(broker.bootstrap, input_topic, first)
    spread = streams_app.end_offsets(broker.bootstrap, input_topic)
    assert all(spread[p] > 0 for p in range(INPUT_PARTITIONS)), spread
    expected = word_counts(first)

    app_id = f"wordcount-{input_topic[-8:]}"
    app = WordCountApp(broker.bootstrap, input_topic, output_topic, app_id,
                       tmp_path / "state", tmp_path / "streams.log")
    with app:
        app.wait_for_state("RUNNING")
        wait_until_caught_up(app)

        histories = count_histories(broker.bootstrap, output_topic)
        assert {w: h[-1] for w, h in histories.items()} == dict(expected)
        for word, history in histories.items():
            assert history == sorted(set(history)), f"{word}: counts not increasing: {history}"

        # The internal topics: named after application.id and the names in
        # the topology, partitioned as the input topic, configured by Streams.
        with admin_client(broker.bootstrap) as client:
            topics = set(client.list_topics())
        assert {app.repartition_topic, app.changelog_topic} <= topics
        internal = {t for t in topics if t.startswith(app_id)}
        assert internal == {app.repartition_topic, app.changelog_topic}
        for topic in internal:
            assert streams_app.partitions(broker.bootstrap, topic) == list(range(INPUT_PARTITIONS))
        set_by_app = "DYNAMIC_TOPIC_CONFIG"
        assert described_configs(broker.bootstrap, app.changelog_topic) == {
            "cleanup.policy": ("compact", set_by_app),
            "message.timestamp.type": ("CreateTime", set_by_app)}
        assert described_configs(broker.bootstrap, app.repartition_topic) == {
            "cleanup.policy": ("delete", set_by_app),
            "message.timestamp.type": ("CreateTime", set_by_app),
            "retention.ms": ("-1", set_by_app),
            "segment.bytes": ("52428800", set_by_app)}
        # The changelog holds the store: its latest value per word (what
        # compaction would keep) is the count.
        assert streams_app.latest(broker.bootstrap, app.changelog_topic) == dict(expected)
        # Repartition records the app has committed are deleted by the app
        # (DeleteRecords up to its committed offsets, every purge interval).
        deadline = time.monotonic() + 30
        while True:
            ranges = streams_app.offsets(broker.bootstrap, app.repartition_topic)
            if all(start == end for start, end in ranges.values()):
                break
            assert time.monotonic() < deadline, f"repartition topic not purged: {ranges}"
            time.sleep(0.25)
    assert app.stop() == 0
    assert app.state == "NOT_RUNNING" and not app.errors()

    # A second run on a fresh state directory restores the "counts" store
    # from the changelog, then counts a second corpus on top of it.
    second = corpus(1_000, seed=2)
    produce_lines(broker.bootstrap, input_topic, second, first_key=len(first))
    expected.update(word_counts(second))
    app = WordCountApp(broker.bootstrap, input_topic, output_topic, app_id,
                       tmp_path / "state-2", tmp_path / "streams.log")
    with app:
        app.wait_for_state("RUNNING")
        wait_until_caught_up(app)
        assert streams_app.latest(broker.bootstrap, output_topic) == dict(expected)
        assert streams_app.latest(broker.bootstrap, app.changelog_topic) == dict(expected)
    assert app.stop() == 0


def test_application_reset_then_recount(broker, new_topic, tmp_path):
    """Kafka's kafka-streams-application-reset (./scripts/kafka-tool) on a
    stopped app: it rewinds the group's input offsets to the beginning and
    deletes the internal topics (DescribeGroups, ListOffsets, OffsetCommit,
    ListTopics, DeleteTopics against us); the app then run again on a fresh
    state directory counts the whole input from zero, exactly."""
    input_topic = new_topic(partitions=INPUT_PARTITIONS)
    output_topic = new_topic(partitions=2)
    lines = corpus(2_000, seed=6)
    produce_lines(broker.bootstrap, input_topic, lines)
    expected = dict(word_counts(lines))
    app_id = f"wordcount-{input_topic[-8:]}"

    def run(state_dir: str) -> WordCountApp:
        app = WordCountApp(broker.bootstrap, input_topic, output_topic, app_id,
                           tmp_path / state_dir, tmp_path / "streams.log")
        with app:
            app.wait_for_state("RUNNING")
            wait_until_caught_up(app)
            assert streams_app.latest(broker.bootstrap, output_topic) == expected
            assert streams_app.latest(broker.bootstrap, app.changelog_topic) == expected
            assert app.stop() == 0
        return app

    app = run("state-1")
    internal = sorted([app.changelog_topic, app.repartition_topic])
    reset = subprocess.run(
        [str(KAFKA_TOOL), "kafka-streams-application-reset", "--bootstrap-server",
         broker.bootstrap, "--application-id", app_id, "--input-topics", input_topic],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert reset.returncode == 0, reset.stderr
    said = reset.stdout.splitlines()
    for partition in range(INPUT_PARTITIONS):  # (in no particular order)
        assert f"Topic: {input_topic} Partition: {partition} Offset: 0" in said, reset.stdout
    [deleting] = [line for line in said if line.startswith("Deleting inferred internal topics ")]
    assert sorted(deleting.split(" [", 1)[1].rstrip("]").split(", ")) == internal, reset.stdout
    with admin_client(broker.bootstrap) as client:
        assert not set(internal) & set(client.list_topics())
    assert streams_app.committed(broker.bootstrap, app_id, input_topic,
                                 list(range(INPUT_PARTITIONS))) == dict.fromkeys(range(INPUT_PARTITIONS), 0)
    # Counted again from zero: the output's latest counts (and the new
    # changelog's) are the input's, not twice them.
    run("state-2")


# --- failures mid-run -------------------------------------------------------

STREAM_LINES = 6_000  # lines sent in all, a steady stream before, during and after
KILL_AFTER_PROCESSED = 1_500  # kill once the app has committed this many input lines
KILL_BY_SENT = 3_500  # (sending no more than this many before the kill)
DOWN_LINES = 300  # lines queued by the producer while the killed process is down
PACE = 20  # lines per 20 ms tick: at most ~1,000 lines/s


class LineStream:
    """The corpus sent as a steady stream, keyed by line number, from an
    idempotent producer that rides out a broker restart."""

    def __init__(self, bootstrap: str, topic: str, lines: list[str]):
        self.topic = topic
        self.lines = lines
        self.sent = 0
        self.failed: list[str] = []
        self.producer = Producer(confluent_client.producer_config(
            bootstrap, idempotent=True,
            **{"message.timeout.ms": 120_000, "retry.backoff.ms": 50,
               "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200}))

    def tick(self) -> None:
        for _ in range(min(PACE, len(self.lines) - self.sent)):
            _produce(self.producer, self.topic, self.sent, self.lines[self.sent], self.failed)
            self.sent += 1
        self.producer.poll(0.02)

    def send(self, count: int) -> None:
        until = min(self.sent + count, len(self.lines))
        while self.sent < until:
            self.tick()

    def finish(self) -> None:
        self.send(len(self.lines))
        assert self.producer.flush(120) == 0, "input lines not delivered within 120 s"
        assert not self.failed, self.failed[:5]


def stream_until_processing(stream: LineStream, app: WordCountApp) -> None:
    """Stream lines until the app has committed KILL_AFTER_PROCESSED of them
    (holding the stream at KILL_BY_SENT if the app is slow), so that a kill
    comes while it is busy."""
    def processed() -> int:
        try:
            return sum(streams_app.committed(app.bootstrap, app.application_id, stream.topic,
                                             list(range(INPUT_PARTITIONS))).values())
        except Exception:
            return 0

    deadline = time.monotonic() + 90
    next_check = 0.0
    while True:
        if stream.sent < KILL_BY_SENT:
            stream.tick()
        else:
            stream.producer.poll(0.02)
        app.check()
        if time.monotonic() >= next_check:
            if processed() >= KILL_AFTER_PROCESSED:
                return
            next_check = time.monotonic() + 0.5
        assert time.monotonic() < deadline, f"app committed {processed()} lines in 90 s"


def check_at_least_once(bootstrap: str, app: WordCountApp, lines: list[str]) -> None:
    """After a failure, at_least_once promises no loss, not no duplicates:
    Streams may process again records whose offsets it had not committed
    (and its producer may have sent their results before the failure), so
    a word may be counted more than once; it must never be counted less.
    So: the words in the output topic are exactly the words of the input
    topic (none missing, none invented); each word's final count is at least
    its number of occurrences in the input topic as stored (read back, and
    checked to hold each line sent exactly once: the test's producer is
    idempotent); and the changelog's final counts are the output's (the
    store and what it sent agree)."""
    stored = streams_app.read_topic(bootstrap, app.input_topic)
    keys = Counter(int(key) for _, _, key, _ in stored)
    assert keys == Counter(range(len(lines))), "the input topic should hold each line once"
    expected = word_counts(value.decode() for _, _, _, value in stored)
    counts = streams_app.latest(bootstrap, app.output_topic)
    assert set(counts) == set(expected), (
        f"missing {sorted(set(expected) - set(counts))[:10]}, "
        f"unexpected {sorted(set(counts) - set(expected))[:10]}")
    under = {w: (counts[w], n) for w, n in expected.items() if counts[w] < n}
    assert not under, f"words counted fewer times than they occur (count, occurrences): {under}"
    over = {w: counts[w] - n for w, n in expected.items() if counts[w] > n}
    print(f"over-counted after the failure (at_least_once): {len(over)} words, "
          f"{sum(over.values())} extra of {sum(expected.values())}")
    assert streams_app.latest(bootstrap, app.changelog_topic) == counts


def test_word_count_survives_broker_kill9(own_broker, new_topic, tmp_path):
    """The single broker is killed with SIGKILL while the app is processing a
    steady stream of lines, and restarted on the same port and data
    directory; the app rides it out and its final counts pass
    check_at_least_once.

    kill -9 rather than SIGTERM: the harder case for Streams and for us.
    Nothing is shut down in order: requests in flight (produce to the
    repartition, changelog and output topics, fetches, offset commits,
    heartbeats) go unanswered, the broker comes back through log recovery
    and its group coordinator reloads the group from __consumer_offsets. A
    graceful restart keeping topics and offsets is covered for plain clients
    by test_interop_durability."""
    input_topic = new_topic(partitions=INPUT_PARTITIONS)
    output_topic = new_topic(partitions=2)
    app_id = f"wordcount-{input_topic[-8:]}"
    app = WordCountApp(own_broker.bootstrap, input_topic, output_topic, app_id,
                       tmp_path / "state", tmp_path / "streams.log")
    lines = corpus(STREAM_LINES, seed=3)
    stream = LineStream(own_broker.bootstrap, input_topic, lines)
    with app:
        app.wait_for_state("RUNNING")
        stream_until_processing(stream, app)
        own_broker.kill9()
        stream.send(DOWN_LINES)
        own_broker.start()
        stream.finish()

        wait_until_caught_up(app, timeout=150)
        app.check()
        assert app.state == "RUNNING", app.events
        check_at_least_once(own_broker.bootstrap, app, lines)
    assert app.stop() == 0


def test_word_count_survives_app_kill9(broker, new_topic, tmp_path):
    """The app itself is killed with SIGKILL while processing the stream (no
    commit, no close, no checkpoint: RocksDB and the state directory left as
    they were) and started again on the same state directory, the stream
    going on meanwhile; its final counts pass check_at_least_once. Here
    at_least_once really may over-count: the records processed after the
    last commit are processed again by the new instance.

    The dead instance's consumers never leave the group, so the new one's
    rebalance waits for the coordinator to expire them: the app's
    session.timeout.ms is 6 s (the broker's minimum; Kafka's default is 45 s)."""
    input_topic = new_topic(partitions=INPUT_PARTITIONS)
    output_topic = new_topic(partitions=2)
    app_id = f"wordcount-{input_topic[-8:]}"
    configs = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}
    app = WordCountApp(broker.bootstrap, input_topic, output_topic, app_id,
                       tmp_path / "state", tmp_path / "streams.log", configs=configs)
    lines = corpus(STREAM_LINES, seed=4)
    stream = LineStream(broker.bootstrap, input_topic, lines)
    with app:
        app.wait_for_state("RUNNING")
        stream_until_processing(stream, app)
        app.kill9()
        stream.send(DOWN_LINES)
    again = WordCountApp(broker.bootstrap, input_topic, output_topic, app_id,
                         tmp_path / "state", tmp_path / "streams.log", configs=configs)
    with again:
        stream.finish()
        again.wait_for_state("RUNNING")
        wait_until_caught_up(again, timeout=150)
        again.check()
        check_at_least_once(broker.bootstrap, again, lines)
    assert again.stop() == 0


def test_word_count_scales_out_and_in(broker, new_topic, tmp_path):
    """Two instances of the app share the work (tasks move between processes
    through Streams' assignor over the classic group protocol, with standby
    replicas of the store on the other instance), then the first one
    is stopped cleanly mid-stream and the second takes over every task. No
    failure, so nothing may be counted twice: the final counts are exact and
    each word's counts in the output only rise."""
    input_topic = new_topic(partitions=INPUT_PARTITIONS)
    output_topic = new_topic(partitions=2)
    app_id = f"wordcount-{input_topic[-8:]}"
    configs = {"num.standby.replicas": "1"}
    first = WordCountApp(broker.bootstrap, input_topic, output_topic, app_id,
                         tmp_path / "state-1", tmp_path / "streams-1.log", configs=configs)
    second = WordCountApp(broker.bootstrap, input_topic, output_topic, app_id,
                          tmp_path / "state-2", tmp_path / "streams-2.log", configs=configs)
    lines = corpus(STREAM_LINES, seed=5)
    stream = LineStream(broker.bootstrap, input_topic, lines)
    try:
        first.start()
        first.wait_for_state("RUNNING")
        stream.send(1_000)
        second.start()
        # The assignor balances the tasks over both instances: stateless ones
        # (0_x) move at once, the store's (1_x) too while the new instance's
        # changelog lag is under acceptable.recovery.lag (else it warms up a
        # replica first).
        second.wait_until(lambda: second.state == "RUNNING" and second.active_tasks(),
                          "running some of the tasks")
        first.wait_until(lambda: first.state == "RUNNING"
                         and 0 < len(first.active_tasks()) < 2 * INPUT_PARTITIONS,
                         "handing tasks over")
        stream.send(2_000)
        assert first.stop() == 0
        second.wait_until(lambda: second.state == "RUNNING"
                          and len(second.active_tasks()) == 2 * INPUT_PARTITIONS,
                          "running every task")
        stream.finish()
        wait_until_caught_up(second)
        second.check()
        expected = word_counts(lines)
        histories = count_histories(broker.bootstrap, output_topic)
        assert {w: h[-1] for w, h in histories.items()} == dict(expected)
        for word, history in histories.items():
            assert history == sorted(set(history)), f"{word}: counts not increasing: {history}"
        assert streams_app.latest(broker.bootstrap, second.changelog_topic) == dict(expected)
        assert second.stop() == 0
    finally:
        for app in (first, second):
            app.__exit__(None, None, None)
