"""Waiting until appends are replicated as acks=all asks (Kafka's
DelayedProduce): acks=all produces, WriteTxnMarkers and the coordinators'
appends to their internal topics are answered once the high watermark
covers what they appended (``ReplicaManager.replication_status``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import trio

from ..protocol.errors import ErrorCode


@dataclass(eq=False)
class AcksAllAppend:
    """An append to ``log`` under leader epoch ``epoch`` that ended before
    ``required_offset``; ``fail`` is told the error that ended its wait, if
    one did (kept in ``error``)."""

    topic: str
    partition: int
    log: object
    epoch: int
    required_offset: int
    min_insync_replicas: int
    error: ErrorCode = field(default=ErrorCode.NONE, init=False)

    def fail(self, error: ErrorCode) -> None:
        self.error = error


def still_replicating(replicas, appends: list[AcksAllAppend]) -> list[AcksAllAppend]:
    """The appends not yet replicated to the whole ISR; the others are
    settled (left as they are, or failed with the error that ended the wait)."""
    waiting = []
    for a in appends:
        status = replicas.replication_status(a.topic, a.partition, a.log, a.epoch, a.required_offset,
                                             a.min_insync_replicas)
        if status is None:
            waiting.append(a)
        elif status != ErrorCode.NONE:
            a.fail(status)
    return waiting


async def await_replication(broker, appends: list[AcksAllAppend], timeout_s: float) -> None:
    """Until every append is replicated to the whole ISR (the high watermark
    reached its end) or failed; those still waiting after ``timeout_s``, or
    once the broker's waiters are closed at shutdown (no wake-up comes then:
    waiting on would spin without a checkpoint), fail with REQUEST_TIMED_OUT.
    Woken when one of the partitions' ISR or leadership changes, or its high
    watermark reaches the append's end (neither later appends nor a shorter
    move can end the wait)."""
    deadline = trio.current_time() + timeout_s
    while appends := still_replicating(broker.replicas, appends):
        remaining = deadline - trio.current_time()
        if remaining <= 0 or broker.waiters.closed:
            for a in appends:
                a.fail(ErrorCode.REQUEST_TIMED_OUT)
            return
        await broker.waiters.wait_any([(a.topic, a.partition) for a in appends], remaining, appends=False,
                                      high_watermark_at=[a.required_offset for a in appends])
