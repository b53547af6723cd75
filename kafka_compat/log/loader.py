"""Opening a partition directory: find the segments, recover what a crash may
have damaged, and rebuild the producer state (Kafka's LogLoader).

After a clean shutdown nothing is scanned: the indexes are trusted (a missing
or misshapen one is rebuilt) and only the active segment's tail after its last
index entry is read to find the log end offset. Otherwise every segment from
the one holding the recovery point on is checked batch by batch (structure and
CRC); the first bad batch and everything after it is cut off. The recovered
segments' .txnindex files are rebuilt as the producer state replays them; a
misshapen one (a torn entry) makes recovery start at its segment.

The leader epoch cache comes from ``leader-epoch-checkpoint``, made to agree
with the log: after a crash its entries from the first recovered segment on
are rebuilt from the batches' partition leader epochs (the file is only
known to be durable below the recovery point); a missing or unreadable file
is rebuilt from every batch.
"""
from __future__ import annotations

import logging
import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from kafka_compat.txn.producer_state import (
    CorruptSnapshotError,
    ProducerStateManager,
    snapshot_offsets,
    snapshot_path,
)

from .config import LogConfig
from .index import CorruptIndexError
from .leader_epochs import (
    LEADER_EPOCH_CHECKPOINT,
    CorruptCheckpointError,
    LeaderEpochCache,
    read_leader_epoch_checkpoint,
    write_leader_epoch_checkpoint,
)
from .segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    segment_name,
)
from .txn_index import TXN_INDEX_SUFFIX, AbortedTxn

log = logging.getLogger(__name__)

# Leftovers of interrupted work: deleted segments, unfinished temp files.
_LEFTOVER_SUFFIXES = (DELETED_SUFFIX, ".tmp")
_SEGMENT_FILE_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)


@dataclass
class LoadedLog:
    segments: list[LogSegment]
    next_offset: int
    log_start_offset: int
    recovery_point: int
    producer_state: ProducerStateManager
    leader_epochs: LeaderEpochCache


def load_log(
    directory: Path,
    config: LogConfig,
    now_ms: int,
    *,
    clean_shutdown: bool,
    recovery_point: int,
    log_start_offset: int,
) -> LoadedLog:
    """Open (creating if needed) the partition directory. Blocking."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        directory.mkdir(parents=True)
        names = []
    names = _finish_swaps(directory, names, config, now_ms)
    bases = _discover_segments(directory, names)
    if not bases:
        segment = LogSegment(directory, log_start_offset, config, now_ms, create=True)
        state = ProducerStateManager()
        state.clear(log_start_offset)
        epochs = _load_leader_epochs(directory, [segment], None, log_start_offset, log_start_offset)
        return LoadedLog([segment], log_start_offset, log_start_offset, log_start_offset, state, epochs)

    segments = [LogSegment(directory, base, config, now_ms, create=False) for base in bases]
    torn = next((s for s in segments if not s.txn_index.looks_valid()), None)
    if torn is not None:
        # Its aborted transactions are rebuilt by recovering from that segment on.
        log.warning("%s is misshapen: recovering from offset %d", torn.txn_index.path, torn.base_offset)
        clean_shutdown = False
        recovery_point = min(recovery_point, torn.base_offset)
    next_offset = None
    recovered_from = None  # the first offset whose batches recovery checked
    if clean_shutdown:
        for segment in segments[:-1]:
            if not segment.index_files_look_valid():
                log.warning("%s: index files missing or misshapen, recovering the segment", segment.log_path)
                segment.recover()
        next_offset = _load_active_segment(segments[-1])
    if next_offset is None:
        segments, next_offset, recovered_from = _recover(segments, recovery_point)
        recovery_point = min(recovery_point, next_offset)
    else:
        recovery_point = next_offset
    log_start_offset = min(max(log_start_offset, segments[0].base_offset), next_offset)
    state = load_producer_state(directory, names, segments, next_offset, recovery_point,
                                rebuild_txn_index_from=recovered_from)
    epochs = _load_leader_epochs(directory, segments, recovered_from, log_start_offset, next_offset)
    return LoadedLog(segments, next_offset, log_start_offset, recovery_point, state, epochs)


def _segment_file_base(name: str) -> int | None:
    """The base offset of a segment file's name (any suffix after its own), else None."""
    stem, dot, rest = name.partition(".")
    if not stem.isdigit() or len(stem) != 20 or not dot:
        return None
    own = "." + rest.split(".", 1)[0]
    return int(stem) if own in _SEGMENT_FILE_SUFFIXES else None


def _finish_swaps(directory: Path, names: list[str], config: LogConfig, now_ms: int) -> list[str]:
    """Complete or drop a log cleaner's interrupted swap (Kafka's LogLoader,
    see PartitionLog.replace_segments): .cleaned files go, and so do .swap
    files at or after the first .cleaned one (their renaming to .swap never
    finished); the remaining .swap segments replace the segment files
    covering their offsets and lose the suffix. Returns the names now in
    the directory."""
    cleaned = [n for n in names if n.endswith(CLEANED_SUFFIX)]
    swaps = [n for n in names if n.endswith(SWAP_SUFFIX)]
    if not cleaned and not swaps:
        return names
    min_cleaned = min((b for b in map(_segment_file_base, cleaned) if b is not None), default=None)
    valid = []
    for name in swaps:
        base = _segment_file_base(name)
        if base is None or (min_cleaned is not None and base >= min_cleaned):
            log.info("deleting %s: its swap never completed", directory / name)
            (directory / name).unlink(missing_ok=True)
        else:
            valid.append(name)
    for name in cleaned:
        log.info("deleting %s, left by an interrupted cleaning", directory / name)
        (directory / name).unlink(missing_ok=True)
    lo, hi = None, None
    for name in valid:
        if name != segment_name(_segment_file_base(name)) + LOG_SUFFIX + SWAP_SUFFIX:
            continue
        base = _segment_file_base(name)
        segment = LogSegment(directory, base, config, now_ms, create=False, suffix=SWAP_SUFFIX)
        try:
            next_offset = base
            for _, header in segment.headers():
                next_offset = header.next_offset
        finally:
            segment.close()
        log.info("found %s from an interrupted swap: completing it", directory / name)
        lo = base if lo is None else min(lo, base)
        hi = next_offset if hi is None else max(hi, next_offset)
    if lo is not None:
        for name in os.listdir(directory):
            base = _segment_file_base(name)
            if base is not None and not name.endswith(SWAP_SUFFIX) and lo <= base < hi:
                log.info("deleting %s: a cleaned segment replaces it", directory / name)
                (directory / name).unlink(missing_ok=True)
    for name in valid:
        (directory / name).rename(directory / name[: -len(SWAP_SUFFIX)])
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return os.listdir(directory)


def _discover_segments(directory: Path, names: list[str]) -> list[int]:
    bases = set()
    for name in names:
        stem, _, suffix = name.partition(".")
        if name.endswith(_LEFTOVER_SUFFIXES):
            (directory / name).unlink(missing_ok=True)
        elif "." + suffix == LOG_SUFFIX and stem.isdigit():
            bases.add(int(stem))
    for name in names:
        stem, _, suffix = name.partition(".")
        if "." + suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX) and stem.isdigit() and int(stem) not in bases:
            log.info("deleting index %s without a log file", directory / name)
            (directory / name).unlink(missing_ok=True)
    return sorted(bases)


def _load_active_segment(segment: LogSegment) -> int | None:
    """The log end offset from the active segment's tail, or None when the
    segment needs a full recovery after all."""
    try:
        if not segment.index_files_look_valid():
            raise CorruptIndexError("index files missing or misshapen")
        segment.ensure_indexes()
        return segment.read_next_offset()
    except (ValueError, CorruptIndexError) as e:
        log.warning("%s: recovering despite the clean shutdown: %s", segment.log_path, e)
        return None


def _recover(segments: list[LogSegment], recovery_point: int) -> tuple[list[LogSegment], int, int]:
    """Check the segments from the one holding the recovery point on;
    (the segments kept, the next offset, the first offset checked)."""
    first_unflushed = max(bisect_right([s.base_offset for s in segments], recovery_point) - 1, 0)
    for segment in segments[:first_unflushed]:
        if not segment.index_files_look_valid():
            segment.recover()
    next_offset = checked_from = segments[first_unflushed].base_offset
    for segment in segments[first_unflushed:]:
        segment.txn_index.reset()  # rebuilt by load_producer_state, as the producer state replays them
    for i in range(first_unflushed, len(segments)):
        segment = segments[i]
        if segment.base_offset < next_offset:
            # Offsets overlap the previous segment's: nothing from here on is usable.
            _drop(segments[i:])
            return segments[:i], next_offset, checked_from
        next_offset, cut = segment.recover()
        if cut:
            _drop(segments[i + 1:])
            return segments[: i + 1], next_offset, checked_from
    return segments, next_offset, checked_from


def _drop(segments: list[LogSegment]) -> None:
    for segment in segments:
        log.warning("%s: deleting segment after the recovered end of the log", segment.log_path)
        segment.close()
        for path in segment.files():
            path.unlink(missing_ok=True)


def load_producer_state(
    directory: Path, names: list[str], segments: list[LogSegment], next_offset: int, recovery_point: int,
    rebuild_txn_index_from: int | None = None,
) -> ProducerStateManager:
    """The latest usable snapshot at or below the recovery point (the log end
    after a clean shutdown), then the batch headers after it (and the markers
    of control batches). Snapshots past ``next_offset`` are deleted.

    With ``rebuild_txn_index_from`` (the base offset of the first recovered
    segment, whose .txnindex was emptied) the snapshot must be at or below it
    and the aborted transactions the replay completes from there on go into
    their segments' indexes again, as Kafka's LogSegment.recover rebuilds
    them. Blocking."""
    state = ProducerStateManager()
    limit = recovery_point if rebuild_txn_index_from is None else min(recovery_point, rebuild_txn_index_from)
    loaded = False
    for offset in reversed(snapshot_offsets(directory, names)):
        path = snapshot_path(directory, offset)
        if offset > next_offset:
            path.unlink(missing_ok=True)
            continue
        if loaded or offset > limit:
            continue
        try:
            state.load_snapshot_bytes(path.read_bytes())
            if state.end_offset != offset:
                raise CorruptSnapshotError(f"holds offset {state.end_offset}")
            loaded = True
        except CorruptSnapshotError as e:
            log.warning("deleting corrupt producer state snapshot %s: %s", path, e)
            path.unlink(missing_ok=True)
    if not loaded:
        state.clear(segments[0].base_offset)
    start = max(state.end_offset, segments[0].base_offset)
    if start < next_offset:  # after a clean shutdown the snapshot is at the log end
        first = max(bisect_right([s.base_offset for s in segments], start) - 1, 0)
        for segment in segments[first:]:
            rebuild = rebuild_txn_index_from is not None and segment.base_offset >= rebuild_txn_index_from
            for pos, header in segment.headers(segment.offset_index.lookup(start)[1]):
                if header.base_offset >= start and header.producer_id >= 0:
                    marker = segment.read_marker(pos, header) if header.is_control else None
                    completed = state.replay(header, header.base_offset, marker)
                    if completed is not None:
                        if rebuild and completed.is_aborted:
                            segment.txn_index.append(AbortedTxn(
                                completed.producer_id, completed.first_offset, completed.last_offset,
                                state.last_stable_offset(completed)))
                        state.complete_txn(completed)
    state.end_offset = next_offset
    return state


def _load_leader_epochs(
    directory: Path, segments: list[LogSegment], rebuild_from: int | None, log_start_offset: int, next_offset: int
) -> LeaderEpochCache:
    """The checkpoint's entries, those from ``rebuild_from`` on rebuilt from
    the batches, trimmed to [log start, log end); the file is rewritten
    (fsynced) when that changed anything."""
    path = directory / LEADER_EPOCH_CHECKPOINT
    try:
        stored = read_leader_epoch_checkpoint(path)
    except FileNotFoundError:
        stored = None
    except CorruptCheckpointError as e:
        log.warning("%s is unreadable (%s): rebuilding it from the log", path, e)
        stored = None
    cache = LeaderEpochCache(stored or ())
    if stored is None:
        rebuild_from = segments[0].base_offset
    if rebuild_from is not None:
        cache.truncate_from_end(rebuild_from)
        first = max(bisect_right([s.base_offset for s in segments], rebuild_from) - 1, 0)
        for segment in segments[first:]:
            for _, header in segment.headers(segment.offset_index.lookup(rebuild_from)[1]):
                if header.base_offset >= rebuild_from and header.partition_leader_epoch >= 0:
                    cache.assign(header.partition_leader_epoch, header.base_offset)
    cache.truncate_from_end(next_offset)
    cache.truncate_from_start(log_start_offset)
    if cache.entries != stored and (stored is not None or cache.entries):
        write_leader_epoch_checkpoint(path, cache.entries, sync=True)
    return cache
