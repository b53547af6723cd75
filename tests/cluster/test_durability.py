"""Durability under kill -9 (interop/chaos.py): three brokers, a topic with
replication factor 3 and min.insync.replicas=2, confluent-kafka and
kafka-python producers writing with acks=all and idempotence while partition
leaders and the controller are killed with SIGKILL and restarted, 20 times.
Afterwards every acknowledged message is read back exactly once, at the offset
it was acknowledged with and in order; a consumer group of both client
families reads everything; every replica's log is byte-identical.

Select it with `-k durability` (or the file); `./scripts/chaos --kills 200`
runs the same harness for longer."""
from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import pytest

from interop.chaos import ChaosConfig, ChaosRun, KafkaPythonProducer, chaos_overrides, compare_replicas

KILLS = 20


@pytest.fixture
def cluster_overrides():
    return chaos_overrides(session_timeout_ms=3000)


def test_durability_acknowledged_messages_survive_kill_9(cluster):
    config = ChaosConfig(topic="durable", partitions=3, replication_factor=3, min_insync_replicas=2,
                         kills=KILLS, seed=None, max_chaos_s=300)
    verdict = ChaosRun(cluster, config).run()
    print(verdict.report())
    assert len(verdict.kills) >= KILLS, verdict.report()
    assert verdict.ok, verdict.report()


# -- the harness's own checks, on made-up outcomes (no cluster): it must name
# what was lost, duplicated, misplaced or reordered, and where replicas differ.


def made_up_run(messages: int = 9) -> tuple[ChaosRun, dict[int, list[tuple[int, bytes]]]]:
    """A run whose one producer sent ``messages`` messages, all acknowledged,
    and the log exactly as they were acknowledged."""
    config = ChaosConfig(topic="t", partitions=3)
    run = ChaosRun(cluster=None, config=config, log=lambda text: None)
    producer = KafkaPythonProducer(0, "unused:1", config, run.started)
    producer._next_name()
    records = {p: [] for p in range(3)}
    for _ in range(messages):
        sent = producer._new_message()
        offset = len(records[sent.partition])
        records[sent.partition].append((offset, sent.value))
        producer._acked(sent.value, sent.partition, offset)
    run.producers = [producer]
    return run, records


def test_the_harness_passes_a_log_that_holds_every_acknowledged_message():
    run, records = made_up_run()
    run.check_log(records)
    assert run.verdict.ok, run.verdict.report()


def test_the_harness_names_lost_messages():
    run, records = made_up_run()
    del records[1][1:]  # kp0.1-00000004 and -00000007 (partition 1, offsets 1 and 2)
    run.check_log(records)
    assert len(run.verdict.failures) == 1
    assert run.verdict.failures[0].startswith("LOST 2 acknowledged messages")
    assert "kp0.1 partition 1: 2 messages kp0.1-00000004..kp0.1-00000007, acknowledged at offsets 1..2" \
        in run.verdict.failures[0]


def test_the_harness_names_duplicated_misplaced_and_reordered_messages():
    run, records = made_up_run()
    records[0].append((3, records[0][0][1]))  # offset 0's message again at 3
    run.check_log(records)
    assert any(f.startswith("DUPLICATED 1 acknowledged messages") and "kp0.1-00000000 acknowledged at p0@0, "
               "found at p0@0, p0@3" in f for f in run.verdict.failures), run.verdict.failures

    run, records = made_up_run()
    (o1, v1), (o2, v2) = records[2][0], records[2][1]
    records[2][0], records[2][1] = (o1, v2), (o2, v1)  # swapped: each is where the other was acknowledged
    run.check_log(records)
    report = run.verdict.report()
    assert "2 acknowledged messages are not at the offset they were acknowledged with" in report
    assert "REORDERED: kp0.1 partition 2" in report and "kp0.1-00000002 at offset 1 but kp0.1-00000005 at 0" in report


def test_the_harness_tolerates_failed_messages_in_the_log_but_not_strangers():
    run, records = made_up_run()
    producer = run.producers[0]
    sent = producer._new_message()  # partition 0, reported failed, yet written
    producer._failed(sent.value, "KafkaTimeoutError")
    records[sent.partition].append((3, sent.value))
    run.check_log(records)
    assert run.verdict.ok and "outcome the client reported as unknown or failed" in run.verdict.warnings[0]
    records[0].append((4, b"nobody-00000001"))
    run.check_log(records)
    assert "1 values in the log that no producer sent" in run.verdict.failures[0]


def batch(base_offset: int, records: int, epoch: int, payload: bytes) -> bytes:
    body = struct.pack(">ibIhi", epoch, 2, zlib.crc32(payload), 0, records - 1) + payload
    return struct.pack(">qi", base_offset, len(body)) + body


def test_the_harness_compares_replicas_batch_by_batch(tmp_path):
    brokers = {b: SimpleNamespace(data_dir=tmp_path / f"broker-{b}") for b in (1, 2, 3)}
    cluster = SimpleNamespace(brokers=brokers)
    batches = [batch(0, 2, 0, b"a" * 20), batch(2, 3, 0, b"b" * 30), batch(5, 1, 1, b"c" * 10)]
    for b in brokers:
        (brokers[b].data_dir / "t-0").mkdir(parents=True)
    # broker 1 in one segment with preallocated zeroes after it; broker 2 in two segments
    (brokers[1].data_dir / "t-0" / f"{0:020d}.log").write_bytes(b"".join(batches) + bytes(64))
    (brokers[2].data_dir / "t-0" / f"{0:020d}.log").write_bytes(b"".join(batches[:2]))
    (brokers[2].data_dir / "t-0" / f"{5:020d}.log").write_bytes(batches[2])
    (brokers[3].data_dir / "t-0" / f"{0:020d}.log").write_bytes(b"".join(batches))
    failures, notes = compare_replicas(cluster, "t", 0, [1, 2, 3], must_reach=6)
    assert not failures and "log ends [6, 6, 6], 3 batches" in notes[0]

    # broker 3 took another leader's batch at offset 2 (epoch 1) and lacks the last one
    (brokers[3].data_dir / "t-0" / f"{0:020d}.log").write_bytes(batches[0] + batch(2, 3, 1, b"x" * 30))
    failures, _ = compare_replicas(cluster, "t", 0, [1, 2, 3], must_reach=6)
    assert "a replica's log ends before the last acknowledged offset 5: broker 3 ends at 5" in failures[0]
    assert "the replicas' logs end at different offsets" in failures[1]
    assert failures[2].startswith("partition 0: replicas differ from batch #1 on (below the common log end 5): "
                                  "broker 1: batch 2..4 leader epoch 0") and "broker 3: batch 2..4 leader epoch 1" \
        in failures[2]
