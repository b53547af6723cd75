"""The fetch session cache (KIP-227): creation, and eviction as Kafka's
FetchSessionCache does it once every slot is taken."""
from types import SimpleNamespace

import pytest

from kafka_compat.api.fetch_sessions import FetchSessionCache
from kafka_compat.protocol.errors import ErrorCode, KafkaError

EVICTION_MS = 120_000


class Clock:
    def __init__(self):
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def fetch(session_id=0, epoch=0, partitions=1, follower=False):
    topic = SimpleNamespace(topic="t", topic_id=bytes(16), partitions=[
        SimpleNamespace(partition=p, fetch_offset=0, partition_max_bytes=1024, current_leader_epoch=-1,
                        last_fetched_epoch=-1)
        for p in range(partitions)])
    return SimpleNamespace(session_id=session_id, session_epoch=epoch, replica_id=1 if follower else -1,
                           replica_state=SimpleNamespace(replica_id=-1), topics=[topic],
                           forgotten_topics_data=[])


def open_session(cache, **kw):
    session, _, _ = cache.resolve(fetch(**kw), by_id=False)
    return session


def use(cache, session):
    """One incremental fetch in the session (the client keeps it alive)."""
    cache.resolve(fetch(session.session_id, session.epoch, partitions=0), by_id=False)


def test_full_cache_refuses_new_sessions_while_all_are_young_and_used():
    clock = Clock()
    cache = FetchSessionCache(2, EVICTION_MS, clock)
    a, b = open_session(cache), open_session(cache)
    clock.now += EVICTION_MS  # not more than the eviction time
    assert open_session(cache, partitions=50) is None
    assert set(cache.sessions) == {a.session_id, b.session_id}


def test_stale_session_of_a_dead_consumer_is_evicted():
    clock = Clock()
    cache = FetchSessionCache(2, EVICTION_MS, clock)
    dead, alive = open_session(cache), open_session(cache)
    clock.now += EVICTION_MS // 2
    use(cache, alive)
    clock.now += EVICTION_MS // 2 + 1  # dead: unused for longer than the eviction time
    new = open_session(cache)
    assert new is not None and set(cache.sessions) == {alive.session_id, new.session_id}
    assert cache.evictions == 1
    with pytest.raises(KafkaError) as e:
        use(cache, dead)
    assert e.value.code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_larger_session_evicts_the_smallest_old_one_in_use():
    clock = Clock()
    cache = FetchSessionCache(2, EVICTION_MS, clock)
    small, large = open_session(cache, partitions=2), open_session(cache, partitions=10)
    clock.now += EVICTION_MS + 1
    use(cache, small)
    use(cache, large)  # both in use, both older than the eviction time
    assert open_session(cache, partitions=2) is None  # not worth more than the smallest
    new = open_session(cache, partitions=3)
    assert new is not None and set(cache.sessions) == {large.session_id, new.session_id}


def test_young_sessions_are_safe_from_consumers_but_not_from_followers():
    clock = Clock()
    cache = FetchSessionCache(1, EVICTION_MS, clock)
    consumer = open_session(cache, partitions=1)
    use(cache, consumer)
    assert open_session(cache, partitions=100) is None
    follower = open_session(cache, partitions=1, follower=True)
    assert follower is not None and set(cache.sessions) == {follower.session_id}
    # A follower's young session is safe even from another follower.
    use(cache, follower)
    assert open_session(cache, partitions=100, follower=True) is None


def test_no_slots_means_sessionless_fetches():
    cache = FetchSessionCache(0, EVICTION_MS, Clock())
    session, wanted, incremental = cache.resolve(fetch(partitions=3), by_id=False)
    assert session is None and len(wanted) == 3 and not incremental
