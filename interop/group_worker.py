"""One consumer-group member in its own process, for any Python client:
`python -m interop.group_worker --client NAME --bootstrap H:P --topic T --group G ...`

It subscribes, polls until told to stop, commits after every poll what it
consumed, and reports on stdout, one JSON object a line:

  {"event": "assigned", "partitions": [..], "incremental": bool}
  {"event": "revoked",  "partitions": [..], "incremental": bool}
  {"event": "lost",     "partitions": [..]}
  {"event": "records",  "records": [[partition, offset], ..]}
  {"event": "committed", "offsets": {"partition": next offset, ..}}
  {"event": "commit_failed", "error": ".."}
  {"event": "closed"}

An eager ("incremental": false) assignment replaces the member's partitions
and an eager revocation gives up all of them; an incremental one adds or
removes only those listed. A line "stop" on stdin, or its end, makes the
member close the consumer (and so leave the group, unless it is static) and
exit. interop/node/client.js `group` speaks the same protocol for kafkajs.
"""
from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class MemberOptions:
    bootstrap: str
    topic: str
    group: str
    name: str
    instance_id: str | None = None
    assignor: str | None = None  # range, roundrobin, cooperative-sticky; None: client default
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500

    def arguments(self) -> list[str]:
        """The command-line form of these options (for this module and client.js)."""
        args = ["--bootstrap", self.bootstrap, "--topic", self.topic, "--group", self.group,
                "--name", self.name, "--session-timeout-ms", str(self.session_timeout_ms),
                "--heartbeat-interval-ms", str(self.heartbeat_interval_ms)]
        if self.instance_id:
            args += ["--instance-id", self.instance_id]
        if self.assignor:
            args += ["--assignor", self.assignor]
        return args


class Reporter:
    """Writes events to stdout; callable from any thread of the worker."""

    def __init__(self, stream=sys.stdout):
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields) -> None:
        line = json.dumps({"event": event, **fields})
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def assigned(self, partitions, *, incremental: bool) -> None:
        self.emit("assigned", partitions=sorted(partitions), incremental=incremental)

    def revoked(self, partitions, *, incremental: bool) -> None:
        self.emit("revoked", partitions=sorted(partitions), incremental=incremental)

    def lost(self, partitions) -> None:
        self.emit("lost", partitions=sorted(partitions))

    def records(self, pairs: list[tuple[int, int]]) -> None:
        if pairs:
            self.emit("records", records=pairs)

    def committed(self, offsets: dict[int, int]) -> None:
        self.emit("committed", offsets={str(p): o for p, o in offsets.items()})

    def commit_failed(self, error: BaseException) -> None:
        self.emit("commit_failed", error=f"{type(error).__name__}: {error}")


def watch_stdin() -> threading.Event:
    """An event set when stdin says "stop" or ends."""
    stop = threading.Event()

    def read():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=read, name="stdin-watch", daemon=True).start()
    return stop


def parse(argv: list[str]) -> tuple[str, MemberOptions]:
    parser = argparse.ArgumentParser(prog="python -m interop.group_worker")
    parser.add_argument("--client", required=True,
                        choices=["kafka-python", "confluent-kafka", "aiokafka"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--instance-id")
    parser.add_argument("--assignor", choices=["range", "roundrobin", "cooperative-sticky"])
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=500)
    args = parser.parse_args(argv)
    return args.client, MemberOptions(
        bootstrap=args.bootstrap, topic=args.topic, group=args.group, name=args.name,
        instance_id=args.instance_id, assignor=args.assignor,
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=args.heartbeat_interval_ms)


def main(argv: list[str] | None = None) -> None:
    client, options = parse(sys.argv[1:] if argv is None else argv)
    # The client library's own account goes to stderr, which the test keeps
    # in a file and shows when a wait fails.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # GroupMember.dump_stacks()
    # Imported here so a worker loads only its own client library.
    if client == "kafka-python":
        from .group_kafka_python import run
    elif client == "confluent-kafka":
        from .group_confluent import run
    else:
        from .group_aiokafka import run
    reporter = Reporter()
    run(options, reporter, watch_stdin())
    reporter.emit("closed")


if __name__ == "__main__":
    main()
