"""The log cleaner's cost to everyone else (issue 13: it must not slow
produce and fetch on other partitions by more than 10%).

A template data directory is made once per bench invocation: our broker
with one compacted topic (one partition, small segments,
min.cleanable.dirty.ratio 0.01) holding a few hundred MB of keyed 1 KiB
records over a few thousand keys, written through the broker while
min.compaction.lag.ms holds the cleaner back, then a clean shutdown.

Each run starts a fresh broker on a copy of it and one client
(bench_lib.client's ``rounds`` step) that, round after round, produces
then consumes 1 KiB records on a new ordinary topic, each round timed on
its own. Once the client is set up, an IncrementalAlterConfigs sets the
compacted topic's min.compaction.lag.ms to 0, and the bench waits until
the cleaner has swapped its first cleaned segment in (its offset map is
built and the copying, the part that involves the event loop too, has
begun). Then the rounds alternate: idle, busy, idle, ..., busy, idle. An idle
round runs with the cleaner's worker process stopped (SIGSTOP, then no
swap in for 0.1 s: the broker's part of the last one is done), a busy one
with it running (0.1 s after the idle round, then SIGCONT): the same broker,
logs, open files, page cache and cleaner memory in both, and the two states
less than a second apart, so that the drift of this shared machine touches
both alike. Before each round, while the worker is stopped, the machine's
free memory is warmed (bench_lib.pagecache). Each busy round is compared
with the mean of the idle rounds just before and after it (which cancels a
steady drift); a run's figure is the median of those ratios.

The cleaning must last the rounds: every busy round must see the worker
use CPU and swap segments in, and when the last busy round ends no
cleaner-offset-checkpoint entry may exist for the topic yet (it is
written when a cleaning ends). Otherwise the run fails: the log was too
small. Then the worker is let go and the bench waits for the cleaning to
end, so a cleaning that fails is seen too.

The broker runs with log.cleaner.backoff.ms at 200 ms, so that the
cleaner finds the log soon after the config change.
"""
from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from kafka_compat.log.checkpoint import read_checkpoint

from . import pagecache, procstat
from .brokers import HOST, Process, Running, System, free_port
from .workloads import Interference

TOPIC = "compacted"
HOLD_MS = 10**12  # min.compaction.lag.ms that keeps every segment from the cleaner
BACKOFF_MS = 200
CLEANER_START_TIMEOUT_S = 120
CLEANING_TIMEOUT_S = 300
CLIENT_TIMEOUT_S = 600
SETTLE_S = 0.1  # no swap for this long after the worker stopped: the event loop's part of it is done
_templates: dict[Interference, Path] = {}


class Failed(RuntimeError):
    pass


def _broker(system: System, data_dir: Path, log_path: Path) -> Process:
    port = free_port()
    argv = system.argv(port, data_dir) + ["-o", f"log.cleaner.backoff.ms={BACKOFF_MS}"]
    process = Process(argv, port, log_path)
    process.start()
    return process


def _bootstrap(process: Process) -> str:
    return f"{HOST}:{process.port}"


def _template(system: System, measure: Interference, run_dir: Path) -> Path:
    """The data directory every run copies (made on first use, removed at exit)."""
    if measure in _templates:
        return _templates[measure]
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    directory = run_dir / "compaction-interference-template"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    atexit.register(shutil.rmtree, directory, True)
    process = _broker(system, directory, run_dir / "compaction-interference-template.log")
    try:
        bootstrap = _bootstrap(process)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        configs = {"cleanup.policy": "compact", "segment.bytes": str(measure.segment_bytes),
                   "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": str(HOLD_MS)}
        for future in admin.create_topics([NewTopic(TOPIC, 1, 1, config=configs)], operation_timeout=30).values():
            future.result(30)
        errors: list = []
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3,
                             "on_delivery": lambda error, _: error is not None and errors.append(error)})
        rng = random.Random(13)
        values = [rng.randbytes(measure.size) for _ in range(64)]
        remaining = measure.log_messages
        while remaining:
            batch = [{"key": b"key-%d" % rng.randrange(measure.keys), "value": values[i % 64]}
                     for i in range(min(1000, remaining))]
            queued = producer.produce_batch(TOPIC, batch, partition=0)
            remaining -= queued
            producer.poll(0 if queued == len(batch) else 0.01)
        if producer.flush(60) or errors:
            raise Failed(f"the compacted log's records were not all acked ({errors[:1]})")
    finally:
        if not process.stop():
            raise Failed(f"no clean shutdown of the template's broker: {process.log_tail()}")
    _templates[measure] = directory
    return directory


def _alter(bootstrap: str, lag_ms: int) -> None:
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry("min.compaction.lag.ms", str(lag_ms), incremental_operation=AlterConfigOpType.SET)])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def _swapped(partition_dir: Path) -> int:
    """Segments the cleaner has replaced so far (their .log files wait as
    .log.deleted for file.delete.delay.ms, a minute)."""
    return sum(1 for name in os.listdir(partition_dir) if name.endswith(".log.deleted"))


def _cleaned(data_dir: Path) -> bool:
    """Whether a cleaning of the topic has ended (its cleaner-offset-checkpoint entry)."""
    return (TOPIC, 0) in read_checkpoint(data_dir / "cleaner-offset-checkpoint")


def _worker(broker_pid: int) -> int | None:
    """The cleaner's worker process (a child of the broker)."""
    for pid in procstat.children(broker_pid):
        try:
            if b"cleaner_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            pass
    return None


def _wait(condition, timeout_s: float, what: str) -> float:
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout_s:
            raise Failed(f"{what} after {timeout_s} s")
        time.sleep(0.01)
    return time.monotonic() - t0


def _settle(partition_dir: Path) -> None:
    """Until no segment has been swapped in for SETTLE_S (the worker is stopped)."""
    count, since = _swapped(partition_dir), time.monotonic()
    while time.monotonic() - since < SETTLE_S:
        time.sleep(0.01)
        now = _swapped(partition_dir)
        if now != count:
            count, since = now, time.monotonic()


class _Client:
    """The ``rounds`` client step, driven round by round."""

    def __init__(self, spec: dict, log_path: Path):
        with open(log_path, "a") as log:
            log.write(f"--- {json.dumps(spec)}\n")
            log.flush()
            self.popen = subprocess.Popen([sys.executable, "-m", "bench_lib.client", json.dumps(spec)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.log_path = log_path
        self.spec = spec
        self._watchdog = threading.Timer(CLIENT_TIMEOUT_S, self.popen.kill)
        self._watchdog.start()

    def _line(self) -> str:
        line = self.popen.stdout.readline()
        if not line:
            self.popen.wait()
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            raise Failed(f"the client exited ({self.popen.returncode}): {lines[-1] if lines else ''}")
        return line.strip()

    def wait_ready(self) -> None:
        line = self._line()
        if line != "ready":
            raise Failed(f"the client said {line!r}, not ready")

    def go(self) -> dict:
        self.popen.stdin.write("go\n")
        self.popen.stdin.flush()
        return json.loads(self._line())

    def close(self) -> None:
        self._watchdog.cancel()
        if self.popen.poll() is None:
            self.popen.stdin.close()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.popen.stdout.close()


def _round(client: _Client, process: Process, worker: int, partition_dir: Path, data_dir: Path, busy: bool,
           profile) -> dict:
    """One round, the worker running (busy) or stopped: the client's figures
    and what the broker and the cleaner did meanwhile."""
    # Memory is warmed while the worker is stopped, so that the cleaning lasts the rounds.
    round_bytes = pagecache.bytes_written(client.spec)
    if busy:
        pagecache.warm(data_dir.parent, round_bytes)
        time.sleep(SETTLE_S)  # the pause an idle round gets before it, the worker still stopped
        os.kill(worker, signal.SIGCONT)
    else:
        os.kill(worker, signal.SIGSTOP)
        _settle(partition_dir)
        pagecache.warm(data_dir.parent, round_bytes)
    with profile:
        broker0, worker0, swapped0 = (procstat.cpu_seconds(process.pid), procstat.cpu_seconds(worker),
                                      _swapped(partition_dir))
        t0 = time.perf_counter()
        figures = client.go()
        seconds = time.perf_counter() - t0
        figures.update({"busy": busy, "start_s": t0, "window_s": seconds, "swapped_before": swapped0,
                        "broker_cpu_s": procstat.cpu_seconds(process.pid) - broker0,
                        "cleaner_cpu_s": procstat.cpu_seconds(worker) - worker0,
                        "segments_swapped": _swapped(partition_dir) - swapped0,
                        "cleaning_ended": _cleaned(data_dir)})
    return figures


def _run(system: System, measure: Interference, template: Path, run_dir: Path, label: str, log_path: Path,
         profiler) -> dict:
    data_dir = run_dir / f"{label}-data"
    shutil.copytree(template, data_dir)
    os.sync()  # the copy's writeback is not measured
    partition_dir = data_dir / f"{TOPIC}-0"
    process = _broker(system, data_dir, run_dir / f"{label}.log")
    worker = None
    client = None
    try:
        bootstrap = _bootstrap(process)
        client = _Client({"step": "rounds", "bootstrap": bootstrap, "topic": f"bench-{label}-{uuid.uuid4().hex[:8]}",
                          "partitions": measure.partitions, "count": measure.messages, "size": measure.size,
                          "rounds": 2 * measure.pairs + 1, "warm_up": f"bench-{label}-warm-up"}, log_path)
        client.wait_ready()
        t0 = time.monotonic()
        _alter(bootstrap, 0)
        _wait(lambda: _swapped(partition_dir) > 0, CLEANER_START_TIMEOUT_S, "the cleaner swapped no segment in")
        cleaner_start_s = time.monotonic() - t0
        worker = _worker(process.pid)
        if worker is None:
            raise Failed("no cleaner worker process")
        rounds = []
        for i in range(2 * measure.pairs + 1):
            if i:
                client.wait_ready()
            busy = i % 2 == 1
            profile = (profiler(Running(bootstrap, process), f"{label}-{'busy' if busy else 'idle'}-{i // 2 + 1}")
                       if profiler is not None else ExitStack())
            rounds.append(_round(client, process, worker, partition_dir, data_dir, busy, profile))
        os.kill(worker, signal.SIGCONT)
        first = rounds[0]["start_s"]
        for r in rounds:
            r["start_s"] -= first
        (run_dir / f"{label}-rounds.json").write_text(json.dumps(rounds, indent=1) + "\n")
        for i, r in enumerate(rounds):
            if r["busy"] and (r["cleaner_cpu_s"] <= 0 or r["segments_swapped"] <= 0 or r["cleaning_ended"]):
                raise Failed(f"the cleaning did not last round {i + 1} (worker CPU {r['cleaner_cpu_s']:.2f} s, "
                             f"{r['segments_swapped']} segments swapped, ended: {r['cleaning_ended']}); "
                             "make the compacted log larger")
        cleaning_left_s = _wait(lambda: _cleaned(data_dir), CLEANING_TIMEOUT_S, "the cleaning did not end")
        return {"rounds": rounds, "cleaner_start_s": cleaner_start_s, "cleaning_left_s": cleaning_left_s,
                "segments_swapped_total": _swapped(partition_dir)}
    finally:
        if worker is not None:
            try:
                os.kill(worker, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if client is not None:
            client.close()
        process.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def measure(system: System, measure: Interference, run_dir: Path, label: str, log_path: Path,
            profiler=None) -> dict:
    """One run: its rounds, and per figure the median of the busy rounds
    over that of the idle ones. ``profiler`` (bench_lib.profile), if given,
    profiles the broker in each round."""
    from confluent_kafka import KafkaException

    try:
        result = _run(system, measure, _template(system, measure, run_dir), run_dir, label, log_path, profiler)
    except KafkaException as e:
        raise Failed(f"compaction-interference: {e}") from None
    except Failed as e:
        raise Failed(f"compaction-interference: {e}") from None
    rounds = result["rounds"]
    idle = [r for r in rounds if not r["busy"]]
    busy = [r for r in rounds if r["busy"]]
    figures = {"messages": measure.messages * len(rounds), **result}
    for kind in ("produce", "consume"):
        key = f"{kind}_msg_per_s"
        figures[f"{kind}_idle_msg_per_s"] = statistics.median(r[key] for r in idle)
        figures[f"{kind}_busy_msg_per_s"] = statistics.median(r[key] for r in busy)
        # Round 2i+1 (busy) against rounds 2i and 2i+2 (idle).
        ratios = [rounds[i][key] / ((rounds[i - 1][key] + rounds[i + 1][key]) / 2)
                  for i in range(1, len(rounds), 2)]
        figures[f"{kind}_round_ratios"] = ratios
        figures[f"{kind}_busy_over_idle"] = statistics.median(ratios)
    idle_cpu = sum(r["broker_cpu_s"] for r in idle)
    if idle_cpu:
        figures["broker_cpu_busy_over_idle"] = sum(r["broker_cpu_s"] for r in busy) / idle_cpu
    figures["cleaner_cpu_share"] = sum(r["cleaner_cpu_s"] for r in busy) / sum(r["window_s"] for r in busy)
    figures["segments_swapped"] = sum(r["segments_swapped"] for r in busy)
    return figures
