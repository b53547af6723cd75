"""Running Apache Kafka's command-line tools (./scripts/kafka-tool) in tests,
against a kafka-compat broker and, side by side, against Apache Kafka itself.

`Side` is one broker a tool can talk to; `both(...)` runs one invocation
against the reference Kafka and against ours at once (two JVMs) and
`error_text` reduces a tool's output to what must match: the lines without
log timestamps, stack frames, ports and ids.
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from interop.broker_process import BrokerProcess, venv_executable
from interop.reference_kafka import ROOT, ReferenceKafka

TOOL = ROOT / "scripts" / "kafka-tool"

# Configs both brokers run with, each for a reason:
COMMON_CONFIGS = {
    # A group's first member would wait 3 s for others (Kafka's default).
    "group.initial.rebalance.delay.ms": "0",
    # Fewer __consumer_offsets partitions to create on a 2-core machine.
    "offsets.topic.num.partitions": "3",
}
# The reference is KRaft node 1; ours takes the same id so node ids compare.
OURS_CONFIGS = {**COMMON_CONFIGS, "broker.id": "1"}


# JIT and GC flags that start a tool's JVM sooner on a loaded 2-core machine
# (kafka-run-class.sh's own are for long-running servers); they change
# nothing a tool prints. KAFKA_JVM_PERFORMANCE_OPTS replaces those.
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -Djava.awt.headless=true"


# A class-data-sharing archive of the classes a tool loads (made once per
# test session by `make_class_archive`) halves each JVM's start-up CPU.
_class_archive: Path | None = None


def tool_env() -> dict[str, str]:
    options = FAST_JVM
    if _class_archive is not None:
        # -Xlog:disable: a JVM that can't use the archive says so on stdout.
        options += f" -XX:SharedArchiveFile={_class_archive} -Xlog:disable"
    return {**os.environ, "KAFKA_JVM_PERFORMANCE_OPTS": options}


def make_class_archive(directory: Path, bootstrap: str) -> None:
    """Record the classes an admin-client tool loads (kafka-consumer-groups
    --list against `bootstrap`) into an archive the later tools start from.
    Without it (if making it fails) the tools just start slower."""
    global _class_archive
    if _class_archive is not None:
        return
    archive = directory / "kafka-tools.jsa"
    env = {**os.environ, "KAFKA_JVM_PERFORMANCE_OPTS":
           f"{FAST_JVM} -XX:ArchiveClassesAtExit={archive} -Xlog:disable"}
    result = subprocess.run([str(TOOL), "kafka-consumer-groups", "--bootstrap-server", bootstrap,
                             "--list"], capture_output=True, text=True, timeout=90,
                            stdin=subprocess.DEVNULL, env=env)
    if result.returncode == 0 and archive.exists():
        _class_archive = archive


def kafka_tool(*args: str, timeout: float = 90, input: str | None = None
               ) -> subprocess.CompletedProcess:
    """Run one tool to completion (stdin closed unless `input` is given)."""
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL,
                          env=tool_env())


@dataclass
class Brokers:
    """Apache Kafka and kafka-compat, both single brokers with node id 1."""
    reference: ReferenceKafka
    ours: BrokerProcess

    def both(self, *args: str, timeout: float = 90, input: str | None = None
             ) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        """The same invocation against the reference and against ours, at
        the same time; "{bootstrap}" in an argument is each one's address.
        Returns (reference's result, ours)."""
        results: dict[str, subprocess.CompletedProcess | BaseException] = {}

        def run(name: str, bootstrap: str) -> None:
            try:
                results[name] = kafka_tool(*(a.replace("{bootstrap}", bootstrap) for a in args),
                                           timeout=timeout, input=input)
            except BaseException as error:  # reported by the caller
                results[name] = error

        thread = threading.Thread(target=run, args=("reference", self.reference.bootstrap))
        thread.start()
        run("ours", self.ours.bootstrap)
        thread.join()
        for result in results.values():
            if isinstance(result, BaseException):
                raise result
        return results["reference"], results["ours"]

    def same_error(self, *args: str, returncode: int | None = 1, timeout: float = 90,
                   input: str | None = None, differs: tuple[str, str] | None = None
                   ) -> list[str]:
        """Run `args` against both; assert equal exit codes (and `returncode`
        unless None) and equal `error_text`. Returns our error lines.

        `differs=(kafka_says, we_say)` is a known difference (listed in
        docs/compatibility.md): Kafka's text must contain `kafka_says`, and
        ours must be Kafka's with it replaced by `we_say`, nothing else."""
        reference, ours = self.both(*args, timeout=timeout, input=input)
        return compare(args, reference, ours, returncode, differs)

    def same_errors(self, *cases: Case, parallel: int = 3) -> list[list[str]]:
        """`same_error` for each case, `parallel` cases (twice as many
        JVMs) at a time; every case's failure is reported. Our lines for
        each case."""
        with ThreadPoolExecutor(parallel) as pool:
            runs = [pool.submit(self.both, *case.args) for case in cases]
        failures, outputs = [], []
        for case, run in zip(cases, runs):
            try:
                outputs.append(compare(case.args, *run.result(), case.returncode, case.differs))
            except AssertionError as error:
                failures.append(str(error))
        assert not failures, "\n\n".join(failures)
        return outputs


@dataclass
class Case:
    """One invocation for Brokers.same_errors (see same_error)."""
    args: tuple[str, ...]
    returncode: int | None = 1
    differs: tuple[str, str] | None = None


def case(*args: str, returncode: int | None = 1, differs: tuple[str, str] | None = None) -> Case:
    return Case(args, returncode, differs)


def compare(args, reference: subprocess.CompletedProcess, ours: subprocess.CompletedProcess,
            returncode: int | None = 1, differs: tuple[str, str] | None = None) -> list[str]:
    expected, got = error_text(reference), error_text(ours)
    if differs is not None:
        kafka_says, we_say = differs
        assert any(kafka_says in line for line in expected), (args, kafka_says, expected)
        expected = [line.replace(kafka_says, we_say) for line in expected]
    assert got == expected, (
        f"{' '.join(args)}\n--- Apache Kafka (exit {reference.returncode}):\n"
        + "\n".join(expected) + f"\n--- kafka-compat (exit {ours.returncode}):\n"
        + "\n".join(got))
    assert ours.returncode == reference.returncode, (args, reference.returncode, ours.returncode)
    if returncode is not None:
        assert ours.returncode == returncode, (args, ours.returncode, got)
    return got


_LOG_PREFIX = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] ")
_STACK_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)")
_ADDRESS = re.compile(r"(127\.0\.0\.1|localhost)(/127\.0\.0\.1)?:\d+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Client-generated ids: console-consumer-12345, perf-consumer-12345.
_CLIENT_ID = re.compile(r"\b((?:console|perf)-consumer)-\d+\b")
# A client numbers its requests; it asks us ApiVersions twice (v5, which we
# don't have, then v4), so its later requests are numbered one higher.
_CORRELATION_ID = re.compile(r"correlation id \d+")


def error_text(result: subprocess.CompletedProcess) -> list[str]:
    """stdout and stderr's lines as they must match between brokers: log
    lines without their timestamp, no stack frames (they name the tool's
    code, not the broker's answer), broker addresses as HOST:PORT, UUIDs
    generated client ids and request numbers as placeholders, blank lines
    dropped."""
    lines = []
    for line in (result.stdout + result.stderr).splitlines():
        if not line.strip() or _STACK_FRAME.match(line):
            continue
        line = _LOG_PREFIX.sub("", line)
        line = _ADDRESS.sub("HOST:PORT", line)
        line = _UUID.sub("UUID", line)
        line = _CLIENT_ID.sub(r"\1-N", line)
        line = _CORRELATION_ID.sub("correlation id N", line)
        lines.append(line.rstrip())
    return lines


def wait_for(condition, timeout: float = 60.0, interval: float = 0.2, message: str = ""):
    """Poll `condition` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    """Apache Kafka (one KRaft node) and a kafka-compat broker, shared by
    a module's tests and stopped by PID after them."""
    executable = venv_executable("kafka-compat")
    if not executable.exists():
        pytest.fail(f"{executable} is missing: install the package with `pip install -e .` "
                    "(./scripts/test does it)")
    directory: Path = tmp_path_factory.mktemp("ours")
    ours = BrokerProcess(executable, data_dir=directory / "data",
                         log_path=directory / "broker.log", overrides=OURS_CONFIGS)
    reference = ReferenceKafka(overrides=COMMON_CONFIGS)
    try:
        ours.start()
        make_class_archive(tmp_path_factory.getbasetemp(), ours.bootstrap)
        reference.start()
        yield Brokers(reference, ours)
    finally:
        try:
            reference.stop()
        finally:
            ours.stop()
