"""Producer state of one partition: idempotence and ongoing transactions
(Kafka's ProducerStateManager).

For every producer id the partition remembers the epoch and the metadata of
the last five batches, so that a retried batch is answered with the offsets
it was first written at instead of being written twice, and a gap in the
sequence numbers is refused. The rules are Kafka 3.x's ProducerAppendInfo:

- a batch from an older epoch -> INVALID_PRODUCER_EPOCH;
- a batch that opens a new epoch must have sequence 0 unless the producer was
  unknown (Kafka accepts any sequence from a producer it has no state for,
  e.g. after retention removed its batches) -> else OUT_OF_ORDER_SEQUENCE_NUMBER;
- within an epoch, the first sequence must follow the last one -> else
  OUT_OF_ORDER_SEQUENCE_NUMBER;
- an exact repeat of one of the last five batches is a duplicate;
- a producer's first transactional batch opens its transaction (at that
  batch's first offset); a non-transactional batch while one is open ->
  INVALID_TXN_STATE;
- a transaction marker (COMMIT/ABORT control batch) closes it, refused from
  an older producer epoch (INVALID_PRODUCER_EPOCH) or an older coordinator
  epoch than the last marker's (TRANSACTION_COORDINATOR_FENCED), and yields a
  ``CompletedTxn`` when a transaction was open.

The first unstable offset is the first offset of the oldest transaction not
yet decided, or decided by a marker the high watermark hasn't passed (Kafka's
unreplicated transactions); it is kept up to date as transactions begin and
end, so that the log's last stable offset costs nothing to read.

An append validates first (``begin_append``/``ProducerAppend.add``), writes,
then commits. State survives restarts through ``<offset>.snapshot`` files
(own format: the state as of that offset, CRC-protected; version 2 adds
each producer's coordinator epoch and open transaction's first offset, as
Kafka's snapshots carry them); the log rebuilds the rest from batch headers
with ``replay``.
"""
from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import crc32c

from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.protocol.records import (
    INT32_MAX,
    NO_PRODUCER_EPOCH,
    NO_SEQUENCE,
    ControlType,
    increment_sequence,
)

NUM_BATCHES_TO_RETAIN = 5

SNAPSHOT_SUFFIX = ".snapshot"
_SNAPSHOT_MAGIC = b"KCPS"
_SNAPSHOT_VERSION = 2
_HEADER = struct.Struct(">4shI")  # magic, version, crc32c of the body
_BODY_HEAD = struct.Struct(">qi")  # end offset, producer count
_PRODUCER_V1 = struct.Struct(">qhqb")  # producer id, epoch, last timestamp, batch count
# v2: ... batch count, coordinator epoch, open transaction's first offset (-1: none)
_PRODUCER = struct.Struct(">qhqbiq")
_BATCH = struct.Struct(">iiqqq")  # first seq, last seq, first offset, last offset, timestamp


class BatchHeader(Protocol):
    """The batch fields producer state reads (records.BatchView has them)."""

    producer_id: int
    producer_epoch: int
    base_sequence: int
    last_offset_delta: int
    max_timestamp: int
    is_control: bool
    is_transactional: bool


class CorruptSnapshotError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


NO_TXN = -1  # current_txn_first_offset of a producer without an open transaction
NO_COORDINATOR_EPOCH = -1


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction a marker (at ``last_offset``) just decided (Kafka's CompletedTxn)."""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool


class ProducerStateEntry:
    __slots__ = ("producer_id", "epoch", "batches", "last_timestamp", "coordinator_epoch", "current_txn_first_offset")

    def __init__(self, producer_id: int, epoch: int = NO_PRODUCER_EPOCH, last_timestamp: int = -1,
                 coordinator_epoch: int = NO_COORDINATOR_EPOCH, current_txn_first_offset: int = NO_TXN):
        self.producer_id = producer_id
        self.epoch = epoch
        self.batches: deque[BatchMetadata] = deque(maxlen=NUM_BATCHES_TO_RETAIN)
        self.last_timestamp = last_timestamp
        self.coordinator_epoch = coordinator_epoch
        self.current_txn_first_offset = current_txn_first_offset

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    def copy(self) -> ProducerStateEntry:
        entry = ProducerStateEntry(self.producer_id, self.epoch, self.last_timestamp, self.coordinator_epoch,
                                   self.current_txn_first_offset)
        entry.batches.extend(self.batches)
        return entry

    def end_txn(self, epoch: int, coordinator_epoch: int, timestamp: int, marker_offset: int,
                control_type: int) -> CompletedTxn | None:
        """A marker of ``control_type`` at ``marker_offset``: the transaction it
        completes (None if none was open: an empty transaction leaves no trace)."""
        completed = None
        if self.current_txn_first_offset != NO_TXN:
            completed = CompletedTxn(self.producer_id, self.current_txn_first_offset, marker_offset,
                                     control_type == ControlType.ABORT)
        self.update_epoch(epoch)
        self.coordinator_epoch = coordinator_epoch
        self.current_txn_first_offset = NO_TXN
        self.last_timestamp = timestamp
        return completed

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.epoch:
            return None
        for meta in self.batches:
            if meta.first_seq == first_seq and meta.last_seq == last_seq:
                return meta
        return None

    def update_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.batches.clear()
            self.epoch = epoch

    def add_batch(self, epoch: int, meta: BatchMetadata) -> None:
        self.update_epoch(epoch)
        self.batches.append(meta)
        self.last_timestamp = meta.timestamp


class ProducerAppend:
    """Producer-state changes of one append: checked before the write, applied after."""

    def __init__(self, manager: ProducerStateManager):
        self._manager = manager
        self._pending: dict[int, ProducerStateEntry] = {}
        self._started: list[tuple[int, int]] = []  # (first offset, producer id) of transactions begun

    def find_duplicate(self, batch: BatchHeader) -> BatchMetadata | None:
        """The original metadata if ``batch`` repeats one already in the log."""
        entry = self._manager.producers.get(batch.producer_id)
        if entry is None:
            return None
        return entry.find_duplicate(
            batch.producer_epoch, batch.base_sequence, increment_sequence(batch.base_sequence, batch.last_offset_delta)
        )

    def _entry(self, pid: int) -> tuple[ProducerStateEntry | None, ProducerStateEntry]:
        """(the committed entry, the one this append updates)."""
        committed = self._manager.producers.get(pid)
        entry = self._pending.get(pid)
        if entry is None:
            entry = committed.copy() if committed is not None else ProducerStateEntry(pid)
            self._pending[pid] = entry
        return committed, entry

    @staticmethod
    def _check_epoch(entry: ProducerStateEntry, epoch: int, offset: int) -> None:
        if epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"Epoch of producer {entry.producer_id} at offset {offset} is {epoch}, "
                f"which is smaller than the last seen epoch {entry.epoch}",
            )

    def add(self, batch: BatchHeader, first_offset: int, check_sequence: bool = True) -> None:
        """Validate a data batch (to be written at ``first_offset``) and stage its update.
        Without ``check_sequence`` (a coordinator's append: Kafka checks
        sequences of clients' batches only) the epoch is still checked.

        Raises KafkaError(INVALID_PRODUCER_EPOCH | OUT_OF_ORDER_SEQUENCE_NUMBER | INVALID_TXN_STATE).
        """
        pid, epoch = batch.producer_id, batch.producer_epoch
        committed, entry = self._entry(pid)
        self._check_epoch(entry, epoch, first_offset)
        if check_sequence:
            first_seq = batch.base_sequence
            if epoch != entry.epoch:
                if first_seq != 0 and entry.epoch != NO_PRODUCER_EPOCH:
                    raise KafkaError(
                        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                        f"producer {pid} opened epoch {epoch} with sequence {first_seq}, not 0",
                    )
            else:
                committed_epoch = committed.epoch if committed is not None else NO_PRODUCER_EPOCH
                last_seq = entry.last_seq
                in_sequence = first_seq == last_seq + 1 or (first_seq == 0 and last_seq == INT32_MAX)
                if committed_epoch != NO_PRODUCER_EPOCH and not in_sequence:
                    raise KafkaError(
                        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                        f"producer {pid} sent sequence {first_seq} after {last_seq}",
                    )
        entry.add_batch(epoch, _metadata(batch, first_offset))
        if entry.current_txn_first_offset != NO_TXN:
            if not batch.is_transactional:
                raise KafkaError(
                    ErrorCode.INVALID_TXN_STATE,
                    f"Expected transactional write from producer {pid} at offset {first_offset}",
                )
        elif batch.is_transactional:
            entry.current_txn_first_offset = first_offset
            self._started.append((first_offset, pid))

    def add_marker(self, producer_id: int, epoch: int, control_type: int, coordinator_epoch: int, offset: int,
                   timestamp: int) -> CompletedTxn | None:
        """Validate a transaction marker to be written at ``offset`` (Kafka's
        appendEndTxnMarker) and stage its update; the transaction it completes.

        Raises KafkaError(INVALID_PRODUCER_EPOCH | TRANSACTION_COORDINATOR_FENCED).
        """
        _, entry = self._entry(producer_id)
        self._check_epoch(entry, epoch, offset)
        if entry.coordinator_epoch > coordinator_epoch:
            raise KafkaError(
                ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                f"Invalid coordinator epoch for producerId {producer_id} at offset {offset}: "
                f"{coordinator_epoch} (zombie), {entry.coordinator_epoch} (current)",
            )
        return entry.end_txn(epoch, coordinator_epoch, timestamp, offset, control_type)

    def commit(self) -> None:
        manager = self._manager
        manager.producers.update(self._pending)
        for first_offset, pid in self._started:
            manager.begin_txn(first_offset, pid)
        self._pending = {}
        self._started = []


def _metadata(batch: BatchHeader, first_offset: int) -> BatchMetadata:
    delta = batch.last_offset_delta
    return BatchMetadata(
        batch.base_sequence,
        increment_sequence(batch.base_sequence, delta),
        first_offset,
        first_offset + delta,
        batch.max_timestamp,
    )


class ProducerStateManager:
    """Producer state of one partition as of ``end_offset`` (exclusive).

    ``ongoing`` maps the first offset of each undecided transaction to its
    producer, in offset order (transactions begin in the order of the log);
    ``unreplicated`` those decided by a marker at an offset the high
    watermark hasn't passed (first offset -> marker offset).
    ``first_unstable_offset`` is the smallest first offset of either, None
    when there are none.
    """

    def __init__(self) -> None:
        self.producers: dict[int, ProducerStateEntry] = {}
        self.end_offset = 0
        self.ongoing: dict[int, int] = {}
        self.unreplicated: dict[int, int] = {}
        self.first_unstable_offset: int | None = None

    def begin_append(self) -> ProducerAppend:
        return ProducerAppend(self)

    # -- transactions ---------------------------------------------------------
    def begin_txn(self, first_offset: int, producer_id: int) -> None:
        self.ongoing[first_offset] = producer_id
        if self.first_unstable_offset is None:
            self.first_unstable_offset = first_offset

    def last_stable_offset(self, completed: CompletedTxn) -> int:
        """The last stable offset once ``completed`` is decided (Kafka's
        lastStableOffset(CompletedTxn)): the first offset of the oldest other
        open transaction, else just past the marker. The aborted-transaction
        index records it."""
        for first_offset, pid in self.ongoing.items():
            if pid != completed.producer_id:
                return first_offset
        return completed.last_offset + 1

    def complete_txn(self, completed: CompletedTxn) -> None:
        """The transaction is decided; it stays unstable until the high
        watermark passes its marker."""
        self.ongoing.pop(completed.first_offset, None)
        self.unreplicated[completed.first_offset] = completed.last_offset
        self._update_first_unstable_offset()

    def on_high_watermark_updated(self, high_watermark: int) -> None:
        """Decided transactions whose marker is below the high watermark are stable."""
        done = [first for first, last in self.unreplicated.items() if last < high_watermark]
        if done:
            for first in done:
                del self.unreplicated[first]
            self._update_first_unstable_offset()

    def _update_first_unstable_offset(self) -> None:
        first = next(iter(self.ongoing), None)
        if self.unreplicated:
            oldest = min(self.unreplicated)
            first = oldest if first is None else min(first, oldest)
        self.first_unstable_offset = first

    def _rebuild_ongoing(self) -> None:
        self.ongoing = dict(sorted(
            (e.current_txn_first_offset, pid) for pid, e in self.producers.items()
            if e.current_txn_first_offset != NO_TXN))
        self.unreplicated = {}
        self._update_first_unstable_offset()

    # -- the log's batches, unchecked ---------------------------------------------
    def replay(self, batch: BatchHeader, first_offset: int,
               marker: tuple[int, int] | None = None) -> CompletedTxn | None:
        """Apply a batch already in the log, without checks (recovery, followers).

        A control batch needs its ``marker`` (control type, coordinator epoch);
        None for an empty control batch (its transaction was cleaned away).
        Returns the transaction a marker completes: the caller records it
        (``last_stable_offset``, the aborted-transaction index) and then calls
        ``complete_txn``."""
        if batch.producer_id < 0:
            return None
        entry = self.producers.get(batch.producer_id)
        if entry is None:
            entry = self.producers[batch.producer_id] = ProducerStateEntry(batch.producer_id)
        if batch.is_control:
            if marker is None:
                return None
            control_type, coordinator_epoch = marker
            return entry.end_txn(batch.producer_epoch, coordinator_epoch, batch.max_timestamp, first_offset,
                                 control_type)
        entry.add_batch(batch.producer_epoch, _metadata(batch, first_offset))
        if batch.is_transactional and entry.current_txn_first_offset == NO_TXN:
            entry.current_txn_first_offset = first_offset
            self.begin_txn(first_offset, batch.producer_id)
        return None

    def remove_expired(self, now_ms: int, expiration_ms: int) -> None:
        """Forget producers idle for producer.id.expiration.ms (by batch timestamp,
        as Kafka), except those with a transaction open."""
        expired = [pid for pid, e in self.producers.items()
                   if e.current_txn_first_offset == NO_TXN and now_ms - e.last_timestamp >= expiration_ms]
        for pid in expired:
            del self.producers[pid]

    def clear(self, end_offset: int) -> None:
        self.producers.clear()
        self.ongoing = {}
        self.unreplicated = {}
        self.first_unstable_offset = None
        self.end_offset = end_offset

    # -- snapshots ---------------------------------------------------------
    def snapshot_bytes(self) -> bytes:
        parts = [_BODY_HEAD.pack(self.end_offset, len(self.producers))]
        for entry in self.producers.values():
            parts.append(_PRODUCER.pack(entry.producer_id, entry.epoch, entry.last_timestamp, len(entry.batches),
                                        entry.coordinator_epoch, entry.current_txn_first_offset))
            parts.extend(
                _BATCH.pack(m.first_seq, m.last_seq, m.first_offset, m.last_offset, m.timestamp)
                for m in entry.batches
            )
        body = b"".join(parts)
        return _HEADER.pack(_SNAPSHOT_MAGIC, _SNAPSHOT_VERSION, crc32c.crc32c(body)) + body

    def load_snapshot_bytes(self, data: bytes) -> None:
        """Replace the state with a snapshot's (version 1 or 2); raises CorruptSnapshotError."""
        try:
            magic, version, crc = _HEADER.unpack_from(data, 0)
            body = memoryview(data)[_HEADER.size:]
            if magic != _SNAPSHOT_MAGIC or version not in (1, 2) or crc32c.crc32c(body) != crc:
                raise CorruptSnapshotError("bad magic, version or checksum")
            layout = _PRODUCER if version == 2 else _PRODUCER_V1
            end_offset, count = _BODY_HEAD.unpack_from(body, 0)
            pos = _BODY_HEAD.size
            producers: dict[int, ProducerStateEntry] = {}
            for _ in range(count):
                pid, epoch, last_ts, n, *txn = layout.unpack_from(body, pos)
                pos += layout.size
                entry = ProducerStateEntry(pid, epoch, last_ts, *txn)
                for _ in range(n):
                    entry.batches.append(BatchMetadata(*_BATCH.unpack_from(body, pos)))
                    pos += _BATCH.size
                producers[pid] = entry
            if pos != len(body):
                raise CorruptSnapshotError("trailing bytes")
        except struct.error as e:
            raise CorruptSnapshotError(str(e)) from None
        self.producers = producers
        self.end_offset = end_offset
        self._rebuild_ongoing()


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"


def snapshot_offsets(directory: Path, names: Iterable[str] | None = None) -> list[int]:
    """Offsets of the snapshot files in ``directory`` (or among ``names``, its
    listing if the caller has one), ascending."""
    offsets = []
    for name in os.listdir(directory) if names is None else names:
        if name.endswith(SNAPSHOT_SUFFIX) and name[: -len(SNAPSHOT_SUFFIX)].isdigit():
            offsets.append(int(name[: -len(SNAPSHOT_SUFFIX)]))
    return sorted(offsets)


def write_snapshot_file(path: Path, data: bytes, sync: bool) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        if sync:
            os.fsync(f.fileno())
