"""Warm the machine's free memory before a timed step that writes.

On a virtual machine that hands free memory back to its host (free page
reporting: this Firecracker machine boots with
``page_reporting.page_reporting_order``), the first write into memory that
was freed a few seconds ago costs about ten times a write into memory freed
just now: here 1.5 GB went into a file at 0.56 GB/s after 10 s idle and at
6 GB/s right after another 1.5 GB file was deleted. Every run starts its
system first (seconds for a cluster, a fraction of one for the single
broker), so whichever side started more slowly wrote into cold memory: the
cluster's acks=all runs paid some 1.6 s of kernel copy time per 500,000
messages that the single broker's acks=1 runs beside them did not.

Two things put every system on warm memory, as on a machine without a
balloon: for the whole bench the guest keeps what it frees for
``HOLD_MS`` before reporting it (the kernel's
``page_reporting.min_free_ms``, 0 here; restored at exit), and just before
a produce step's timed part a scratch file as large as the step's writes
is written and deleted, so that the memory has been touched. Anonymous
memory does not do the latter: page-cache writes after touching and
freeing 1.6 GB of it were as slow as cold ones. With min_free_ms at 60 s,
1.5 GB went into a file at 6.6 GB/s 10 s after another had been deleted.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MIN_FREE_MS = Path("/sys/module/page_reporting/parameters/min_free_ms")
HOLD_MS = 120_000

CHUNK = b"\0" * (1 << 20)
OVERHEAD = 1.1  # batch headers, indexes


def bytes_written(params: dict) -> int:
    """What a produce step's messages take in the page cache, every replica counted."""
    count, size = params.get("count", 0), params.get("size", 0)
    return int(count * size * params.get("replication_factor", 1) * OVERHEAD)


def warm(directory: Path, nbytes: int) -> None:
    """Write ``nbytes`` into a scratch file in ``directory`` and delete it."""
    path = directory / "page-cache-warm-up"
    try:
        with open(path, "wb") as f:
            for _ in range(-(-nbytes // len(CHUNK))):
                f.write(CHUNK)
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def freed_memory_kept() -> Iterator[None]:
    """Meanwhile, memory the guest frees stays its own for HOLD_MS (where the
    kernel has the knob and we may set it); the old value is put back after."""
    try:
        old = MIN_FREE_MS.read_text().strip()
        if int(old) < HOLD_MS:
            MIN_FREE_MS.write_text(f"{HOLD_MS}\n")
            print(f"note: {MIN_FREE_MS} set to {HOLD_MS} (was {old}) while the bench runs: "
                  "freed memory stays warm (bench_lib.pagecache)", file=sys.stderr)
        else:
            old = None
    except (OSError, ValueError):
        old = None
    try:
        yield
    finally:
        if old is not None:
            MIN_FREE_MS.write_text(f"{old}\n")
