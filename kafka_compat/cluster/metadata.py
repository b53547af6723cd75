"""Cluster metadata: what topics exist, their ids, partitions, replicas and
configs, who the brokers are and who is the controller.

``MetadataStore`` is the interface the API handlers use. ``LocalMetadataStore``
keeps a single broker's metadata in a JSON file in its first log directory
(written to a temporary file and renamed, so a crash leaves the old or the new
version, never half of one). The ZooKeeper store comes later with the same
interface.
"""
from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..protocol.errors import ErrorCode, KafkaError

LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_LENGTH = 249


def new_uuid() -> bytes:
    """A random Kafka Uuid: never the reserved zero/one ids, and (as Kafka does)
    never one whose base64 form starts with '-'."""
    while True:
        raw = uuid.uuid4().bytes
        if raw not in (bytes(16), bytes(15) + b"\x01") and not uuid_to_str(raw).startswith("-"):
            return raw


def uuid_to_str(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def uuid_from_str(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "==")


def validate_topic_name(name: str) -> None:
    """Kafka's Topic.validate (3.4 and later): raises INVALID_TOPIC_EXCEPTION
    with "Topic name is invalid: " and the reason, in Kafka's words."""
    if not name:
        reason = "the empty string is not allowed"
    elif name in (".", ".."):
        reason = f"'{name}' is not allowed"
    elif len(name) > MAX_TOPIC_LENGTH:
        reason = f"the length of '{name}' is longer than the max allowed length {MAX_TOPIC_LENGTH}"
    elif not LEGAL_TOPIC.fullmatch(name):
        reason = f"'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
    else:
        return
    raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {reason}")


def is_internal(name: str) -> bool:
    return name in ("__consumer_offsets", "__transaction_state")


@dataclass
class TopicMeta:
    name: str
    topic_id: bytes
    replicas: list[list[int]]  # replicas[partition] = broker ids, leader first
    configs: dict[str, str] = field(default_factory=dict)  # topic-level overrides, as strings

    @property
    def partitions(self) -> int:
        return len(self.replicas)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where clients reach a broker on one listener (Kafka's EndPoint without
    its name, which keys it in ``BrokerInfo.endpoints``)."""

    host: str
    port: int
    security_protocol: str


@dataclass
class BrokerInfo:
    """A broker's registration as Kafka has it (/brokers/ids/<id>, UpdateMetadata's
    live brokers): its advertised endpoints by listener name, in
    advertised.listeners order, and its rack (broker.rack)."""

    node_id: int
    endpoints: dict[str, Endpoint]
    rack: str | None = None

    def endpoint(self, listener: str) -> Endpoint | None:
        """The endpoint on ``listener``; None when the broker has none there
        (clients that came in on that listener cannot be sent to it)."""
        return self.endpoints.get(listener)


class MetadataStore:
    """What every metadata store offers the handlers."""

    # Whether this broker makes its partitions' logs itself as topics change
    # (a single broker), rather than when the controller says (a cluster).
    local_logs = True

    cluster_id: str
    controller_id: int
    # Moves whenever what the reading methods answer may have changed, so
    # that readers can keep what they derive from it until then.
    generation: int

    def brokers(self) -> list[BrokerInfo]:
        raise NotImplementedError

    def topics(self) -> dict[str, TopicMeta]:
        raise NotImplementedError

    def topic_by_id(self, topic_id: bytes) -> TopicMeta | None:
        raise NotImplementedError

    def has_partition(self, topic: str, partition: int) -> bool:
        meta = self.topics().get(topic)
        return meta is not None and 0 <= partition < meta.partitions

    # Changes are durable when the call returns; readers see them as soon as it
    # starts (no other task runs before the in-memory update).
    async def create_topic(self, name: str, replicas: list[list[int]], configs: dict[str, str]) -> TopicMeta:
        raise NotImplementedError

    async def delete_topic(self, name: str) -> None:
        raise NotImplementedError

    async def add_partitions(self, name: str, new_replicas: list[list[int]]) -> None:
        raise NotImplementedError

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        """Replace the topic's config overrides."""
        raise NotImplementedError

    def leader(self, topic: str, partition: int) -> int:
        """The leader's broker id; -1 when there is none (its replica is offline)."""
        raise NotImplementedError

    def offline_replicas(self, topic: str, partition: int) -> list[int]:
        """The brokers whose replica of the partition is in a failed log dir."""
        raise NotImplementedError

    def leader_epoch(self, topic: str, partition: int) -> int:
        raise NotImplementedError

    async def reserve_producer_id_block(self, size: int) -> int:
        """Durably reserve ``size`` producer ids; returns the first."""
        raise NotImplementedError

    def isr(self, topic: str, partition: int) -> list[int]:
        raise NotImplementedError


class LocalMetadataStore(MetadataStore):
    """Single-broker metadata in ``<log dir>/kafka-compat-metadata.json``."""

    FILE = "kafka-compat-metadata.json"

    def __init__(self, data_dir: Path, broker: BrokerInfo):
        self.path = data_dir / self.FILE
        self.broker = broker
        self.controller_id = broker.node_id
        self._topics: dict[str, TopicMeta] = {}
        self._by_id: dict[bytes, TopicMeta] = {}
        self.cluster_id = ""
        self._next_producer_id = 0
        self._save_lock = trio.Lock()
        self._offline: set[tuple[str, int]] = set()  # partitions in a failed log dir
        self.generation = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            self.cluster_id = uuid_to_str(new_uuid())
            self._write(self._snapshot())  # at start-up, before serving
            return
        data = json.loads(self.path.read_text())
        self.cluster_id = data["cluster_id"]
        self._next_producer_id = data.get("next_producer_id", 0)
        for t in data["topics"]:
            meta = TopicMeta(t["name"], uuid_from_str(t["id"]), t["replicas"], t["configs"])
            self._topics[meta.name] = meta
            self._by_id[meta.topic_id] = meta

    def _snapshot(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "next_producer_id": self._next_producer_id,
            "topics": [
                {"name": t.name, "id": uuid_to_str(t.topic_id), "replicas": t.replicas, "configs": t.configs}
                for t in self._topics.values()
            ],
        }

    def _write(self, data: dict) -> None:
        """Replace the file atomically and durably (write, fsync, rename, fsync the dir)."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    async def _save(self) -> None:
        """Persist the current state in a worker thread (the fsyncs stay off the
        event loop); one save at a time, each writing the state as of its turn."""
        async with self._save_lock:
            await trio.to_thread.run_sync(self._write, self._snapshot())

    def brokers(self) -> list[BrokerInfo]:
        return [self.broker]

    def topics(self) -> dict[str, TopicMeta]:
        return self._topics

    def topic_by_id(self, topic_id: bytes) -> TopicMeta | None:
        return self._by_id.get(topic_id)

    async def create_topic(self, name: str, replicas: list[list[int]], configs: dict[str, str]) -> TopicMeta:
        meta = TopicMeta(name, new_uuid(), replicas, dict(configs))
        self._topics[name] = meta
        self._by_id[meta.topic_id] = meta
        self.generation += 1
        await self._save()
        return meta

    async def delete_topic(self, name: str) -> None:
        meta = self._topics.pop(name)
        del self._by_id[meta.topic_id]
        self._offline -= {(name, p) for p in range(meta.partitions)}
        self.generation += 1
        await self._save()

    async def add_partitions(self, name: str, new_replicas: list[list[int]]) -> None:
        self._topics[name].replicas.extend(new_replicas)
        self.generation += 1
        await self._save()

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        self._topics[name].configs = dict(configs)
        self.generation += 1
        await self._save()

    def mark_offline(self, partitions: Iterable[tuple[str, int]]) -> None:
        """This broker's replicas of ``partitions`` are in a failed log dir (what
        Kafka's controller learns from a broker's heartbeat): with no other
        replica they have no leader, until the broker restarts."""
        self._offline.update(partitions)
        self.generation += 1

    def leader(self, topic: str, partition: int) -> int:
        return -1 if (topic, partition) in self._offline else self.broker.node_id

    def offline_replicas(self, topic: str, partition: int) -> list[int]:
        return [self.broker.node_id] if (topic, partition) in self._offline else []

    def leader_epoch(self, topic: str, partition: int) -> int:
        return 0

    async def reserve_producer_id_block(self, size: int) -> int:
        start = self._next_producer_id
        self._next_producer_id += size
        await self._save()
        return start

    def isr(self, topic: str, partition: int) -> list[int]:
        return self._topics[topic].replicas[partition]
