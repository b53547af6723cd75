"""Completing a transaction once its PrepareCommit/PrepareAbort is written
(Kafka's TransactionMarkerChannelManager and its completion handler): a
COMMIT or ABORT marker goes to every partition of the transaction, through
``write_markers`` for the partitions this broker leads and as WriteTxnMarkers
to the others' leaders, retried until written; then CompleteCommit or
CompleteAbort is written to ``__transaction_state``.

Each transaction is completed by its own task, which stops as soon as this
broker no longer coordinates the transaction at the epoch it began with (the
new coordinator resumes from the log). A partition deleted meanwhile is
dropped, as Kafka drops a partition without a leader endpoint.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import trio

from ..api.write_txn_markers import write_markers
from ..cluster.channel import BrokerChannel, BrokerChannelError
from ..protocol.errors import ErrorCode, KafkaError
from .metadata import COMPLETE_COMMIT, TopicPartition, TransactionMetadata, TxnTransit

log = logging.getLogger(__name__)

WRITE_TXN_MARKERS_VERSION = 1
# Between rounds of markers refused with a retriable error, or without a leader.
RETRY_BACKOFF_S = 0.1

_RETRIABLE = frozenset({
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_ENOUGH_REPLICAS,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.KAFKA_STORAGE_ERROR,
})
# The producer or coordinator epoch moved on: this transaction is someone else's to finish.
_SUPERSEDED = frozenset({ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.TRANSACTION_COORDINATOR_FENCED})
# The producer could not have written there: nothing to mark.
_DROPPED = frozenset({ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, ErrorCode.UNSUPPORTED_VERSION})


@dataclass(frozen=True)
class PendingComplete:
    coordinator_epoch: int
    metadata: TransactionMetadata
    transit: TxnTransit  # CompleteCommit/CompleteAbort, prepared (the metadata's pending state)


class TxnMarkerSender:
    def __init__(self, broker, manager):
        self.broker = broker
        self.manager = manager
        self._send, self._receive = trio.open_memory_channel(math.inf)
        self._channels: dict[int, BrokerChannel] = {}
        self._nursery: trio.Nursery | None = None

    def add(self, coordinator_epoch: int, metadata: TransactionMetadata, transit: TxnTransit) -> None:
        """Send the markers of a transaction whose completion ``transit`` is prepared."""
        self._send.send_nowait(PendingComplete(coordinator_epoch, metadata, transit))

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                async for pending in self._receive:
                    nursery.start_soon(self._complete_or_log, pending)
            finally:
                with trio.CancelScope(shield=True):
                    for channel in self._channels.values():
                        await channel.aclose()

    def _ours(self, pending: PendingComplete) -> bool:
        """Whether this broker still coordinates the transaction as it did."""
        try:
            found = self.manager.get(pending.metadata.transactional_id)
        except KafkaError:  # NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS
            return False
        return found is not None and found[0] == pending.coordinator_epoch and found[1] is pending.metadata

    async def _complete_or_log(self, pending: PendingComplete) -> None:
        """A transaction's completion; a bug in it is logged (as Kafka's sender
        thread logs a failed completion) rather than taking the broker down.
        The transaction stays pending until its partition is loaded again."""
        try:
            await self._complete(pending)
        except Exception:
            log.exception("completing the transaction of %s failed", pending.metadata.transactional_id)

    async def _complete(self, pending: PendingComplete) -> None:
        metadata = pending.metadata
        commit = pending.transit.state == COMPLETE_COMMIT
        while metadata.partitions:
            if not self._ours(pending):
                return
            by_leader: dict[int, list[TopicPartition]] = {}
            unknown_leader = False
            for tp in sorted(metadata.partitions):
                if not self.broker.metadata.has_partition(*tp):
                    log.info("%s-%d is gone: no marker for transactional id %s", tp[0], tp[1],
                             metadata.transactional_id)
                    metadata.remove_partition(tp)
                    continue
                leader = self.broker.metadata.leader(*tp)
                if leader is None or leader < 0:
                    unknown_leader = True
                else:
                    by_leader.setdefault(leader, []).append(tp)
            results: dict[TopicPartition, ErrorCode] = {}
            async with trio.open_nursery() as nursery:
                for leader, partitions in by_leader.items():
                    nursery.start_soon(self._send_to, leader, pending, commit, partitions, results)
            if not self._ours(pending):
                return
            retry = unknown_leader
            for tp, error in results.items():
                if error == ErrorCode.NONE or error in _DROPPED:
                    metadata.remove_partition(tp)
                elif error in _SUPERSEDED:
                    log.info("markers of %s are superseded (%s): no longer sent", metadata.transactional_id,
                             error.name)
                    return
                else:
                    if error not in _RETRIABLE:
                        log.error("unexpected %s writing a marker of %s to %s-%d; retrying", error.name,
                                  metadata.transactional_id, tp[0], tp[1])
                    retry = True
            if retry and metadata.partitions:
                await trio.sleep(RETRY_BACKOFF_S)
        await self._write_completion(pending)

    async def _write_completion(self, pending: PendingComplete) -> None:
        transactional_id = pending.metadata.transactional_id
        while self._ours(pending):
            error = await self.manager.append(transactional_id, pending.coordinator_epoch, pending.transit,
                                              retry_on_error=lambda e: e == ErrorCode.COORDINATOR_NOT_AVAILABLE)
            if error != ErrorCode.COORDINATOR_NOT_AVAILABLE:
                if error != ErrorCode.NONE:
                    log.info("completing the transaction of %s: %s", transactional_id, error.name)
                return
            await trio.sleep(RETRY_BACKOFF_S)

    async def _send_to(self, leader: int, pending: PendingComplete, commit: bool, partitions: list[TopicPartition],
                       results: dict[TopicPartition, ErrorCode]) -> None:
        """One destination's markers; every partition gets an error in ``results``."""
        topics: dict[str, list[int]] = {}
        for topic, partition in partitions:
            topics.setdefault(topic, []).append(partition)
        marker = {
            "producer_id": pending.metadata.producer_id,
            "producer_epoch": pending.metadata.producer_epoch,
            "transaction_result": commit,
            "topics": [{"name": name, "partition_indexes": indexes} for name, indexes in topics.items()],
            "coordinator_epoch": pending.coordinator_epoch,
        }
        try:
            if leader == self.broker.config.broker_id:
                answered = await write_markers(self.broker, [marker])
            else:
                answered = await self._write_remote(leader, marker)
        except BrokerChannelError as e:
            log.info("WriteTxnMarkers to broker %d failed: %s", leader, e)
            answered = []
        except Exception:  # as Kafka's sender logs a failed completion and goes on
            log.exception("writing the markers of %s to broker %d failed", pending.metadata.transactional_id, leader)
            answered = []
        for answer in answered:
            for topic in answer["topics"]:
                for p in topic["partitions"]:
                    results[(topic["name"], p["partition_index"])] = ErrorCode(p["error_code"])
        for tp in partitions:
            results.setdefault(tp, ErrorCode.REQUEST_TIMED_OUT)  # unanswered: sent again

    async def _write_remote(self, leader: int, marker: dict) -> list:
        channel = self._channels.get(leader)
        if channel is None:
            endpoint = None
            for info in self.broker.metadata.brokers():
                if info.node_id == leader:
                    endpoint = info.endpoint(self.broker.config.inter_broker_listener_name)
            if endpoint is None:
                return []
            channel = self._channels[leader] = BrokerChannel(
                endpoint.host, endpoint.port, self._nursery,
                client_id=f"broker-{self.broker.config.broker_id}-txn-marker-sender")
        try:
            response = await channel.request("WriteTxnMarkers", WRITE_TXN_MARKERS_VERSION, {"markers": [marker]})
        except BrokerChannelError:
            # A broken connection (or a moved broker): a new channel next time.
            if self._channels.get(leader) is channel:
                del self._channels[leader]
                self._nursery.start_soon(channel.aclose)
            raise
        return response["markers"]

