"""An optional py-spy profile of our broker during each measured step.

py-spy (from the bench's tools virtualenv) samples the broker without
pausing it (--nonblocking) and writes collapsed stacks (--format raw); the
summary ranks functions by self time (the sampled frame itself) and by total
time (anywhere on the stack), in percent of the samples taken while the
broker was running Python code. Sampling costs the broker some speed, so
figures of a profiled run are not to be compared with unprofiled ones.
"""
from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from . import toolsenv

RATE_HZ = 250
TOP = 15
_LINE = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """'fn (path/to/file.py:42)' -> 'fn (path/to/file.py)'."""
    return _LINE.sub(")", frame)


def summarize(raw: Path, top: int = TOP) -> dict:
    """Top functions by self and by total share of the samples in ``raw``."""
    own: Counter = Counter()
    total: Counter = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";")]
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    share = lambda counter: [(fn, round(100 * n / samples, 1)) for fn, n in counter.most_common(top)]  # noqa: E731
    return {"samples": samples, "self": share(own) if samples else [], "total": share(total) if samples else []}


class Profiler:
    """Called with a running system and a label: a context manager that
    profiles its process meanwhile; summaries are kept by label."""

    def __init__(self, workdir: Path, out_dir: Path):
        self.binary = toolsenv.path(workdir) / "bin" / "py-spy"
        if not self.binary.exists():
            toolsenv.install(workdir, "py-spy")
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.summaries: dict[str, dict] = {}

    @contextmanager
    def __call__(self, running, label: str):
        raw = self.out_dir / f"{label}.txt"
        with open(self.out_dir / f"{label}.log", "wb") as log:
            spy = subprocess.Popen(
                [str(self.binary), "record", "--pid", str(running.process.pid), "--output", str(raw),
                 "--format", "raw", "--rate", str(RATE_HZ), "--nonblocking"],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        if raw.exists():
            self.summaries[label] = {"raw": str(raw), **summarize(raw)}


def render(summaries: dict[str, dict]) -> str:
    lines = []
    for label, summary in summaries.items():
        lines.append(f"\n### profile of ours: {label} ({summary['samples']} samples, {summary['raw']})")
        lines.append("self %  | function")
        lines += [f"{pct:6.1f} | {fn}" for fn, pct in summary["self"]]
        lines.append("total % | function")
        lines += [f"{pct:6.1f} | {fn}" for fn, pct in summary["total"]]
    return "\n".join(lines)
