"""Compacted topics through real clients (issue 13): 200,000 records over
1,000 keys with updates and tombstones written by confluent-kafka, read from
the beginning by confluent-kafka and kafka-python once the log cleaner has
run: exactly the latest value per key at its original offset, the
tombstones until delete.retention.ms has passed and a later cleaning, then
nothing of those keys."""
from __future__ import annotations

import random
import time

import pytest

from interop import confluent_client, kafka_python_client
from interop.messages import Message

KEYS = 1000
RECORDS = 200_000
DELETE_RETENTION_MS = 3000


@pytest.fixture(scope="module")
def broker_overrides():
    return {"log.cleaner.backoff.ms": "100"}


def expected_after(sent: list[tuple[int, bytes, bytes | None]], *, tombstones: bool, below: int):
    """The records left below offset ``below`` by a full cleaning (offset
    order), with or without the tombstones; everything from ``below`` on."""
    last = {}
    for offset, key, value in sent:
        if offset < below:
            last[key] = (offset, key, value)
    kept = sorted(r for r in last.values() if tombstones or r[2] is not None)
    return kept + [r for r in sent if r[0] >= below]


def read_all(client, bootstrap, topic, count):
    return [(r.offset, r.key, r.value) for r in client.consume(bootstrap, topic, count, timeout=20)]


def wait_for(bootstrap, topic, expected, timeout=90.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = read_all(confluent_client, bootstrap, topic, len(expected))
        if got == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"the cleaned topic never read back as expected: {len(got or [])} records, first "
                         f"differences {[(a, b) for a, b in zip(got or [], expected) if a != b][:3]}")


def produce(bootstrap, topic, pairs) -> list[tuple[int, bytes, bytes | None]]:
    offsets = confluent_client.produce(bootstrap, topic, [Message(k, v) for k, v in pairs])
    return [(o, k, v) for o, (k, v) in zip(offsets, pairs)]


def test_a_compacted_topic_reads_back_as_the_latest_value_per_key(broker, new_topic):
    topic = new_topic(configs={
        "cleanup.policy": "compact", "segment.bytes": "1000000", "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(DELETE_RETENTION_MS), "segment.ms": "1000",
    })
    rng = random.Random(13)
    pairs = []
    for i in range(RECORDS):
        key = b"key-%04d" % rng.randrange(KEYS)
        pairs.append((key, None if rng.random() < 0.05 else b"value-%d" % i))
    sent = produce(broker.bootstrap, topic, pairs)
    assert [o for o, _, _ in sent] == list(range(RECORDS))
    # Roll the last segment (segment.ms) so that all 200,000 records are cleanable.
    time.sleep(1.1)
    sent += produce(broker.bootstrap, topic, [(b"roll-1", b"r")])

    with_tombstones = expected_after(sent, tombstones=True, below=RECORDS)
    assert any(v is None for _, _, v in with_tombstones)
    wait_for(broker.bootstrap, topic, with_tombstones)
    assert read_all(kafka_python_client, broker.bootstrap, topic, len(with_tombstones)) == with_tombstones

    # Past delete.retention.ms a later cleaning (enough new dirty data, rolled) drops the tombstones.
    time.sleep(DELETE_RETENTION_MS / 1000 + 0.2)
    sent += produce(broker.bootstrap, topic, [(b"key-%04d" % (i % 10), b"after the horizon %d" % i)
                                              for i in range(5000)])
    time.sleep(1.1)
    sent += produce(broker.bootstrap, topic, [(b"roll-2", b"r")])
    final = expected_after(sent, tombstones=False, below=sent[-1][0])
    assert not any(v is None for _, _, v in final)
    wait_for(broker.bootstrap, topic, final)
    for client in (confluent_client, kafka_python_client):
        got = read_all(client, broker.bootstrap, topic, len(final))
        assert got == final
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(set(offsets))
