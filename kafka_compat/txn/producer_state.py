"""Idempotent producer state of one partition (Kafka's ProducerStateManager).

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
- an exact repeat of one of the last five batches is a duplicate.

An append validates first (``begin_append``/``ProducerAppend.add``), writes,
then commits. State survives restarts through ``<offset>.snapshot`` files
(own format: the state as of that offset, CRC-protected); the log rebuilds
the rest from batch headers with ``replay``.
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
from kafka_compat.protocol.records import INT32_MAX, NO_PRODUCER_EPOCH, NO_SEQUENCE, increment_sequence

NUM_BATCHES_TO_RETAIN = 5

SNAPSHOT_SUFFIX = ".snapshot"
_SNAPSHOT_MAGIC = b"KCPS"
_SNAPSHOT_VERSION = 1
_HEADER = struct.Struct(">4shI")  # magic, version, crc32c of the body
_BODY_HEAD = struct.Struct(">qi")  # end offset, producer count
_PRODUCER = struct.Struct(">qhqb")  # producer id, epoch, last timestamp, batch count
_BATCH = struct.Struct(">iiqqq")  # first seq, last seq, first offset, last offset, timestamp


class BatchHeader(Protocol):
    """The batch fields producer state reads (records.BatchView has them)."""

    producer_id: int
    producer_epoch: int
    base_sequence: int
    last_offset_delta: int
    max_timestamp: int
    is_control: bool


class CorruptSnapshotError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


class ProducerStateEntry:
    __slots__ = ("producer_id", "epoch", "batches", "last_timestamp")

    def __init__(self, producer_id: int, epoch: int = NO_PRODUCER_EPOCH, last_timestamp: int = -1):
        self.producer_id = producer_id
        self.epoch = epoch
        self.batches: deque[BatchMetadata] = deque(maxlen=NUM_BATCHES_TO_RETAIN)
        self.last_timestamp = last_timestamp

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    def copy(self) -> ProducerStateEntry:
        entry = ProducerStateEntry(self.producer_id, self.epoch, self.last_timestamp)
        entry.batches.extend(self.batches)
        return entry

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

    def find_duplicate(self, batch: BatchHeader) -> BatchMetadata | None:
        """The original metadata if ``batch`` repeats one already in the log."""
        entry = self._manager.producers.get(batch.producer_id)
        if entry is None:
            return None
        return entry.find_duplicate(
            batch.producer_epoch, batch.base_sequence, increment_sequence(batch.base_sequence, batch.last_offset_delta)
        )

    def add(self, batch: BatchHeader, first_offset: int) -> None:
        """Validate ``batch`` (to be written at ``first_offset``) and stage its update.

        Raises KafkaError(INVALID_PRODUCER_EPOCH | OUT_OF_ORDER_SEQUENCE_NUMBER).
        """
        pid, epoch = batch.producer_id, batch.producer_epoch
        committed = self._manager.producers.get(pid)
        entry = self._pending.get(pid)
        if entry is None:
            entry = committed.copy() if committed is not None else ProducerStateEntry(pid)
            self._pending[pid] = entry
        if epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"epoch {epoch} of producer {pid} is older than the current epoch {entry.epoch}",
            )
        if batch.is_control:
            entry.update_epoch(epoch)
            entry.last_timestamp = batch.max_timestamp
            return
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

    def commit(self) -> None:
        self._manager.producers.update(self._pending)
        self._pending = {}


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
    """Producer state of one partition as of ``end_offset`` (exclusive)."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerStateEntry] = {}
        self.end_offset = 0

    def begin_append(self) -> ProducerAppend:
        return ProducerAppend(self)

    def replay(self, batch: BatchHeader, first_offset: int) -> None:
        """Apply a batch already in the log, without checks (recovery)."""
        if batch.producer_id < 0:
            return
        entry = self.producers.get(batch.producer_id)
        if entry is None:
            entry = self.producers[batch.producer_id] = ProducerStateEntry(batch.producer_id)
        if batch.is_control:
            entry.update_epoch(batch.producer_epoch)
            entry.last_timestamp = batch.max_timestamp
        else:
            entry.add_batch(batch.producer_epoch, _metadata(batch, first_offset))

    def remove_expired(self, now_ms: int, expiration_ms: int) -> None:
        """Forget producers idle for producer.id.expiration.ms (by batch timestamp, as Kafka)."""
        expired = [pid for pid, e in self.producers.items() if now_ms - e.last_timestamp >= expiration_ms]
        for pid in expired:
            del self.producers[pid]

    def clear(self, end_offset: int) -> None:
        self.producers.clear()
        self.end_offset = end_offset

    # -- snapshots ---------------------------------------------------------
    def snapshot_bytes(self) -> bytes:
        parts = [_BODY_HEAD.pack(self.end_offset, len(self.producers))]
        for entry in self.producers.values():
            parts.append(_PRODUCER.pack(entry.producer_id, entry.epoch, entry.last_timestamp, len(entry.batches)))
            parts.extend(
                _BATCH.pack(m.first_seq, m.last_seq, m.first_offset, m.last_offset, m.timestamp)
                for m in entry.batches
            )
        body = b"".join(parts)
        return _HEADER.pack(_SNAPSHOT_MAGIC, _SNAPSHOT_VERSION, crc32c.crc32c(body)) + body

    def load_snapshot_bytes(self, data: bytes) -> None:
        """Replace the state with a snapshot's; raises CorruptSnapshotError."""
        try:
            magic, version, crc = _HEADER.unpack_from(data, 0)
            body = memoryview(data)[_HEADER.size:]
            if magic != _SNAPSHOT_MAGIC or version != _SNAPSHOT_VERSION or crc32c.crc32c(body) != crc:
                raise CorruptSnapshotError("bad magic, version or checksum")
            end_offset, count = _BODY_HEAD.unpack_from(body, 0)
            pos = _BODY_HEAD.size
            producers: dict[int, ProducerStateEntry] = {}
            for _ in range(count):
                pid, epoch, last_ts, n = _PRODUCER.unpack_from(body, pos)
                pos += _PRODUCER.size
                entry = ProducerStateEntry(pid, epoch, last_ts)
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
