"""Apache Kafka as the peer (``--peer kafka``): the release the tests use as
their reference (interop/reference_kafka.py, jars from scripts/kafka-jars),
one KRaft node in combined mode (broker and controller in one process).

Each start formats a fresh directory (server.properties, log.dirs under the
bench's data directory for that run) and runs `java ... kafka.Kafka` itself,
so the PID the bench holds is the JVM's and its CPU time and peak RSS are
Kafka's own. The command line and configs are ReferenceKafka's: Kafka's
defaults as kafka-server-start.sh runs it (-Xmx1G -Xms1G, kafka-run-class.sh's
JVM options), except the one-node replication factors of the internal topics.
Kafka keeps its data on disk, so the restart workloads run on it too.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from . import brokers

ROOT = Path(__file__).resolve().parents[2]
# What a JVM returns after SIGTERM once its shutdown hooks (Kafka's controlled
# shutdown) have run: 128 + 15.
JVM_SIGTERM_STATUS = 143


class Unavailable(Exception):
    """Kafka can't run here; the message says why."""


def _reference_kafka():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from interop import reference_kafka

    return reference_kafka


def system() -> brokers.System:
    """The peer System; fetches Kafka's jars first if needed (Maven), raises
    Unavailable when there is no java or the jars can't be had."""
    reference_kafka = _reference_kafka()
    if shutil.which("java") is None:
        raise Unavailable("java is not installed")
    try:
        reference_kafka.kafka_libs()
    except RuntimeError as e:
        raise Unavailable(str(e).splitlines()[0]) from None

    def argv(port: int, data_dir: Path) -> list[str]:
        # The controller listener gets a free port of its own.
        return reference_kafka.ReferenceKafka(directory=data_dir, port=port).prepare()

    version = (f"Apache Kafka {reference_kafka.kafka_version()} (KRaft, one combined node, "
               f"{' '.join(reference_kafka.HEAP_OPTIONS)}, {_java_version()})")
    return brokers.System("peer", version, argv, keeps_data=True, clean_exit=(0, JVM_SIGTERM_STATUS))


def _java_version() -> str:
    """E.g. "openjdk 17.0.15", from `java -version`'s first line."""
    try:
        lines = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    except OSError:
        return "java unknown"
    first = lines[0] if lines else "java unknown"  # openjdk version "17.0.15" 2025-04-15
    if '"' not in first:
        return first
    return f"{first.split(' version ')[0]} {first.split(chr(34))[1]}"
