"""KIP-890 part 1 on the partition leader (Kafka 3.9's ReplicaManager
verification, AddPartitionsToTxnManager and VerificationGuard): before the
first transactional batch of a transaction is appended to a partition, the
leader asks the transaction coordinator whether the partition is in the
producer's ongoing transaction (AddPartitionsToTxn v4 verify-only over the
wire, or the local coordinator directly), so that a late produce can't start
a transaction the coordinator will never end (a hanging transaction).

The guard: verification takes a snapshot of the producer's state in the
partition; if a marker changed it while the coordinator was asked (the
transaction ended meanwhile), the batch is refused with INVALID_TXN_STATE,
as Kafka's unique VerificationGuard refuses it.
"""
from __future__ import annotations

import logging

import trio

from ..cluster.channel import BrokerChannel, BrokerChannelError
from ..group.internal_topics import TRANSACTION_STATE_TOPIC
from ..protocol.errors import ErrorCode, KafkaError
from .metadata import TopicPartition
from .producer_state import NO_TXN

log = logging.getLogger(__name__)

VERIFY_VERSION = 4
# Produce v11+ clients understand TRANSACTION_ABORTABLE; older ones get INVALID_TXN_STATE.
FIRST_PRODUCE_WITH_ABORTABLE = 11
# Coordinator errors a producer would not retry: told NOT_ENOUGH_REPLICAS, which it does.
_RETRY_AS_NOT_ENOUGH_REPLICAS = frozenset({
    ErrorCode.CONCURRENT_TRANSACTIONS, ErrorCode.NETWORK_EXCEPTION, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NOT_COORDINATOR,
})


def _producer_snapshot(partition_log, producer_id: int):
    """What a marker for the producer would change in this partition."""
    entry = partition_log.producer_state.producers.get(producer_id)
    if entry is None:
        return None
    return entry.epoch, entry.coordinator_epoch, entry.last_timestamp, entry.current_txn_first_offset


def has_ongoing_transaction(partition_log, producer_id: int) -> bool:
    entry = partition_log.producer_state.producers.get(producer_id)
    return entry is not None and entry.current_txn_first_offset != NO_TXN


class Verification:
    """A produce request's verification: the partitions refused, with (error,
    message for the response), and the guards the others are appended under."""

    def __init__(self, producer_id: int):
        self.producer_id = producer_id
        self.refused: dict[TopicPartition, tuple[ErrorCode, str | None]] = {}
        self.guards: dict[TopicPartition, object] = {}

    def check_append(self, tp: TopicPartition, partition_log) -> None:
        """Right before the append (no await in between): KafkaError
        INVALID_TXN_STATE if the transaction was ended at this partition
        while the coordinator was asked (Kafka's VerificationGuard)."""
        if tp not in self.guards or has_ongoing_transaction(partition_log, self.producer_id):
            return
        if _producer_snapshot(partition_log, self.producer_id) != self.guards[tp]:
            raise KafkaError(ErrorCode.INVALID_TXN_STATE, "Record was not part of an ongoing transaction")


class TxnVerifier:
    def __init__(self, broker):
        self.broker = broker
        self._channels: dict[int, BrokerChannel] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    for channel in self._channels.values():
                        await channel.aclose()

    async def verify(self, transactional_id: str | None, producer_id: int, producer_epoch: int,
                     partitions: dict[TopicPartition, object], produce_version: int) -> "Verification":
        """Verify the partitions (-> their logs) of a transactional produce
        whose producer has no transaction open there yet."""
        verification = Verification(producer_id)
        if transactional_id is None or not self.broker.config.transaction_partition_verification_enable:
            return verification
        unverified = {tp: pl for tp, pl in partitions.items() if not has_ongoing_transaction(pl, producer_id)}
        if not unverified:
            return verification
        verification.guards = {tp: _producer_snapshot(pl, producer_id) for tp, pl in unverified.items()}
        errors = await self._ask_coordinator(transactional_id, producer_id, producer_epoch, list(unverified))
        for tp, error in errors.items():
            if error == ErrorCode.NONE:
                continue
            if error == ErrorCode.TRANSACTION_ABORTABLE and produce_version < FIRST_PRODUCE_WITH_ABORTABLE:
                error = ErrorCode.INVALID_TXN_STATE
            if error == ErrorCode.INVALID_TXN_STATE:
                verification.refused[tp] = (error, "Partition was not added to the transaction")
            elif error in _RETRY_AS_NOT_ENOUGH_REPLICAS:
                verification.refused[tp] = (ErrorCode.NOT_ENOUGH_REPLICAS, "Unable to verify the partition has "
                                            f"been added to the transaction. Underlying error: {error.name}")
            else:
                verification.refused[tp] = (error, None)
        return verification

    async def verify_offset_commit(self, transactional_id: str | None, producer_id: int, producer_epoch: int,
                                   tp: TopicPartition, partition_log, abortable: bool) -> Verification:
        """A TxnOffsetCommit's verification of its ``__consumer_offsets``
        partition (Kafka's handleTxnCommitOffsets): the coordinator's error as
        it comes (the group coordinator maps it as an append error), with
        TRANSACTION_ABORTABLE as INVALID_TXN_STATE unless the client knows it
        (``abortable``: TxnOffsetCommit v4+)."""
        verification = Verification(producer_id)
        if (transactional_id is None or not self.broker.config.transaction_partition_verification_enable
                or has_ongoing_transaction(partition_log, producer_id)):
            return verification
        verification.guards = {tp: _producer_snapshot(partition_log, producer_id)}
        error = (await self._ask_coordinator(transactional_id, producer_id, producer_epoch, [tp]))[tp]
        if error == ErrorCode.TRANSACTION_ABORTABLE and not abortable:
            error = ErrorCode.INVALID_TXN_STATE
        if error != ErrorCode.NONE:
            verification.refused[tp] = (error, None)
        return verification

    async def _ask_coordinator(self, transactional_id: str, producer_id: int, producer_epoch: int,
                               partitions: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        broker = self.broker
        coordinator = broker.transactions
        txn_partition = coordinator.manager.partition_for(transactional_id)
        leader = -1
        if broker.metadata.has_partition(TRANSACTION_STATE_TOPIC, txn_partition):
            leader = broker.metadata.leader(TRANSACTION_STATE_TOPIC, txn_partition)
        if leader < 0:
            return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if leader == broker.config.broker_id:
            answer = coordinator.verify_partitions(transactional_id, producer_id, producer_epoch, set(partitions))
        else:
            answer = await self._ask_remote(leader, transactional_id, producer_id, producer_epoch, partitions)
        # Producers expect INVALID_PRODUCER_EPOCH here.
        return {tp: ErrorCode.INVALID_PRODUCER_EPOCH if e == ErrorCode.PRODUCER_FENCED else e
                for tp, e in answer.items()}

    async def _ask_remote(self, leader: int, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        topics: dict[str, list[int]] = {}
        for topic, partition in partitions:
            topics.setdefault(topic, []).append(partition)
        request = {"transactions": [{
            "transactional_id": transactional_id, "producer_id": producer_id, "producer_epoch": producer_epoch,
            "verify_only": True, "topics": [{"name": n, "partitions": p} for n, p in topics.items()]}]}
        channel = self._channel(leader)
        if channel is None:
            return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        try:
            response = await channel.request("AddPartitionsToTxn", VERIFY_VERSION, request)
        except BrokerChannelError as e:
            log.warning("AddPartitionsToTxn to broker %d failed: %s", leader, e)
            if self._channels.get(leader) is channel:
                del self._channels[leader]
                self._nursery.start_soon(channel.aclose)
            return dict.fromkeys(partitions, ErrorCode.NETWORK_EXCEPTION)
        if response.error_code != ErrorCode.NONE:
            error = ErrorCode(response.error_code)
            if error == ErrorCode.CLUSTER_AUTHORIZATION_FAILED:
                error = ErrorCode.INVALID_TXN_STATE
            return dict.fromkeys(partitions, error)
        answer = dict.fromkeys(partitions, ErrorCode.NONE)
        for result in response.results_by_transaction:
            for topic in result.topic_results:
                for p in topic.results_by_partition:
                    answer[(topic.name, p.partition_index)] = ErrorCode(p.partition_error_code)
        return answer

    def _channel(self, broker_id: int) -> BrokerChannel | None:
        channel = self._channels.get(broker_id)
        if channel is None:
            for info in self.broker.metadata.brokers():
                if info.node_id == broker_id:
                    endpoint = info.endpoint(self.broker.config.inter_broker_listener_name)
                    if endpoint is not None and self._nursery is not None:
                        channel = self._channels[broker_id] = BrokerChannel(
                            endpoint.host, endpoint.port, self._nursery,
                            client_id=f"broker-{self.broker.config.broker_id}-txn-verifier")
        return channel
