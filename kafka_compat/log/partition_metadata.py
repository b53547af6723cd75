"""Kafka's ``partition.metadata`` file: the id of the topic a partition
directory belongs to, as ``version: 0`` and ``topic_id: <base64 id>`` lines.

A directory's name says only which topic *name* it holds; the id tells an old,
deleted topic's leftovers from a new topic of the same name (LogManager deletes
a directory whose id the metadata store doesn't know). Written to a .tmp file,
fsynced and renamed into place (then the directory fsynced), as Kafka does.
"""
from __future__ import annotations

import base64
import os
import re
from pathlib import Path

FILE = "partition.metadata"
VERSION = 0
_FIELD = re.compile(r":\s+")  # Kafka splits each line on a colon and whitespace


class CorruptPartitionMetadataError(ValueError):
    pass


def write_partition_metadata(directory: Path, topic_id: bytes) -> None:
    """Atomically and durably record ``topic_id`` in ``directory``. Blocking."""
    encoded = base64.urlsafe_b64encode(topic_id).decode().rstrip("=")
    path = directory / FILE
    tmp = path.with_name(FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = memoryview(f"version: {VERSION}\ntopic_id: {encoded}".encode())  # Kafka's bytes: no final newline
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_partition_metadata(directory: Path) -> bytes | None:
    """The topic id recorded in ``directory``; None when there is no file.
    Raises CorruptPartitionMetadataError when the file can't be read as Kafka's."""
    path = directory / FILE
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise CorruptPartitionMetadataError(f"{path} is not text") from None
    try:
        key, version = _FIELD.split(lines[0])
        if key != "version" or int(version) < VERSION:
            raise ValueError(f"unrecognized version line {lines[0]!r}")
        key, encoded = _FIELD.split(lines[1])
        if key != "topic_id":
            raise ValueError(f"malformed line {lines[1]!r}")
        topic_id = base64.urlsafe_b64decode(encoded + "==")
        if len(topic_id) != 16 or topic_id == bytes(16):
            raise ValueError(f"invalid topic id {encoded!r}")
        return topic_id
    except (ValueError, IndexError) as e:
        raise CorruptPartitionMetadataError(f"{path}: {e}") from None
