"""Rebuilding groups from the records of a ``__consumer_offsets`` partition:
the last record of a key wins and a tombstone deletes it."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..protocol.records import Record
from .group import GroupMetadata, GroupState, TopicPartition
from .log_format import (
    GroupKey,
    GroupRecord,
    OffsetAndMetadata,
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
    one chunk at a time, so only one chunk's records are in memory at once)."""

    groups: dict[str, GroupRecord] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = field(default_factory=dict)

    def apply(self, records: Iterable[Record]) -> None:
        for record in records:
            if record.key is None:
                log.warning("skipping a record without a key at offset %d", record.offset)
                continue
            try:
                self._apply(record)
            except (UnknownFormat, ValueError) as e:
                log.warning("skipping an unreadable record at offset %d: %s", record.offset, e)

    def _apply(self, record: Record) -> None:
        key = read_key(record.key)
        if isinstance(key, OffsetKey):
            tp = (key.topic, key.partition)
            if record.value is None:
                offsets = self.offsets.get(key.group)
                if offsets is not None:
                    offsets.pop(tp, None)
                    if not offsets:
                        del self.offsets[key.group]
            else:
                self.offsets.setdefault(key.group, {})[tp] = read_offset_value(record.value)
        elif isinstance(key, GroupKey):
            if record.value is None:
                self.groups.pop(key.group, None)
            else:
                self.groups[key.group] = read_group_value(record.value)


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
