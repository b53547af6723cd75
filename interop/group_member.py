"""Consumer-group members run as subprocesses (interop.group_worker for the
Python clients, interop/node/client.js for kafkajs, the Go programs'
`group` command for franz-go and sarama, the Java program's `group` command
for the Java client), watched from the test.

Each member's events update its state (owned partitions, consumed offsets,
commits) under one condition variable shared by the whole group, so a test
waits for "every partition owned exactly once" and the like with a deadline
instead of sleeping.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable

from . import franz_go_client, java_client, kafkajs_client, process, sarama_client
from .group_worker import MemberOptions

REPO = Path(__file__).resolve().parent.parent
CLIENTS = ("confluent-kafka", "kafka-python", "aiokafka", "kafkajs", "franz-go", "sarama", "java")
# A first member gets its partitions at once instead of after Kafka's
# default 3 s wait for more members.
BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}


class MemberExited(AssertionError):
    """A member's process ended without being asked to."""


class GroupMember:
    """One member process and what it reported so far."""

    def __init__(self, client: str, options: MemberOptions, condition: threading.Condition,
                 log_dir: Path):
        self.client = client
        self.options = options
        self.name = options.name
        self.partitions: set[int] = set()
        self.consumed: list[tuple[int, int]] = []
        self.committed: dict[int, int] = {}
        self.events: list[dict] = []
        self.records_since_assignment = 0
        self.closed = False  # the member reported a clean close
        self.killed = False
        self.stopping = False
        self._condition = condition
        self.stderr_path = log_dir / f"{self.name}.stderr"
        with self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        self._reader = threading.Thread(target=self._read, name=f"member-{self.name}",
                                        daemon=True)
        self._reader.start()

    def _command(self) -> list[str]:
        args = self.options.arguments()
        if self.client == "kafkajs":
            return kafkajs_client.command() + ["group", *args]
        if self.client == "franz-go":
            return franz_go_client.command() + ["group", *args]
        if self.client == "sarama":
            return sarama_client.command() + ["group", *args]
        if self.client == "java":
            return java_client.command() + ["group", *args]
        return [sys.executable, "-m", "interop.group_worker", "--client", self.client, *args]

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def live(self) -> bool:
        """Still a member as far as the test is concerned: not stopped or killed."""
        return not (self.stopping or self.killed)

    def _read(self) -> None:
        for line in self._process.stdout:
            event = json.loads(line)
            with self._condition:
                self._apply(event)
                self._condition.notify_all()
        self._process.wait()
        with self._condition:
            self._condition.notify_all()

    def _apply(self, event: dict) -> None:
        self.events.append(event)
        kind = event["event"]
        if kind == "assigned":
            parts = set(event["partitions"])
            self.partitions = self.partitions | parts if event["incremental"] else parts
            self.records_since_assignment = 0
        elif kind in ("revoked", "lost"):
            if event.get("incremental", True) or kind == "lost":
                self.partitions -= set(event["partitions"])
            else:
                self.partitions = set()
            self.records_since_assignment = 0
        elif kind == "records":
            pairs = [tuple(pair) for pair in event["records"]]
            self.consumed.extend(pairs)
            self.records_since_assignment += len(pairs)
        elif kind == "committed":
            self.committed.update({int(p): o for p, o in event["offsets"].items()})
        elif kind == "closed":
            self.closed = True

    def exited_unexpectedly(self) -> bool:
        return self._process.poll() is not None and self.live

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the member to close its consumer and exit; raises if it fails to."""
        self.stopping = True
        try:
            self._process.stdin.write(b"stop\n")
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self} did not close within {timeout}s\n{self.stderr_tail()}")
        self._reader.join(timeout)
        if code != 0 or not self.closed:
            raise AssertionError(f"{self} exited with {code} on stop\n{self.stderr_tail()}")

    def kill9(self) -> None:
        self.killed = True
        process.kill9(self._process)

    def dump_stacks(self, timeout: float = 2.0) -> None:
        """Have a Python worker write every thread's stack to its stderr (to
        see where a member that stopped making progress is stuck)."""
        if self.client in ("kafkajs", "franz-go", "sarama", "java") or self._process.poll() is not None:
            return
        size = self.stderr_path.stat().st_size
        os.kill(self._process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while self.stderr_path.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.05)

    def stderr_tail(self, chars: int = 3000) -> str:
        text = self.stderr_path.read_text(errors="replace")
        return f"--- {self.name} stderr ({self.stderr_path}) ---\n{text[-chars:]}"

    def __str__(self) -> str:
        state = "killed" if self.killed else "stopped" if self.stopping else "live"
        return f"{self.name} ({self.client}, pid {self.pid}, {state})"

    def summary(self) -> str:
        kinds = [e["event"] + (str(e["partitions"]) if "partitions" in e else "")
                 for e in self.events if e["event"] not in ("records", "committed")]
        return (f"{self}: owns {sorted(self.partitions)}, consumed {len(self.consumed)}, "
                f"committed {dict(sorted(self.committed.items()))}, events {kinds[-12:]}")


class ConsumerGroup:
    """The members of one group over one topic; a context manager that
    stops every member still running when it exits."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, log_dir: Path, *,
                 group: str | None = None, **member_defaults):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = set(range(partitions))
        self.group = group or f"interop-group-{uuid.uuid4().hex[:8]}"
        self.log_dir = Path(log_dir)
        self.member_defaults = member_defaults
        self.members: list[GroupMember] = []
        self.condition = threading.Condition()

    def join(self, client: str, *, name: str | None = None, **options) -> GroupMember:
        """Start a member; `options` are MemberOptions fields."""
        if client not in CLIENTS:
            raise ValueError(f"unknown client {client}")
        name = name or f"{client}-{len(self.members) + 1}"
        base = MemberOptions(self.bootstrap, self.topic, self.group, name)
        member = GroupMember(client, replace(base, **{**self.member_defaults, **options}),
                             self.condition, self.log_dir)
        self.members.append(member)
        return member

    def live_members(self) -> list[GroupMember]:
        return [m for m in self.members if m.live]

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Wait until `predicate()` holds (evaluated under the group's lock);
        fail with the group's state if it doesn't within `timeout`, or as
        soon as a member dies unasked."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while not predicate():
                dead = [m for m in self.members if m.exited_unexpectedly()]
                if dead:
                    raise MemberExited(f"while waiting for {what}: {dead[0]} exited\n"
                                       + self.describe() + "\n" + dead[0].stderr_tail())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for member in self.live_members():
                        member.dump_stacks()
                    raise AssertionError(
                        f"no {what} within {timeout}s\n" + self.describe() + "\n"
                        + "\n".join(m.stderr_tail(4000) for m in self.live_members()))
                self.condition.wait(min(remaining, 0.5))

    def owners(self) -> dict[int, list[str]]:
        """Partition -> live members claiming it."""
        claims: dict[int, list[str]] = {p: [] for p in self.partitions}
        for member in self.live_members():
            for partition in member.partitions:
                claims.setdefault(partition, []).append(member.name)
        return claims

    def wait_balanced(self, members: list[GroupMember], timeout: float = 60.0) -> None:
        """Wait until `members` are the live members, each owns at least one
        partition, and every partition is owned by exactly one of them."""
        expected = {m.name for m in members}

        def balanced() -> bool:
            live = {m.name for m in self.live_members()}
            claims = self.owners()
            return (live == expected
                    and all(m.partitions for m in members)
                    and all(len(names) == 1 for names in claims.values())
                    and set(claims) == self.partitions)

        names = ", ".join(sorted(expected))
        self.wait_for(balanced, f"assignment of every partition to exactly one of {names}",
                      timeout)

    def wait_consuming(self, members: list[GroupMember], timeout: float = 30.0) -> None:
        """Wait until each of `members` consumed records under its current assignment."""
        self.wait_for(lambda: all(m.records_since_assignment for m in members),
                      "records consumed by every member under its current assignment", timeout)

    def wait_consumed(self, produced: dict[int, int], timeout: float = 60.0) -> None:
        """Wait until every offset below `produced[partition]` was consumed by some member."""
        def missing() -> int:
            seen = {pair for m in self.members for pair in m.consumed}
            return sum(1 for p, end in produced.items() for o in range(end) if (p, o) not in seen)

        self.wait_for(lambda: missing() == 0, f"consumption of every produced record "
                      f"(log end offsets {produced})", timeout)

    def describe(self) -> str:
        with self.condition:
            lines = [f"group {self.group} on {self.topic}; owners {self.owners()}"]
            lines += ["  " + m.summary() for m in self.members]
        return "\n".join(lines)

    def close(self) -> None:
        """Stop every running member (SIGKILL any that won't stop)."""
        errors = []
        for member in self.members:
            if member.live:
                try:
                    member.stop()
                except AssertionError as exc:
                    errors.append(str(exc))
        if errors:
            raise AssertionError("members failed to stop:\n" + "\n".join(errors))

    def __enter__(self) -> ConsumerGroup:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            for member in self.members:
                member.kill9()
