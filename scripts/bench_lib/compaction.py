"""The log cleaner's speed (issue 13): a log of 1 KiB records over a few
thousand keys compacted in one cleaning, in MB of log read per second of
cleaning (the offset map and the copy), the figure Kafka's cleaner logs
("MB of log processed in ... seconds").

Ours: a subprocess (``python -m bench_lib.compaction``) writes the log with
PartitionLog and cleans it with the cleaner's own code in one worker thread:
one core, as the cleaner's worker process has in the broker; it reports the
cleaner's statistics, the key map's memory (its slots, bounded by
log.cleaner.dedupe.buffer.size) and its peak RSS, and checks that one record
per key is left.

Apache Kafka (``--peer kafka``): the same records produced to a compacted
topic whose min.compaction.lag.ms holds the cleaner back until they are all
written, then the statistics its cleaner logs (to its stdout, with the
log4j2.properties the tests' Kafka runs with).
"""
from __future__ import annotations

import json
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .workloads import Compaction

SEGMENT_BYTES = 16 * 1024 * 1024
LAG_MS = 20_000  # Kafka's cleaner waits this long after the last record
KAFKA_WAIT_S = 120
_KAFKA_STATS = re.compile(r"([\d,.]+) MB of log processed in ([\d,.]+) seconds \(([\d,.]+) MB/sec\)")


def _records(measure: Compaction):
    rng = random.Random(13)
    values = [rng.randbytes(measure.size) for _ in range(64)]
    for i in range(measure.messages):
        yield b"key-%d" % rng.randrange(measure.keys), values[i % 64]


def measure(system_name: str, running, topic: str, measure: Compaction, run_dir: Path, label: str) -> dict:
    if system_name == "ours":
        directory = run_dir / f"{label}-compaction"
        try:
            result = subprocess.run([sys.executable, "-m", "bench_lib.compaction", json.dumps(measure.__dict__),
                                     str(directory)], capture_output=True, text=True)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if result.returncode != 0:
            raise RuntimeError(f"compaction: {(result.stderr.strip().splitlines() or ['failed'])[-1]}")
        return json.loads(result.stdout)
    if running.process is None:
        raise ValueError("compaction: the peer's log is not on this machine")
    return _kafka(running, topic, measure)


def _kafka(running, topic: str, measure: Compaction) -> dict:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": running.bootstrap})
    configs = {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT_BYTES),
               "min.compaction.lag.ms": str(LAG_MS)}
    for future in admin.create_topics([NewTopic(topic, 1, 1, config=configs)], operation_timeout=30).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": running.bootstrap, "linger.ms": 5, "acks": "all"})
    for key, value in _records(measure):
        while True:
            try:
                producer.produce(topic, value=value, key=key, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    cleaner_log = running.process.log_path  # Kafka's log4j2.properties sends everything to stdout
    deadline = time.monotonic() + KAFKA_WAIT_S
    while time.monotonic() < deadline:
        text = cleaner_log.read_text(errors="replace") if cleaner_log.exists() else ""
        if topic in text:
            found = _KAFKA_STATS.findall(text[text.index(topic):])
            if found:
                mb, seconds, rate = (float(x.replace(",", "")) for x in found[0])
                return {"cleaner_mb_per_s": rate, "cleaned_mb": mb, "clean_s": seconds, "messages": measure.messages}
        time.sleep(1)
    raise RuntimeError(f"compaction: no cleaner statistics for {topic} in {cleaner_log} after {KAFKA_WAIT_S} s")


def _ours(measure: Compaction, directory: Path) -> dict:
    """Write and clean the log (in this process: one core); the cleaner's figures."""
    import trio

    from kafka_compat.log import LogConfig, PartitionLog
    from kafka_compat.log.cleaner_manager import CleanerConfig, LogCleaner
    from kafka_compat.protocol.records import BatchView, build_batch

    config = {"cleanup.policy": "compact", "segment.bytes": SEGMENT_BYTES}
    log = PartitionLog.open(directory / "t-0", "t", 0, LogConfig(config), clock=lambda: 0)
    batch: list = []
    for key, value in _records(measure):
        batch.append((key, value, [], 0))
        if len(batch) == 16:
            data = bytearray(build_batch(batch))
            log.append(data, [BatchView(data, 0)], 0)
            batch = []
    if batch:
        data = bytearray(build_batch(batch))
        log.append(data, [BatchView(data, 0)], 0)
    cleaner_config = CleanerConfig()
    manager = LogCleaner(cleaner_config, [directory], {("t", 0): log}, lambda: 0, worker_processes=False)

    async def clean() -> None:
        runner = manager.new_runner()
        try:
            await manager.clean_filthiest(runner)
        finally:
            runner.close()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trio.run(clean)
    stats = manager.last_stats
    if stats is None:
        raise RuntimeError("nothing was cleaned")
    map_bytes = min(cleaner_config.dedupe_buffer_size // cleaner_config.threads, 2**31 - 1) // 24 * 24
    return {
        "cleaner_mb_per_s": stats.bytes_read / 1e6 / stats.elapsed,
        "cleaned_mb": stats.bytes_read / 1e6,
        "clean_s": stats.elapsed,
        "map_mb": map_bytes / 1e6,
        "dedupe_buffer_mb": cleaner_config.dedupe_buffer_size / 1e6,
        "rss_growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before,
        "messages": measure.messages,
    }


if __name__ == "__main__":
    figures = _ours(Compaction(**json.loads(sys.argv[1])), Path(sys.argv[2]))
    print(json.dumps(figures))
