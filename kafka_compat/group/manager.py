"""The groups this broker coordinates and their persistence (Kafka's
GroupMetadataManager): which ``__consumer_offsets`` partition holds a group,
which partitions are loaded or loading, writing group metadata and offsets
(pending until replicated, transactional ones until their transaction ends),
reading offsets back, ending the transactions of pending offsets, and
removing expired or deleted ones with tombstones."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from ..protocol.errors import ErrorCode, KafkaError
from ..protocol.records import NO_PRODUCER_EPOCH, NO_PRODUCER_ID
from ..txn.verification import Verification
from .group import GroupMetadata, GroupState, TopicPartition
from .internal_topics import OFFSETS_TOPIC, partition_count
from .loader import group_from_record
from .log_format import (
    GroupRecord,
    MemberRecord,
    OffsetAndMetadata,
    group_key,
    group_value,
    offset_key,
    offset_value,
)
from .offsets_log import OffsetsLog, commit_error, store_group_error
from .partitioner import partition_for

log = logging.getLogger(__name__)

INVALID_OFFSET = -1


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def java_length(text: str) -> int:
    """String.length() in Java: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    error: ErrorCode = ErrorCode.NONE


NO_OFFSET = FetchedOffset(INVALID_OFFSET, -1, "")
UNSTABLE_OFFSET = FetchedOffset(INVALID_OFFSET, -1, "", ErrorCode.UNSTABLE_OFFSET_COMMIT)


class GroupManager:
    def __init__(self, broker, clock_ms: Callable[[], int] = wall_clock_ms):
        config = broker.config
        self.storage = OffsetsLog(broker, config.offsets_load_buffer_size)
        self.partitions = partition_count(broker, OFFSETS_TOPIC, config.offsets_topic_num_partitions)
        self.max_metadata_size = config.offset_metadata_max_bytes
        self.retention_ms = config.offsets_retention_minutes * 60_000
        self.clock_ms = clock_ms
        self.groups: dict[str, GroupMetadata] = {}
        self.owned: set[int] = set()
        self.loading: set[int] = set()
        # producer id -> ids of the groups holding its pending transactional offsets
        self.producer_groups: dict[int, set[str]] = {}

    # -- where groups live -----------------------------------------------------
    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.partitions)

    def is_local(self, group_id: str) -> bool:
        return self.partition_for(group_id) in self.owned

    @property
    def any_loading(self) -> bool:
        return bool(self.loading)

    def get(self, group_id: str) -> GroupMetadata | None:
        return self.groups.get(group_id)

    def add(self, group: GroupMetadata) -> GroupMetadata:
        """Cache ``group`` unless one with its id is there; the cached one."""
        return self.groups.setdefault(group.group_id, group)

    def new_group(self, group_id: str) -> GroupMetadata:
        return self.add(GroupMetadata(group_id, GroupState.EMPTY, self.clock_ms))

    def group_not_exists(self, group_id: str) -> bool:
        """Kafka's groupNotExists: we coordinate the id and have no live group."""
        group = self.groups.get(group_id)
        return self.is_local(group_id) and (group is None or group.is_(GroupState.DEAD))

    # -- writing -------------------------------------------------------------------
    def store_group(self, group: GroupMetadata, assignment: dict[str, bytes]) -> ErrorCode:
        """Append the group's metadata record (its members with their
        subscriptions and the given assignments)."""
        members = [
            MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                         m.session_timeout_ms, m.metadata(group.protocol_name), assignment[m.member_id])
            for m in group.members.values()
        ]
        record = GroupRecord(group.protocol_type or "", group.generation_id, group.protocol_name, group.leader_id,
                             group.state_timestamp, members)
        try:
            self.storage.append(self.partition_for(group.group_id),
                                [(group_key(group.group_id), group_value(record))], self.clock_ms())
        except KafkaError as e:
            return store_group_error(e.code)
        return ErrorCode.NONE

    async def store_offsets(self, group: GroupMetadata, offsets: dict[TopicPartition, OffsetAndMetadata],
                            timeout_s: float, producer_id: int = NO_PRODUCER_ID,
                            producer_epoch: int = NO_PRODUCER_EPOCH,
                            verification: Verification | None = None) -> dict[TopicPartition, ErrorCode]:
        """Kafka's storeOffsets and its putCacheCallback: append one record per
        offset (those whose metadata is not over offset.metadata.max.bytes)
        and wait, up to ``timeout_s`` (offsets.commit.timeout.ms), until they
        are replicated as acks=all asks. A regular commit is pending
        meanwhile (OffsetFetch answers the offsets committed before it, or
        UNSTABLE_OFFSET_COMMIT when stable ones are required), then committed,
        or dropped when the wait fails: an offset no follower has is never
        seen. With a producer id (TxnOffsetCommit) the records are that
        producer's transactional batch (under its ``verification``), pending
        until its transaction ends, and dropped when the wait fails."""
        if not group.has_consistent_offset_commits:
            log.warning("group %s with leader %s has received offset commits from consumers as well as "
                        "transactional producers. Mixing both types of offset commits will generally result in "
                        "surprises and should be avoided.", group.group_id, group.leader_id)
        valid = {tp: o for tp, o in offsets.items() if java_length(o.metadata) <= self.max_metadata_size}
        error = ErrorCode.NONE
        if valid:
            offsets_partition = self.partition_for(group.group_id)
            records = [(offset_key(group.group_id, topic, partition), offset_value(o))
                       for (topic, partition), o in valid.items()]
            try:
                batch_offset = self.storage.append(offsets_partition, records, self.clock_ms(), producer_id,
                                                   producer_epoch, verification)
            except KafkaError as e:
                error = commit_error(e.code)
            else:
                self._prepare_offsets(group, valid, batch_offset, producer_id)
                # The append completes whatever becomes of the request (a
                # closed connection must not leave the offsets pending for
                # good); the wait ends by ``timeout_s`` or at shutdown.
                with trio.CancelScope(shield=True):
                    error = await self.storage.replicated(offsets_partition, timeout_s)
                if error != ErrorCode.NONE:
                    error = commit_error(error)
                self._complete_offsets(group, valid, batch_offset, producer_id, error)
        return {tp: error if tp in valid else ErrorCode.OFFSET_METADATA_TOO_LARGE for tp in offsets}

    def _prepare_offsets(self, group: GroupMetadata, offsets: dict[TopicPartition, OffsetAndMetadata],
                         batch_offset: int, producer_id: int) -> None:
        """Appended (so ``producer_groups`` and the group's pending offsets
        know of them, Kafka's addProducerGroup and prepare*OffsetCommit)."""
        if group.is_(GroupState.DEAD):
            return  # deleted or unloaded before the append
        if producer_id == NO_PRODUCER_ID:
            group.prepare_offset_commit(offsets)
        else:
            self.producer_groups.setdefault(producer_id, set()).add(group.group_id)
            group.on_txn_offset_commit_append(producer_id, offsets, batch_offset)

    def _complete_offsets(self, group: GroupMetadata, offsets: dict[TopicPartition, OffsetAndMetadata],
                          batch_offset: int, producer_id: int, error: ErrorCode) -> None:
        """The append's replication ended with ``error``: a regular commit is
        committed or dropped; a transactional one stays pending, or is
        dropped. A group that died meanwhile (deleted, or unloaded as its
        partition moved: the new coordinator loads what its log has) is left
        alone."""
        if group.is_(GroupState.DEAD):
            return
        if producer_id != NO_PRODUCER_ID:
            if error != ErrorCode.NONE:
                self.fail_txn_offsets(group, producer_id, list(offsets))
        elif error == ErrorCode.NONE:
            group.on_offset_commit_append(offsets, batch_offset)
        else:
            group.fail_pending_offset_write(offsets)

    def fail_txn_offsets(self, group: GroupMetadata, producer_id: int, partitions: list[TopicPartition]) -> None:
        """A TxnOffsetCommit's records were not replicated as asked: its
        pending offsets go (the producer retries)."""
        if group.is_(GroupState.DEAD):
            return
        group.fail_pending_txn_offset_commit(producer_id, partitions)
        if not group.has_pending_offset_commits_from_producer(producer_id):
            self._forget_producer_group(producer_id, group.group_id)

    def complete_txn_offsets(self, partition: int, producer_id: int, committed: bool) -> None:
        """The producer's marker is in ``__consumer_offsets-<partition>``: its
        pending offsets in that partition's groups are committed or dropped
        (Kafka's handleTxnCompletion)."""
        for group_id in [g for g in self.producer_groups.get(producer_id, ()) if self.partition_for(g) == partition]:
            group = self.groups.get(group_id)
            if group is None:
                log.info("group %s has moved away after the transaction marker of producer %d was written; "
                         "its new coordinator loads the outcome", group_id, producer_id)
                continue
            if not group.is_(GroupState.DEAD):
                group.complete_pending_txn_offset_commit(producer_id, committed)
                self._forget_producer_group(producer_id, group_id)

    def _forget_producer_group(self, producer_id: int, group_id: str) -> None:
        groups = self.producer_groups.get(producer_id)
        if groups is not None:
            groups.discard(group_id)
            if not groups:
                del self.producer_groups[producer_id]

    def _forget_group_producers(self, group_id: str) -> None:
        for producer_id in list(self.producer_groups):
            self._forget_producer_group(producer_id, group_id)

    # -- reading -------------------------------------------------------------------
    def get_offsets(self, group_id: str, partitions: list[TopicPartition] | None,
                    require_stable: bool = False) -> dict[TopicPartition, FetchedOffset]:
        """Committed offsets of ``partitions`` (None: all the group has); -1 for
        partitions without one. With ``require_stable``, a partition with a
        pending commit (regular or transactional) answers
        UNSTABLE_OFFSET_COMMIT (Kafka's getOffsets)."""
        group = self.groups.get(group_id)
        if group is None or group.is_(GroupState.DEAD):
            return {tp: NO_OFFSET for tp in partitions or ()}
        wanted = sorted(group.offsets) if partitions is None else partitions
        fetched = {}
        for tp in wanted:
            if require_stable and group.has_pending_offset_commits_for(tp):
                fetched[tp] = UNSTABLE_OFFSET
                continue
            o = group.offset(tp)
            fetched[tp] = NO_OFFSET if o is None else FetchedOffset(o.offset, o.leader_epoch, o.metadata)
        return fetched

    # -- removing --------------------------------------------------------------------
    def cleanup_group_metadata(self, groups: Iterable[GroupMetadata],
                               selector: Callable[[GroupMetadata], dict[TopicPartition, OffsetAndMetadata]]) -> int:
        """Remove the offsets ``selector`` picks from each group, writing their
        tombstones; an Empty group left without offsets dies, leaves the cache
        and (if it ever had a generation) gets a tombstone too. Returns how many
        offsets were removed."""
        removed_total = 0
        for group in list(groups):
            removed = selector(group)
            if group.is_(GroupState.EMPTY) and not group.has_offsets:
                log.info("group %s transitioned to Dead in generation %d", group.group_id, group.generation_id)
                group.transition_to(GroupState.DEAD)
            tombstones = [(offset_key(group.group_id, topic, partition), None) for topic, partition in removed]
            if group.is_(GroupState.DEAD) and self.groups.get(group.group_id) is group:
                del self.groups[group.group_id]
                # A generation-0 group only ever stored offsets: no metadata to delete.
                if group.generation_id > 0:
                    tombstones.append((group_key(group.group_id), None))
            if tombstones:
                try:
                    self.storage.append(self.partition_for(group.group_id), tombstones, self.clock_ms())
                except KafkaError as e:
                    log.warning("could not write tombstones for group %s: %s", group.group_id, e)
                    continue
                removed_total += len(removed)
        return removed_total

    def expire_offsets(self) -> int:
        now = self.clock_ms()
        removed = self.cleanup_group_metadata(
            self.groups.values(), lambda g: g.remove_expired_offsets(now, self.retention_ms))
        if removed:
            log.info("removed %d expired offsets", removed)
        return removed

    # -- loading ---------------------------------------------------------------------
    def begin_loading(self, partition: int) -> bool:
        """Mark a partition as loading; False if it is loaded or loading already."""
        if partition in self.owned or partition in self.loading:
            return False
        self.loading.add(partition)
        return True

    async def load_partition(self, partition: int, on_loaded: Callable[[GroupMetadata], None]) -> None:
        """Read a partition back and cache its groups; ``on_loaded`` is called for
        each. Call ``begin_loading`` first: from then on its groups answer
        COORDINATOR_LOAD_IN_PROGRESS, until this ends."""
        started = time.monotonic()
        try:
            loaded = await self.storage.load(partition)
            pending = loaded.pending_by_group()
            for group_id, producers in pending.items():
                for producer_id in producers:
                    self.producer_groups.setdefault(producer_id, set()).add(group_id)
            for group_id, record in loaded.groups.items():
                group = group_from_record(group_id, record, self.clock_ms)
                self._load_group(group, loaded.offsets.get(group_id, {}), pending.get(group_id, {}), on_loaded)
            # Groups that only commit offsets (or have only pending ones) have no metadata record.
            for group_id in (loaded.offsets.keys() | pending.keys()) - loaded.groups.keys():
                group = GroupMetadata(group_id, GroupState.EMPTY, self.clock_ms)
                self._load_group(group, loaded.offsets.get(group_id, {}), pending.get(group_id, {}), on_loaded)
            if not self.storage.has_partition(partition):  # leadership moved away while loading
                self.unload_partition(partition, lambda group: None)
                return
            self.owned.add(partition)
            count = len(loaded.groups.keys() | loaded.offsets.keys() | pending.keys())
            log.log(logging.INFO if count else logging.DEBUG, "loaded %d groups from %s-%d in %d ms",
                    count, OFFSETS_TOPIC, partition, (time.monotonic() - started) * 1000)
        finally:
            self.loading.discard(partition)

    def _load_group(self, group: GroupMetadata, offsets: dict, pending: dict,
                    on_loaded: Callable[[GroupMetadata], None]) -> None:
        """Offsets go in before the group is cached, so that nobody sees it without them."""
        group.offsets.update(offsets)
        group.pending_txn_offsets.update(pending)
        on_loaded(self.add(group))

    def unload_partition(self, partition: int, on_unloaded: Callable[[GroupMetadata], None]) -> list[GroupMetadata]:
        """Stop coordinating one partition's groups (its leadership moved): each
        is told and forgotten; they are returned."""
        groups = [g for g in self.groups.values() if self.partition_for(g.group_id) == partition]
        for group in groups:
            del self.groups[group.group_id]
            self._forget_group_producers(group.group_id)
        self.owned.discard(partition)
        for group in groups:
            on_unloaded(group)
        return groups

    def unload_all(self, on_unloaded: Callable[[GroupMetadata], None]) -> None:
        """Stop coordinating (shutdown): every group is told and forgotten."""
        groups = list(self.groups.values())
        self.groups.clear()
        self.producer_groups.clear()
        self.owned.clear()
        for group in groups:
            on_unloaded(group)
