"""A broker killed with SIGKILL while its log cleaner works (issue 13):
confluent-kafka keeps writing keyed records to a compacted topic whose
cleaner runs all the time, the broker is killed at random moments and
restarted; each time every acknowledged record is still there unless a
later record of its key replaced it, at its offset, once, and the cleaner's
worker process died with the broker. At the end the cleaned topic reads
back as exactly the latest record per key."""
from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from interop import confluent_client
from interop.messages import Message

KEYS = 300
ROUNDS = 3


@pytest.fixture
def broker_overrides():
    return {"log.cleaner.backoff.ms": "20"}


def produce(bootstrap, topic, pairs):
    offsets = confluent_client.produce(bootstrap, topic, [Message(k, v) for k, v in pairs])
    return dict(zip(offsets, pairs))


def read_all(bootstrap, topic, end):
    """Every record below ``end``, from the beginning (the topic is compacted:
    fewer records than offsets)."""
    consumer = confluent_client.consumer(bootstrap)
    try:
        from confluent_kafka import TopicPartition
        consumer.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                assert not msg.error(), msg.error()
                out.append((msg.offset(), msg.key(), msg.value()))
            if out and out[-1][0] >= end - 1:
                return out
        raise AssertionError(f"read {len(out)} records, the last at {out[-1][0] if out else None}, not {end - 1}")
    finally:
        consumer.close()


def cleaner_workers(broker_pid: int | None) -> list[int]:
    result = subprocess.run(["pgrep", "-f", "kafka_compat.log.cleaner_worker"], capture_output=True, text=True)
    pids = [int(p) for p in result.stdout.split()]
    return [p for p in pids if broker_pid is None or _parent(p) == broker_pid]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def check(acked: dict, records: list) -> None:
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets out of order or repeated"
    for offset, key, value in records:
        assert acked[offset] == (key, value), f"offset {offset} holds {(key, value)}, not {acked[offset]}"
    latest = {}
    for offset in sorted(acked):
        latest[acked[offset][0]] = offset
    present = set(offsets)
    lost = [o for o in latest.values() if o not in present]
    assert not lost, f"the latest records of {len(lost)} keys are gone, e.g. at offsets {lost[:5]}"


def test_kill_9_while_the_cleaner_works(own_broker, new_topic):
    topic = new_topic(configs={"cleanup.policy": "compact", "segment.bytes": "1100000",
                               "min.cleanable.dirty.ratio": "0"})
    rng = random.Random(21)
    acked: dict[int, tuple[bytes, bytes]] = {}
    n = 0
    for round_ in range(ROUNDS):
        for _ in range(4):
            pairs = [(b"key-%d" % rng.randrange(KEYS), b"value-%d" % (n + i) + b"x" * 200) for i in range(5000)]
            n += len(pairs)
            acked.update(produce(own_broker.bootstrap, topic, pairs))
        # The cleaner works on segment after segment now: kill the broker at a random moment of it.
        time.sleep(rng.uniform(0.0, 0.5))
        pid = own_broker.pid
        workers = cleaner_workers(pid)
        own_broker.kill9()
        deadline = time.monotonic() + 10
        while [w for w in workers if _alive(w)] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [w for w in workers if _alive(w)], "the cleaner's worker process outlived the broker"
        own_broker.start()
        end = max(acked) + 1
        check(acked, read_all(own_broker.bootstrap, topic, end))

    # Left alone, the cleaner gets every segment below the active one down to one record per key.
    # Two large records: the second surely rolls the segment holding the last keyed records.
    for last in (b"last-1", b"last-2"):
        acked.update(produce(own_broker.bootstrap, topic, [(last, b"x" * 900_000)]))
    end = max(acked) + 1
    deadline = time.monotonic() + 60
    while True:
        records = read_all(own_broker.bootstrap, topic, end)
        check(acked, records)
        keys = [k for _, k, _ in records]
        if len(keys) == len(set(keys)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(keys) == len(set(keys)), f"{len(keys) - len(set(keys))} superseded records left"
