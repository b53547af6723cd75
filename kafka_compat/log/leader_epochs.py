"""Leader epochs of a partition's log (Kafka's LeaderEpochFileCache) and the
``leader-epoch-checkpoint`` file that keeps them.

Each entry says: leader epoch E started at offset O, i.e. the first batch
written by that leader had base offset O. Entries are ascending in both epoch
and start offset. Followers compare their latest epoch with the leader's
through OffsetForLeaderEpoch to find where their logs diverge (KIP-101,
KIP-279), and consumers to detect truncation (KIP-320).

The cache itself is pure; PartitionLog decides when the file is written.
"""
from __future__ import annotations

import logging
import os
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
_VERSION = 0
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class EpochEndOffset(NamedTuple):
    epoch: int
    end_offset: int


class CorruptCheckpointError(Exception):
    pass


class LeaderEpochCache:
    """(epoch, start offset) entries, ascending in both."""

    def __init__(self, entries=()):
        self._epochs: list[int] = []
        self._starts: list[int] = []
        for epoch, start in entries:
            self.assign(epoch, start)

    @property
    def entries(self) -> list[EpochEntry]:
        return [EpochEntry(e, s) for e, s in zip(self._epochs, self._starts)]

    @property
    def latest_epoch(self) -> int | None:
        return self._epochs[-1] if self._epochs else None

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch whose range holds ``offset`` (Kafka's epochForOffset);
        None before the first epoch's start or with no epochs."""
        i = bisect_right(self._starts, offset)
        return self._epochs[i - 1] if i else None

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; returns whether the
        cache changed. Nothing changes when ``epoch`` is already the latest
        and starts no later. Entries the new one contradicts (an epoch not
        older, or a start offset not earlier) are removed first, as Kafka
        does when a new epoch arrives after a truncation it didn't see."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        if self._epochs and self._epochs[-1] == epoch and self._starts[-1] <= start_offset:
            return False
        removed = []
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start_offset):
            removed.append(EpochEntry(self._epochs.pop(), self._starts.pop()))
        # Replacing an entry that started at the same offset removed no data.
        if len(removed) > 1 or (removed and removed[0].start_offset != start_offset):
            log.warning("new epoch entry %s caused truncation of conflicting entries %s",
                        EpochEntry(epoch, start_offset), removed)
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        return True

    def truncate_from_end(self, end_offset: int) -> bool:
        """Remove the entries starting at or after ``end_offset`` (the log was
        truncated there); returns whether any went."""
        keep = bisect_left(self._starts, end_offset)
        if end_offset < 0 or keep == len(self._starts):
            return False
        del self._epochs[keep:], self._starts[keep:]
        return True

    def truncate_from_start(self, start_offset: int) -> bool:
        """The log now starts at ``start_offset``: entries starting at or before
        it collapse into one, the latest of them, moved to ``start_offset``
        (an entry starting exactly there stays as it is). Returns whether the
        cache changed."""
        covered = bisect_right(self._starts, start_offset)
        if covered == 0 or (covered == 1 and self._starts[0] == start_offset):
            return False
        del self._epochs[: covered - 1], self._starts[: covered - 1]
        self._starts[0] = start_offset
        return True

    def clear(self) -> bool:
        changed = bool(self._epochs)
        self._epochs.clear()
        self._starts.clear()
        return changed

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> EpochEndOffset:
        """Kafka's endOffsetFor: the largest epoch <= ``requested_epoch`` and
        where it ends (the next epoch's start offset, or the log end offset
        for the latest epoch). (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET) for
        an undefined or unknown-newer epoch; an epoch older than all entries
        gets itself with the first entry's start offset (data before that is
        gone: the follower replicates from there)."""
        if requested_epoch == UNDEFINED_EPOCH:
            return EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        if self._epochs and self._epochs[-1] == requested_epoch:
            return EpochEndOffset(requested_epoch, log_end_offset)
        higher = bisect_right(self._epochs, requested_epoch)
        if higher == len(self._epochs):
            return EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        if higher == 0:
            return EpochEndOffset(requested_epoch, self._starts[0])
        return EpochEndOffset(self._epochs[higher - 1], self._starts[higher])


def write_leader_epoch_checkpoint(path: Path, entries: list[EpochEntry], sync: bool) -> None:
    """Kafka's file: version, count, then "epoch start_offset" per line; to a
    .tmp file renamed over the old one. Without ``sync`` the caller fsyncs
    it (and its directory) later."""
    lines = [str(_VERSION), str(len(entries))] + [f"{e} {o}" for e, o in entries]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_leader_epoch_checkpoint(path: Path) -> list[EpochEntry]:
    """The file's entries. Raises FileNotFoundError, or CorruptCheckpointError
    where Kafka's reader would fail (it takes the log dir offline then; we
    rebuild the cache from the log instead)."""
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    if not lines:  # Kafka creates the file empty and reads that as no entries
        return []
    try:
        if int(lines[0]) != _VERSION:
            raise CorruptCheckpointError(f"unknown version {lines[0]!r}")
        if len(lines) == 1:
            return []
        count = int(lines[1])
        entries = []
        for line in lines[2:]:
            fields = line.split()
            if len(fields) != 2:
                raise CorruptCheckpointError(f"malformed line {line!r}")
            entries.append(EpochEntry(int(fields[0]), int(fields[1])))
    except ValueError as e:
        raise CorruptCheckpointError(str(e)) from None
    if len(entries) != count:
        raise CorruptCheckpointError(f"expected {count} entries, found {len(entries)}")
    return entries
