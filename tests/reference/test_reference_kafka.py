"""The reference broker itself: Apache Kafka started by interop/reference_kafka.py
(and ./scripts/reference-kafka) answers real clients and stops cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from interop import admin
from interop.broker_process import api_versions_round_trip
from interop.reference_kafka import ROOT, ReferenceKafka, kafka_version


def test_kafka_python_round_trip(reference_kafka):
    topic = f"reference-{uuid.uuid4().hex[:8]}"
    admin.create_topic(reference_kafka.bootstrap, topic, partitions=2)
    with admin.admin_client(reference_kafka.bootstrap) as client:
        assert topic in client.list_topics()

    sent = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(10)]
    producer = KafkaProducer(bootstrap_servers=reference_kafka.bootstrap, acks="all")
    try:
        for key, value in sent:
            producer.send(topic, key=key, value=value, partition=0).get(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(bootstrap_servers=reference_kafka.bootstrap, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=10_000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                got += [(r.offset, r.key, r.value) for r in records]
    finally:
        consumer.close()
    assert got == [(offset, key, value) for offset, (key, value) in enumerate(sent)]


def test_kafka_tool_against_reference(reference_kafka):
    """kafka-tool runs the release's own tools (the version they print is the pin)."""
    tool = ROOT / "scripts" / "kafka-tool"
    version = subprocess.run([tool, "kafka-topics", "--version"], capture_output=True,
                             text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.split()[0] == kafka_version()
    listed = subprocess.run([tool, "kafka-topics", "--bootstrap-server",
                             reference_kafka.bootstrap, "--list"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr


def test_stop_removes_the_directory_and_a_given_one_survives_restart(tmp_path):
    kafka = ReferenceKafka(directory=tmp_path / "kafka")
    kafka.start()
    try:
        cluster_id, pid = kafka.cluster_id, kafka.pid
        topic = f"kept-{uuid.uuid4().hex[:8]}"
        admin.create_topic(kafka.bootstrap, topic)
        kafka.stop()
        assert not kafka.running()
        # The same directory: not formatted again, same cluster, topic kept.
        kafka.start()
        assert kafka.cluster_id == cluster_id and kafka.pid != pid
        with admin.admin_client(kafka.bootstrap) as client:
            assert topic in client.list_topics()
    finally:
        kafka.stop()
    assert (tmp_path / "kafka" / "server.properties").exists()

    temporary = ReferenceKafka()
    temporary.start()
    directory, port = temporary.directory, temporary.port
    temporary.stop()
    assert not directory.exists()
    assert not api_versions_round_trip("127.0.0.1", port, timeout=1.0)


def test_script_prints_bootstrap_and_stops_on_sigterm():
    process = subprocess.Popen([ROOT / "scripts" / "reference-kafka"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("bootstrap: "):
                break
        assert lines and lines[-1].startswith("bootstrap: "), "".join(lines)
        host, port = lines[-1].split()[1].rsplit(":", 1)
        directory = Path(next(l for l in lines if l.startswith("directory: ")).split()[1])
        assert int(port) != 9092
        assert api_versions_round_trip(host, int(port))
        os.kill(process.pid, signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, rest
        assert "stopped" in rest
        assert not directory.exists()
        assert not api_versions_round_trip(host, int(port), timeout=1.0)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
