"""One classic group's state: members, generation, protocol, committed offsets
(Kafka's GroupMetadata). Pure state with its invariants; the coordinator drives
the transitions and the timers.

States, as Kafka names them:

- Empty: no members; offsets may linger until they expire. New members may join.
- PreparingRebalance: waiting for the members to (re)join.
- CompletingRebalance: joined; waiting for the leader's assignment (SyncGroup).
- Stable: assignment handed out; members heartbeat.
- Dead: removed (deleted, expired or unloaded); no transitions out.
"""
from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from ..protocol import schema
from ..protocol.errors import ErrorCode
from .log_format import OffsetAndMetadata
from .member import JoinResult, MemberMetadata, Reply, SyncResult

log = logging.getLogger(__name__)

CONSUMER_PROTOCOL_TYPE = "consumer"
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """A committed offset and the base offset of the ``__consumer_offsets``
    batch holding its record (Kafka's CommitRecordMetadataAndOffset): when
    regular and transactional commits mix, the later record wins, whatever
    order the transaction's marker comes in."""

    batch_offset: int
    value: OffsetAndMetadata

    def older_than(self, other: CommitRecord) -> bool:
        return self.batch_offset < other.batch_offset


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    def __str__(self) -> str:
        return self.value


_VALID_PREVIOUS = {
    GroupState.PREPARING_REBALANCE: {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY},
    GroupState.COMPLETING_REBALANCE: {GroupState.PREPARING_REBALANCE},
    GroupState.STABLE: {GroupState.COMPLETING_REBALANCE},
    GroupState.DEAD: set(GroupState),
    GroupState.EMPTY: {GroupState.PREPARING_REBALANCE},
}


def subscribed_topics(subscription: bytes) -> set[str]:
    """The topics of a consumer protocol subscription. Read as version 0, the
    prefix every later version shares; ValueError if it doesn't parse."""
    if len(subscription) < 2:
        raise ValueError("subscription shorter than its version")
    try:
        parsed = schema.codec("ConsumerProtocolSubscription", 0, "fields").parse(bytes(subscription[2:]))
    except Exception as e:  # construct raises many kinds on garbage
        raise ValueError(f"cannot parse consumer subscription: {e}") from None
    return set(parsed.topics)


def superseded(old: Reply | None, new: Reply | None, result) -> None:
    """A member's newer request replaces a parked one (a client retrying on a
    new connection): the old one is answered so its connection is not stuck."""
    if old is not None and new is not None and old is not new:
        old.set(result)


class GroupMetadata:
    def __init__(self, group_id: str, state: GroupState, clock_ms: Callable[[], int]):
        self.group_id = group_id
        self.state = state
        self._clock_ms = clock_ms
        self.state_timestamp: int | None = clock_ms()
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.generation_id = 0
        self.leader_id: str | None = None
        self.members: dict[str, MemberMetadata] = {}
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_members: set[str] = set()  # told MEMBER_ID_REQUIRED, not joined yet
        self.pending_sync_members: set[str] = set()
        self.offsets: dict[TopicPartition, CommitRecord] = {}
        # OffsetCommit offsets appended but not yet replicated as acks=all
        # asks: invisible (OffsetFetch answers the committed ones) until then.
        self.pending_offset_commits: dict[TopicPartition, OffsetAndMetadata] = {}
        # TxnOffsetCommit offsets per producer id, invisible until the
        # producer's transaction commits (its marker reaches the partition).
        self.pending_txn_offsets: dict[int, dict[TopicPartition, CommitRecord]] = {}
        # Whether this generation saw regular and transactional commits (Kafka warns when both).
        self.received_consumer_commits = False
        self.received_txn_commits = False
        # For 'consumer' groups: the topics the members subscribe to, or None
        # when unknown (then every topic counts as subscribed).
        self.subscribed_topics: set[str] | None = None
        # Set when a member joins during the first rebalance, which extends the
        # initial rebalance delay.
        self.new_member_added = False

    def __repr__(self) -> str:
        return (f"GroupMetadata(group_id={self.group_id!r}, generation={self.generation_id}, "
                f"protocol_type={self.protocol_type!r}, state={self.state}, members={list(self.members)})")

    # -- state ---------------------------------------------------------------
    def is_(self, state: GroupState) -> bool:
        return self.state is state

    def can_rebalance(self) -> bool:
        return self.state in _VALID_PREVIOUS[GroupState.PREPARING_REBALANCE]

    def transition_to(self, state: GroupState) -> None:
        if self.state not in _VALID_PREVIOUS[state]:
            raise RuntimeError(f"group {self.group_id} cannot move from {self.state} to {state}")
        self.state = state
        self.state_timestamp = self._clock_ms()

    @property
    def is_consumer_group(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    # -- members -------------------------------------------------------------
    def has(self, member_id: str) -> bool:
        return member_id in self.members

    def get(self, member_id: str) -> MemberMetadata:
        return self.members[member_id]

    @property
    def size(self) -> int:
        return len(self.members)

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id is not None and self.leader_id == member_id

    def add(self, member: MemberMetadata, reply: Reply[JoinResult] | None = None) -> None:
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise RuntimeError(f"static member {member.group_instance_id} is already in group {self.group_id}")
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        member.awaiting_join = reply
        self.pending_members.discard(member.member_id)

    def remove(self, member_id: str) -> None:
        """Drop a member; a request of it still parked is answered UNKNOWN_MEMBER_ID."""
        member = self.members.pop(member_id, None)
        if member is not None:
            self.maybe_invoke_join(member, JoinResult(member_id, ErrorCode.UNKNOWN_MEMBER_ID))
            self.maybe_invoke_sync(member, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_members.discard(member_id)
        self.pending_sync_members.discard(member_id)

    def replace_static_member(self, instance_id: str, old_member_id: str, new_member_id: str) -> MemberMetadata:
        """A static member rejoined under a new member id: the old id's parked
        requests are fenced and the member keeps everything else."""
        member = self.members.pop(old_member_id)
        self.maybe_invoke_join(member, JoinResult(old_member_id, ErrorCode.FENCED_INSTANCE_ID))
        self.maybe_invoke_sync(member, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        member.member_id = new_member_id
        self.members[new_member_id] = member
        if self.is_leader(old_member_id):
            self.leader_id = new_member_id
        self.static_members[instance_id] = new_member_id
        return member

    def update_member(self, member: MemberMetadata, protocols: list[tuple[str, bytes]], rebalance_timeout_ms: int,
                      session_timeout_ms: int, reply: Reply[JoinResult] | None) -> None:
        member.supported_protocols = protocols
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        superseded(member.awaiting_join, reply, JoinResult(member.member_id, ErrorCode.REBALANCE_IN_PROGRESS))
        member.awaiting_join = reply

    def maybe_invoke_join(self, member: MemberMetadata, result: JoinResult) -> None:
        if member.awaiting_join is not None:
            member.awaiting_join.set(result)
            member.awaiting_join = None

    def maybe_invoke_sync(self, member: MemberMetadata, result: SyncResult) -> bool:
        """Answer the member's parked SyncGroup; whether there was one."""
        if member.awaiting_sync is None:
            return False
        member.awaiting_sync.set(result)
        member.awaiting_sync = None
        return True

    def static_member_id(self, instance_id: str | None) -> str | None:
        return None if instance_id is None else self.static_members.get(instance_id)

    def add_pending_member(self, member_id: str) -> None:
        if self.has(member_id):
            raise RuntimeError(f"pending member {member_id} is already a member of {self.group_id}")
        self.pending_members.add(member_id)

    @property
    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.is_awaiting_join)

    def has_all_members_joined(self) -> bool:
        return self.num_awaiting_join == len(self.members) and not self.pending_members

    def not_yet_rejoined(self) -> list[MemberMetadata]:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep the leader if it rejoined, else pick a member that did. False when
        the group has no leader or nobody rejoined."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].is_awaiting_join:
            return True
        for member_id, member in self.members.items():
            if member.is_awaiting_join:
                log.info("group %s: leader %s did not rejoin in time, %s is the new leader",
                         self.group_id, self.leader_id, member_id)
                self.leader_id = member_id
                return True
        return False

    @property
    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def generate_member_id(self, client_id: str, instance_id: str | None) -> str:
        return f"{client_id if instance_id is None else instance_id}-{uuid.uuid4()}"

    # -- protocols -----------------------------------------------------------
    def _candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        members = list(self.members.values())
        if not members:
            return set()
        return set.intersection(*(m.protocol_names for m in members))

    def supports_protocols(self, protocol_type: str, protocols: set[str]) -> bool:
        if self.is_(GroupState.EMPTY):
            return bool(protocol_type) and bool(protocols)
        return self.protocol_type == protocol_type and bool(protocols & self._candidate_protocols())

    def select_protocol(self) -> str:
        """The protocol all members support that most members prefer."""
        if not self.members:
            raise RuntimeError(f"cannot select a protocol for empty group {self.group_id}")
        candidates = self._candidate_protocols()
        votes = Counter(m.vote(candidates) for m in self.members.values())
        return votes.most_common(1)[0][0]

    def current_member_metadata(self) -> list[tuple[str, str | None, bytes]]:
        """What the leader's JoinGroup response lists: every member's metadata
        for the selected protocol."""
        if self.state in (GroupState.DEAD, GroupState.PREPARING_REBALANCE):
            raise RuntimeError(f"no member metadata for group {self.group_id} in state {self.state}")
        return [(m.member_id, m.group_instance_id, m.metadata(self.protocol_name)) for m in self.members.values()]

    def init_next_generation(self) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY)
        self.received_consumer_commits = self.received_txn_commits = False
        self.pending_sync_members.clear()

    def compute_subscribed_topics(self) -> set[str] | None:
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return set()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        try:
            for member in self.members.values():
                topics |= subscribed_topics(member.metadata(self.protocol_name))
        except ValueError as e:
            log.warning("group %s: %s; its subscribed topics are unknown", self.group_id, e)
            return None
        return topics

    def is_subscribed_to(self, topic: str) -> bool:
        return self.subscribed_topics is None or topic in self.subscribed_topics

    # -- offsets -------------------------------------------------------------
    def offset(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        record = self.offsets.get(tp)
        return None if record is None else record.value

    @property
    def has_offsets(self) -> bool:
        """Committed or pending offsets: an Empty group without either may die."""
        return bool(self.offsets) or bool(self.pending_offset_commits) or bool(self.pending_txn_offsets)

    def prepare_offset_commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Regular commits are appended: pending until replicated (Kafka's
        prepareOffsetCommit); a later commit of a partition replaces an
        earlier one still pending."""
        self.received_consumer_commits = True
        self.pending_offset_commits.update(offsets)

    def on_offset_commit_append(self, offsets: dict[TopicPartition, OffsetAndMetadata], batch_offset: int) -> None:
        """The commit written at ``batch_offset`` is replicated (Kafka's
        onOffsetCommitAppend): each partition still pending (not removed
        meanwhile) takes it unless a later record is committed already; the
        partition stops pending unless a later commit of it is in flight.
        That commit is this one when it is the very object staged (Kafka
        compares values: two in-flight commits of equal value would be one)."""
        for tp, value in offsets.items():
            staged = self.pending_offset_commits.get(tp)
            if staged is None:
                continue
            record = CommitRecord(batch_offset, value)
            current = self.offsets.get(tp)
            if current is None or current.older_than(record):
                self.offsets[tp] = record
            if staged is value:
                del self.pending_offset_commits[tp]

    def fail_pending_offset_write(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """The commit's records were not replicated in time or at all (Kafka's
        failPendingOffsetWrite): its partitions stop pending unless a later
        commit of them is in flight; the committed offsets stay."""
        for tp, value in offsets.items():
            if self.pending_offset_commits.get(tp) is value:
                del self.pending_offset_commits[tp]

    def on_txn_offset_commit_append(self, producer_id: int, offsets: dict[TopicPartition, OffsetAndMetadata],
                                    batch_offset: int) -> None:
        """A producer's transactional commits written at ``batch_offset``: pending
        until its transaction ends (Kafka's prepareTxnOffsetCommit and
        onTxnOffsetCommitAppend in one step, as our appends are synchronous)."""
        self.received_txn_commits = True
        pending = self.pending_txn_offsets.setdefault(producer_id, {})
        for tp, value in offsets.items():
            pending[tp] = CommitRecord(batch_offset, value)

    def fail_pending_txn_offset_commit(self, producer_id: int, partitions: Iterable[TopicPartition]) -> None:
        """The commit's records did not make it (not replicated as acks=all
        asks): the client retries, maybe elsewhere."""
        pending = self.pending_txn_offsets.get(producer_id)
        if pending is None:
            return
        for tp in partitions:
            pending.pop(tp, None)
        if not pending:
            del self.pending_txn_offsets[producer_id]

    def complete_pending_txn_offset_commit(self, producer_id: int, committed: bool) -> None:
        """The producer's transaction ended: on commit its offsets replace the
        committed ones they are newer than; on abort they vanish."""
        pending = self.pending_txn_offsets.pop(producer_id, None)
        if pending is None or not committed:
            return
        for tp, record in pending.items():
            current = self.offsets.get(tp)
            if current is None or current.older_than(record):
                self.offsets[tp] = record

    def partitions_with_offsets(self) -> set[TopicPartition]:
        """Partitions with a committed or a pending offset."""
        return set(self.offsets).union(self.pending_offset_commits, *self.pending_txn_offsets.values())

    def has_pending_offset_commits_from_producer(self, producer_id: int) -> bool:
        return producer_id in self.pending_txn_offsets

    def has_pending_offset_commits_for(self, tp: TopicPartition) -> bool:
        """Kafka's hasPendingOffsetCommitsForTopicPartition: a regular or a
        transactional commit of the partition is pending."""
        return tp in self.pending_offset_commits or any(tp in pending for pending in self.pending_txn_offsets.values())

    @property
    def has_consistent_offset_commits(self) -> bool:
        return not (self.received_consumer_commits and self.received_txn_commits)

    def remove_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Drop the partitions' committed offsets (returned) and any pending
        ones (a pending commit replicated later is then not cached)."""
        removed = {}
        for tp in partitions:
            self.pending_offset_commits.pop(tp, None)
            for pending in self.pending_txn_offsets.values():
                pending.pop(tp, None)
            record = self.offsets.pop(tp, None)
            if record is not None:
                removed[tp] = record.value
        return removed

    def remove_all_offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Every committed offset; pending offsets of other partitions stay,
        as in Kafka (removeOffsets(offsets.keySet))."""
        return self.remove_offsets(list(self.offsets))

    def remove_expired_offsets(self, now_ms: int, retention_ms: int) -> dict[TopicPartition, OffsetAndMetadata]:
        """Offsets past their retention, as Kafka decides it: for an Empty group
        from the time it became empty; for a Stable consumer group only offsets of
        topics nobody subscribes to, from their commit; for a group without a
        protocol (commits only) from the commit. An explicit expire timestamp
        (OffsetCommit v2-v4) wins. A partition with a pending regular commit
        keeps its committed offset; pending transactional offsets neither
        expire nor keep a committed offset from expiring (Kafka's
        removeExpiredOffsets)."""
        keep: set[str] = set()
        if self.protocol_type is not None and self.is_(GroupState.EMPTY):
            def base(o: OffsetAndMetadata) -> int:
                return self.state_timestamp if self.state_timestamp is not None else o.commit_timestamp
        elif self.is_consumer_group and self.subscribed_topics is not None and self.is_(GroupState.STABLE):
            keep = self.subscribed_topics

            def base(o: OffsetAndMetadata) -> int:
                return o.commit_timestamp
        elif self.protocol_type is None:
            def base(o: OffsetAndMetadata) -> int:
                return o.commit_timestamp
        else:
            return {}

        def expired(tp: TopicPartition, o: OffsetAndMetadata) -> bool:
            if tp[0] in keep or tp in self.pending_offset_commits:
                return False
            if o.expire_timestamp is not None:
                return now_ms >= o.expire_timestamp
            return now_ms - base(o) >= retention_ms

        expired_tps = [tp for tp, record in self.offsets.items() if expired(tp, record.value)]
        return {tp: self.offsets.pop(tp).value for tp in expired_tps}
