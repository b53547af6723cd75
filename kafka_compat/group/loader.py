"""Rebuilding groups from the records of a ``__consumer_offsets`` partition:
the last record of a key wins and a tombstone deletes it.

Offsets in transactional batches (TxnOffsetCommit) are held per producer id
until that producer's marker: COMMIT makes them committed (where they are
newer than the committed offset), ABORT drops them; a transaction still open
at the end of the partition leaves them pending, as Kafka's
GroupMetadataManager.doLoadGroupsAndOffsets does."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocol.errors import KafkaError
from ..protocol.records import BatchView, ControlType, parse_end_txn_marker
from .group import CommitRecord, GroupMetadata, GroupState, TopicPartition
from .log_format import (
    GroupKey,
    GroupRecord,
    OffsetKey,
    UnknownFormat,
    read_group_value,
    read_key,
    read_offset_value,
)
from .member import MemberMetadata

log = logging.getLogger(__name__)


@dataclass
class LoadedPartition:
    """What a partition's records leave, built up as they are read (``apply``
    one batch at a time, so only one chunk's records are in memory at once)."""

    groups: dict[str, GroupRecord] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, CommitRecord]] = field(default_factory=dict)
    # producer id -> group -> partition -> offset, for transactions not ended yet
    pending: dict[int, dict[str, dict[TopicPartition, CommitRecord]]] = field(default_factory=dict)

    def apply(self, batch: BatchView) -> None:
        if batch.is_control:
            self._end_transaction(batch)
            return
        pending = self.pending.setdefault(batch.producer_id, {}) if batch.is_transactional else None
        for record in batch.records():
            if record.key is None:
                log.warning("skipping a record without a key at offset %d", record.offset)
                continue
            try:
                key = read_key(record.key)
                if isinstance(key, OffsetKey):
                    self._apply_offset(pending, key, batch.base_offset, record.value)
                elif isinstance(key, GroupKey):
                    self._apply_group(key.group, record.value)
            except (UnknownFormat, ValueError) as e:
                log.warning("skipping an unreadable record at offset %d: %s", record.offset, e)

    def _apply_offset(self, pending: dict | None, key: OffsetKey, batch_offset: int, value: bytes | None) -> None:
        offsets = self.offsets if pending is None else pending
        tp = (key.topic, key.partition)
        if value is None:
            group_offsets = offsets.get(key.group)
            if group_offsets is not None:
                group_offsets.pop(tp, None)
                if not group_offsets:
                    del offsets[key.group]
        else:
            offsets.setdefault(key.group, {})[tp] = CommitRecord(batch_offset, read_offset_value(value))

    def _apply_group(self, group_id: str, value: bytes | None) -> None:
        if value is None:
            self.groups.pop(group_id, None)
        else:
            self.groups[group_id] = read_group_value(value)

    def _end_transaction(self, batch: BatchView) -> None:
        """A marker ends the producer's transaction: on COMMIT its pending
        offsets become committed where the committed one is older."""
        pending = self.pending.pop(batch.producer_id, {})
        record = next(iter(batch.records()), None)
        if record is None:
            return
        try:
            control_type, _ = parse_end_txn_marker(record)
        except KafkaError as e:
            log.warning("skipping an unreadable control record at offset %d: %s", record.offset, e)
            return
        if control_type != ControlType.COMMIT:
            return
        for group_id, offsets in pending.items():
            committed = self.offsets.setdefault(group_id, {})
            for tp, commit in offsets.items():
                current = committed.get(tp)
                if current is None or current.older_than(commit):
                    committed[tp] = commit

    def pending_by_group(self) -> dict[str, dict[int, dict[TopicPartition, CommitRecord]]]:
        """The open transactions' offsets: group -> producer id -> offsets."""
        by_group: dict[str, dict[int, dict[TopicPartition, CommitRecord]]] = {}
        for producer_id, groups in self.pending.items():
            for group_id, offsets in groups.items():
                if offsets:
                    by_group.setdefault(group_id, {})[producer_id] = offsets
        return by_group


def group_from_record(group_id: str, record: GroupRecord, clock_ms: Callable[[], int]) -> GroupMetadata:
    """A group as its last metadata record left it: Stable with its members, or
    Empty without."""
    group = GroupMetadata(group_id, GroupState.STABLE if record.members else GroupState.EMPTY, clock_ms)
    group.generation_id = record.generation
    group.protocol_name = record.protocol
    group.state_timestamp = record.current_state_timestamp
    for m in record.members:
        member = MemberMetadata(
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            rebalance_timeout_ms=m.rebalance_timeout_ms,
            session_timeout_ms=m.session_timeout_ms,
            protocol_type=record.protocol_type,
            supported_protocols=[(record.protocol, m.subscription)],
            assignment=m.assignment,
        )
        group.add(member)
    group.protocol_type = record.protocol_type or None
    group.leader_id = record.leader
    group.subscribed_topics = group.compute_subscribed_topics()
    return group
