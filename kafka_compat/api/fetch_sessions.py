"""Fetch sessions (KIP-227): the broker remembers a consumer's partitions so
incremental fetches carry only what changed, both ways.

A session maps (topic key, partition) -> the client's fetch state and what the
last response told it (high watermark, last stable offset, log start offset),
so an incremental response can leave out partitions with nothing new. The
topic key is the topic id from Fetch v13 on, else the name.

When every slot (max.incremental.fetch.session.cache.slots) is taken, a new
session may evict an old one as Kafka's FetchSessionCache decides: first any
session unused for longer than the eviction time; otherwise the least
valuable session that has lived longer than that (consumers' before
followers', then the one with the fewest partitions), if the new session is
worth more. So consumers that died without closing their sessions free their
slots within two minutes, and a young session is never pushed out.
"""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field

from ..protocol.errors import ErrorCode, KafkaError

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
# Kafka's KafkaServer.MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS: a constant, not a config.
MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS = 120_000


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


@dataclass
class SessionPartition:
    topic: str | None  # name (None until resolved, for topic ids)
    topic_id: bytes
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int
    last_fetched_epoch: int = -1  # a follower's (KIP-320), -1 if not given
    # What the client was last told; -2 = never told.
    high_watermark: int = -2
    last_stable_offset: int = -2
    log_start_offset: int = -2

    def changed(self, hw: int, lso: int, lss: int) -> bool:
        return (hw, lso, lss) != (self.high_watermark, self.last_stable_offset, self.log_start_offset)


@dataclass
class FetchSession:
    session_id: int
    epoch: int
    privileged: bool  # a follower's session (replica id set)
    created_ms: int
    last_used_ms: int
    partitions: dict[tuple, SessionPartition] = field(default_factory=dict)

    def evictable(self, by_privileged: bool, eviction_ms: int) -> bool:
        """Whether a new session may push this one out (Kafka decides this when
        a session is used, from its age then)."""
        aged = self.last_used_ms - self.created_ms > eviction_ms
        return aged or (by_privileged and not self.privileged)

    def worth(self) -> tuple:
        """Kafka's EvictableKey order: consumers before followers, then size, then id."""
        return self.privileged, len(self.partitions), self.session_id


def partition_from_request(topic, p) -> SessionPartition:
    return SessionPartition(topic.topic or None, topic.topic_id, p.partition, p.fetch_offset,
                            p.partition_max_bytes, p.current_leader_epoch, p.last_fetched_epoch)


def replica_id(request) -> int:
    """The fetching follower's broker id (a field of its own up to v14, inside
    ReplicaState from v15), or -1 for a consumer."""
    return max(request.replica_id, request.replica_state.replica_id)


def topic_key(topic_name: str | None, topic_id: bytes, by_id: bool):
    return topic_id if by_id else topic_name


class FetchSessionCache:
    def __init__(self, max_slots: int, eviction_ms: int = MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS,
                 clock=monotonic_ms):
        self.max_slots = max_slots
        self.eviction_ms = eviction_ms
        self.clock = clock
        self.sessions: dict[int, FetchSession] = {}
        self.evictions = 0
        self._ids = itertools.count(random.randrange(1, 1 << 30))

    def _new_id(self) -> int:
        while True:
            session_id = next(self._ids) & 0x7FFFFFFF
            if session_id and session_id not in self.sessions:
                return session_id

    def _make_room(self, privileged: bool, size: int, now: int) -> bool:
        """Whether a new session of ``size`` partitions can have a slot,
        evicting one session if Kafka would."""
        if len(self.sessions) < self.max_slots:
            return True
        if not self.sessions:
            return False
        stalest = min(self.sessions.values(), key=lambda s: (s.last_used_ms, s.session_id))
        if now - stalest.last_used_ms > self.eviction_ms:
            victim = stalest
        else:
            candidates = [s for s in self.sessions.values() if s.evictable(privileged, self.eviction_ms)]
            if not candidates:
                return False
            victim = min(candidates, key=FetchSession.worth)
            if (privileged, size, 0) < victim.worth():
                return False
        del self.sessions[victim.session_id]
        self.evictions += 1
        return True

    def resolve(self, request, by_id: bool) -> tuple[FetchSession | None, list[SessionPartition], bool]:
        """Apply the request to the cache. Returns (session or None when
        sessionless, the partitions to read, whether the response is
        incremental). Raises KafkaError for an unknown session or wrong epoch."""
        session_id, epoch = request.session_id, request.session_epoch
        now = self.clock()
        from_request = {
            (topic_key(t.topic, t.topic_id, by_id), p.partition): partition_from_request(t, p)
            for t in request.topics for p in t.partitions
        }
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id:
                self.sessions.pop(session_id, None)
            privileged = replica_id(request) >= 0
            if epoch == FINAL_EPOCH or not self._make_room(privileged, len(from_request), now):
                return None, list(from_request.values()), False
            session = FetchSession(self._new_id(), 1, privileged, now, now, from_request)
            self.sessions[session.session_id] = session
            return session, list(from_request.values()), False
        session = self.sessions.get(session_id)
        if session is None:
            raise KafkaError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            raise KafkaError(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        for key, fresh in from_request.items():
            known = session.partitions.get(key)
            if known is None:
                session.partitions[key] = fresh
            else:
                known.fetch_offset = fresh.fetch_offset
                known.partition_max_bytes = fresh.partition_max_bytes
                known.current_leader_epoch = fresh.current_leader_epoch
                known.last_fetched_epoch = fresh.last_fetched_epoch
        for t in request.forgotten_topics_data:
            for p in t.partitions:
                session.partitions.pop((topic_key(t.topic, t.topic_id, by_id), p), None)
        session.epoch += 1
        session.last_used_ms = now
        return session, list(session.partitions.values()), True
