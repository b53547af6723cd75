"""The A B A B loop: every workload runs on each system in turn, run after
run, each time on a freshly started system with a topic of its own. The
figures of one run are what its measured step reports plus the system's CPU
time over exactly the timed part of that step (per message) and its peak RSS.
Just before the timed part of a produce step, the machine's free memory is
warmed (bench_lib.pagecache), so that no system writes into memory its host
has taken back."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from .brokers import Running, System
from . import compaction, interference, pagecache, procstat
from .workloads import RESTART, CatchUp, ClientStep, Compaction, Failover, Interference, LeaderFailover, Workload

CLIENT_TIMEOUT_S = 900


class StepFailed(Exception):
    pass


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


def run_client(spec: dict, log_path: Path, on_ready: Callable[[], None] | None = None,
               on_done: Callable[[], None] | None = None) -> dict:
    """Run one client step (bench_lib.client) in a subprocess; what it measured.
    ``on_ready`` runs just before its timed part starts, ``on_done`` as soon as
    it reports. Its stderr (librdkafka's log among others) goes to ``log_path``."""
    with open(log_path, "a") as log:
        log.write(f"--- {json.dumps(spec)}\n")
        log.flush()
        client = subprocess.Popen([sys.executable, "-m", "bench_lib.client", json.dumps(spec)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    watchdog = threading.Timer(CLIENT_TIMEOUT_S, client.kill)
    watchdog.start()
    measuring = False
    try:
        line = client.stdout.readline()
        if line.strip() == "ready":
            if on_ready:
                on_ready()
            measuring = True
            client.stdin.write("go\n")
            client.stdin.flush()
            line = client.stdout.readline()
    finally:
        if measuring and on_done:
            on_done()
        client.stdin.close()  # a client still waiting for its go gives up
        try:
            status = client.wait()
        finally:
            watchdog.cancel()
            client.stdout.close()
    if status != 0:
        reason = f"killed after {CLIENT_TIMEOUT_S} s" if status == -9 else _last_line(log_path)
        raise StepFailed(f"{spec['step']}: {reason or f'exit status {status}'}")
    return json.loads(line)


class _Window:
    """The system's CPU time, the share of the host's CPU time stolen by the
    hypervisor (a noisy host's mark: latency figures swing with it), and
    optionally a profile, over the timed part of a step."""

    def __init__(self, running: Running, profile=None):
        self.running, self.profile = running, profile
        self.cpu_seconds: float | None = None
        self.steal_pct: float | None = None
        self._stack = ExitStack()

    def start(self) -> None:
        if self.profile is not None:
            self._stack.enter_context(self.profile)
        self._cpu0 = self.running.cpu_seconds()
        self._host0 = procstat.host_steal_ticks()

    def stop(self) -> None:
        cpu1 = self.running.cpu_seconds()
        if cpu1 is not None:
            self.cpu_seconds = cpu1 - self._cpu0
        host1 = procstat.host_steal_ticks()
        if self._host0 is not None and host1 is not None and host1[1] > self._host0[1]:
            self.steal_pct = 100 * (host1[0] - self._host0[0]) / (host1[1] - self._host0[1])
        self._stack.close()


def run_once(workload: Workload, system: System, run: int, run_dir: Path, profiler=None) -> dict:
    """One run of ``workload`` on a fresh instance of ``system``: its figures."""
    label = f"{workload.name}-{system.name}-{run + 1}"
    topic = f"bench-{workload.name}-{uuid.uuid4().hex[:8]}"
    log_path = run_dir / f"{label}-client.log"
    if isinstance(workload.measure, Interference):  # it starts brokers of its own
        return interference.measure(system, workload.measure, run_dir, label, log_path, profiler)
    running = system.start(run_dir, label)
    try:
        warm_up = f"{topic}-warm-up" if workload.warm else None
        for step in workload.setup:
            if step == RESTART:
                running.restart()
            else:
                run_client({"step": step.step, "bootstrap": running.bootstrap, "topic": topic, **step.params,
                            "warm_up": warm_up}, log_path)
                warm_up = None
        if workload.measure == RESTART:
            figures = {"startup_s": running.restart()}
        elif isinstance(workload.measure, Compaction):
            figures = compaction.measure(system.name, running, topic, workload.measure, run_dir, label)
        elif isinstance(workload.measure, Failover):
            figures = running.failover(topic, workload.measure.partitions)
        elif isinstance(workload.measure, LeaderFailover):
            figures = running.leader_failover(topic, workload.measure.partitions)
        elif isinstance(workload.measure, CatchUp):
            def run_step(step: ClientStep) -> dict:
                return run_client({"step": step.step, "bootstrap": running.bootstrap, "topic": topic,
                                   **step.params}, log_path)

            figures = running.catch_up(topic, workload.measure, run_step)
        else:
            step = workload.measure
            if system.name == "ours" and workload.single is not None:
                step = workload.single  # the single broker's baseline
            profile = profiler(running, label) if profiler and running.process else None
            window = _Window(running, profile)

            def on_ready() -> None:
                if step.step == "produce":
                    pagecache.warm(run_dir, pagecache.bytes_written(step.params))
                window.start()

            figures = run_client({"step": step.step, "bootstrap": running.bootstrap, "topic": topic, **step.params,
                                  "warm_up": warm_up}, log_path, on_ready, window.stop)
            if window.cpu_seconds is not None:
                figures["cpu_us_per_msg"] = window.cpu_seconds / figures["messages"] * 1e6
            if window.steal_pct is not None:
                figures["steal_pct"] = window.steal_pct
        rss = running.peak_rss_mb()
        if rss is not None:
            figures["peak_rss_mb"] = rss
        return figures
    finally:
        running.stop()


def systems_for(workload: Workload, systems: list[System], sink: System | None) -> list[System]:
    if workload.systems is not None:
        return [s for s in systems if s.name in workload.systems]
    if workload.ours_only:
        return [s for s in systems if s.name == "ours"]
    systems = [s for s in systems if s.name != "cluster"]
    chosen = [s for s in systems if s.keeps_data or not workload.only_systems_keeping_data]
    if workload.ceiling and sink is not None:
        chosen.append(sink)
    return chosen


def run_all(workloads: list[Workload], systems: list[System], sink: System | None, runs: int,
            run_dir: Path, profiler=None) -> dict:
    """{workload name: {system name: [figures or {"error": ...} per run]}}, printing progress."""
    results: dict = {}
    for workload in workloads:
        chosen = systems_for(workload, systems, sink)
        per_system = results.setdefault(workload.name, {s.name: [] for s in chosen})
        for run in range(runs):
            for system in chosen:
                t0 = time.perf_counter()
                try:
                    figures = run_once(workload, system, run, run_dir, profiler if system.name == "ours" else None)
                except (StepFailed, RuntimeError, OSError, ValueError) as e:
                    figures = {"error": str(e)}
                per_system[system.name].append(figures)
                shown = figures.get("error") or ", ".join(
                    f"{k}={figures[k]:.4g}" for k in (*workload.figures, "steal_pct") if k in figures)
                print(f"  {workload.name} [{system.name} run {run + 1}/{runs}, "
                      f"{time.perf_counter() - t0:.1f} s] {shown}", file=sys.stderr, flush=True)
    return results
