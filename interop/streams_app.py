"""The Kafka Streams word-count application (interop/streams, kafka-streams at
the version in interop/java/kafka-version) run as a process, and what it
writes, read back.

`WordCountApp` starts the JVM (interop/streams/build makes the jar;
./scripts/test runs it), follows the KafkaStreams state changes the app
prints on stdout, and stops it by its PID: SIGTERM closes Streams cleanly.
The app's stderr (Streams' own log, warnings and up by default) goes to a
file; the tasks it runs are reported each time it becomes RUNNING. `read_topic` and `latest` read an output or changelog topic back;
`committed` and `end_offsets` say how far the app has got.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition

from . import process

STREAMS_DIR = Path(__file__).resolve().parent / "streams"
JAR = STREAMS_DIR / "target" / "interop-streams.jar"
JVM_OPTIONS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k", "-Xmx384m",
               "-Dorg.slf4j.simpleLogger.showDateTime=true",
               "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"]

# Streams' at_least_once defaults tuned for a test that waits on progress,
# not for throughput: commit every 200 ms (default 30 s), purge the
# repartition topics every second (default 30 s).
TEST_CONFIGS = {
    "repartition.purge.interval.ms": "1000",
}


class StreamsAppError(RuntimeError):
    pass


class WordCountApp(process.ProcessOwner):
    """One run of the word-count app: `start()`, `wait_for_state("RUNNING")`,
    `stop()` (or `kill9()`). `configs` are extra Streams configs."""

    def __init__(self, bootstrap: str, input_topic: str, output_topic: str,
                 application_id: str, state_dir: Path, log_path: Path, *,
                 threads: int = 2, commit_interval_ms: int = 200,
                 configs: dict[str, str] | None = None, log_level: str | None = None):
        self.bootstrap = bootstrap
        self.input_topic = input_topic
        self.output_topic = output_topic
        self.application_id = application_id
        self.state_dir = Path(state_dir)
        self.log_path = Path(log_path)
        self.threads = threads
        self.commit_interval_ms = commit_interval_ms
        self.configs = {**TEST_CONFIGS, **(configs or {})}
        # INTEROP_STREAMS_LOG_LEVEL=info (or debug) tells the story of a run.
        self.log_level = log_level or os.environ.get("INTEROP_STREAMS_LOG_LEVEL", "warn")
        self.events: list[dict] = []
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def repartition_topic(self) -> str:
        return f"{self.application_id}-words-repartition"

    @property
    def changelog_topic(self) -> str:
        return f"{self.application_id}-counts-changelog"

    def command(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StreamsAppError("java is not installed (Java >= 17 runs the Streams interop app)")
        if not JAR.is_file():
            raise StreamsAppError(f"{JAR} is missing: run {STREAMS_DIR / 'build'} "
                                  "(needs Maven; ./scripts/test does it)")
        cmd = [java, *JVM_OPTIONS, f"-Dorg.slf4j.simpleLogger.defaultLogLevel={self.log_level}",
               *os.environ.get("INTEROP_JAVA_OPTS", "").split(), "-jar", str(JAR),
               "--bootstrap", self.bootstrap, "--input", self.input_topic,
               "--output", self.output_topic, "--application-id", self.application_id,
               "--state-dir", str(self.state_dir), "--threads", str(self.threads),
               "--commit-interval-ms", str(self.commit_interval_ms)]
        for key, value in self.configs.items():
            cmd += ["--config", f"{key}={value}"]
        return cmd

    def start(self) -> None:
        if self.running():
            raise StreamsAppError(f"already running as pid {self.pid}")
        cmd = self.command()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._process = process.launch(cmd, self.log_path, stdout_pipe=True)
        self._reader = threading.Thread(target=self._read_events, args=(self._process,),
                                        daemon=True)
        self._reader.start()

    def _read_events(self, app: subprocess.Popen) -> None:
        for line in app.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line.decode(errors="replace")}
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def state(self) -> str | None:
        states = [e["new"] for e in self.events if e.get("event") == "state"]
        return states[-1] if states else None

    @property
    def tasks(self) -> dict[str, list[str]] | None:
        """The active and standby task ids ("0_1", ...) this instance had when
        it last became RUNNING: {"active": [...], "standby": [...]}; None
        until that report follows the state change (the app prints the new
        state first)."""
        events = list(self.events)
        running = [i for i, e in enumerate(events) if e.get("event") == "state" and e["new"] == "RUNNING"]
        reports = [e for e in events[running[-1]:] if e.get("event") == "tasks"] if running else []
        return {k: reports[-1][k] for k in ("active", "standby")} if reports else None

    def active_tasks(self) -> list[str]:
        """tasks["active"], or [] until they are reported."""
        tasks = self.tasks
        return tasks["active"] if tasks else []

    def errors(self) -> list[dict]:
        return [e for e in self.events if e.get("event") == "error"]

    def check(self) -> None:
        """Raise if the app has died or a stream thread failed."""
        if self.errors():
            raise StreamsAppError(f"stream thread failed: {self.errors()}\n{self.log_tail()}")
        if self._process is not None and self._process.poll() is not None:
            raise StreamsAppError(f"app exited with code {self._process.returncode}; "
                                  f"events {self.events}\n{self.log_tail()}")

    def wait_for_state(self, state: str, timeout: float = 60.0) -> None:
        self.wait_until(lambda: self.state == state, f"state {state}", timeout)

    def wait_until(self, condition, what: str, timeout: float = 60.0) -> None:
        """Wait until condition() holds, re-checked at each event the app
        prints (and twice a second); raise if the app dies first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                self.check()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StreamsAppError(f"app not at {what} after {timeout}s (state "
                                          f"{self.state}, tasks {self.tasks})\n{self.log_tail()}")
                self._changed.wait(min(remaining, 0.5))

    def stop(self, timeout: float = 45.0) -> int:
        """SIGTERM (KafkaStreams.close through the app's shutdown hook), then
        wait; returns the exit code. SIGKILLs and raises past `timeout`."""
        if self._process is None:
            return 0
        if not process.stop(self._process, timeout):
            raise StreamsAppError(f"app pid {self._process.pid} ignored SIGTERM for "
                                  f"{timeout}s; killed\n{self.log_tail()}")
        if self._reader is not None:
            self._reader.join(5)
        return self._process.returncode

    def log_tail(self, lines: int = 40) -> str:
        tail = process.log_tail(self.log_path, lines)
        return "" if tail is None else "app log tail:\n" + tail

    def __enter__(self) -> "WordCountApp":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            self.kill9()


# --- reading back -----------------------------------------------------------

def _consumer(bootstrap: str, group: str | None = None) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": "interop-streams-reader",
        # librdkafka wants a group.id even to assign(); nothing is committed.
        "group.id": group or f"interop-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 15_000,
    })


def partitions(bootstrap: str, topic: str) -> list[int]:
    c = _consumer(bootstrap)
    try:
        described = c.list_topics(topic, timeout=15).topics[topic]
        if described.error is not None:
            raise KafkaException(described.error)
        return sorted(described.partitions)
    finally:
        c.close()


def offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (log start offset, log end offset)."""
    c = _consumer(bootstrap)
    try:
        described = c.list_topics(topic, timeout=15).topics[topic]
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
                for p in sorted(described.partitions)}
    finally:
        c.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    return {p: end for p, (_, end) in offsets(bootstrap, topic).items()}


def committed(bootstrap: str, group: str, topic: str, parts: list[int]) -> dict[int, int]:
    """The group's committed offset of each partition (0 when none)."""
    c = _consumer(bootstrap, group)
    try:
        answer = c.committed([TopicPartition(topic, p) for p in parts], timeout=15)
        return {tp.partition: max(tp.offset, 0) for tp in answer}
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list:
    """Every record of every partition from its log start offset to the end
    offset it has now: (partition, offset, key bytes, value bytes) tuples."""
    c = _consumer(bootstrap)
    records = []
    try:
        for partition, (start, end) in offsets(bootstrap, topic).items():
            if start >= end:
                continue
            c.assign([TopicPartition(topic, partition, start)])
            position = start
            deadline = time.monotonic() + timeout
            while position < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}[{partition}]: read to {position} of {end}")
                for msg in c.consume(num_messages=1000, timeout=0.5):
                    if msg.error():
                        raise KafkaException(msg.error())
                    records.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
                    position = msg.offset() + 1
        return records
    finally:
        c.close()


def decode_count(value: bytes) -> int:
    """Serdes.Long: 8 bytes, big-endian."""
    return struct.unpack(">q", value)[0]


def latest(bootstrap: str, topic: str) -> dict[str, int]:
    """word -> its last count in a word-count output or changelog topic (what
    a compacted topic keeps)."""
    return {key.decode(): decode_count(value) for _, _, key, value in read_topic(bootstrap, topic)}
