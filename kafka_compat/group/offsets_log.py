"""Appending to and reading back the partitions of ``__consumer_offsets``."""
from __future__ import annotations

import logging

from ..protocol.errors import ErrorCode, KafkaError
from ..log.replay import replay
from ..protocol.records import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, build_batch, iter_batches
from ..replica.acks_all import AcksAllAppend, await_replication
from .internal_topics import OFFSETS_TOPIC
from ..txn.verification import Verification
from .loader import LoadedPartition

log = logging.getLogger(__name__)

_COMMON_APPEND_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
}
_TOO_LARGE = (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE, ErrorCode.INVALID_FETCH_SIZE)


def commit_error(code: ErrorCode) -> ErrorCode:
    """What an OffsetCommit or TxnOffsetCommit answers when its records could
    not be appended (or its transaction not verified: NETWORK_EXCEPTION, which
    older clients don't retry well, becomes COORDINATOR_LOAD_IN_PROGRESS)."""
    if code in _TOO_LARGE:
        return ErrorCode.INVALID_COMMIT_OFFSET_SIZE
    if code == ErrorCode.NETWORK_EXCEPTION:
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    return _COMMON_APPEND_ERRORS.get(code, code)


def store_group_error(code: ErrorCode) -> ErrorCode:
    """What members are told when their group's metadata could not be appended."""
    if code in _TOO_LARGE:
        return ErrorCode.UNKNOWN_SERVER_ERROR
    if code == ErrorCode.REQUEST_TIMED_OUT:
        return ErrorCode.REBALANCE_IN_PROGRESS
    return _COMMON_APPEND_ERRORS.get(code, code)


class OffsetsLog:
    """The coordinator's view of ``__consumer_offsets``: one batch per append,
    written as the leader (no acks to wait for on a single broker)."""

    def __init__(self, broker, load_buffer_size: int):
        self.broker = broker
        self.load_buffer_size = load_buffer_size
        # Per partition, the last append's (log, leader epoch, end offset).
        self._last_append: dict[int, tuple[object, int, int]] = {}

    def _log(self, partition: int):
        return self.broker.logs.get(OFFSETS_TOPIC, partition)

    def has_partition(self, partition: int) -> bool:
        """Whether this broker leads the partition (so coordinates its groups)."""
        return self._log(partition) is not None and self.broker.replicas.is_leader(OFFSETS_TOPIC, partition)

    async def verify_transaction(self, partition: int, transactional_id: str | None, producer_id: int,
                                 producer_epoch: int, abortable: bool) -> Verification | None:
        """KIP-890 part 1 before a TxnOffsetCommit's first write to the
        partition in a transaction: whether the transaction coordinator has the
        partition in the producer's transaction (AddOffsetsToTxn); None when
        not verified (no transactional id, verification turned off)."""
        if transactional_id is None or not self.broker.config.transaction_partition_verification_enable:
            return None
        tp = (OFFSETS_TOPIC, partition)
        try:
            partition_log = self.broker.replicas.leader_log(*tp)
        except KafkaError as e:
            refused = Verification(producer_id)
            refused.refused[tp] = (e.code, None)
            return refused
        return await self.broker.transactions.verifier.verify_offset_commit(
            transactional_id, producer_id, producer_epoch, tp, partition_log, abortable)

    def append(self, partition: int, records: list[tuple[bytes, bytes | None]], timestamp_ms: int,
               producer_id: int = NO_PRODUCER_ID, producer_epoch: int = NO_PRODUCER_EPOCH,
               verification: Verification | None = None) -> int:
        """Append (key, value) records as one batch; the offset of the first.
        With a producer id the batch is transactional, as Kafka writes a
        TxnOffsetCommit's: that producer's id and epoch, base sequence 0,
        appended only if its ``verification`` still holds.
        Raises the log's KafkaError (see ``commit_error``, ``store_group_error``)."""
        try:
            partition_log = self.broker.replicas.leader_log(OFFSETS_TOPIC, partition)
        except KafkaError as e:
            if e.code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
                raise KafkaError(ErrorCode.NOT_COORDINATOR, f"{OFFSETS_TOPIC}-{partition} is not led here") from None
            raise
        # As Kafka's Partition.appendRecordsToLeader for the coordinator's
        # acks=-1 appends: refused before anything is written.
        min_isr = self.broker.topics.effective_config(OFFSETS_TOPIC)["min.insync.replicas"]
        isr = self.broker.replicas.state(OFFSETS_TOPIC, partition).isr
        if len(isr) < min_isr:
            raise KafkaError(ErrorCode.NOT_ENOUGH_REPLICAS, f"The size of the current ISR {sorted(isr)} is "
                             f"insufficient to satisfy the min.isr requirement of {min_isr} for partition "
                             f"{OFFSETS_TOPIC}-{partition}")
        codec = self.broker.config.offsets_topic_compression_codec
        transactional = producer_id != NO_PRODUCER_ID
        data = bytearray(build_batch([(key, value, [], timestamp_ms) for key, value in records], codec=codec,
                                     producer_id=producer_id, producer_epoch=producer_epoch,
                                     base_sequence=0 if transactional else NO_SEQUENCE, transactional=transactional))
        max_bytes = self.broker.topics.effective_config(OFFSETS_TOPIC)["max.message.bytes"]
        if len(data) > max_bytes:
            raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, f"The record batch size in the append to "
                             f"{OFFSETS_TOPIC}-{partition} is {len(data)} bytes which exceeds the maximum "
                             f"configured value of {max_bytes}.")
        leader_epoch = self.broker.replicas.state(OFFSETS_TOPIC, partition).leader_epoch
        try:
            if verification is not None:
                verification.check_append((OFFSETS_TOPIC, partition), partition_log)
            result = partition_log.append(data, list(iter_batches(data)), leader_epoch=leader_epoch,
                                          from_coordinator=True)
        except KafkaError as e:
            log.error("cannot append to %s-%d: %s", OFFSETS_TOPIC, partition, e)
            raise
        self._last_append[partition] = (partition_log, leader_epoch, partition_log.log_end_offset)
        self.broker.waiters.notify(OFFSETS_TOPIC, partition)
        return result.base_offset

    async def replicated(self, partition: int, timeout_s: float) -> ErrorCode:
        """Waits until the partition's last append is replicated as acks=all
        asks (Kafka's coordinator appends with offsets.commit.required.acks,
        -1): NONE, or what the append then fails with (REQUEST_TIMED_OUT after
        ``timeout_s`` or at shutdown, NOT_LEADER_OR_FOLLOWER,
        NOT_ENOUGH_REPLICAS_AFTER_APPEND)."""
        appended = self._last_append.get(partition)
        if appended is None:
            return ErrorCode.NONE
        partition_log, epoch, end = appended
        min_isr = self.broker.topics.effective_config(OFFSETS_TOPIC)["min.insync.replicas"]
        append = AcksAllAppend(OFFSETS_TOPIC, partition, partition_log, epoch, end, min_isr)
        await await_replication(self.broker, [append], timeout_s)
        return append.error

    async def load(self, partition: int) -> LoadedPartition:
        """The groups and offsets the partition's records (up to its log end,
        as Kafka loads them: a new leader's last records may be above the high
        watermark it had as a follower) leave, transactional offsets resolved
        by the markers that follow them. The end is read again before each
        chunk (``replay``): a marker written while a large partition loads
        (its completion finds no group yet) is still read. One chunk
        (offsets.load.buffer.size) is in memory at a time besides the groups
        themselves. It stops early once this broker no longer leads the
        partition."""
        partition_log = self._log(partition)
        loaded = LoadedPartition()
        if partition_log is not None:
            await replay(partition_log, self.load_buffer_size, loaded.apply, lambda: self.has_partition(partition))
        return loaded
