"""kill -9 in the middle of the log cleaner's work (issue 13): a process
cleaning a compacted log (a small dedupe buffer, so pass after pass and
segment group after group, each swapped in) is killed at a random moment,
many times; each time the log reopened from what is on disk holds the old
or the new segments: no .cleaned/.swap leftovers, offsets increasing, every
record one that was written, every key's latest record still there, the
log end unchanged; and cleaning it to the end then gives the same log as an
uninterrupted cleaning."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import trio

from kafka_compat.log import LogConfig, PartitionLog
from kafka_compat.log.cleaner_manager import CleanerConfig, LogCleaner
from kafka_compat.log.segment import CLEANED_SUFFIX, SWAP_SUFFIX
from kafka_compat.protocol.records import BatchView, build_batch, iter_batches

CONFIG = {"cleanup.policy": "compact", "segment.bytes": 30_000, "min.cleanable.dirty.ratio": 0}
RUNS = 12
DEDUPE = 24 * 2000  # 2,000 slots: 1,800 keys a pass

CHILD = textwrap.dedent("""
    import sys, trio
    from pathlib import Path
    from kafka_compat.log import LogConfig, PartitionLog
    from kafka_compat.log.cleaner_manager import CleanerConfig, LogCleaner
    config = %r
    async def main():
        log = PartitionLog.open(Path(sys.argv[1]) / "t-0", "t", 0, LogConfig(config), clean_shutdown=True,
                                recovery_point=int(sys.argv[2]))
        manager = LogCleaner(CleanerConfig(dedupe_buffer_size=%d), [Path(sys.argv[1])], {("t", 0): log}, lambda: 0,
                         worker_processes=False)
        cleaner = manager.new_runner()
        print("cleaning", flush=True)
        while await manager.clean_filthiest(cleaner):
            pass
        print("done", flush=True)
    trio.run(main)
""") % (CONFIG, DEDUPE)


def records(log):
    out = []
    for segment in log.segments:
        for batch in iter_batches(os.pread(segment.fd, segment.size, 0)):
            out += [(r.offset, r.key, r.value) for r in batch.records()]
    return out


def latest(rs):
    last = {}
    for r in rs:
        last[r[1]] = r
    return sorted(last.values())


def build(directory):
    log = PartitionLog.open(directory / "t-0", "t", 0, LogConfig(CONFIG), clock=lambda: 0)
    rng = random.Random(5)
    written = []
    for i in range(4000):
        batch = [(b"k%d" % rng.randrange(5000), b"v%d-%d" % (i, j)) for j in range(5)]
        data = bytearray(build_batch([(k, v, [], 0) for k, v in batch]))
        result = log.append(data, [BatchView(data, 0)], 0)
        written += [(result.base_offset + j, k, v) for j, (k, v) in enumerate(batch)]
    return log, written


async def clean_to_end(log, directory):
    manager = LogCleaner(CleanerConfig(dedupe_buffer_size=DEDUPE), [directory], {("t", 0): log}, lambda: 0,
                         worker_processes=False)
    cleaner = manager.new_runner()
    while await manager.clean_filthiest(cleaner):
        pass


async def test_kill_9_at_random_moments_of_a_cleaning(tmp_path):
    pristine = tmp_path / "pristine"
    log, written = build(pristine)
    end = log.log_end_offset
    active_base = log.segments[-1].base_offset
    await log.close()
    below = [r for r in written if r[0] < active_base]
    expected = latest(below) + [r for r in written if r[0] >= active_base]

    # How long an uninterrupted cleaning takes, in a process as the killed ones.
    reference = tmp_path / "reference"
    shutil.copytree(pristine, reference)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", CHILD, str(reference), str(end)], check=True, capture_output=True)
    duration = time.monotonic() - started
    ref_log = PartitionLog.open(reference / "t-0", "t", 0, LogConfig(CONFIG))
    assert records(ref_log) == expected
    await ref_log.close()

    rng = random.Random(9)
    for run in range(RUNS):
        directory = tmp_path / f"run-{run}"
        shutil.copytree(pristine, directory)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), str(end)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert child.stdout.readline().strip() == b"cleaning"
            await trio.sleep(rng.uniform(0, duration * 0.8))
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        log = PartitionLog.open(directory / "t-0", "t", 0, LogConfig(CONFIG))
        names = os.listdir(directory / "t-0")
        assert not [n for n in names if n.endswith((CLEANED_SUFFIX, SWAP_SUFFIX))], names
        got = records(log)
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(set(offsets))
        assert set(got) <= set(written)
        assert latest(got) == latest(written)
        assert log.log_end_offset == end
        await clean_to_end(log, directory)
        assert records(log) == expected
        await log.close()
