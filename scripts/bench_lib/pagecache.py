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

Writing and deleting a scratch file as large as the step's writes, just
before its timed part, puts every system on warm memory, as on a machine
without a balloon. Anonymous memory does not do it: page-cache writes after
touching and freeing 1.6 GB of it were as slow as cold ones.
"""
from __future__ import annotations

from pathlib import Path

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
