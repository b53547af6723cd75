"""The records of ``__consumer_offsets``: keys and values as Kafka writes them.

Every key and value starts with its schema version (int16). Keys of version
0 and 1 are committed offsets (group, topic, partition); version 2 is a group's
membership. A null value is a tombstone. The schemas are the compact specs in
``protocol_specs/coordinator``.

What Kafka 3.x writes, and so what we write: offset keys v1, offset values v3
(v1 when the commit carries an explicit expire timestamp, OffsetCommit v2-v4
with a retention time), group keys v2, group values v3.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..protocol.coordinator_records import UnknownFormat, decode, encode, version_of

NO_LEADER_EPOCH = -1

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
OFFSET_VALUE_VERSION_WITH_EXPIRY = 1
GROUP_VALUE_VERSION = 3


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group: str


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed offset. ``leader_epoch`` is -1 when the commit had none;
    ``expire_timestamp`` is set only by OffsetCommit v2-v4 with a retention time."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int | None = None


@dataclass(slots=True)
class MemberRecord:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(slots=True)
class GroupRecord:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int | None
    members: list[MemberRecord] = field(default_factory=list)


# -- writing ---------------------------------------------------------------------


def offset_key(group: str, topic: str, partition: int) -> bytes:
    return encode("OffsetCommitKey", OFFSET_KEY_VERSION, {"group": group, "topic": topic, "partition": partition})


def group_key(group: str) -> bytes:
    return encode("GroupMetadataKey", GROUP_KEY_VERSION, {"group": group})


def offset_value(value: OffsetAndMetadata) -> bytes:
    version = OFFSET_VALUE_VERSION if value.expire_timestamp is None else OFFSET_VALUE_VERSION_WITH_EXPIRY
    return encode("OffsetCommitValue", version, {
        "offset": value.offset,
        "leader_epoch": value.leader_epoch,
        "metadata": value.metadata,
        "commit_timestamp": value.commit_timestamp,
        "expire_timestamp": -1 if value.expire_timestamp is None else value.expire_timestamp,
    })


def group_value(value: GroupRecord) -> bytes:
    return encode("GroupMetadataValue", GROUP_VALUE_VERSION, {
        "protocol_type": value.protocol_type,
        "generation": value.generation,
        "protocol": value.protocol,
        "leader": value.leader,
        "current_state_timestamp": -1 if value.current_state_timestamp is None else value.current_state_timestamp,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "rebalance_timeout": m.rebalance_timeout_ms,
                "session_timeout": m.session_timeout_ms,
                "subscription": m.subscription,
                "assignment": m.assignment,
            }
            for m in value.members
        ],
    })


# -- reading ---------------------------------------------------------------------


def read_key(data: bytes) -> OffsetKey | GroupKey:
    """The key of a record; UnknownFormat for versions other than 0-2."""
    version = version_of("key", data)
    if version in (0, 1):
        _, key = decode("OffsetCommitKey", data)
        return OffsetKey(key.group, key.topic, key.partition)
    if version == GROUP_KEY_VERSION:
        _, key = decode("GroupMetadataKey", data)
        return GroupKey(key.group)
    raise UnknownFormat(f"unknown key version {version}")


def read_offset_value(data: bytes) -> OffsetAndMetadata:
    version, v = decode("OffsetCommitValue", data)
    expire = v.expire_timestamp if version == 1 and v.expire_timestamp != -1 else None
    return OffsetAndMetadata(v.offset, v.leader_epoch, v.metadata, v.commit_timestamp, expire)


def read_group_value(data: bytes) -> GroupRecord:
    version, v = decode("GroupMetadataValue", data)
    members = [
        MemberRecord(
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            # Version 0 had no rebalance timeout: the session timeout served as both.
            rebalance_timeout_ms=m.session_timeout if version == 0 else m.rebalance_timeout,
            session_timeout_ms=m.session_timeout,
            subscription=bytes(m.subscription),
            assignment=bytes(m.assignment),
        )
        for m in v.members
    ]
    timestamp = v.current_state_timestamp
    return GroupRecord(v.protocol_type, v.generation, v.protocol, v.leader,
                       None if timestamp == -1 else timestamp, members)
