"""A member of a classic group, and the replies its parked requests wait for."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import trio

from ..protocol.errors import ErrorCode

T = TypeVar("T")


class Reply(Generic[T]):
    """A response that a parked JoinGroup or SyncGroup request waits for; the
    first value set wins."""

    def __init__(self):
        self._event = trio.Event()
        self.value: T | None = None

    def set(self, value: T) -> None:
        if not self._event.is_set():
            self.value = value
            self._event.set()

    async def wait(self) -> T:
        await self._event.wait()
        return self.value


@dataclass
class JoinResult:
    member_id: str
    error: ErrorCode
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    skip_assignment: bool = False
    # (member id, group instance id, metadata) of every member; the leader's only.
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)


@dataclass
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass
class MemberMetadata:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    supported_protocols: list[tuple[str, bytes]]  # (name, metadata) by preference
    assignment: bytes = b""
    awaiting_join: Reply[JoinResult] | None = None
    awaiting_sync: Reply[SyncResult] | None = None
    is_new: bool = False
    heartbeat_satisfied: bool = False

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.awaiting_join is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.awaiting_sync is not None

    @property
    def protocol_names(self) -> set[str]:
        return {name for name, _ in self.supported_protocols}

    @property
    def has_satisfied_heartbeat(self) -> bool:
        """Whether the member has shown it is alive since its session timer was
        set: new members must complete their join in time; members waiting in a
        join or sync count as alive; everyone else needs a heartbeat."""
        if self.is_new:
            return self.heartbeat_satisfied
        if self.is_awaiting_join or self.is_awaiting_sync:
            return True
        return self.heartbeat_satisfied

    def metadata(self, protocol: str) -> bytes:
        for name, metadata in self.supported_protocols:
            if name == protocol:
                return metadata
        raise ValueError(f"member {self.member_id} does not support protocol {protocol}")

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return protocols == self.supported_protocols

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among ``candidates``."""
        for name, _ in self.supported_protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")
