"""Replica fetchers: a follower copies its leaders' logs with the Fetch API,
replica id set (Kafka's ReplicaFetcherManager, ReplicaFetcherThread and
AbstractFetcherThread, with truncation on fetch as Kafka 3.9 does it).

Partitions are spread over ``num.replica.fetchers`` fetchers per leader
broker; each fetcher is one task with one connection to its leader's
inter-broker endpoint, fetching all its partitions in one request at a time.
A response is applied under the fetcher's lock, and taking partitions away
(the broker leads them now, or stops hosting them) waits for that lock, so a
partition's log is never appended to or truncated by a fetcher once the
replica manager has taken it back.

For each partition in a response, in Kafka's order:
- a diverging epoch (KIP-320): the leader's log parts from ours; truncate to
  where they agree (the smaller end offset of that epoch, ours or the
  leader's) and fetch again from there;
- records: appended as they are (offsets, epochs and bytes), then the high
  watermark becomes min(leader's, our log end), and the log start the
  leader's if it is further on (up to our high watermark);
- OFFSET_OUT_OF_RANGE: ask the leader its log end (ListOffsets): above ours,
  truncate to it; else start over at the leader's log start if ours ends
  before it;
- any other error: retry after ``replica.fetch.backoff.ms``.
A partition whose log can't take the data (offsets out of order, an
unexpected offset, a storage error) stops being fetched, as Kafka marks it
failed.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..cluster.channel import BrokerChannel, BrokerChannelError
from ..cluster.metadata import Endpoint
from ..locks import held
from ..log.partition_log import OffsetsOutOfOrderError, UnexpectedAppendOffsetError
from ..protocol.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

FETCH_VERSION = 13  # topic ids, last_fetched_epoch and diverging_epoch (v12+)
LIST_OFFSETS_VERSION = 7
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


@dataclass
class FetchState:
    topic_id: bytes
    leader_epoch: int
    fetch_offset: int
    delayed_until: float = -math.inf  # backing off after an error until then


class _PartitionFailed(Exception):
    """The partition's log can't take what the leader sent: stop fetching it."""


class ReplicaFetcherManager:
    """The follower partitions this broker fetches, by leader.

    ``endpoint(broker_id)`` gives a leader's inter-broker endpoint (None while
    the metadata cache doesn't know it); ``config`` the replica.* settings.
    """

    def __init__(self, broker_id: int, config, logs, endpoint: Callable[[int], Endpoint | None]):
        self.broker_id = broker_id
        self.config = config
        self.logs = logs
        self.endpoint = endpoint
        self.fetchers: dict[tuple[int, int], ReplicaFetcher] = {}
        self._nursery: trio.Nursery | None = None
        self._ready = trio.Event()

    async def run(self) -> None:
        """Hosts the fetchers' tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await trio.sleep_forever()

    def _fetcher_id(self, topic: str, partition: int) -> int:
        return hash((topic, partition)) % self.config.num_replica_fetchers

    async def add(self, partitions: dict[tuple[str, int], tuple[int, bytes, int]]) -> None:
        """Fetch each (topic, partition) -> (leader, topic id, leader epoch)
        from its log end on. The partitions must not be fetched already
        (``remove`` them first)."""
        await self._ready.wait()
        for (topic, partition), (leader, topic_id, epoch) in partitions.items():
            key = (leader, self._fetcher_id(topic, partition))
            fetcher = self.fetchers.get(key)
            if fetcher is None:
                fetcher = self.fetchers[key] = ReplicaFetcher(self, leader, key[1])
                self._nursery.start_soon(fetcher.run)
            fetch_offset = self.logs.get(topic, partition).log_end_offset
            log.info("broker %d: fetching %s-%d from broker %d at offset %d, leader epoch %d",
                     self.broker_id, topic, partition, leader, fetch_offset, epoch)
            fetcher.add((topic, partition), FetchState(topic_id, epoch, fetch_offset))

    async def remove(self, keys) -> None:
        """Stop fetching ``keys``' partitions; returns once no fetcher is
        applying a response to them. A fetcher left with nothing stops."""
        keys = set(keys)
        for fetcher_key, fetcher in list(self.fetchers.items()):
            if keys.isdisjoint(fetcher.partitions):
                continue
            async with fetcher.lock:
                for key in keys:
                    fetcher.partitions.pop(key, None)
            if not fetcher.partitions and self.fetchers.get(fetcher_key) is fetcher:
                del self.fetchers[fetcher_key]
                fetcher.scope.cancel()


class ReplicaFetcher:
    """One task fetching a set of partitions from one leader broker."""

    def __init__(self, manager: ReplicaFetcherManager, leader: int, fetcher_id: int):
        self.manager = manager
        self.config = manager.config
        self.logs = manager.logs
        self.leader = leader
        self.client_id = f"broker-{manager.broker_id}-fetcher-{fetcher_id}"
        self.partitions: dict[tuple[str, int], FetchState] = {}
        self.lock = trio.Lock()  # held while a response is applied
        self.scope = trio.CancelScope()
        self._channel: BrokerChannel | None = None
        self._wake = trio.Event()

    def add(self, key: tuple[str, int], state: FetchState) -> None:
        self.partitions[key] = state
        self._wake.set()

    @property
    def backoff(self) -> float:
        return self.config.replica_fetch_backoff_ms / 1000

    async def run(self) -> None:
        try:
            with self.scope:
                while True:
                    await self._fetch_once()
        finally:
            if self._channel is not None:
                with trio.CancelScope(shield=True):
                    await self._channel.aclose()

    async def _fetch_once(self) -> None:
        now = trio.current_time()
        ready = {key: state for key, state in self.partitions.items() if state.delayed_until <= now}
        if not ready:
            self._wake = trio.Event()
            with trio.move_on_at(min((s.delayed_until for s in self.partitions.values()), default=math.inf)):
                await self._wake.wait()
            return
        channel = self._connect()
        if channel is None:
            self._back_off(ready.values())
            return
        try:
            response = await channel.request("Fetch", FETCH_VERSION, self._fetch_request(ready))
        except BrokerChannelError as e:
            log.info("%s: fetch from broker %d failed: %s", self.client_id, self.leader, e)
            await self._drop_channel()
            self._back_off(ready.values())
            return
        if response.error_code != ErrorCode.NONE:
            log.info("%s: fetch from broker %d answered %s", self.client_id, self.leader,
                     ErrorCode(response.error_code).name)
            self._back_off(ready.values())
            return
        names = {state.topic_id: key[0] for key, state in ready.items()}
        async with held(self.lock):
            for topic in response.responses:
                for p in topic.partitions:
                    key = (names.get(topic.topic_id), p.partition_index)
                    state = ready.get(key)
                    # taken away (or given again, afresh) while the fetch was out
                    if state is not None and self.partitions.get(key) is state:
                        await self._apply(key, state, p)

    def _connect(self) -> BrokerChannel | None:
        if self._channel is None:
            endpoint = self.manager.endpoint(self.leader)
            if endpoint is None:
                return None
            self._channel = BrokerChannel(
                endpoint.host, endpoint.port, self.manager._nursery, client_id=self.client_id,
                request_timeout=self.config.replica_socket_timeout_ms / 1000, reconnect_backoff=self.backoff)
        return self._channel

    async def _drop_channel(self) -> None:
        """The next fetch connects afresh, to wherever the leader is then."""
        channel, self._channel = self._channel, None
        await channel.aclose()

    def _back_off(self, states) -> None:
        until = trio.current_time() + self.backoff
        for state in states:
            state.delayed_until = until

    def _fetch_request(self, ready: dict[tuple[str, int], FetchState]) -> dict:
        config = self.config
        topics: dict[bytes, list[dict]] = {}
        for (topic, partition), state in ready.items():
            partition_log = self.logs.get(topic, partition)
            latest_epoch = partition_log.latest_epoch
            topics.setdefault(state.topic_id, []).append({
                "partition": partition, "current_leader_epoch": state.leader_epoch,
                "fetch_offset": state.fetch_offset,
                "last_fetched_epoch": -1 if latest_epoch is None else latest_epoch,
                "log_start_offset": partition_log.log_start_offset,
                "partition_max_bytes": config.replica_fetch_max_bytes,
            })
        # Sessionless (session id 0, final epoch): every fetch names every partition.
        return {"replica_id": self.manager.broker_id, "max_wait_ms": config.replica_fetch_wait_max_ms,
                "min_bytes": config.replica_fetch_min_bytes, "max_bytes": config.replica_fetch_response_max_bytes,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic_id": topic_id, "partitions": partitions} for topic_id, partitions in topics.items()],
                "forgotten_topics_data": [], "rack_id": ""}

    async def _apply(self, key: tuple[str, int], state: FetchState, p) -> None:
        topic, partition = key
        partition_log = self.logs.get(topic, partition)
        try:
            if partition_log is None or partition_log.offline:
                raise _PartitionFailed("its log is gone or offline")
            if p.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                await self._out_of_range(key, state, partition_log)
            elif p.error_code != ErrorCode.NONE:
                log.info("%s: fetching %s-%d: %s", self.client_id, topic, partition, ErrorCode(p.error_code).name)
                self._back_off([state])
            elif p.diverging_epoch.epoch >= 0 and p.diverging_epoch.end_offset >= 0:
                await self._truncate_to_divergence(key, state, partition_log, p.diverging_epoch)
            elif state.fetch_offset == partition_log.log_end_offset:
                if p.records:
                    await self._append(key, partition_log, p.records)
                    state.fetch_offset = partition_log.log_end_offset
                partition_log.high_watermark = p.high_watermark  # (clamped to our log end)
                # The leader's log start (DeleteRecords, retention) moves ours,
                # up to our high watermark (Kafka's follower does the same).
                if p.log_start_offset > partition_log.log_start_offset:
                    partition_log.increment_log_start_offset(min(p.log_start_offset, partition_log.high_watermark))
        except KafkaError as e:
            if e.code != ErrorCode.CORRUPT_MESSAGE:
                self._fail(key, e)
                return
            log.warning("%s: %s-%d: corrupt records from broker %d: %s", self.client_id, topic, partition,
                        self.leader, e)
            self._back_off([state])
        except (_PartitionFailed, UnexpectedAppendOffsetError, OffsetsOutOfOrderError) as e:
            self._fail(key, e)

    def _fail(self, key: tuple[str, int], error: Exception) -> None:
        log.error("%s: stopped fetching %s-%d from broker %d: %s", self.client_id, *key, self.leader, error)
        del self.partitions[key]

    async def _append(self, key: tuple[str, int], partition_log, records) -> None:
        """Kafka's Partition.appendRecordsToFollowerOrFutureReplica: an empty
        log whose end falls inside the first batch (the leader's log start
        moved into the middle of it) starts over at that batch."""
        try:
            partition_log.append_as_follower(records)
        except UnexpectedAppendOffsetError as e:
            end = partition_log.log_end_offset
            if not (end == partition_log.log_start_offset and e.first_offset < end <= e.last_offset):
                raise
            log.info("%s: %s. Since this is the first record to be appended to the follower's log, "
                     "will start the log from offset %d.", self.client_id, e, e.first_offset)
            await self.logs.truncate_fully_and_start_at(*key, e.first_offset)
            partition_log.append_as_follower(records)

    async def _truncate_to_divergence(self, key, state: FetchState, partition_log, diverging) -> None:
        """Kafka's AbstractFetcherThread.getOffsetTruncationState: where the
        leader's epoch ``diverging.epoch`` ends, or ours if we know that epoch
        to end sooner; if ours is an older epoch, its end (the next fetch
        finds the rest)."""
        ours = partition_log.end_offset_for_epoch(diverging.epoch)
        end = partition_log.log_end_offset
        if ours is None:
            target = min(diverging.end_offset, end)
        elif ours.epoch != diverging.epoch:
            target = min(ours.end_offset, end)
        else:
            target = min(ours.end_offset, diverging.end_offset, end)
        log.info("%s: %s-%d diverges from broker %d at epoch %d, end offset %d: truncating to %d",
                 self.client_id, *key, self.leader, diverging.epoch, diverging.end_offset, target)
        await self.logs.truncate_to(*key, target)
        state.fetch_offset = partition_log.log_end_offset

    async def _out_of_range(self, key, state: FetchState, partition_log) -> None:
        """Kafka's AbstractFetcherThread.fetchOffsetAndTruncate."""
        end = partition_log.log_end_offset
        leader_end = await self._leader_offset(key, state, LATEST_TIMESTAMP)
        if leader_end is None:
            return
        if leader_end < end:
            log.warning("%s: %s-%d: our log end %d is above the leader's (%d): truncating",
                        self.client_id, *key, end, leader_end)
            await self.logs.truncate_to(*key, leader_end)
        else:
            leader_start = await self._leader_offset(key, state, EARLIEST_TIMESTAMP)
            if leader_start is None:
                return
            if leader_start > end:
                log.info("%s: %s-%d: our log end %d is below the leader's log start %d: starting over there",
                         self.client_id, *key, end, leader_start)
                await self.logs.truncate_fully_and_start_at(*key, leader_start)
        state.fetch_offset = partition_log.log_end_offset

    async def _leader_offset(self, key, state: FetchState, timestamp: int) -> int | None:
        """The leader's log end or start (ListOffsets as a replica); None after
        an error, with the partition backed off."""
        topic, partition = key
        request = {"replica_id": self.manager.broker_id, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": partition, "current_leader_epoch": state.leader_epoch,
                                            "timestamp": timestamp}]}]}
        channel = self._connect()
        try:
            if channel is None:
                raise BrokerChannelError(f"broker {self.leader}'s endpoint is unknown")
            response = await channel.request("ListOffsets", LIST_OFFSETS_VERSION, request)
        except BrokerChannelError as e:
            problem = str(e)
        else:
            answer = response.topics[0].partitions[0]
            if answer.error_code == ErrorCode.NONE:
                return answer.offset
            problem = ErrorCode(answer.error_code).name
        log.info("%s: ListOffsets for %s-%d from broker %d: %s", self.client_id, topic, partition, self.leader, problem)
        self._back_off([state])
        return None
