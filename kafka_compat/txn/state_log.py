"""The transactional ids this broker coordinates and their persistence in
``__transaction_state`` (Kafka's TransactionStateManager): which partition
holds an id, which partitions are loaded (at which coordinator epoch, the
partition's leader epoch) or loading, writing a prepared change and applying
it once replicated as acks=all, loading a partition back, and the tombstones
of expired ids.

Kafka's locks are not needed: everything runs on the trio thread, and a
change in flight is marked by the metadata's pending state.
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..group.internal_topics import TRANSACTION_STATE_TOPIC, partition_count
from ..group.partitioner import partition_for
from ..log.replay import replay
from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.records import BatchView, build_batch, iter_batches
from ..replica.acks_all import AcksAllAppend, await_replication
from .log_format import UnknownFormat, key_bytes, read_key, read_value, value_bytes
from .metadata import DEAD, EXPIRATION_ALLOWED, ONGOING, TransactionMetadata, TxnState, TxnTransit

log = logging.getLogger(__name__)

TOPIC = TRANSACTION_STATE_TOPIC
# Bytes of a record batch besides its records, and the most a tombstone adds besides its key.
BATCH_OVERHEAD = 61
RECORD_OVERHEAD = 23

# What a coordinator answers when its write to the log fails (Kafka's appendTransactionToLog).
_APPEND_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
}


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class CacheEntry:
    """One loaded partition: the coordinator epoch it was loaded at and its ids."""

    coordinator_epoch: int
    txns: dict[str, TransactionMetadata] = field(default_factory=dict)


@dataclass(frozen=True)
class Listed:
    transactional_id: str
    producer_id: int
    state: TxnState


class TxnStateLog:
    """Appends to and reads back the partitions of ``__transaction_state``,
    as their leader, each append one batch waited on as acks=all."""

    def __init__(self, broker, load_buffer_size: int):
        self.broker = broker
        self.load_buffer_size = load_buffer_size

    def leads(self, partition: int) -> bool:
        return (self.broker.logs.get(TOPIC, partition) is not None
                and self.broker.replicas.is_leader(TOPIC, partition))

    def leader_epoch(self, partition: int) -> int:
        return self.broker.replicas.state(TOPIC, partition).leader_epoch

    async def write(self, partition: int, records: list[tuple[bytes, bytes | None]], timeout_ms: int,
                    now_ms: int) -> ErrorCode:
        """Append the records as one batch and wait until they are replicated
        as acks=all asks; NONE or the log's error (see ``_APPEND_ERRORS``)."""
        replicas = self.broker.replicas
        try:
            partition_log = replicas.leader_log(TOPIC, partition)
        except KafkaError as e:
            return e.code
        min_isr = self.broker.topics.effective_config(TOPIC)["min.insync.replicas"]
        state = replicas.state(TOPIC, partition)
        if len(state.isr) < min_isr:
            return ErrorCode.NOT_ENOUGH_REPLICAS
        data = bytearray(build_batch([(key, value, [], now_ms) for key, value in records]))
        if len(data) > self.broker.topics.effective_config(TOPIC)["max.message.bytes"]:
            return ErrorCode.MESSAGE_TOO_LARGE
        epoch = state.leader_epoch
        try:
            partition_log.append(data, list(iter_batches(data)), leader_epoch=epoch)
        except KafkaError as e:
            log.error("cannot append to %s-%d: %s", TOPIC, partition, e)
            return e.code
        append = AcksAllAppend(TOPIC, partition, partition_log, epoch, partition_log.log_end_offset, min_isr)
        self.broker.waiters.notify(TOPIC, partition)
        await await_replication(self.broker, [append], timeout_ms / 1000)
        return append.error

    async def load(self, partition: int, wanted: Callable[[], bool]) -> dict[str, TransactionMetadata]:
        """The ids the partition's records leave (up to its log end, as Kafka
        loads, read again before each chunk: ``replay``), one chunk
        (transaction.state.log.load.buffer.size) at a time: the last record
        of an id wins, a tombstone removes it. It stops early once
        ``wanted()`` is false."""
        partition_log = self.broker.logs.get(TOPIC, partition)
        loaded: dict[str, TransactionMetadata] = {}
        if partition_log is None:
            log.warning("no log to load transactions from %s-%d", TOPIC, partition)
            return loaded
        await replay(partition_log, self.load_buffer_size, functools.partial(_apply_batch, loaded), wanted)
        return loaded


def _apply_batch(loaded: dict[str, TransactionMetadata], batch: BatchView) -> None:
    if batch.is_control:
        return
    for record in batch.records():
        try:
            transactional_id = read_key(record.key)
        except (UnknownFormat, TypeError, ValueError):
            log.warning("skipping a record of unknown key format at offset %d of %s", record.offset, TOPIC)
            continue
        if record.value is None:
            loaded.pop(transactional_id, None)
        else:
            loaded[transactional_id] = read_value(transactional_id, record.value)


class TransactionStateManager:
    def __init__(self, broker, clock_ms: Callable[[], int] = wall_clock_ms):
        config = broker.config
        self.storage = TxnStateLog(broker, config.transaction_state_log_load_buffer_size)
        self.partitions = partition_count(broker, TOPIC, config.transaction_state_log_num_partitions)
        self.max_timeout_ms = config.transaction_max_timeout_ms
        self.expiration_ms = config.transactional_id_expiration_ms
        self.clock_ms = clock_ms
        self.loading: dict[int, int] = {}  # partition -> coordinator epoch being loaded
        self.cache: dict[int, CacheEntry] = {}

    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.partitions)

    def valid_timeout(self, timeout_ms: int) -> bool:
        return 0 < timeout_ms <= self.max_timeout_ms

    # -- looking ids up --------------------------------------------------------------
    def get(self, transactional_id: str,
            create: TransactionMetadata | None = None) -> tuple[int, TransactionMetadata] | None:
        """(coordinator epoch, metadata) of an id, None if unknown (after
        caching ``create`` if given). Raises KafkaError COORDINATOR_LOAD_IN_PROGRESS
        while its partition loads, NOT_COORDINATOR when it isn't ours."""
        partition = self.partition_for(transactional_id)
        if partition in self.loading:
            raise KafkaError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
        entry = self.cache.get(partition)
        if entry is None:
            raise KafkaError(ErrorCode.NOT_COORDINATOR)
        metadata = entry.txns.get(transactional_id)
        if metadata is None:
            if create is None:
                return None
            metadata = entry.txns[transactional_id] = create
        return entry.coordinator_epoch, metadata

    def _current(self, transactional_id: str) -> tuple[ErrorCode, tuple[int, TransactionMetadata] | None]:
        try:
            return ErrorCode.NONE, self.get(transactional_id)
        except KafkaError as e:
            return e.code, None

    # -- writing ----------------------------------------------------------------------
    async def append(self, transactional_id: str, coordinator_epoch: int, transit: TxnTransit,
                     retry_on_error: Callable[[ErrorCode], bool] = lambda error: False) -> ErrorCode:
        """Write a prepared change and apply it once replicated; the error a
        client is answered. A failed write clears the pending state, unless
        ``retry_on_error`` says the caller will try again."""
        error, found = self._current(transactional_id)
        if error != ErrorCode.NONE:
            return error
        if found is None or found[0] != coordinator_epoch:
            return ErrorCode.NOT_COORDINATOR
        write_error = await self.storage.write(
            self.partition_for(transactional_id), [(key_bytes(transactional_id), value_bytes(transit))],
            transit.timeout_ms, self.clock_ms())
        error = _APPEND_ERRORS.get(write_error, write_error)
        current_error, found = self._current(transactional_id)
        if error == ErrorCode.NONE:
            if current_error != ErrorCode.NONE:
                return current_error
            if found is None or found[0] != coordinator_epoch:
                return ErrorCode.NOT_COORDINATOR
            found[1].complete_transition(transit)
            return ErrorCode.NONE
        log.info("writing %s of %s to %s failed: %s", transit.state.name, transactional_id, TOPIC, error.name)
        if found is not None and found[0] == coordinator_epoch and not retry_on_error(error):
            found[1].pending_state = None
        return error

    # -- loading and unloading -----------------------------------------------------------
    def begin_loading(self, partition: int, coordinator_epoch: int) -> bool:
        """Mark a partition as loading at an epoch; False if it is loaded or
        loading at that epoch already."""
        entry = self.cache.get(partition)
        if self.loading.get(partition) == coordinator_epoch or (
                entry is not None and entry.coordinator_epoch == coordinator_epoch):
            return False
        self.loading[partition] = coordinator_epoch
        return True

    async def load_partition(self, partition: int, coordinator_epoch: int) -> list[TransactionMetadata]:
        """Read a partition back and cache its ids; the ones whose markers
        were not all written (PrepareCommit, PrepareAbort), to be completed.
        Nothing is cached if leadership moved meanwhile."""
        started = time.monotonic()
        try:
            loaded = await self.storage.load(partition, lambda: self.loading.get(partition) == coordinator_epoch)
        except Exception:
            log.exception("cannot load %s-%d; its transactional ids stay unavailable", TOPIC, partition)
            loaded = None
        if self.loading.get(partition) != coordinator_epoch:
            return []
        del self.loading[partition]
        if loaded is None:
            return []
        self.cache[partition] = CacheEntry(coordinator_epoch, loaded)
        log.log(logging.INFO if loaded else logging.DEBUG,
                "loaded %d transactional ids from %s-%d at epoch %d in %d ms", len(loaded), TOPIC, partition,
                coordinator_epoch, (time.monotonic() - started) * 1000)
        return [m for m in loaded.values() if m.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)]

    def unload_partition(self, partition: int) -> None:
        self.loading.pop(partition, None)
        if self.cache.pop(partition, None) is not None:
            log.info("unloaded the transactional ids of %s-%d", TOPIC, partition)

    def unload_all(self) -> None:
        self.loading.clear()
        self.cache.clear()

    # -- what the timers look at ----------------------------------------------------------------
    def timed_out(self, now_ms: int) -> list[tuple[str, int, int]]:
        """(id, producer id, epoch) of Ongoing transactions past their timeout."""
        return [(m.transactional_id, m.producer_id, m.producer_epoch)
                for entry in self.cache.values() for m in entry.txns.values()
                if not m.pending and m.state == ONGOING and m.start_ms + m.timeout_ms < now_ms]

    async def remove_expired(self) -> int:
        """Write tombstones for ids idle longer than transactional.id.expiration.ms
        (Empty or completed, nothing pending) and forget them; how many. Each
        batch of tombstones stays within the topic's max.message.bytes, as
        Kafka fills one batch after another."""
        removed = 0
        for partition, entry in list(self.cache.items()):
            now = self.clock_ms()
            max_bytes = self.storage.broker.topics.effective_config(TOPIC)["max.message.bytes"]
            batch: list[tuple[TransactionMetadata, TxnTransit, bytes]] = []
            size = BATCH_OVERHEAD
            for m in list(entry.txns.values()):
                if m.pending or m.state not in EXPIRATION_ALLOWED or m.update_ms > now - self.expiration_ms:
                    continue
                key = key_bytes(m.transactional_id)
                if batch and size + len(key) + RECORD_OVERHEAD > max_bytes:
                    removed += await self._write_tombstones(partition, entry, batch, now)
                    batch, size = [], BATCH_OVERHEAD
                    if self.cache.get(partition) is not entry:
                        break
                if not m.pending:
                    batch.append((m, m.prepare_dead(), key))
                    size += len(key) + RECORD_OVERHEAD
            if batch and self.cache.get(partition) is entry:
                removed += await self._write_tombstones(partition, entry, batch, now)
        return removed

    async def _write_tombstones(self, partition: int, entry: CacheEntry,
                                batch: list[tuple[TransactionMetadata, TxnTransit, bytes]], now: int) -> int:
        error = await self.storage.write(partition, [(key, None) for _, _, key in batch],
                                         self.storage.broker.config.request_timeout_ms, now)
        removed = 0
        for m, transit, _ in batch:
            if (error == ErrorCode.NONE and self.cache.get(partition) is entry and m.pending_state == DEAD
                    and m.producer_epoch == transit.producer_epoch):
                del entry.txns[m.transactional_id]
                removed += 1
            else:
                log.warning("could not expire transactional id %s: %s", m.transactional_id, error.name)
                m.pending_state = None
        return removed

    def list_states(self, producer_ids: Iterable[int], state_names: Iterable[str],
                    min_duration_ms: int) -> tuple[ErrorCode, list[str], list[Listed]]:
        """ListTransactions: (error, unknown state filters, the matching ids)."""
        if self.loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, [], []
        producer_ids, state_names = set(producer_ids), list(state_names)
        states, unknown = set(), []
        for name in state_names:
            state = TxnState.from_name(name)
            if state is None:
                unknown.append(name)
            else:
                states.add(state)
        now = self.clock_ms()
        listed = [
            Listed(m.transactional_id, m.producer_id, m.state)
            for entry in self.cache.values() for m in entry.txns.values()
            if m.state != DEAD
            and (not producer_ids or m.producer_id in producer_ids)
            and (not state_names or m.state in states)
            and not (min_duration_ms >= 0 and now - m.start_ms <= min_duration_ms)
        ]
        return ErrorCode.NONE, unknown, listed
