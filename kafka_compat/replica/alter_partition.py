"""A leader's ISR changes, sent to the controller (Kafka's AlterPartitionManager).

A leader that wants a follower in or out of a partition's ISR submits the
new ISR here; the partition then counts as pending (no other change is
submitted for it until this one is answered). Everything submitted is sent
in one AlterPartition request at a time, to the controller the metadata
cache names, on the inter-broker listener. The controller's answer for each
partition goes to the partition's callback; a request that gets no answer
(no controller known, the connection failed, NOT_CONTROLLER, or a partition
answered NOT_CONTROLLER, which the controller says when it may be a zombie)
is sent again after a short backoff, unchanged: the controller answers a
change it already applied with the current state (Kafka's
equalsAllowStalePartitionEpoch), so a retry is harmless.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..cluster.channel import BrokerChannel, BrokerChannelError
from ..protocol.errors import ErrorCode

log = logging.getLogger(__name__)

# v2: topic ids and a plain ISR list (v3 adds broker epochs per ISR member,
# KIP-903, which needs Fetch v15's replica epochs: our followers send v13).
ALTER_PARTITION_VERSION = 2
RETRY_BACKOFF_S = 0.05


@dataclass
class AlterPartitionItem:
    topic_id: bytes
    partition: int
    leader_epoch: int
    new_isr: list[int]
    partition_epoch: int
    # Called with the partition's answer: (error, leader epoch, ISR, partition epoch).
    done: Callable[[ErrorCode, int, list[int], int], None]


class AlterPartitionManager:
    def __init__(self, broker_id: int, broker_epoch: Callable[[], int],
                 controller_endpoint: Callable[[], tuple[int, object] | None]):
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        # (controller id, its inter-broker Endpoint), None while unknown.
        self.controller_endpoint = controller_endpoint
        self._queued: dict[tuple[bytes, int], AlterPartitionItem] = {}
        self._wake = trio.Event()
        self._channel: BrokerChannel | None = None

    def submit(self, item: AlterPartitionItem) -> None:
        self._queued[(item.topic_id, item.partition)] = item
        self._wake.set()

    async def run(self) -> None:
        """Send what is queued until cancelled."""
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    if not self._queued:
                        self._wake = trio.Event()
                        await self._wake.wait()
                    if not await self._send(nursery):
                        await trio.sleep(RETRY_BACKOFF_S)
            finally:
                if self._channel is not None:
                    with trio.CancelScope(shield=True):
                        await self._channel.aclose()

    def _connect(self, nursery) -> BrokerChannel | None:
        found = self.controller_endpoint()
        if found is None:
            return None
        _, endpoint = found
        if self._channel is not None and (self._channel.host, self._channel.port) != (endpoint.host, endpoint.port):
            nursery.start_soon(self._channel.aclose)
            self._channel = None
        if self._channel is None:
            self._channel = BrokerChannel(endpoint.host, endpoint.port, nursery,
                                          client_id=f"broker-{self.broker_id}-alter-partition")
        return self._channel

    async def _send(self, nursery) -> bool:
        """One request with everything queued; whether it was answered (the
        unanswered items stay queued, unless resubmitted meanwhile)."""
        items, self._queued = self._queued, {}
        channel = self._connect(nursery)
        response = None
        if channel is not None:
            topics: dict[bytes, list[dict]] = {}
            for item in items.values():
                topics.setdefault(item.topic_id, []).append({
                    "partition_index": item.partition, "leader_epoch": item.leader_epoch,
                    "new_isr": item.new_isr, "leader_recovery_state": 0, "partition_epoch": item.partition_epoch})
            request = {"broker_id": self.broker_id, "broker_epoch": self.broker_epoch(),
                       "topics": [{"topic_id": t, "partitions": p} for t, p in topics.items()]}
            try:
                response = await channel.request("AlterPartition", ALTER_PARTITION_VERSION, request)
            except BrokerChannelError as e:
                log.info("AlterPartition to the controller failed: %s", e)
                await channel.aclose()
                self._channel = None
        if response is not None and response.error_code != ErrorCode.NONE:
            log.info("AlterPartition answered %s", ErrorCode(response.error_code).name)
            response = None
        retry = dict(items)
        if response is not None:
            for topic in response.topics:
                for p in topic.partitions:
                    item = retry.get((topic.topic_id, p.partition_index))
                    if item is None or p.error_code == ErrorCode.NOT_CONTROLLER:
                        continue
                    del retry[(topic.topic_id, p.partition_index)]
                    item.done(ErrorCode(p.error_code), p.leader_epoch, list(p.isr), p.partition_epoch)
        for key, item in retry.items():
            self._queued.setdefault(key, item)  # (a newer submission wins)
        return not retry
