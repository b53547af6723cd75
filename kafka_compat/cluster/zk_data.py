"""Kafka's ZooKeeper layout: znode paths and the JSON stored in them.

Paths and formats follow Apache Kafka 3.9 in ZooKeeper mode
(core/src/main/scala/kafka/zk/ZkData.scala and KafkaZkClient.scala). Encoders
write the bytes Kafka writes, key order included: Kafka serialises Scala and
Java hash maps with Jackson, so keys come out in those maps' iteration order,
reproduced below for the Scala 2.13 build (the one Apache ships as the
default). Decoders accept every version Kafka 3.9 reads, and treat a znode
with no data (Kafka creates many with null data) as absent.

Topic ids are in Kafka's base64 form on the wire and raw 16 bytes here, as in
`metadata.py`.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field

from .metadata import BrokerInfo, uuid_from_str, uuid_to_str
from .metadata import Endpoint as BrokerEndpoint

# -- paths (ZkData.scala) ----------------------------------------------------

CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
CLUSTER_ID = "/cluster/id"
BROKER_IDS = "/brokers/ids"
BROKER_SEQUENCE_ID = "/brokers/seqid"
TOPICS = "/brokers/topics"
DELETE_TOPICS = "/admin/delete_topics"
CONFIG_CHANGES = "/config/changes"
CONFIG_CHANGE_PREFIX = "config_change_"
ISR_CHANGE_NOTIFICATION = "/isr_change_notification"
LOG_DIR_EVENT_NOTIFICATION = "/log_dir_event_notification"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
FEATURE = "/feature"

CONFIG_TYPES = ("topics", "clients", "users", "brokers", "ips")  # ConfigType.ALL

# ZkData.PersistentZkPaths: created (with null data) by every broker at start-up
# (KafkaZkClient.createTopLevelPaths), in this order.
PERSISTENT_PATHS = (
    "/consumers",
    BROKER_IDS,
    TOPICS,
    CONFIG_CHANGES,
    DELETE_TOPICS,
    BROKER_SEQUENCE_ID,
    ISR_CHANGE_NOTIFICATION,
    PRODUCER_ID_BLOCK,
    LOG_DIR_EVENT_NOTIFICATION,
    *(f"/config/{config_type}" for config_type in CONFIG_TYPES),
)


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}"


def partition_state_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}/state"


def delete_topic_path(topic: str) -> str:
    """Created with null data to ask the controller to delete the topic."""
    return f"{DELETE_TOPICS}/{topic}"


def config_path(config_type: str, name: str) -> str:
    return f"/config/{config_type}/{name}"


def topic_config_path(topic: str) -> str:
    return config_path("topics", topic)


def config_change_path() -> str:
    """The path to create a persistent sequential change notification at;
    ZooKeeper appends the sequence (`config_change_0000000000`)."""
    return f"{CONFIG_CHANGES}/{CONFIG_CHANGE_PREFIX}"


# -- /controller and /controller_epoch ----------------------------------------

INITIAL_CONTROLLER_EPOCH = 0  # KafkaController.InitialControllerEpoch


def encode_controller(broker_id: int, timestamp_ms: int | None = None,
                      kraft_controller_epoch: int = -1) -> bytes:
    """ControllerZNode v2; -1: not a KRaft controller (migration only)."""
    return _json({"version": 2, "brokerid": broker_id, "timestamp": str(_now(timestamp_ms)),
                  "kraftControllerEpoch": kraft_controller_epoch})


def decode_controller(data: bytes | None) -> int | None:
    """The controller's broker id (versions 1 and 2), None if no data."""
    js = _parse(data)
    return None if js is None else int(js["brokerid"])


def encode_controller_epoch(epoch: int) -> bytes:
    return str(epoch).encode()


def decode_controller_epoch(data: bytes) -> int:
    return int(data.decode())


# -- /cluster/id ----------------------------------------------------------------

def new_cluster_id() -> str:
    """A random UUID in base64 (CoreUtils.generateUuidAsBase64)."""
    return uuid_to_str(uuid.uuid4().bytes)


def encode_cluster_id(cluster_id: str) -> bytes:
    return _json({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes) -> str:
    js = _parse(data)
    if js is None:
        raise ValueError(f"Failed to parse the cluster id json {data!r}")
    return js["id"]


# -- /brokers/ids/<id> ----------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    listener_name: str
    host: str | None
    port: int
    security_protocol: str

    def connection_string(self) -> str:
        """`NAME://host:port` (EndPoint.connectionString; IPv6 in brackets)."""
        if self.host is None:
            return f"{self.listener_name}://:{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener_name}://{host}:{self.port}"


@dataclass(frozen=True)
class BrokerRegistration:
    broker_id: int
    endpoints: tuple[Endpoint, ...]  # advertised, in listener order
    rack: str | None = None
    jmx_port: int = -1
    version: int = 5
    features: dict = field(default_factory=dict)  # as read; Kafka 3.9 ZK brokers write {}
    timestamp_ms: int | None = None  # as read


# The security protocols a listener named after one maps to when a
# registration has no listener_security_protocol_map (before version 4).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_LISTENER = re.compile(r"^(.*)://\[?([0-9a-zA-Z\-%._:]*)\]?:(-?[0-9]+)$")


def encode_broker(registration: BrokerRegistration, timestamp_ms: int | None = None) -> bytes:
    """BrokerIdZNode v5 as a Kafka 3.9 ZooKeeper-mode broker writes it:
    features empty, the top-level host and port those of the first PLAINTEXT
    endpoint (null and -1 without one), the timestamp as a string."""
    if registration.version != 5:
        raise ValueError("only version 5 registrations are written")
    plaintext = next((e for e in registration.endpoints if e.security_protocol == "PLAINTEXT"), None)
    fields = {
        "version": 5,
        "host": plaintext.host if plaintext else None,
        "port": plaintext.port if plaintext else -1,
        "endpoints": [e.connection_string() for e in registration.endpoints],
        "jmx_port": registration.jmx_port,
        "timestamp": str(_now(timestamp_ms)),
    }
    if registration.rack is not None:
        fields["rack"] = registration.rack
    listener_map = {e.listener_name: e.security_protocol for e in registration.endpoints}
    fields["listener_security_protocol_map"] = _ordered(listener_map, scala_immutable_map_order)
    fields["features"] = {}
    return _json(_ordered(fields, lambda keys: scala_mutable_map_order(keys, known_size=6)))


def decode_broker(broker_id: int, data: bytes) -> BrokerRegistration:
    """Versions 1 to 5 (BrokerIdZNode.decode)."""
    js = _parse(data)
    if js is None or int(js.get("version", 0)) < 1:
        raise ValueError(f"Failed to parse ZooKeeper registration for broker {broker_id}: {data!r}")
    version = int(js["version"])
    if version == 1:
        endpoints = (Endpoint("PLAINTEXT", js["host"], int(js["port"]), "PLAINTEXT"),)
    else:
        protocols = js.get("listener_security_protocol_map") or {p: p for p in SECURITY_PROTOCOLS}
        endpoints = tuple(_parse_endpoint(text, protocols) for text in js["endpoints"])
    timestamp = js.get("timestamp")
    return BrokerRegistration(
        broker_id=broker_id, endpoints=endpoints, rack=js.get("rack"),
        jmx_port=int(js["jmx_port"]), version=version, features=js.get("features") or {},
        timestamp_ms=int(timestamp) if timestamp is not None else None)


def _parse_endpoint(text: str, protocols: dict[str, str]) -> Endpoint:
    match = _LISTENER.match(text)
    if not match:
        raise ValueError(f"Unable to parse {text} to a broker endpoint")
    name, host, port = match.groups()
    if name not in protocols:
        raise ValueError(f"No security protocol defined for listener {name}")
    return Endpoint(name, host or None, int(port), protocols[name])


# -- /brokers/topics/<t> ----------------------------------------------------------

@dataclass
class TopicAssignment:
    partitions: dict[int, list[int]]  # partition -> replicas, preferred leader first
    topic_id: bytes | None = None
    adding_replicas: dict[int, list[int]] = field(default_factory=dict)
    removing_replicas: dict[int, list[int]] = field(default_factory=dict)


def encode_topic(assignment: TopicAssignment) -> bytes:
    """TopicZNode v3 (adding/removing replicas only for partitions that have
    them; topic_id when known)."""
    def by_partition(replicas: dict[int, list[int]]) -> dict[str, list[int]]:
        as_json = {str(p): list(r) for p, r in sorted(replicas.items()) if r}
        return _ordered(as_json, scala_mutable_map_order)

    fields = {
        "version": 3,
        "partitions": _ordered({str(p): list(r) for p, r in sorted(assignment.partitions.items())},
                               scala_mutable_map_order),
        "adding_replicas": by_partition(assignment.adding_replicas),
        "removing_replicas": by_partition(assignment.removing_replicas),
    }
    if assignment.topic_id is not None:
        fields["topic_id"] = uuid_to_str(assignment.topic_id)
    return _json(_ordered(fields, lambda keys: scala_mutable_map_order(keys, known_size=4)))


def decode_topic(data: bytes | None) -> TopicAssignment:
    """Versions 1 to 3 (TopicZNode.decode); no data is an empty assignment."""
    js = _parse(data) or {}

    def by_partition(key: str) -> dict[int, list[int]]:
        return {int(p): [int(b) for b in r] for p, r in (js.get(key) or {}).items()}

    topic_id = js.get("topic_id")
    return TopicAssignment(
        partitions=dict(sorted(by_partition("partitions").items())),
        topic_id=uuid_from_str(topic_id) if topic_id else None,
        adding_replicas=by_partition("adding_replicas"),
        removing_replicas=by_partition("removing_replicas"))


# -- /brokers/topics/<t>/partitions/<p>/state ----------------------------------------

RECOVERED = 0  # LeaderRecoveryState
RECOVERING = 1


@dataclass
class PartitionState:
    """LeaderIsrAndControllerEpoch. The znode's version is the partition
    epoch that conditional writes compare."""
    leader: int  # -1: none
    leader_epoch: int
    isr: list[int]
    controller_epoch: int
    leader_recovery_state: int = RECOVERED


def encode_partition_state(state: PartitionState) -> bytes:
    """Version 1; leader_recovery_state only when not RECOVERED."""
    fields = {"version": 1, "leader": state.leader, "leader_epoch": state.leader_epoch,
              "controller_epoch": state.controller_epoch, "isr": list(state.isr)}
    if state.leader_recovery_state != RECOVERED:
        fields["leader_recovery_state"] = state.leader_recovery_state
    return _json(_ordered(fields, scala_immutable_map_order))


def decode_partition_state(data: bytes | None) -> PartitionState | None:
    js = _parse(data)
    if js is None:
        return None
    return PartitionState(
        leader=int(js["leader"]), leader_epoch=int(js["leader_epoch"]),
        isr=[int(b) for b in js["isr"]], controller_epoch=int(js["controller_epoch"]),
        leader_recovery_state=int(js.get("leader_recovery_state", RECOVERED)))


# -- /config/<type>/<name> and /config/changes -----------------------------------

def encode_config(config: dict[str, str]) -> bytes:
    """ConfigEntityZNode v1: {"version":1,"config":{...}}, the overrides in
    the order of the java.util.Properties Kafka fills (insertion order of
    `config` where that order matters)."""
    properties = _ordered({k: str(v) for k, v in config.items()}, java_properties_order)
    return _json({"version": 1, "config": properties})


def decode_config(data: bytes | None) -> dict[str, str]:
    js = _parse(data)
    config = js.get("config") if isinstance(js, dict) else None
    return {k: str(v) for k, v in (config or {}).items()}


def encode_config_change(entity_path: str) -> bytes:
    """Version 2; entity_path as `topics/<t>` (or `users/<u>/clients/<c>`)."""
    return _json({"version": 2, "entity_path": entity_path})


def decode_config_change(data: bytes) -> str:
    """The entity path, from version 2 or version 1 ({entity_type, entity_name})."""
    js = _parse(data)
    if js is None:
        raise ValueError(f"Config change notification has an unexpected value: {data!r}")
    version = int(js.get("version", 0))
    if version == 1:
        return f"{js['entity_type']}/{js['entity_name']}"
    if version == 2:
        return js["entity_path"]
    raise ValueError(f"Config change notification has unsupported version {version}")


# -- /latest_producer_id_block ------------------------------------------------------

PRODUCER_ID_BLOCK_SIZE = 1000  # ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE
MAX_PRODUCER_ID = 2**63 - 1


@dataclass(frozen=True)
class ProducerIdBlock:
    broker_id: int
    first_producer_id: int
    size: int = PRODUCER_ID_BLOCK_SIZE

    @property
    def last_producer_id(self) -> int:
        return self.first_producer_id + self.size - 1


def encode_producer_id_block(block: ProducerIdBlock) -> bytes:
    """Version 1; the ids as strings, as Kafka writes them."""
    return _json({"version": 1, "broker": block.broker_id,
                  "block_start": str(block.first_producer_id),
                  "block_end": str(block.last_producer_id)})


def decode_producer_id_block(data: bytes | None) -> ProducerIdBlock | None:
    """None when no block has been taken yet (the znode has no data)."""
    js = _parse(data)
    if js is None:
        return None
    start, end = int(js["block_start"]), int(js["block_end"])
    return ProducerIdBlock(int(js["broker"]), start, end - start + 1)


def next_producer_id_block(current: ProducerIdBlock | None, broker_id: int) -> ProducerIdBlock:
    """The block to write next, conditional on the version `current` was read
    at (ZkProducerIdManager.getNewProducerIdBlock)."""
    if current is None:
        return ProducerIdBlock(broker_id, 0)
    if current.last_producer_id > MAX_PRODUCER_ID - PRODUCER_ID_BLOCK_SIZE:
        raise OverflowError("Have exhausted all producerIds.")
    return ProducerIdBlock(broker_id, current.last_producer_id + 1)


# -- /feature -----------------------------------------------------------------------

def encode_feature() -> bytes:
    """FeatureZNode v2, enabled, with the finalized features of a Kafka 3.9
    ZooKeeper-mode cluster: none (its brokers support none)."""
    fields = {"version": 2, "status": 1, "features": {}}
    return _json(_ordered(fields, lambda keys: scala_mutable_map_order(keys, known_size=3)))


# -- JSON --------------------------------------------------------------------------

def _json(value) -> bytes:
    """Compact, non-ASCII as UTF-8: Jackson's ObjectMapper defaults."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _parse(data: bytes | None):
    """The JSON value, or None for no data (Json.parseBytes)."""
    if not data:
        return None
    return json.loads(data)


def _now(timestamp_ms: int | None) -> int:
    return int(time.time() * 1000) if timestamp_ms is None else timestamp_ms


def _ordered(mapping: dict, order) -> dict:
    return {key: mapping[key] for key in order(list(mapping))}


# -- JVM hash map iteration orders -------------------------------------------------
# Each takes the keys (strings) in insertion order and returns them in the
# order the JVM map iterates them. Checked against Kafka's own output and,
# for java.util.Properties, against a JDK 17.

def _i32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _ushr(x: int, n: int) -> int:
    return (x & 0xFFFFFFFF) >> n


def java_string_hash(text: str) -> int:
    """String.hashCode over UTF-16 code units."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return _i32(h)


def scala_mutable_map_order(keys: list[str], known_size: int | None = None) -> list[str]:
    """scala.collection.mutable.HashMap (2.13): buckets by the low bits of
    `h ^ (h >>> 16)`, each bucket sorted by that hash. `known_size`: the
    number of entries the map was built from (`mutable.Map(a, b, ...)`),
    which sizes its first table; None for an empty map grown by adding."""
    capacity = int((known_size + 1) / 0.75) if known_size else 16
    length = min(1 << max(capacity - 1, 4).bit_length(), 1 << 30)
    threshold, size = int(length * 0.75), 0
    for _ in keys:
        if size + 1 >= threshold:
            length *= 2
            threshold = int(length * 0.75)
        size += 1
    improved = {k: _i32(java_string_hash(k) ^ _ushr(java_string_hash(k), 16)) for k in keys}
    return sorted(keys, key=lambda k: (improved[k] & (length - 1), improved[k]))


def scala_immutable_map_order(keys: list[str]) -> list[str]:
    """scala.collection.immutable.Map (2.13): insertion order up to four
    entries (Map1..Map4); beyond, a CHAMP trie iterated depth first, each
    node's own entries before its sub-nodes, by 5-bit hash fragments."""
    if len(keys) <= 4:
        return list(keys)

    def improve(h: int) -> int:  # scala.collection.Hashing.improve
        h = _i32(h + ~_i32(h << 9))
        h = _i32(h ^ _ushr(h, 14))
        h = _i32(h + _i32(h << 4))
        return _i32(h ^ _ushr(h, 10))

    hashes = {k: improve(java_string_hash(k)) for k in keys}

    def walk(group: list[str], shift: int) -> list[str]:
        if shift >= 32:
            return group  # full hash collision: insertion order
        by_fragment: dict[int, list[str]] = {}
        for key in group:
            by_fragment.setdefault(_ushr(hashes[key], shift) & 31, []).append(key)
        fragments = sorted(by_fragment)
        own = [by_fragment[f][0] for f in fragments if len(by_fragment[f]) == 1]
        nested = [k for f in fragments if len(by_fragment[f]) > 1 for k in walk(by_fragment[f], shift + 5)]
        return own + nested

    return walk(list(keys), 0)


def java_properties_order(keys: list[str]) -> list[str]:
    """java.util.Properties on Java 9 and later (a ConcurrentHashMap of
    initial capacity 8; on Java 8 it was a Hashtable, iterated differently):
    bins by the low bits of the spread hash, each bin in insertion order; a
    resize (at 3/4 full) splits a bin, putting the nodes before its last run
    in reverse order. Bins long enough to become trees are not modelled."""
    def spread(key: str) -> int:
        h = java_string_hash(key)
        return (h ^ _ushr(h, 16)) & 0x7FFFFFFF

    length, count = 16, 0
    bins: dict[int, list[str]] = {}
    for key in keys:
        bucket = bins.setdefault(spread(key) & (length - 1), [])
        if key in bucket:
            continue
        bucket.append(key)
        count += 1
        if count >= length - (length >> 2):
            bins = _split_bins(bins, length, spread)
            length *= 2
    return [key for index in sorted(bins) for key in bins[index]]


def _split_bins(bins: dict[int, list[str]], length: int, spread) -> dict[int, list[str]]:
    """ConcurrentHashMap.transfer for one doubling."""
    split: dict[int, list[str]] = {}
    for index, nodes in bins.items():
        high = [bool(spread(k) & length) for k in nodes]
        last_run = len(nodes) - 1
        while last_run > 0 and high[last_run - 1] == high[-1]:
            last_run -= 1
        low_list: list[str] = []
        high_list: list[str] = []
        (high_list if high[-1] else low_list).extend(nodes[last_run:])
        for key, is_high in zip(nodes[:last_run], high[:last_run]):
            (high_list if is_high else low_list).insert(0, key)
        if low_list:
            split[index] = low_list
        if high_list:
            split[index + length] = high_list
    return split


# -- between registrations and the broker's own view --------------------------------

def registration_of(info: BrokerInfo) -> BrokerRegistration:
    return BrokerRegistration(info.node_id, tuple(
        Endpoint(name, e.host, e.port, e.security_protocol) for name, e in info.endpoints.items()), info.rack)


def broker_info_of(registration: BrokerRegistration) -> BrokerInfo:
    return BrokerInfo(registration.broker_id, {
        e.listener_name: BrokerEndpoint(e.host or "", e.port, e.security_protocol) for e in registration.endpoints
    }, registration.rack)
