"""The transaction coordinator (Kafka 3.9's TransactionCoordinator):
InitProducerId, AddPartitionsToTxn (and its verify-only form), EndTxn,
DescribeTransactions and ListTransactions with Kafka's checks in Kafka's
order; the abort of transactions past their timeout (with an epoch bump that
fences the producer), the expiry of idle transactional ids, and the loading
and unloading of ``__transaction_state`` partitions as their leadership moves.

A request prepares a change synchronously (so no other request can slip in
between the checks and the change: the pending state then answers them
CONCURRENT_TRANSACTIONS), awaits its write, and applies it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from ..protocol.errors import ErrorCode, KafkaError
from .markers import TxnMarkerSender
from .metadata import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    DEAD,
    EMPTY,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    PREPARE_EPOCH_FENCE,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    IllegalTransition,
    TopicPartition,
    TransactionMetadata,
    TxnTransit,
    is_epoch_exhausted,
    new_metadata,
)
from .state_log import TransactionStateManager, wall_clock_ms
from .verification import TxnVerifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Described:
    """One id's DescribeTransactions answer (an error leaves the fields at
    their schema defaults, as Kafka's does)."""

    error: ErrorCode
    transactional_id: str
    state: str = ""
    timeout_ms: int = 0
    start_ms: int = 0
    producer_id: int = 0
    producer_epoch: int = 0
    partitions: dict[str, list[int]] = field(default_factory=dict)


class TransactionCoordinator:
    def __init__(self, broker, clock_ms=wall_clock_ms):
        config = broker.config
        self.broker = broker
        self.clock_ms = clock_ms
        self.manager = TransactionStateManager(broker, clock_ms)
        self.markers = TxnMarkerSender(broker, self.manager)
        self.verifier = TxnVerifier(broker)  # this broker as a partition leader (KIP-890)
        self.abort_interval_s = config.transaction_abort_timed_out_transaction_cleanup_interval_ms / 1000
        self.expire_interval_s = config.transaction_remove_expired_transaction_cleanup_interval_ms / 1000
        self.active = True
        self._nursery: trio.Nursery | None = None
        self._to_load: list[tuple[int, int]] = []
        for partition in range(self.manager.partitions):
            self.on_election(partition)

    # -- life cycle ----------------------------------------------------------------------
    async def run(self) -> None:
        """Load the partitions led here, send markers, and run the timeout
        aborts and id expiry, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.markers.run)
            nursery.start_soon(self.verifier.run)
            nursery.start_soon(self._periodically, self.abort_interval_s, self._abort_timed_out)
            nursery.start_soon(self._periodically, self.expire_interval_s, self.manager.remove_expired)
            for partition, epoch in self._to_load:
                nursery.start_soon(self._load, partition, epoch)
            self._to_load.clear()

    def shutdown(self) -> None:
        self.active = False
        self.manager.unload_all()

    async def _periodically(self, interval_s: float, action) -> None:
        while True:
            await trio.sleep(interval_s)
            try:
                await action()
            except Exception:
                log.exception("transaction coordinator task %s failed", action.__name__)

    def on_election(self, partition: int) -> None:
        """This broker leads ``__transaction_state-<partition>`` (or, on a single
        broker, the topic now exists): load it at the leader epoch."""
        storage = self.manager.storage
        if not storage.leads(partition):
            return
        epoch = storage.leader_epoch(partition)
        if not self.manager.begin_loading(partition, epoch):
            return
        if self._nursery is None:
            self._to_load.append((partition, epoch))
        else:
            self._nursery.start_soon(self._load, partition, epoch)

    def on_resignation(self, partition: int) -> None:
        """Another broker leads the partition: forget its ids (markers in
        flight for them stop at their next step, seeing the epoch gone)."""
        self.manager.unload_partition(partition)

    def start_loading(self) -> None:
        """After ``__transaction_state`` is created: load the partitions led here."""
        for partition in range(self.manager.partitions):
            self.on_election(partition)

    async def _load(self, partition: int, epoch: int) -> None:
        for metadata in await self.manager.load_partition(partition, epoch):
            log.info("completing the %s of %s after loading", metadata.state.name, metadata.transactional_id)
            self.markers.add(epoch, metadata, metadata.prepare_complete(self.clock_ms()))

    # -- InitProducerId --------------------------------------------------------------------
    async def init_producer_id(self, transactional_id: str | None, timeout_ms: int,
                               expected: tuple[int, int] | None) -> tuple[ErrorCode, int, int]:
        """(error, producer id, epoch); ``expected`` is the (id, epoch) a
        KIP-360 producer recovering from an error sends."""
        if transactional_id is None:
            try:
                return ErrorCode.NONE, await self.broker.producer_ids.next_id(), 0
            except KafkaError as e:
                return e.code, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        if transactional_id == "":
            return ErrorCode.INVALID_REQUEST, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        if not self.manager.valid_timeout(timeout_ms):
            return ErrorCode.INVALID_TRANSACTION_TIMEOUT, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        try:
            found = self.manager.get(transactional_id)
            if found is None:
                producer_id = await self.broker.producer_ids.next_id()
                found = self.manager.get(transactional_id, create=new_metadata(
                    transactional_id, producer_id, timeout_ms, self.clock_ms()))
            coordinator_epoch, metadata = found
            # A rotation to a new producer id needs one: allocated before the
            # (synchronous) checks, which must not be interleaved with others.
            rotation_id = None
            if metadata.epoch_exhausted:
                rotation_id = await self.broker.producer_ids.next_id()
                found = self.manager.get(transactional_id)
        except KafkaError as e:
            return e.code, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        if found is None:  # expired while a producer id was allocated
            return ErrorCode.CONCURRENT_TRANSACTIONS, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        coordinator_epoch, metadata = found
        result = self._prepare_init(metadata, timeout_ms, expected, rotation_id)
        if isinstance(result, ErrorCode):
            return result, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        if result.state == PREPARE_EPOCH_FENCE:
            # Abort the ongoing transaction first; the client retries and gets the next epoch.
            error = await self._end_transaction(transactional_id, result.producer_id, result.producer_epoch,
                                                commit=False, from_client=False)
            return error if error != ErrorCode.NONE else ErrorCode.CONCURRENT_TRANSACTIONS, \
                NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        error = await self.manager.append(transactional_id, coordinator_epoch, result)
        if error != ErrorCode.NONE:
            log.info("InitProducerId of %s answered %s", transactional_id, error.name)
            return error, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        log.info("initialized transactional id %s with producer id %d and epoch %d", transactional_id,
                 result.producer_id, result.producer_epoch)
        return ErrorCode.NONE, result.producer_id, result.producer_epoch

    def _prepare_init(self, m: TransactionMetadata, timeout_ms: int, expected: tuple[int, int] | None,
                      rotation_id: int | None) -> TxnTransit | ErrorCode:
        if m.pending:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if expected is not None:
            expected_id, expected_epoch = expected
            valid = (m.producer_epoch == NO_PRODUCER_EPOCH or expected_id == m.producer_id
                     or (expected_id == m.last_producer_id and is_epoch_exhausted(expected_epoch)))
            if not valid:
                return ErrorCode.PRODUCER_FENCED
        if m.state in (PREPARE_ABORT, PREPARE_COMMIT):
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if m.state in (COMPLETE_ABORT, COMPLETE_COMMIT, EMPTY):
            if m.epoch_exhausted and (expected is None or expected[1] == m.producer_epoch):
                if rotation_id is None:  # exhausted only while the id was allocated
                    return ErrorCode.CONCURRENT_TRANSACTIONS
                return m.prepare_producer_id_rotation(rotation_id, timeout_ms, self.clock_ms(), expected is not None)
            return m.prepare_increment_producer_epoch(timeout_ms, None if expected is None else expected[1],
                                                      self.clock_ms())
        if m.state == ONGOING:
            return m.prepare_fence_producer_epoch()
        raise IllegalTransition(f"transactional id {m.transactional_id} found in state {m.state.name}")

    # -- AddPartitionsToTxn, AddOffsetsToTxn ---------------------------------------------------------
    async def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                             partitions: set[TopicPartition]) -> ErrorCode:
        if not transactional_id:
            return ErrorCode.INVALID_REQUEST
        try:
            found = self.manager.get(transactional_id)
        except KafkaError as e:
            return e.code
        if found is None:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        coordinator_epoch, m = found
        if m.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if m.producer_epoch != producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        if m.pending or m.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if m.state == ONGOING and partitions <= m.partitions:
            return ErrorCode.NONE
        transit = m.prepare_add_partitions(partitions, self.clock_ms())
        return await self.manager.append(transactional_id, coordinator_epoch, transit)

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: set[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn's verify-only form (KIP-890 part 1): whether the
        partitions are in the producer's ongoing transaction."""
        if not transactional_id:
            return dict.fromkeys(partitions, ErrorCode.INVALID_REQUEST)
        try:
            found = self.manager.get(transactional_id)
        except KafkaError as e:
            return dict.fromkeys(partitions, e.code)
        if found is None or found[1].producer_id != producer_id:
            return dict.fromkeys(partitions, ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        m = found[1]
        if m.producer_epoch != producer_epoch:
            return dict.fromkeys(partitions, ErrorCode.PRODUCER_FENCED)
        if m.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return dict.fromkeys(partitions, ErrorCode.CONCURRENT_TRANSACTIONS)
        return {tp: ErrorCode.NONE if tp in m.partitions else ErrorCode.TRANSACTION_ABORTABLE for tp in partitions}

    # -- EndTxn -----------------------------------------------------------------------------
    async def end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int,
                              commit: bool) -> ErrorCode:
        return await self._end_transaction(transactional_id, producer_id, producer_epoch, commit, from_client=True)

    async def _end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
                               from_client: bool) -> ErrorCode:
        if not transactional_id:
            return ErrorCode.INVALID_REQUEST
        try:
            found = self.manager.get(transactional_id)
        except KafkaError as e:
            return e.code
        if found is None:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        coordinator_epoch, m = found
        is_epoch_fence = False
        if m.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        # Clients must send the current epoch; the coordinator's own aborts send a bumped one.
        if (from_client and producer_epoch != m.producer_epoch) or producer_epoch < m.producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        if m.pending and m.pending_state != PREPARE_EPOCH_FENCE:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if m.state == ONGOING:
            next_state = PREPARE_COMMIT if commit else PREPARE_ABORT
            if next_state == PREPARE_ABORT and m.pending_state == PREPARE_EPOCH_FENCE:
                # The fence's bumped epoch goes into the abort record itself.
                is_epoch_fence = True
                m.pending_state = None
                m.producer_epoch = producer_epoch
                m.last_producer_epoch = NO_PRODUCER_EPOCH
            transit = m.prepare_abort_or_commit(next_state, self.clock_ms())
        elif m.state == COMPLETE_COMMIT:
            return ErrorCode.NONE if commit else ErrorCode.INVALID_TXN_STATE
        elif m.state == COMPLETE_ABORT:
            return ErrorCode.NONE if not commit else ErrorCode.INVALID_TXN_STATE
        elif m.state == PREPARE_COMMIT:
            return ErrorCode.CONCURRENT_TRANSACTIONS if commit else ErrorCode.INVALID_TXN_STATE
        elif m.state == PREPARE_ABORT:
            return ErrorCode.CONCURRENT_TRANSACTIONS if not commit else ErrorCode.INVALID_TXN_STATE
        elif m.state == EMPTY:
            return ErrorCode.INVALID_TXN_STATE
        else:
            raise IllegalTransition(f"transactional id {transactional_id} found in state {m.state.name}")

        error = await self.manager.append(transactional_id, coordinator_epoch, transit)
        if error != ErrorCode.NONE:
            if is_epoch_fence:
                current = self._lookup(transactional_id)
                if current is not None and current[0] == coordinator_epoch:
                    current[1].has_failed_epoch_fence = True
                    log.warning("writing the epoch fence of %s failed (%s); epoch %d was not returned to a client",
                                transactional_id, error.name, transit.producer_epoch)
            return error
        # The prepare record is written: answer, and complete with the markers.
        current = self._lookup(transactional_id)
        if current is None:
            return ErrorCode.NOT_COORDINATOR
        if current[0] != coordinator_epoch:
            return ErrorCode.NOT_COORDINATOR
        m = current[1]
        if m.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if m.producer_epoch != producer_epoch:
            return ErrorCode.PRODUCER_FENCED
        if m.pending:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if m.state != (PREPARE_COMMIT if commit else PREPARE_ABORT):
            return ErrorCode.INVALID_TXN_STATE
        self.markers.add(coordinator_epoch, m, m.prepare_complete(self.clock_ms()))
        return ErrorCode.NONE

    def _lookup(self, transactional_id: str) -> tuple[int, TransactionMetadata] | None:
        try:
            return self.manager.get(transactional_id)
        except KafkaError:
            return None

    # -- DescribeTransactions, ListTransactions -------------------------------------------------------
    def describe(self, transactional_id: str) -> Described:
        if not self.active:
            return Described(ErrorCode.COORDINATOR_NOT_AVAILABLE, transactional_id)
        if transactional_id == "":
            return Described(ErrorCode.INVALID_REQUEST, transactional_id)
        try:
            found = self.manager.get(transactional_id)
        except KafkaError as e:
            return Described(e.code, transactional_id)
        if found is None or found[1].state == DEAD:
            return Described(ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, transactional_id)
        m = found[1]
        topics: dict[str, list[int]] = {}
        for topic, partition in sorted(m.partitions):
            topics.setdefault(topic, []).append(partition)
        return Described(ErrorCode.NONE, transactional_id, m.state.kafka_name, m.timeout_ms, m.start_ms,
                         m.producer_id, m.producer_epoch, topics)

    def list_transactions(self, producer_ids, states, min_duration_ms: int):
        """(error, unknown state filters, listed)."""
        if not self.active:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, [], []
        return self.manager.list_states(producer_ids, states, min_duration_ms)

    # -- timers -------------------------------------------------------------------------------------
    async def _abort_timed_out(self) -> None:
        """Abort the Ongoing transactions past their timeout, fencing their
        producers with an epoch bump (transaction.abort.timed.out.transaction.cleanup.interval.ms)."""
        for transactional_id, producer_id, _ in self.manager.timed_out(self.clock_ms()):
            found = self._lookup(transactional_id)
            if found is None:
                continue
            m = found[1]
            if m.producer_id != producer_id or m.pending:
                continue
            transit = m.prepare_fence_producer_epoch()
            log.info("aborting transaction %s (producer id %d): past its timeout of %d ms",
                     transactional_id, producer_id, m.timeout_ms)
            self._nursery.start_soon(self._abort_fenced, transactional_id, transit)

    async def _abort_fenced(self, transactional_id: str, transit: TxnTransit) -> None:
        try:
            error = await self._end_transaction(transactional_id, transit.producer_id, transit.producer_epoch,
                                                commit=False, from_client=False)
        except Exception:  # logged, as Kafka's scheduler logs a failed task, not fatal to the broker
            log.exception("rolling back the timed-out transaction of %s failed", transactional_id)
            return
        if error not in (ErrorCode.NONE, ErrorCode.INVALID_PRODUCER_ID_MAPPING, ErrorCode.PRODUCER_FENCED,
                         ErrorCode.CONCURRENT_TRANSACTIONS):
            log.warning("rolling back the timed-out transaction of %s failed: %s", transactional_id, error.name)
