"""The classic group coordinator (Kafka's GroupCoordinator): group membership,
rebalances, SyncGroup assignment hand-out, heartbeats, and offset commits and
fetches, with Kafka's error codes in Kafka's order of checks.

All state changes happen on the trio thread without awaiting, so no locks
are needed; a JoinGroup or SyncGroup that must wait for other members parks
on a ``Reply``. Delayed operations (Kafka's purgatories) are ``Timers``:

- ("heartbeat", group, member): session expiry, the new-member join timeout
  and the expiry of a member id handed out with MEMBER_ID_REQUIRED;
- ("join", group): the join phase (rebalance timeout), or the initial
  rebalance delay of an Empty group;
- ("sync", group): members of a new generation that never send SyncGroup.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import trio

from ..protocol.errors import ErrorCode
from .group import GroupMetadata, GroupState, TopicPartition, superseded
from .log_format import OffsetAndMetadata
from .manager import FetchedOffset, GroupManager, wall_clock_ms
from .offsets_log import commit_error
from .member import JoinResult, MemberMetadata, Reply, SyncResult
from .timers import Timers

log = logging.getLogger(__name__)

# How long a new member's first JoinGroup may wait for the rebalance to finish.
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
CLASSIC_GROUP_TYPE = "classic"
# APIs that accept an empty group id (Kafka allows it for old offset storage users).
_EMPTY_ID_ALLOWED = {"OffsetCommit", "OffsetFetch", "DescribeGroups", "DeleteGroups"}

EMPTY = GroupState.EMPTY
PREPARING = GroupState.PREPARING_REBALANCE
COMPLETING = GroupState.COMPLETING_REBALANCE
STABLE = GroupState.STABLE
DEAD = GroupState.DEAD


@dataclass(frozen=True)
class MemberSummary:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupSummary:
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberSummary] = field(default_factory=list)


@dataclass(frozen=True)
class GroupOverview:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = CLASSIC_GROUP_TYPE


NO_GROUP = GroupSummary("", "", "")
DEAD_GROUP = GroupSummary(str(DEAD), "", "")


@dataclass
class _DelayedJoin:
    """A group's join phase. The initial one (from Empty) waits out the initial
    rebalance delay, extended while new members keep coming within the
    rebalance timeout; the others end as soon as every member has rejoined."""

    initial: bool
    delay_ms: int
    remaining_ms: int = 0


@dataclass
class _Join:
    """What a JoinGroup request brings, besides the group and member id."""

    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    reply: Reply[JoinResult]
    reason: str


class GroupCoordinator:
    def __init__(self, broker, clock_ms=wall_clock_ms):
        config = broker.config
        self.min_session_timeout_ms = config.group_min_session_timeout_ms
        self.max_session_timeout_ms = config.group_max_session_timeout_ms
        self.max_size = config.group_max_size
        self.initial_rebalance_delay_ms = config.group_initial_rebalance_delay_ms
        self.retention_check_interval_ms = config.offsets_retention_check_interval_ms
        self.commit_timeout_s = config.offsets_commit_timeout_ms / 1000
        self.manager = GroupManager(broker, clock_ms)
        self.timers = Timers()
        self.active = True
        self._nursery: trio.Nursery | None = None
        self._joins: dict[GroupMetadata, _DelayedJoin] = {}
        self._syncs: dict[GroupMetadata, int] = {}  # group -> generation waiting for SyncGroups
        self._to_load: list[int] = [p for p in range(self.manager.partitions)
                                    if self.manager.storage.has_partition(p) and self.manager.begin_loading(p)]

    # -- life cycle ----------------------------------------------------------------
    async def run(self) -> None:
        """Load the partitions of ``__consumer_offsets`` and drive the timers and
        the offset expiration, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.timers.run)
            nursery.start_soon(self._expire_offsets_periodically)
            nursery.start_soon(self._load_partitions, self._to_load)

    def shutdown(self) -> None:
        """Stop coordinating: parked joins and syncs are answered NOT_COORDINATOR
        (clients look for the coordinator again) and later requests get
        COORDINATOR_NOT_AVAILABLE."""
        self.active = False
        self.timers.cancel_all()
        self._joins.clear()
        self._syncs.clear()
        self.manager.unload_all(self._on_group_unloaded)

    def on_election(self, partition: int) -> None:
        """This broker now leads ``__consumer_offsets-<partition>``: load its groups."""
        self._ensure_partition(partition)

    def on_resignation(self, partition: int) -> None:
        """Another broker leads ``__consumer_offsets-<partition>`` now: its groups
        are unloaded (members waiting on a join or sync are answered
        NOT_COORDINATOR and look for the new coordinator)."""
        for group in self.manager.unload_partition(partition, self._on_group_unloaded):
            self._joins.pop(group, None)
            self._syncs.pop(group, None)
            for key in [k for k in self.timers if k[1] is group]:
                self.timers.cancel(key)

    def start_loading(self) -> None:
        """Load every partition of ``__consumer_offsets`` not loaded yet (after the
        topic has been created)."""
        for partition in range(self.manager.partitions):
            self._ensure_partition(partition)

    def _ensure_partition(self, partition: int) -> None:
        """Start loading a partition that exists but isn't loaded (the topic was
        created after start-up): this broker leads it, so it coordinates it."""
        manager = self.manager
        if not manager.storage.has_partition(partition) or not manager.begin_loading(partition):
            return
        if self._nursery is None:
            self._to_load.append(partition)  # run() will load it
        else:
            self._nursery.start_soon(self._load_partitions, [partition])

    async def _load_partitions(self, partitions: list[int]) -> None:
        for partition in partitions:
            try:
                await self.manager.load_partition(partition, self._on_group_loaded)
            except Exception:
                log.exception("cannot load __consumer_offsets-%d; its groups stay unavailable", partition)

    async def _expire_offsets_periodically(self) -> None:
        while True:
            await trio.sleep(self.retention_check_interval_ms / 1000)
            self.manager.expire_offsets()

    def _on_group_loaded(self, group: GroupMetadata) -> None:
        if group.size > self.max_size:
            self._prepare_rebalance(group, f"freshly-loaded group is over capacity ({self.max_size})")
        for member in list(group.members.values()):
            self._complete_and_schedule_heartbeat(group, member)

    def _on_group_unloaded(self, group: GroupMetadata) -> None:
        previous = group.state
        group.transition_to(DEAD)
        for member in group.members.values():
            if previous is PREPARING:
                group.maybe_invoke_join(member, JoinResult(member.member_id, ErrorCode.NOT_COORDINATOR))
            elif previous in (STABLE, COMPLETING):
                group.maybe_invoke_sync(member, SyncResult(ErrorCode.NOT_COORDINATOR))

    # -- checks shared by every request ---------------------------------------------
    def _group_status_error(self, group_id: str | None, api: str) -> ErrorCode | None:
        """INVALID_GROUP_ID, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS
        or NOT_COORDINATOR, in Kafka's order; None when the group is ours."""
        if group_id is None or (group_id == "" and api not in _EMPTY_ID_ALLOWED):
            return ErrorCode.INVALID_GROUP_ID
        if not self.active:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        partition = self.manager.partition_for(group_id)
        self._ensure_partition(partition)
        if partition in self.manager.loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        if partition not in self.manager.owned:
            return ErrorCode.NOT_COORDINATOR
        return None

    @staticmethod
    def _current_member_error(group: GroupMetadata, member_id: str, instance_id: str | None) -> ErrorCode | None:
        """A static member must be the one its instance id maps to
        (FENCED_INSTANCE_ID otherwise); any member must be known."""
        if instance_id is not None:
            current = group.static_member_id(instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if current != member_id:
                log.info("member %s of static instance %s is fenced by %s", member_id, instance_id, current)
                return ErrorCode.FENCED_INSTANCE_ID
        if not group.has(member_id):
            return ErrorCode.UNKNOWN_MEMBER_ID
        return None

    # -- JoinGroup --------------------------------------------------------------------
    async def join_group(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        require_known_member_id: bool,
        support_skip_assignment: bool,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        reason: str | None = None,
    ) -> JoinResult:
        error = self._group_status_error(group_id, "JoinGroup")
        if error is not None:
            return JoinResult(member_id, error)
        if not self.min_session_timeout_ms <= session_timeout_ms <= self.max_session_timeout_ms:
            return JoinResult(member_id, ErrorCode.INVALID_SESSION_TIMEOUT)
        is_unknown = member_id == ""
        group = self.manager.get(group_id)
        if group is None:
            if not is_unknown:
                return JoinResult(member_id, ErrorCode.UNKNOWN_MEMBER_ID)
            group = self.manager.new_group(group_id)
        reply: Reply[JoinResult] = Reply()
        join = _Join(group_instance_id, client_id, client_host, rebalance_timeout_ms, session_timeout_ms,
                     protocol_type, protocols, reply, reason or "not provided")
        if not self._accepts_joining_member(group, member_id):
            group.remove(member_id)
            reply.set(JoinResult("", ErrorCode.GROUP_MAX_SIZE_REACHED))
        elif is_unknown:
            self._new_member_join(group, join, require_known_member_id, support_skip_assignment)
        else:
            self._current_member_join(group, member_id, join)
        if group.is_(PREPARING):
            self._try_complete_join(group)
        return await reply.wait()

    def _accepts_joining_member(self, group: GroupMetadata, member_id: str) -> bool:
        """group.max.size: while preparing a rebalance, members that already
        rejoined stay and new ones count against the members that rejoined so
        far (so a lowered limit sheds the last to rejoin); otherwise against the
        current members."""
        if group.state in (EMPTY, DEAD):
            return True
        if group.is_(PREPARING):
            return ((group.has(member_id) and group.get(member_id).is_awaiting_join)
                    or group.num_awaiting_join < self.max_size)
        return group.has(member_id) or group.size < self.max_size

    def _new_member_join(self, group: GroupMetadata, join: _Join, require_known_member_id: bool,
                         support_skip_assignment: bool) -> None:
        if group.is_(DEAD):
            join.reply.set(JoinResult("", ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(join.protocol_type, {name for name, _ in join.protocols}):
            join.reply.set(JoinResult("", ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            return
        new_member_id = group.generate_member_id(join.client_id, join.group_instance_id)
        if join.group_instance_id is not None:
            old_member_id = group.static_member_id(join.group_instance_id)
            if old_member_id is not None:
                log.info("static member %s of group %s rejoins in state %s: %s replaces %s", join.group_instance_id,
                         group.group_id, group.state, new_member_id, old_member_id)
                self._update_static_member_and_rebalance(group, old_member_id, new_member_id, join,
                                                         support_skip_assignment)
            else:
                self._add_member_and_rebalance(group, new_member_id, join)
        elif require_known_member_id:
            # KIP-394: hand out the member id first; the member joins with it.
            group.add_pending_member(new_member_id)
            self._schedule_pending_member_expiration(group, new_member_id, join.session_timeout_ms)
            join.reply.set(JoinResult(new_member_id, ErrorCode.MEMBER_ID_REQUIRED))
        else:
            self._add_member_and_rebalance(group, new_member_id, join)

    def _current_member_join(self, group: GroupMetadata, member_id: str, join: _Join) -> None:
        reply = join.reply
        if group.is_(DEAD):
            reply.set(JoinResult(member_id, ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(join.protocol_type, {name for name, _ in join.protocols}):
            reply.set(JoinResult(member_id, ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            return
        if member_id in group.pending_members:
            if join.group_instance_id is not None:  # pending members are always dynamic
                reply.set(JoinResult(member_id, ErrorCode.UNKNOWN_SERVER_ERROR))
                return
            self._add_member_and_rebalance(group, member_id, join)
            return
        error = self._current_member_error(group, member_id, join.group_instance_id)
        if error is not None:
            reply.set(JoinResult(member_id, error))
            return
        member = group.get(member_id)
        state = group.state
        if state is PREPARING:
            self._update_member_and_rebalance(group, member, join, f"member {member_id} joining during {state}")
        elif state is COMPLETING:
            if member.matches(join.protocols):
                # The member lost the JoinGroup response: send it again.
                reply.set(self._join_result(group, member_id))
            else:
                self._update_member_and_rebalance(group, member, join, f"member {member_id} updated its metadata")
        elif state is STABLE:
            if group.is_leader(member_id):
                # The leader rejoining forces a rebalance (e.g. topic metadata changed).
                self._update_member_and_rebalance(group, member, join, f"leader {member_id} rejoining")
            elif not member.matches(join.protocols):
                self._update_member_and_rebalance(group, member, join, f"member {member_id} updated its metadata")
            else:
                reply.set(self._join_result(group, member_id, with_members=False))
        else:
            log.warning("member %s rejoining group %s in unexpected state %s", member_id, group.group_id, state)
            reply.set(JoinResult(member_id, ErrorCode.UNKNOWN_MEMBER_ID))

    @staticmethod
    def _join_result(group: GroupMetadata, member_id: str, with_members: bool = True,
                     leader_id: str | None = None, skip_assignment: bool = False) -> JoinResult:
        """A successful JoinGroup response for the current generation; only the
        leader gets the members (unless ``with_members`` is False)."""
        members = group.current_member_metadata() if with_members and group.is_leader(member_id) else []
        return JoinResult(member_id, ErrorCode.NONE, group.generation_id, group.protocol_type, group.protocol_name,
                          (group.leader_id if leader_id is None else leader_id) or "", skip_assignment, members)

    def _add_member_and_rebalance(self, group: GroupMetadata, member_id: str, join: _Join) -> None:
        member = MemberMetadata(member_id, join.group_instance_id, join.client_id, join.client_host,
                                join.rebalance_timeout_ms, join.session_timeout_ms, join.protocol_type,
                                join.protocols, is_new=True)
        if group.is_(PREPARING) and group.generation_id == 0:
            group.new_member_added = True
        group.add(member, join.reply)
        # A new member can't heartbeat (it has no member id yet) and its JoinGroup
        # is parked, so bound how long it may wait instead.
        self._schedule_expiration(group, member, NEW_MEMBER_JOIN_TIMEOUT_MS)
        self._maybe_prepare_rebalance(group, f"adding new member {member_id} with group instance id "
                                             f"{join.group_instance_id}; client reason: {join.reason}")

    def _update_member_and_rebalance(self, group: GroupMetadata, member: MemberMetadata, join: _Join,
                                     reason: str) -> None:
        group.update_member(member, join.protocols, join.rebalance_timeout_ms, join.session_timeout_ms, join.reply)
        self._maybe_prepare_rebalance(group, f"{reason}; client reason: {join.reason}")

    def _update_static_member_and_rebalance(self, group: GroupMetadata, old_member_id: str, new_member_id: str,
                                            join: _Join, support_skip_assignment: bool) -> None:
        """KIP-345: a static member restarted. In a Stable group whose protocol
        stays, it gets its assignment back without a rebalance."""
        instance_id = join.group_instance_id
        current_leader = group.leader_id
        member = group.replace_static_member(instance_id, old_member_id, new_member_id)
        self.timers.cancel(("heartbeat", group, old_member_id))
        self._complete_and_schedule_heartbeat(group, member)
        old = (member.supported_protocols, member.rebalance_timeout_ms, member.session_timeout_ms)
        group.update_member(member, join.protocols, join.rebalance_timeout_ms, join.session_timeout_ms, join.reply)
        state = group.state
        if state is STABLE:
            if group.protocol_name != group.select_protocol():
                self._maybe_prepare_rebalance(group, f"static member {new_member_id} with instance id {instance_id} "
                                                     f"changed the group protocol; client reason: {join.reason}")
                return
            error = self.manager.store_group(group, {m.member_id: m.assignment for m in group.members.values()})
            if error != ErrorCode.NONE:
                log.warning("cannot persist group %s: %s", group.group_id, error.name)
                member.awaiting_join = None
                group.update_member(member, *old, None)
                previous = group.replace_static_member(instance_id, new_member_id, old_member_id)
                self._complete_and_schedule_heartbeat(group, previous)
                join.reply.set(JoinResult("", error, group.generation_id, group.protocol_type, group.protocol_name,
                                          current_leader or ""))
            elif support_skip_assignment:
                # JoinGroup v9+: the leader learns it leads, but skips the assignor
                # (whose result a Stable group would not hand out).
                is_leader = group.is_leader(new_member_id)
                group.maybe_invoke_join(member, self._join_result(group, new_member_id, skip_assignment=is_leader))
            else:
                # Older clients: the previous leader id keeps a restarted leader
                # from running a pointless assignment.
                group.maybe_invoke_join(member, self._join_result(group, new_member_id, with_members=False,
                                                                  leader_id=current_leader))
        elif state is COMPLETING:
            # The leader may be assigning with the old member id: start over.
            self._prepare_rebalance(group, f"updating metadata for static member {new_member_id} with instance id "
                                           f"{instance_id}; client reason: {join.reason}")
        elif state is not PREPARING:
            raise RuntimeError(f"group {group.group_id} in state {state} while static member {instance_id} rejoins")

    # -- rebalancing --------------------------------------------------------------------
    def _maybe_prepare_rebalance(self, group: GroupMetadata, reason: str) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, reason)

    def _prepare_rebalance(self, group: GroupMetadata, reason: str) -> None:
        if group.is_(COMPLETING):
            # Members waiting for an assignment must rejoin.
            self._reset_and_propagate_assignment_error(group, ErrorCode.REBALANCE_IN_PROGRESS)
        self._remove_sync_expiration(group)
        if group.is_(EMPTY):
            delay = self.initial_rebalance_delay_ms
            join = _DelayedJoin(True, delay, max(group.rebalance_timeout_ms - delay, 0))
        else:
            join = _DelayedJoin(False, group.rebalance_timeout_ms)
        group.transition_to(PREPARING)
        log.info("preparing to rebalance group %s in state %s with old generation %d (__consumer_offsets-%d) "
                 "(reason: %s)", group.group_id, group.state, group.generation_id,
                 self.manager.partition_for(group.group_id), reason)
        self._watch_join(group, join)

    def _watch_join(self, group: GroupMetadata, join: _DelayedJoin) -> None:
        self._joins[group] = join
        self.timers.schedule(("join", group), join.delay_ms, partial(self._on_join_expired, group, join))
        self._try_complete_join(group)

    def _try_complete_join(self, group: GroupMetadata) -> None:
        """The join phase ends as soon as every member has rejoined (not the
        initial one, which always waits out its delay)."""
        join = self._joins.get(group)
        if join is not None and not join.initial and group.has_all_members_joined():
            del self._joins[group]
            self.timers.cancel(("join", group))
            self._on_complete_join(group)

    def _on_join_expired(self, group: GroupMetadata, join: _DelayedJoin) -> None:
        if self._joins.get(group) is not join:
            return
        del self._joins[group]
        if join.initial and group.new_member_added and join.remaining_ms != 0:
            # Members are still arriving: wait a little more, within the rebalance timeout.
            group.new_member_added = False
            delay = min(self.initial_rebalance_delay_ms, join.remaining_ms)
            self._watch_join(group, _DelayedJoin(True, delay, max(join.remaining_ms - join.delay_ms, 0)))
        else:
            self._on_complete_join(group)

    def _on_complete_join(self, group: GroupMetadata) -> None:
        # Dynamic members that did not rejoin in time are out; static ones stay
        # (they may be restarting).
        for member in [m for m in group.not_yet_rejoined() if not m.is_static]:
            log.info("group %s removed dynamic member %s which did not rejoin", group.group_id, member.member_id)
            group.remove(member.member_id)
            self.timers.cancel(("heartbeat", group, member.member_id))
        if group.is_(DEAD):
            log.info("group %s is dead, skipping rebalance stage", group.group_id)
            return
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Nobody rejoined: try again until session timeouts clear out the members.
            log.error("group %s could not complete rebalance because no members rejoined", group.group_id)
            self._watch_join(group, _DelayedJoin(False, group.rebalance_timeout_ms))
            return
        group.init_next_generation()
        if group.is_(EMPTY):
            log.info("group %s with generation %d is now empty", group.group_id, group.generation_id)
            error = self.manager.store_group(group, {})
            if error != ErrorCode.NONE:
                log.warning("cannot write empty metadata for group %s: %s", group.group_id, error.name)
            return
        log.info("stabilized group %s generation %d with %d members", group.group_id, group.generation_id,
                 group.size)
        for member in list(group.members.values()):
            group.maybe_invoke_join(member, self._join_result(group, member.member_id))
            self._complete_and_schedule_heartbeat(group, member)
            member.is_new = False
            group.pending_sync_members.add(member.member_id)
        self._schedule_pending_sync(group)

    # -- SyncGroup ------------------------------------------------------------------------
    async def sync_group(self, group_id: str, generation_id: int, member_id: str, protocol_type: str | None,
                         protocol_name: str | None, group_instance_id: str | None,
                         assignments: dict[str, bytes]) -> SyncResult:
        error = self._group_status_error(group_id, "SyncGroup")
        if error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            # The rebalance in flight was lost with the coordinator: rejoin.
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        if error is not None:
            return SyncResult(error)
        group = self.manager.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.is_(DEAD):
            return SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        error = self._current_member_error(group, member_id, group_instance_id)
        if error is None and generation_id != group.generation_id:
            error = ErrorCode.ILLEGAL_GENERATION
        if error is None and ((protocol_type is not None and protocol_type != group.protocol_type)
                              or (protocol_name is not None and protocol_name != group.protocol_name)):
            error = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if error is not None:
            return SyncResult(error)
        if group.is_(EMPTY):
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group.is_(PREPARING):
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        member = group.get(member_id)
        if group.is_(STABLE):
            self._remove_pending_sync_member(group, member_id)
            result = SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol_name, member.assignment)
            self._complete_and_schedule_heartbeat(group, member)
            return result
        # CompletingRebalance: wait for the leader's assignment.
        reply: Reply[SyncResult] = Reply()
        superseded(member.awaiting_sync, reply, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.awaiting_sync = reply
        self._remove_pending_sync_member(group, member_id)
        if group.is_leader(member_id):
            log.info("assignment received from leader %s for group %s for generation %d", member_id,
                     group.group_id, group.generation_id)
            assignment = dict(assignments)
            for missing in group.members.keys() - assignment.keys():
                assignment[missing] = b""
            error = self.manager.store_group(group, assignment)
            if error != ErrorCode.NONE:
                self._reset_and_propagate_assignment_error(group, error)
                self._maybe_prepare_rebalance(group, f"error {error.name} when storing group assignment "
                                                     f"during SyncGroup (member: {member_id})")
            else:
                self._set_and_propagate_assignment(group, assignment)
                group.transition_to(STABLE)
        return await reply.wait()

    def _set_and_propagate_assignment(self, group: GroupMetadata, assignment: dict[str, bytes]) -> None:
        for member in group.members.values():
            member.assignment = assignment[member.member_id]
        self._propagate_assignment(group, ErrorCode.NONE)

    def _reset_and_propagate_assignment_error(self, group: GroupMetadata, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error)

    def _propagate_assignment(self, group: GroupMetadata, error: ErrorCode) -> None:
        ok = error == ErrorCode.NONE
        for member in list(group.members.values()):
            result = SyncResult(error, group.protocol_type if ok else None, group.protocol_name if ok else None,
                                member.assignment)
            if group.maybe_invoke_sync(member, result):
                # Its session timer was ignored while it waited: start a new one.
                self._complete_and_schedule_heartbeat(group, member)

    def _schedule_pending_sync(self, group: GroupMetadata) -> None:
        self._syncs[group] = group.generation_id
        self.timers.schedule(("sync", group), group.rebalance_timeout_ms,
                             partial(self._on_sync_expired, group, group.generation_id))
        self._maybe_complete_sync_expiration(group)

    def _remove_pending_sync_member(self, group: GroupMetadata, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        self._maybe_complete_sync_expiration(group)

    def _remove_sync_expiration(self, group: GroupMetadata) -> None:
        group.pending_sync_members.clear()
        self._maybe_complete_sync_expiration(group)

    def _maybe_complete_sync_expiration(self, group: GroupMetadata) -> None:
        generation = self._syncs.get(group)
        if generation is None:
            return
        if (generation != group.generation_id or group.state in (DEAD, EMPTY, PREPARING)
                or not group.pending_sync_members):
            del self._syncs[group]
            self.timers.cancel(("sync", group))

    def _on_sync_expired(self, group: GroupMetadata, generation: int) -> None:
        if self._syncs.pop(group, None) is None or generation != group.generation_id:
            return
        if group.state not in (COMPLETING, STABLE) or not group.pending_sync_members:
            return
        pending = sorted(group.pending_sync_members)
        for member_id in pending:
            group.remove(member_id)
            self.timers.cancel(("heartbeat", group, member_id))
        log.info("group %s removed members who did not send SyncGroup: %s", group.group_id, pending)
        self._prepare_rebalance(group, f"removing {pending} on pending sync request expiration")

    # -- Heartbeat and session expiry ----------------------------------------------------
    def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int) -> ErrorCode:
        error = self._group_status_error(group_id, "Heartbeat")
        if error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            return ErrorCode.NONE  # the group is still loading: answer blindly
        if error is not None:
            return error
        group = self.manager.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.is_(DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        error = self._current_member_error(group, member_id, group_instance_id)
        if error is not None:
            return error
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.is_(EMPTY):
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._complete_and_schedule_heartbeat(group, group.get(member_id))
        return ErrorCode.REBALANCE_IN_PROGRESS if group.is_(PREPARING) else ErrorCode.NONE

    def _complete_and_schedule_heartbeat(self, group: GroupMetadata, member: MemberMetadata) -> None:
        self._schedule_expiration(group, member, member.session_timeout_ms)

    def _schedule_expiration(self, group: GroupMetadata, member: MemberMetadata, timeout_ms: int) -> None:
        """Start the member's next session timer; none while it waits in a join
        or sync (it counts as alive then), except for a new member."""
        key = ("heartbeat", group, member.member_id)
        member.heartbeat_satisfied = False
        if member.has_satisfied_heartbeat:
            self.timers.cancel(key)
            return
        self.timers.schedule(key, timeout_ms, partial(self._on_heartbeat_expired, group, member.member_id, False))

    def _schedule_pending_member_expiration(self, group: GroupMetadata, member_id: str, timeout_ms: int) -> None:
        self.timers.schedule(("heartbeat", group, member_id), timeout_ms,
                             partial(self._on_heartbeat_expired, group, member_id, True))

    def _on_heartbeat_expired(self, group: GroupMetadata, member_id: str, pending: bool) -> None:
        if group.is_(DEAD):
            return
        if pending:
            if not group.has(member_id):
                log.info("pending member %s in group %s has been removed after session timeout expiration",
                         member_id, group.group_id)
                self._remove_pending_member_and_update_group(group, member_id)
            return
        if not group.has(member_id):
            return
        member = group.get(member_id)
        if not member.has_satisfied_heartbeat:
            log.info("member %s in group %s has failed, removing it from the group", member_id, group.group_id)
            self._remove_member_and_update_group(group, member, f"removing member {member_id} on heartbeat expiration")

    def _remove_member_and_update_group(self, group: GroupMetadata, member: MemberMetadata, reason: str) -> None:
        # A new member may still be parked in JoinGroup: it must rejoin.
        group.maybe_invoke_join(member, JoinResult("", ErrorCode.UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)
        if group.state in (STABLE, COMPLETING):
            self._maybe_prepare_rebalance(group, reason)
        elif group.is_(PREPARING):
            self._try_complete_join(group)

    def _remove_pending_member_and_update_group(self, group: GroupMetadata, member_id: str) -> None:
        group.remove(member_id)
        if group.is_(PREPARING):
            self._try_complete_join(group)

    # -- LeaveGroup -------------------------------------------------------------------------
    def leave_group(self, group_id: str, members: list[tuple[str, str | None, str | None]]
                    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """``members`` are (member id, group instance id, reason); a member id of
        "" removes a static member by its instance id. Returns the top-level
        error and one error per member."""
        error = self._group_status_error(group_id, "LeaveGroup")
        if error is not None:
            return error, []
        group = self.manager.get(group_id)
        if group is None:
            return ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID for _ in members]
        if group.is_(DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        errors = []
        for member_id, instance_id, reason in members:
            reason = reason or "not provided"
            if member_id == "":
                current = group.static_member_id(instance_id)
                if current is None:
                    errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                    continue
                self._remove_current_member(group, current, reason)
                errors.append(ErrorCode.NONE)
            elif member_id in group.pending_members:
                self._remove_pending_member_and_update_group(group, member_id)
                self.timers.cancel(("heartbeat", group, member_id))
                log.info("pending member %s has left group %s", member_id, group.group_id)
                errors.append(ErrorCode.NONE)
            else:
                error = self._current_member_error(group, member_id, instance_id)
                if error is None:
                    self._remove_current_member(group, member_id, reason)
                errors.append(error or ErrorCode.NONE)
        return ErrorCode.NONE, errors

    def _remove_current_member(self, group: GroupMetadata, member_id: str, reason: str) -> None:
        member = group.get(member_id)
        self._remove_member_and_update_group(group, member, f"removing member {member_id} on LeaveGroup; "
                                                            f"client reason: {reason}")
        self.timers.cancel(("heartbeat", group, member_id))
        log.info("member %s has left group %s through explicit LeaveGroup; client reason: %s",
                 member_id, group.group_id, reason)

    # -- offsets ------------------------------------------------------------------------------
    async def commit_offsets(self, group_id: str, member_id: str, group_instance_id: str | None,
                             generation_id: int, offsets: dict[TopicPartition, OffsetAndMetadata]
                             ) -> dict[TopicPartition, ErrorCode]:
        """OffsetCommit for partitions of existing topics, answered once its
        records are replicated as acks=all asks (offsets.commit.timeout.ms),
        the offsets pending until then (see ``GroupManager.store_offsets``).
        Generation -1 with no member id is a simple commit (a consumer that
        only assigns partitions), allowed while the group has no members."""
        error = self._group_status_error(group_id, "OffsetCommit")
        if error is not None:
            return dict.fromkeys(offsets, error)
        group = self.manager.get(group_id)
        if group is None:
            if generation_id >= 0:
                # A member of a generation this coordinator doesn't know.
                return dict.fromkeys(offsets, ErrorCode.ILLEGAL_GENERATION)
            log.info("creating simple consumer group %s via manual offset commit", group_id)
            group = self.manager.new_group(group_id)
        error = self._offset_commit_error(group, generation_id, member_id, group_instance_id)
        if error is not None:
            return dict.fromkeys(offsets, error)
        if group.is_(COMPLETING):
            # The member has its new generation but not its assignment yet.
            return dict.fromkeys(offsets, ErrorCode.REBALANCE_IN_PROGRESS)
        if group.state in (STABLE, PREPARING):
            # Commits count as heartbeats; while preparing, the heartbeat
            # response tells the member to rejoin.
            self._complete_and_schedule_heartbeat(group, group.get(member_id))
        return await self.manager.store_offsets(group, offsets, self.commit_timeout_s)

    async def commit_txn_offsets(self, group_id: str, transactional_id: str | None, producer_id: int,
                                 producer_epoch: int, member_id: str, group_instance_id: str | None,
                                 generation_id: int, offsets: dict[TopicPartition, OffsetAndMetadata],
                                 abortable: bool = True) -> dict[TopicPartition, ErrorCode]:
        """TxnOffsetCommit for partitions of existing topics, in Kafka's order
        (handleTxnCommitOffsets): the group's status; KIP-890 verification that
        the transaction holds the group's partition (TRANSACTION_ABORTABLE for
        clients that know it, ``abortable``); from v3 (KIP-447) the member and
        generation, checked as an OffsetCommit's (older versions send neither,
        so any producer may commit for a group with members). The offsets are
        written in the producer's transaction and stay pending (invisible to
        OffsetFetch) until its marker; answered once replicated, as an
        OffsetCommit (not replicated in time, they are dropped)."""
        error = self._group_status_error(group_id, "TxnOffsetCommit")
        if error is not None:
            return dict.fromkeys(offsets, error)
        group = self.manager.get(group_id)
        if group is None:
            group = self.manager.new_group(group_id)
        verification = await self.manager.storage.verify_transaction(
            self.manager.partition_for(group_id), transactional_id, producer_id, producer_epoch, abortable)
        if verification is not None and verification.refused:
            (error, _), = verification.refused.values()
            return dict.fromkeys(offsets, commit_error(error))
        error = self._offset_commit_error(group, generation_id, member_id, group_instance_id, transactional=True)
        if error is not None:
            return dict.fromkeys(offsets, error)
        return await self.manager.store_offsets(group, offsets, self.commit_timeout_s, producer_id, producer_epoch,
                                                verification)

    def complete_txn_offsets(self, offsets_partition: int, producer_id: int, committed: bool) -> None:
        """Called once a COMMIT or ABORT marker of the producer is written to
        ``__consumer_offsets-<offsets_partition>``: its pending offsets in that
        partition's groups become committed or vanish."""
        self.manager.complete_txn_offsets(offsets_partition, producer_id, committed)

    def _offset_commit_error(self, group: GroupMetadata, generation_id: int, member_id: str,
                             instance_id: str | None, transactional: bool = False) -> ErrorCode | None:
        if group.is_(DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and group.is_(EMPTY):
            return None
        if generation_id >= 0 or member_id != "" or instance_id is not None:
            error = self._current_member_error(group, member_id, instance_id)
            if error is None and generation_id != group.generation_id:
                error = ErrorCode.ILLEGAL_GENERATION
            return error
        if not transactional and not group.is_(EMPTY):
            return ErrorCode.UNKNOWN_MEMBER_ID  # only members may commit for a group with members
        return None

    def fetch_offsets(self, group_id: str, partitions: list[TopicPartition] | None,
                      require_stable: bool = False) -> tuple[ErrorCode, dict[TopicPartition, FetchedOffset]]:
        """Committed offsets, whatever the group's state (simple consumers use
        groups without members); with ``require_stable`` (v7+), partitions with
        a pending commit (not replicated yet, or in an open transaction)
        answer UNSTABLE_OFFSET_COMMIT."""
        error = self._group_status_error(group_id, "OffsetFetch")
        if error is not None:
            return error, {}
        return ErrorCode.NONE, self.manager.get_offsets(group_id, partitions, require_stable)

    def delete_offsets(self, group_id: str, partitions: list[TopicPartition]
                       ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete: any offset of an Empty group; of a consumer group with
        members, those of topics no member subscribes to."""
        error = self._group_status_error(group_id, "OffsetDelete")
        if error is not None:
            return error, {}
        group = self.manager.get(group_id)
        if group is None or group.is_(DEAD):
            return self._missing_group_error(group_id), {}
        errors: dict[TopicPartition, ErrorCode] = {}
        if group.is_(EMPTY):
            eligible = list(partitions)
        elif group.is_consumer_group:
            eligible = [tp for tp in partitions if not group.is_subscribed_to(tp[0])]
            errors = {tp: ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC for tp in partitions if group.is_subscribed_to(tp[0])}
        else:
            return ErrorCode.NON_EMPTY_GROUP, {}
        if eligible:
            removed = self.manager.cleanup_group_metadata([group], lambda g: g.remove_offsets(eligible))
            errors.update(dict.fromkeys(eligible, ErrorCode.NONE))
            log.info("deleted %d offsets of group %s", removed, group_id)
        return ErrorCode.NONE, errors

    def on_topic_deleted(self, topic: str) -> int:
        """Drop every group's offsets of a deleted topic, pending transactional
        ones too (with tombstones for the committed ones)."""
        return self.manager.cleanup_group_metadata(
            self.manager.groups.values(),
            lambda g: g.remove_offsets([tp for tp in g.partitions_with_offsets() if tp[0] == topic]))

    def _missing_group_error(self, group_id: str) -> ErrorCode:
        return ErrorCode.GROUP_ID_NOT_FOUND if self.manager.group_not_exists(group_id) else ErrorCode.NOT_COORDINATOR

    # -- group administration ----------------------------------------------------------------
    def list_groups(self, states: list[str], types: list[str]) -> tuple[ErrorCode, list[GroupOverview]]:
        """Groups in the given states (case-insensitive; all when empty). Every
        group here is a classic group, so a types filter without 'classic'
        matches none."""
        if not self.active:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if self.manager.any_loading else ErrorCode.NONE
        wanted_states = {s.lower() for s in states}
        if types and CLASSIC_GROUP_TYPE not in {t.lower() for t in types}:
            return error, []
        return error, [
            GroupOverview(g.group_id, g.protocol_type or "", str(g.state))
            for g in list(self.manager.groups.values())
            if not wanted_states or str(g.state).lower() in wanted_states
        ]

    def describe_group(self, group_id: str) -> tuple[ErrorCode, GroupSummary]:
        error = self._group_status_error(group_id, "DescribeGroups")
        if error is not None:
            return error, NO_GROUP
        group = self.manager.get(group_id)
        if group is None:
            return ErrorCode.NONE, DEAD_GROUP
        stable = group.is_(STABLE)
        members = [
            MemberSummary(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                          m.metadata(group.protocol_name) if stable else b"", m.assignment if stable else b"")
            for m in group.members.values()
        ]
        return ErrorCode.NONE, GroupSummary(str(group.state), group.protocol_type or "",
                                            group.protocol_name if stable else "", members)

    def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        """DeleteGroups: only Empty groups go (NON_EMPTY_GROUP otherwise); their
        offsets and metadata get tombstones."""
        errors: dict[str, ErrorCode] = {}
        eligible: list[GroupMetadata] = []
        for group_id in dict.fromkeys(group_ids):
            error = self._group_status_error(group_id, "DeleteGroups")
            group = self.manager.get(group_id) if error is None else None
            if error is not None:
                errors[group_id] = error
            elif group is None or group.is_(DEAD):
                errors[group_id] = self._missing_group_error(group_id)
            elif group.is_(EMPTY):
                group.transition_to(DEAD)
                eligible.append(group)
            else:
                errors[group_id] = ErrorCode.NON_EMPTY_GROUP
        if eligible:
            removed = self.manager.cleanup_group_metadata(eligible, lambda g: g.remove_all_offsets())
            errors.update(dict.fromkeys((g.group_id for g in eligible), ErrorCode.NONE))
            log.info("deleted groups %s (%d offsets removed)", ", ".join(g.group_id for g in eligible), removed)
        return {group_id: errors[group_id] for group_id in dict.fromkeys(group_ids)}
