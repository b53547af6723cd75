"""One transactional id's state and Kafka's rules for changing it
(TransactionMetadata, TransactionState, TxnTransitMetadata of 3.9).

A change is prepared first (``prepare_*`` returns the target ``TxnTransit``
and sets ``pending_state``, which keeps other changes out), written to
``__transaction_state``, and only then applied with ``complete_transition``;
a failed write clears ``pending_state``. Pure: no I/O, no clock (times are
passed in).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from ..protocol.errors import ErrorCode

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_EPOCH = 32767

TopicPartition = tuple[str, int]


class TxnState(IntEnum):
    """The states and their ids in the transaction log."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        """The name DescribeTransactions and ListTransactions show."""
        return _NAMES[self]

    @classmethod
    def from_name(cls, name: str) -> "TxnState | None":
        return _BY_NAME.get(name)


_NAMES = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_NAME = {name: state for state, name in _NAMES.items()}

EMPTY, ONGOING = TxnState.EMPTY, TxnState.ONGOING
PREPARE_COMMIT, PREPARE_ABORT = TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT
COMPLETE_COMMIT, COMPLETE_ABORT = TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT
DEAD, PREPARE_EPOCH_FENCE = TxnState.DEAD, TxnState.PREPARE_EPOCH_FENCE

VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    EMPTY: frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    ONGOING: frozenset({ONGOING, EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    PREPARE_COMMIT: frozenset({ONGOING}),
    PREPARE_ABORT: frozenset({ONGOING, PREPARE_EPOCH_FENCE}),
    COMPLETE_COMMIT: frozenset({PREPARE_COMMIT}),
    COMPLETE_ABORT: frozenset({PREPARE_ABORT}),
    DEAD: frozenset({EMPTY, COMPLETE_ABORT, COMPLETE_COMMIT}),
    PREPARE_EPOCH_FENCE: frozenset({ONGOING}),
}
EXPIRATION_ALLOWED = frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT})


class IllegalTransition(Exception):
    """A change Kafka's state machine forbids: a bug, never a client's error."""


def is_epoch_exhausted(epoch: int) -> bool:
    """No client may use MAX_EPOCH, so that a producer can always be fenced."""
    return epoch >= MAX_EPOCH - 1


@dataclass(frozen=True, slots=True)
class TxnTransit:
    """The metadata a prepared change leads to (what is written to the log)."""

    producer_id: int
    last_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition]
    start_ms: int
    update_ms: int


@dataclass(eq=False)
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    last_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: set[TopicPartition] = field(default_factory=set)
    start_ms: int = -1
    update_ms: int = -1
    pending_state: TxnState | None = None
    # A fence whose write failed: the next fence reuses its epoch (never returned to a client).
    has_failed_epoch_fence: bool = False

    @property
    def pending(self) -> bool:
        return self.pending_state is not None

    @property
    def epoch_exhausted(self) -> bool:
        return is_epoch_exhausted(self.producer_epoch)

    def remove_partition(self, tp: TopicPartition) -> None:
        """A partition's marker is written."""
        if self.state not in (PREPARE_COMMIT, PREPARE_ABORT):
            raise IllegalTransition(f"{self.transactional_id}: removing a marked partition in state {self.state.name}")
        self.partitions.discard(tp)

    # -- preparing changes -------------------------------------------------------------
    def prepare_fence_producer_epoch(self) -> TxnTransit:
        if self.producer_epoch == MAX_EPOCH:
            raise IllegalTransition("cannot fence a producer at the maximum epoch")
        epoch = self.producer_epoch if self.has_failed_epoch_fence else self.producer_epoch + 1
        return self._prepare(PREPARE_EPOCH_FENCE, self.producer_id, epoch, NO_PRODUCER_EPOCH, self.timeout_ms,
                             frozenset(self.partitions), self.start_ms, self.update_ms)

    def prepare_increment_producer_epoch(self, timeout_ms: int, expected_epoch: int | None,
                                         now_ms: int) -> TxnTransit | ErrorCode:
        """InitProducerId's epoch bump; PRODUCER_FENCED for a zombie's expected epoch."""
        if self.epoch_exhausted:
            raise IllegalTransition(f"no epochs left for producer id {self.producer_id}")
        bumped = self.producer_epoch + 1
        if expected_epoch is None:
            epoch, last_epoch = bumped, NO_PRODUCER_EPOCH
        elif self.producer_epoch == NO_PRODUCER_EPOCH or expected_epoch == self.producer_epoch:
            epoch, last_epoch = bumped, self.producer_epoch
        elif expected_epoch == self.last_producer_epoch:
            # A retry of a bump that succeeded: answer the same epoch again.
            epoch, last_epoch = self.producer_epoch, self.last_producer_epoch
        else:
            return ErrorCode.PRODUCER_FENCED
        return self._prepare(EMPTY, self.producer_id, epoch, last_epoch, timeout_ms, frozenset(), -1, now_ms)

    def prepare_producer_id_rotation(self, producer_id: int, timeout_ms: int, now_ms: int,
                                     record_last_epoch: bool) -> TxnTransit:
        if self.state in (ONGOING, PREPARE_ABORT, PREPARE_COMMIT):
            raise IllegalTransition("cannot rotate producer ids while a transaction is pending")
        return self._prepare(EMPTY, producer_id, 0, self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
                             timeout_ms, frozenset(), -1, now_ms)

    def prepare_add_partitions(self, added: set[TopicPartition], now_ms: int) -> TxnTransit:
        start = now_ms if self.state in (EMPTY, COMPLETE_ABORT, COMPLETE_COMMIT) else self.start_ms
        return self._prepare(ONGOING, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.timeout_ms, frozenset(self.partitions | added), start, now_ms)

    def prepare_abort_or_commit(self, state: TxnState, now_ms: int) -> TxnTransit:
        return self._prepare(state, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.timeout_ms, frozenset(self.partitions), self.start_ms, now_ms)

    def prepare_complete(self, now_ms: int) -> TxnTransit:
        state = COMPLETE_COMMIT if self.state == PREPARE_COMMIT else COMPLETE_ABORT
        # The prepare record is in the log, so any failed fence is behind us.
        self.has_failed_epoch_fence = False
        return self._prepare(state, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.timeout_ms, frozenset(), self.start_ms, now_ms)

    def prepare_dead(self) -> TxnTransit:
        return self._prepare(DEAD, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.timeout_ms, frozenset(), self.start_ms, self.update_ms)

    def _prepare(self, state: TxnState, producer_id: int, epoch: int, last_epoch: int, timeout_ms: int,
                 partitions: frozenset[TopicPartition], start_ms: int, now_ms: int) -> TxnTransit:
        if self.pending_state is not None:
            raise IllegalTransition(f"{self.transactional_id}: preparing {state.name} while "
                                    f"{self.pending_state.name} is pending")
        if producer_id < 0:
            raise IllegalTransition(f"illegal producer id {producer_id}")
        if state != DEAD and epoch < 0:
            raise IllegalTransition(f"illegal producer epoch {epoch}")
        if self.state not in VALID_PREVIOUS[state]:
            raise IllegalTransition(f"{self.transactional_id}: {state.name} cannot follow {self.state.name}")
        self.pending_state = state
        return TxnTransit(producer_id, self.producer_id, epoch, last_epoch, timeout_ms, state, partitions,
                          start_ms, now_ms)

    # -- completing them ------------------------------------------------------------------
    def complete_transition(self, t: TxnTransit) -> None:
        """Apply a prepared change once its record is written."""
        to = self.pending_state
        if to is None or to != t.state:
            self._fail(t)
        same_producer = t.producer_epoch == self.producer_epoch and t.producer_id == self.producer_id
        if to == EMPTY:
            bump = (t.producer_epoch == self.producer_epoch + 1
                    or (t.producer_epoch == 0 and t.producer_id != self.producer_id))
            if (self.producer_epoch != t.producer_epoch and not bump) or t.partitions or t.start_ms != -1:
                self._fail(t)
            self.timeout_ms = t.timeout_ms
            self.producer_epoch = t.producer_epoch
            self.last_producer_epoch = t.last_producer_epoch
            self.producer_id = t.producer_id
            self.last_producer_id = t.last_producer_id
        elif to == ONGOING:
            if not same_producer or not self.partitions <= t.partitions or self.timeout_ms != t.timeout_ms:
                self._fail(t)
            self.start_ms = t.start_ms
            self.partitions |= t.partitions
        elif to in (PREPARE_ABORT, PREPARE_COMMIT):
            if (not same_producer or self.partitions != t.partitions or self.timeout_ms != t.timeout_ms
                    or self.start_ms != t.start_ms):
                self._fail(t)
        elif to in (COMPLETE_ABORT, COMPLETE_COMMIT):
            if not same_producer or self.timeout_ms != t.timeout_ms or t.start_ms == -1:
                self._fail(t)
            self.start_ms = t.start_ms
            self.partitions.clear()
        else:  # PrepareEpochFence becomes PrepareAbort before any write; Dead leaves the cache
            self._fail(t)
        self.update_ms = t.update_ms
        self.pending_state = None
        self.state = to

    def _fail(self, t: TxnTransit):
        raise IllegalTransition(f"{self.transactional_id} ({self.state.name}, pending "
                                f"{self.pending_state and self.pending_state.name}) cannot become {t}")


def new_metadata(transactional_id: str, producer_id: int, timeout_ms: int, now_ms: int) -> TransactionMetadata:
    """A transactional id seen for the first time (its epoch is bumped to 0 next)."""
    return TransactionMetadata(transactional_id, producer_id, NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_PRODUCER_EPOCH,
                               timeout_ms, EMPTY, set(), -1, now_ms)
