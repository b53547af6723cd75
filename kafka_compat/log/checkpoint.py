"""Kafka's offset checkpoint files (recovery-point-offset-checkpoint,
log-start-offset-checkpoint, replication-offset-checkpoint): a version line
(0), a count line, then one "topic partition offset" line per partition.
Written to a .tmp file, fsynced and renamed over the old one, as Kafka does.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = 0


def write_checkpoint(path: Path, offsets: Mapping[tuple[str, int], int]) -> None:
    lines = [str(VERSION), str(len(offsets))]
    lines += [f"{topic} {partition} {offset}" for (topic, partition), offset in offsets.items()]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: Path) -> dict[tuple[str, int], int]:
    """The file's offsets; empty if it is missing or malformed (logged)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        lines = text.splitlines()
        if int(lines[0]) != VERSION:
            raise ValueError(f"unknown version {lines[0]!r}")
        count = int(lines[1])
        entries = lines[2:]
        if len(entries) != count:
            raise ValueError(f"expected {count} entries, found {len(entries)}")
        out: dict[tuple[str, int], int] = {}
        for line in entries:
            topic, partition, offset = line.split(" ")
            out[(topic, int(partition))] = int(offset)
        return out
    except (ValueError, IndexError) as e:
        log.warning("ignoring malformed checkpoint file %s: %s", path, e)
        return {}
