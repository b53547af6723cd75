"""The Java client (org.apache.kafka:kafka-clients, the version in
interop/java/kafka-version): interop/java/src/main/java/JavaClient.java, built
into one jar by interop/java/build (./scripts/test runs it) and run with java,
one whole produce, consume or admin call per JVM."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from . import process, program
from .messages import Message, Record, message_to_json, record_from_json

JAVA_DIR = Path(__file__).resolve().parent / "java"
JAR = JAVA_DIR / "target" / "interop-java-client.jar"
# A short-lived client JVM: start fast (no C2 warm-up for a few seconds' work,
# a small heap), log the client's warnings and errors only.
JVM_OPTIONS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k", "-Xmx256m",
               "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]


class JavaClientError(RuntimeError):
    pass


def kafka_version() -> str:
    return (JAVA_DIR / "kafka-version").read_text().strip()


def command() -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise JavaClientError("java is not installed (Java >= 17 runs the Java interop client)")
    if not JAR.is_file():
        raise JavaClientError(f"{JAR} is missing: run {JAVA_DIR / 'build'} "
                              "(needs Maven; ./scripts/test does it)")
    return [java, *JVM_OPTIONS, *os.environ.get("INTEROP_JAVA_OPTS", "").split(), "-jar", str(JAR)]


def run(args: list[str], *, stdin: bytes = b"", timeout: float = 90.0,
        ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    return program.run(command() + args, f"java {' '.join(args)}", JavaClientError,
                       stdin=stdin, timeout=timeout, ok_codes=ok_codes)


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int | None = 0,
            compression: str | None = None, idempotent: bool = False, acks: str = "all",
            partitioner: str | None = None, timeout: float = 60.0) -> list[int]:
    """Send every message and return the offset of each (-1 with acks=0);
    `partition=None` lets the (default or `partitioner="modulo"`) partitioner choose."""
    return [offset for _, offset in produce_to_partitions(
        bootstrap, topic, messages, partition=partition, compression=compression,
        idempotent=idempotent, acks=acks, partitioner=partitioner, timeout=timeout)]


def produce_to_partitions(bootstrap: str, topic: str, messages: list[Message], *,
                          partition: int | None = 0, compression: str | None = None,
                          idempotent: bool = False, acks: str = "all",
                          partitioner: str | None = None,
                          timeout: float = 60.0) -> list[tuple[int, int]]:
    """produce(), returning (partition, offset) of each message."""
    args = ["produce", "--bootstrap", bootstrap, "--topic", topic,
            "--partition", "any" if partition is None else str(partition),
            "--acks", acks, "--timeout-ms", str(int(timeout * 1000))]
    if compression:
        args += ["--compression", compression]
    if idempotent:
        args.append("--idempotent")
    if partitioner:
        args += ["--partitioner", partitioner]
    stdin = "".join(message_to_json(m) + "\n" for m in messages).encode()
    out = run(args, stdin=stdin, timeout=timeout + 30).stdout.decode()
    acked = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(a["partition"], a["offset"]) for a in acked]


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int | str = 0, group: str | None = None, assignor: str | None = None,
            timeout: float = 60.0) -> list[Record]:
    """Read `count` records: by assign() of `partition` and seek() to
    `start_offset` (or "beginning"/"end": seekToBeginning/seekToEnd), or, with
    `group` ("new" for a fresh one), by subscribe() from the earliest offset,
    keeping only `partition`'s records. Whatever arrived when `timeout`
    passed is returned (the caller's count check says what is missing)."""
    args = ["consume", "--bootstrap", bootstrap, "--topic", topic, "--count", str(count),
            "--timeout-ms", str(int(timeout * 1000))]
    if group is not None:
        args += ["--group", f"interop-{uuid.uuid4().hex}" if group == "new" else group]
        if assignor:
            args += ["--assignor", assignor]
    else:
        args += ["--partition", str(partition)]
        if isinstance(start_offset, str):
            args += ["--from", start_offset]
        else:
            args += ["--offset", str(start_offset)]
    out = run(args, timeout=timeout + 30, ok_codes=(0, 3)).stdout.decode()
    records = [record_from_json(line) for line in out.splitlines() if line.strip()]
    return [r for r in records if group is None or r.partition == partition]


def create_topic(bootstrap: str, topic: str, *, partitions: int = 1, replication_factor: int = 1,
                 configs: dict[str, str] | None = None) -> str:
    """CreateTopics through the Java admin client; the new topic's id."""
    args = ["create-topic", "--bootstrap", bootstrap, "--topic", topic,
            "--partitions", str(partitions), "--replication-factor", str(replication_factor)]
    for name, value in (configs or {}).items():
        args += ["--config", f"{name}={value}"]
    return json.loads(run(args).stdout)["id"]


def delete_topic(bootstrap: str, *, topic: str | None = None, topic_id: str | None = None) -> None:
    """DeleteTopics by name or by id."""
    args = ["delete-topic", "--bootstrap", bootstrap]
    args += ["--id", topic_id] if topic_id else ["--topic", topic]
    run(args)


def describe_topic(bootstrap: str, topic: str) -> dict:
    """{"name", "id", "internal", "partitions": [{"partition", "leader", "replicas", "isr"}]}"""
    return json.loads(run(["describe-topic", "--bootstrap", bootstrap, "--topic", topic]).stdout)


def describe_cluster(bootstrap: str) -> dict:
    """{"cluster_id", "controller", "nodes": [{"id", "host", "port", "rack"}]}"""
    return json.loads(run(["describe-cluster", "--bootstrap", bootstrap]).stdout)


class JavaCallError(JavaClientError):
    """A session request the Java client answered with an exception:
    `error` is its class's simple name (GroupNotEmptyException, ...)."""

    def __init__(self, op: str, error: str, message: str | None):
        super().__init__(f"{op}: {error}: {message}")
        self.op = op
        self.error = error
        self.message = message


class Session:
    """One JVM running `admin-session` or `consumer-session`
    (interop/java/src/main/java/Session.java): each call() sends one request
    line and waits for its answer line, so a test scripts a whole sequence
    against one client, interleaved with other clients' steps. A context
    manager; the JVM is stopped (by its pid) on exit."""

    def __init__(self, args: list[str], *, timeout: float = 60.0):
        self.timeout = timeout
        self._killed = False
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command() + args, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr)
        self._answers: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"java-{args[0]}-{self._process.pid}")
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def stderr_tail(self, chars: int = 3000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-chars:]

    def answer(self, op: str, timeout: float | None = None, **fields) -> dict:
        """Send {"op": op, **fields}; the answer object ({"result"} or {"error", "message"})."""
        if self._process.poll() is not None:
            raise JavaClientError(f"java session exited with {self._process.returncode}:\n"
                                  + self.stderr_tail())
        self._process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        self._process.stdin.flush()
        try:
            line = self._answers.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise JavaClientError(f"java session: no answer to {op} within "
                                  f"{timeout or self.timeout}s\n{self.stderr_tail()}") from None
        if line is None:
            self._process.wait(10)
            raise JavaClientError(f"java session exited with {self._process.returncode} "
                                  f"during {op}:\n{self.stderr_tail()}")
        return json.loads(line)

    def call(self, op: str, timeout: float | None = None, **fields):
        """The result of request `op`; raises JavaCallError if it failed."""
        answer = self.answer(op, timeout, **fields)
        if "error" in answer:
            raise JavaCallError(op, answer["error"], answer.get("message"))
        return answer["result"]

    def close(self, timeout: float = 30.0) -> None:
        if self._process.poll() is None:
            try:
                self._process.stdin.write(b'{"op": "close"}\n')
                self._process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill9(self._process)
                raise JavaClientError(f"java session did not close within {timeout}s\n"
                                      + self.stderr_tail()) from None
        self._reader.join(timeout)
        code = self._process.returncode
        if code != 0 and not self._killed:
            raise JavaClientError(f"java session exited with {code}:\n{self.stderr_tail()}")

    def kill(self) -> None:
        """SIGKILL the JVM (by its pid); close() then doesn't complain."""
        self._killed = True
        process.kill9(self._process)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()
        self._stderr.close()


def admin_session(bootstrap: str, *, timeout: float = 60.0) -> Session:
    """The Java Admin client as a Session (requests: AdminSession.java)."""
    return Session(["admin-session", "--bootstrap", bootstrap,
                    "--timeout-ms", str(int(timeout * 1000))], timeout=timeout + 15)


def consumer_session(bootstrap: str, topic: str, *, group: str | None = None,
                     instance_id: str | None = None, assignor: str | None = None,
                     client_id: str | None = None, timeout: float = 60.0) -> Session:
    """A KafkaConsumer on `topic` as a Session (requests: ConsumerSession.java);
    with `group`, its group.id (and group.instance.id, assignor)."""
    args = ["consumer-session", "--bootstrap", bootstrap, "--topic", topic]
    if group:
        args += ["--group", group]
    if instance_id:
        args += ["--instance-id", instance_id]
    if assignor:
        args += ["--assignor", assignor]
    if client_id:
        args += ["--client-id", client_id]
    return Session(args, timeout=timeout)


def txn_session(bootstrap: str, transactional_id: str, *, transaction_timeout_ms: int = 60_000,
                timeout: float = 60.0) -> Session:
    """A transactional KafkaProducer as a Session (requests: Transactions.java):
    init, begin, send, send-offsets, commit, abort."""
    return Session(["txn-session", "--bootstrap", bootstrap, "--transactional-id", transactional_id,
                    "--transaction-timeout-ms", str(transaction_timeout_ms)], timeout=timeout)


class ConsumeTransformProduce:
    """The Java client's exactly-once consume-transform-produce loop (`ctp`,
    Transactions.java) as a process: each input record (key, value) becomes
    (key, b"t:" + value) in the same partition of the output, the offsets
    committed in the same transaction for `group`. `committed` is how many
    input records it has committed so far, `recoveries` the failures it rode
    out; `wait()` returns once it has committed the input's end offsets (as
    they were when it started). Stopped by its pid on exit."""

    def __init__(self, bootstrap: str, input_topic: str, output_topic: str, group: str,
                 transactional_id: str, *, transaction_timeout_ms: int = 15_000,
                 timeout: float = 600.0):
        self.timeout = timeout
        self.committed = 0
        self.recoveries: list[str] = []
        self.done = False
        self._changed = threading.Condition()
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            command() + ["ctp", "--bootstrap", bootstrap, "--input", input_topic,
                         "--output", output_topic, "--group", group,
                         "--transactional-id", transactional_id,
                         "--transaction-timeout-ms", str(transaction_timeout_ms),
                         "--timeout-ms", str(int(timeout * 1000))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"java-ctp-{self._process.pid}")
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            event = json.loads(line)
            with self._changed:
                if "committed" in event:
                    self.committed = event["committed"]
                elif "recovering" in event:
                    self.recoveries.append(event["recovering"])
                elif "done" in event:
                    self.committed = event["done"]
                    self.done = True
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def stderr_tail(self, chars: int = 3000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-chars:]

    def wait_until(self, condition, what: str, timeout: float) -> None:
        """Until condition() holds; raises if the program exits first or the time is up."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                if self._process.poll() is not None and not self._reader.is_alive():
                    raise JavaClientError(f"java ctp exited with {self._process.returncode} before "
                                          f"{what} (committed {self.committed})\n{self.stderr_tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise JavaClientError(f"java ctp: not {what} within {timeout}s (committed "
                                          f"{self.committed}, recoveries {self.recoveries[-5:]})\n"
                                          + self.stderr_tail())
                self._changed.wait(min(remaining, 0.5))

    def wait(self, timeout: float | None = None) -> None:
        """Until it committed everything and exited 0."""
        self.wait_until(lambda: self.done, "done", timeout or self.timeout)
        code = self._process.wait(30)
        if code != 0:
            raise JavaClientError(f"java ctp exited with {code}\n{self.stderr_tail()}")

    def kill(self) -> None:
        process.kill9(self._process)

    def __enter__(self) -> ConsumeTransformProduce:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        self._reader.join(10)
        self._stderr.close()
