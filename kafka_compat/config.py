"""Broker configuration under Apache Kafka's names, types, defaults and checks.

Three parts:

- the definition machinery Kafka's ``ConfigDef`` has: types, value syntax,
  validators, the string form values are reported in, and the error wording
  ("Invalid value X for configuration Y: Z");
- ``load_properties``: Java ``.properties`` files (server.properties);
- ``BrokerConfig``: the broker table (Kafka 3.9) and the parsed configuration,
  with what DescribeConfigs reports about it.

Topic-level configs build on this module and live in ``topic_config``;
``validate_topic_configs`` and ``describe_topic_configs`` are re-exported here.

Deliberate differences from Kafka, all for a broker that starts with no config:

- ``broker.id`` and ``node.id`` default to 0 (Kafka: -1, meaning "generate one
  from ZooKeeper"). An explicit -1 is still accepted and kept as -1.
- A listener with an empty host (the default ``PLAINTEXT://:9092``) binds
  127.0.0.1, not every interface; write 0.0.0.0 to listen everywhere.
- An advertised listener with an empty host advertises 127.0.0.1 (Kafka: the
  machine's canonical host name). As in Kafka, advertising 0.0.0.0 is an error,
  also when advertised.listeners is unset and listeners uses 0.0.0.0.
- ``zookeeper.connect`` is optional: unset means the local metadata store.
"""
from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)
LONG_MAX = 2**63 - 1
LONG_MIN = -(2**63)
SHORT_MAX = 2**15 - 1
SHORT_MIN = -(2**15)
DOUBLE_MAX = 1.7976931348623157e308


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line for the user."""


class ConfigType(IntEnum):
    """Config value types, numbered as DescribeConfigs' ConfigType field."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(IntEnum):
    """Where a value comes from, numbered as DescribeConfigs' ConfigSource field."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


@dataclass(frozen=True, slots=True)
class ConfigSynonym:
    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One config as DescribeConfigs (and CreateTopics) report it."""

    name: str
    value: str | None
    read_only: bool
    source: ConfigSource
    is_sensitive: bool
    synonyms: tuple[ConfigSynonym, ...]
    config_type: ConfigType
    documentation: str | None = None

    @property
    def is_default(self) -> bool:
        """DescribeConfigs v0's IsDefault."""
        return self.source == ConfigSource.DEFAULT_CONFIG


# -- values: syntax, display, errors -------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[fFdD]?)")
_LIST_SEPARATOR = re.compile(r"\s*,\s*")
_INTEGER_BOUNDS = {
    ConfigType.SHORT: (SHORT_MIN, SHORT_MAX),
    ConfigType.INT: (INT_MIN, INT_MAX),
    ConfigType.LONG: (LONG_MIN, LONG_MAX),
}


def java_double_str(x: float) -> str:
    """Java's Double.toString: '0.5', '100.0', '1.0E7', '1.7976931348623157E308'."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    text = repr(x)
    if 1e-3 <= abs(x) < 1e7:
        return text  # repr is positional with a fractional digit in this range
    exact = Decimal(text)
    digits = "".join(map(str, exact.as_tuple().digits)).rstrip("0") or "0"
    sign = "-" if x < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exact.adjusted()}"


def display(value: Any) -> str:
    """A parsed value the way Java prints it inside an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return str(value)


def invalid(name: str, value: Any, message: str) -> ConfigError:
    return ConfigError(f"Invalid value {display(value)} for configuration {name}: {message}")


def parse_value(name: str, config_type: ConfigType, raw: str) -> Any:
    """Kafka's ConfigDef.parseType for a string value."""
    text = raw.strip()
    if config_type is ConfigType.BOOLEAN:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise invalid(name, raw, "Expected value to be either true or false")
    if config_type in _INTEGER_BOUNDS:
        low, high = _INTEGER_BOUNDS[config_type]
        if _INTEGER.fullmatch(text) and low <= int(text) <= high:
            return int(text)
        raise invalid(name, raw, f"Not a number of type {config_type.name}")
    if config_type is ConfigType.DOUBLE:
        if _DOUBLE.fullmatch(text):
            return float(text.rstrip("fFdD"))
        raise invalid(name, raw, f"Not a number of type {config_type.name}")
    if config_type is ConfigType.LIST:
        return _LIST_SEPARATOR.split(text) if text else []
    return text  # STRING, PASSWORD, CLASS


def to_string(value: Any, config_type: ConfigType) -> str | None:
    """Kafka's ConfigDef.convertToString: how a parsed value is reported."""
    if value is None:
        return None
    if config_type is ConfigType.BOOLEAN:
        return "true" if value else "false"
    if config_type is ConfigType.DOUBLE:
        return java_double_str(value)
    if config_type is ConfigType.LIST:
        return ",".join(value)
    return str(value)


def property_string(value: object) -> str:
    """A programmatic value (3, True, ['a']) written as it would be in a file."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


# -- validators ------------------------------------------------------------------
# Each is called with (name, parsed value) and raises ConfigError with Kafka's text.


@dataclass(frozen=True, slots=True)
class Range:
    min: int | float | None = None
    max: int | float | None = None

    def __call__(self, name: str, value: Any) -> None:
        if self.min is not None and value < self.min:
            raise invalid(name, value, f"Value must be at least {self.min}")
        if self.max is not None and value > self.max:
            raise invalid(name, value, f"Value must be no more than {self.max}")


def at_least(minimum: int | float) -> Range:
    return Range(minimum, None)


def between(minimum: int | float, maximum: int | float) -> Range:
    return Range(minimum, maximum)


@dataclass(frozen=True, slots=True)
class OneOf:
    """ValidString (a STRING) or ValidList (each element of a LIST)."""

    choices: tuple[str, ...]

    def __call__(self, name: str, value: Any) -> None:
        for item in value if isinstance(value, list) else [value]:
            if item not in self.choices:
                raise invalid(name, item, "String must be one of: " + ", ".join(self.choices))


def one_of(*choices: str) -> OneOf:
    return OneOf(choices)


@dataclass(frozen=True, slots=True)
class RangeOrSentinel:
    """A level in [min, max] or one special value (gzip: 1..9 or -1)."""

    min: int
    max: int
    sentinel: int

    def __call__(self, name: str, value: Any) -> None:
        if value != self.sentinel and not self.min <= value <= self.max:
            raise invalid(name, value, f"Value must be between {self.min} and {self.max} or equal to {self.sentinel}")


def throttled_replicas(name: str, value: Any) -> None:
    items = [item.strip() for item in value]
    if not (all(re.fullmatch(r"([0-9]+:[0-9]+)?", item) for item in items) or "".join(items) == "*"):
        raise invalid(
            name,
            value,
            f"{name} must be the literal '*' or a list of replicas in the following format: "
            "[partitionId]:[brokerId],[partitionId]:[brokerId],...",
        )


# Kafka's MetadataVersion strings up to 3.9, oldest first. A version may be
# given in full ('2.8-IV1') or short ('2.8' = the latest IV of 2.8; '0.10.0.1'
# = '0.10.0').
METADATA_VERSIONS: tuple[str, ...] = (
    "0.8.0", "0.8.1", "0.8.2", "0.9.0",
    "0.10.0-IV0", "0.10.0-IV1", "0.10.1-IV0", "0.10.1-IV1", "0.10.1-IV2", "0.10.2-IV0",
    "0.11.0-IV0", "0.11.0-IV1", "0.11.0-IV2", "1.0-IV0", "1.1-IV0",
    "2.0-IV0", "2.0-IV1", "2.1-IV0", "2.1-IV1", "2.1-IV2", "2.2-IV0", "2.2-IV1",
    "2.3-IV0", "2.3-IV1", "2.4-IV0", "2.4-IV1", "2.5-IV0", "2.6-IV0",
    "2.7-IV0", "2.7-IV1", "2.7-IV2", "2.8-IV0", "2.8-IV1",
    "3.0-IV0", "3.0-IV1", "3.1-IV0", "3.2-IV0", "3.3-IV0", "3.3-IV1", "3.3-IV2", "3.3-IV3",
    "3.4-IV0", "3.5-IV0", "3.5-IV1", "3.5-IV2", "3.6-IV0", "3.6-IV1", "3.6-IV2",
    "3.7-IV0", "3.7-IV1", "3.7-IV2", "3.7-IV3", "3.7-IV4", "3.8-IV0", "3.9-IV0",
)
_METADATA_VERSION_KEYS = {v: v for v in METADATA_VERSIONS} | {v.split("-")[0]: v for v in METADATA_VERSIONS}


def metadata_version(text: str) -> str | None:
    """Kafka's MetadataVersion.fromVersionString: the full version, or None."""
    segments = text.split(".")
    kept = 3 if text.startswith("0.") else 2
    key = text if len(segments) <= kept else ".".join(segments[:kept])
    return _METADATA_VERSION_KEYS.get(key)


def valid_metadata_version(name: str, value: Any) -> None:
    if metadata_version(value) is None:
        raise invalid(name, value, f"Version {value} is not a valid version")


# -- definitions -------------------------------------------------------------------

Validator = Callable[[str, Any], None]


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One config: Kafka's name, type, default (parsed) and validator.

    ``dynamic`` mirrors Kafka's dynamically updatable broker configs: DescribeConfigs
    reports every other broker config as read-only. ``internal`` mirrors
    Kafka's defineInternal (configs for tests and tuning): DescribeConfigs
    lists one only when it is supplied.
    """

    name: str
    type: ConfigType
    default: Any
    validator: Validator | None = None
    dynamic: bool = False
    internal: bool = False

    def parse(self, raw: str) -> Any:
        value = parse_value(self.name, self.type, raw)
        if self.validator is not None:
            self.validator(self.name, value)
        return value


def config_table(*definitions: ConfigDef) -> dict[str, ConfigDef]:
    return {d.name: d for d in definitions}


# -- Java .properties ------------------------------------------------------------------

_NATURAL_LINE = re.compile(r"\r\n|\r|\n")
_BLANK = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u":
            code = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", code):
                raise ValueError("Malformed \\uxxxx encoding.")
            out.append(chr(int(code, 16)))
            i += 6
        else:
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


def _split_key_value(line: str) -> tuple[str, str]:
    """Java's rule: the key ends at the first unescaped '=', ':' or blank; blanks
    and one '=' or ':' around the separator are skipped."""
    i = 0
    while i < len(line) and line[i] not in "=:" + _BLANK:
        i += 2 if line[i] == "\\" else 1
    key, rest = line[:i], line[i:].lstrip(_BLANK)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANK)
    return key, rest


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java .properties text: '#'/'!' comments, 'k=v', 'k: v' or 'k v',
    trailing-backslash continuations, and \\t \\n \\r \\f \\uXXXX escapes. Leading
    blanks are dropped; trailing ones are kept, as Java does. Later keys win."""
    props: dict[str, str] = {}
    lines = _NATURAL_LINE.split(text)
    n = 0
    while n < len(lines):
        line = lines[n].lstrip(_BLANK)
        n += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line):
            line = line[:-1]
            if n == len(lines):
                break
            line += lines[n].lstrip(_BLANK)
            n += 1
        key, value = _split_key_value(line)
        try:
            props[_unescape(key)] = _unescape(value)
        except ValueError as e:
            raise ConfigError(f"line {n}: {e}") from None
    return props


def load_properties(path: str) -> dict[str, str]:
    """Read a server.properties file. Text is UTF-8; a file that is not valid
    UTF-8 is read as ISO-8859-1, the encoding Java's Properties.load uses."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-1")
    try:
        return parse_properties(text)
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None


# -- the broker's configs (Kafka 3.9) ---------------------------------------------------

# Short type names for the config tables.
B, S, I, H, L, D, LI, P = (
    ConfigType.BOOLEAN, ConfigType.STRING, ConfigType.INT, ConfigType.SHORT,
    ConfigType.LONG, ConfigType.DOUBLE, ConfigType.LIST, ConfigType.PASSWORD,
)
COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
DEFAULT_SECURITY_PROTOCOL_MAP = "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"
GZIP_LEVEL = RangeOrSentinel(1, 9, -1)
LZ4_LEVEL = between(1, 17)
ZSTD_LEVEL = between(-131072, 22)
HOUR_MS = 3600 * 1000

# fmt: off
BROKER_CONFIGS: dict[str, ConfigDef] = config_table(
    # server
    ConfigDef("broker.id", I, 0),  # Kafka: -1 (see the module docstring)
    ConfigDef("node.id", I, 0),  # Kafka: -1
    ConfigDef("broker.id.generation.enable", B, True),
    ConfigDef("reserved.broker.max.id", I, 1000, at_least(0)),
    ConfigDef("broker.rack", S, None),
    ConfigDef("message.max.bytes", I, 1048588, at_least(0), dynamic=True),
    ConfigDef("num.io.threads", I, 8, at_least(1), dynamic=True),
    ConfigDef("background.threads", I, 10, at_least(1), dynamic=True),
    ConfigDef("request.timeout.ms", I, 30000),
    ConfigDef("delete.topic.enable", B, True),
    ConfigDef("auto.create.topics.enable", B, True),
    ConfigDef("num.partitions", I, 1, at_least(1)),
    ConfigDef("default.replication.factor", I, 1),
    ConfigDef("min.insync.replicas", I, 1, at_least(1), dynamic=True),
    ConfigDef("unclean.leader.election.enable", B, False, dynamic=True),
    ConfigDef("compression.type", S, "producer", one_of(*COMPRESSION_TYPES), dynamic=True),
    ConfigDef("compression.gzip.level", I, -1, GZIP_LEVEL, dynamic=True),
    ConfigDef("compression.lz4.level", I, 9, LZ4_LEVEL, dynamic=True),
    ConfigDef("compression.zstd.level", I, 3, ZSTD_LEVEL, dynamic=True),
    ConfigDef("controlled.shutdown.enable", B, True),
    ConfigDef("controlled.shutdown.max.retries", I, 3),
    ConfigDef("controlled.shutdown.retry.backoff.ms", L, 5000),
    ConfigDef("fetch.max.bytes", I, 57671680, at_least(1024)),
    ConfigDef("max.incremental.fetch.session.cache.slots", I, 1000, at_least(0)),
    ConfigDef("inter.broker.protocol.version", S, "3.9-IV0", valid_metadata_version),
    # socket server
    ConfigDef("listeners", S, "PLAINTEXT://:9092", dynamic=True),
    ConfigDef("advertised.listeners", S, None, dynamic=True),
    ConfigDef("listener.security.protocol.map", S, DEFAULT_SECURITY_PROTOCOL_MAP, dynamic=True),
    ConfigDef("num.network.threads", I, 3, at_least(1), dynamic=True),
    ConfigDef("socket.send.buffer.bytes", I, 102400),
    ConfigDef("socket.receive.buffer.bytes", I, 102400),
    ConfigDef("socket.request.max.bytes", I, 104857600, at_least(1)),
    ConfigDef("socket.listen.backlog.size", I, 50, at_least(1)),
    ConfigDef("max.connections.per.ip", I, INT_MAX, at_least(0), dynamic=True),
    ConfigDef("max.connections.per.ip.overrides", S, "", dynamic=True),
    ConfigDef("max.connections", I, INT_MAX, at_least(0), dynamic=True),
    ConfigDef("max.connection.creation.rate", I, INT_MAX, at_least(0), dynamic=True),
    ConfigDef("connections.max.idle.ms", L, 600000),
    ConfigDef("queued.max.requests", I, 500, at_least(1)),
    # log
    ConfigDef("log.dir", S, "/tmp/kafka-logs"),
    ConfigDef("log.dirs", S, None),
    ConfigDef("log.segment.bytes", I, 1073741824, at_least(14), dynamic=True),
    ConfigDef("log.roll.ms", L, None, dynamic=True),
    ConfigDef("log.roll.hours", I, 168, at_least(1)),
    ConfigDef("log.roll.jitter.ms", L, None, dynamic=True),
    ConfigDef("log.roll.jitter.hours", I, 0, at_least(0)),
    ConfigDef("log.retention.ms", L, None, dynamic=True),
    ConfigDef("log.retention.minutes", I, None),
    ConfigDef("log.retention.hours", I, 168),
    ConfigDef("log.retention.bytes", L, -1, dynamic=True),
    ConfigDef("log.retention.check.interval.ms", L, 300000, at_least(1)),
    ConfigDef("log.cleanup.policy", LI, ["delete"], one_of("compact", "delete"), dynamic=True),
    ConfigDef("log.index.size.max.bytes", I, 10485760, at_least(4), dynamic=True),
    ConfigDef("log.index.interval.bytes", I, 4096, at_least(0), dynamic=True),
    ConfigDef("log.flush.interval.messages", L, LONG_MAX, at_least(1), dynamic=True),
    ConfigDef("log.flush.interval.ms", L, None, dynamic=True),
    ConfigDef("log.flush.scheduler.interval.ms", L, LONG_MAX),
    ConfigDef("log.flush.offset.checkpoint.interval.ms", I, 60000, at_least(0)),
    ConfigDef("log.flush.start.offset.checkpoint.interval.ms", I, 60000, at_least(0)),
    ConfigDef("log.segment.delete.delay.ms", L, 60000, at_least(0), dynamic=True),
    ConfigDef("log.preallocate", B, False, dynamic=True),
    ConfigDef("num.recovery.threads.per.data.dir", I, 1, at_least(1), dynamic=True),
    ConfigDef("log.message.format.version", S, "3.0-IV1", valid_metadata_version),
    ConfigDef("log.message.timestamp.type", S, "CreateTime", one_of("CreateTime", "LogAppendTime"), dynamic=True),
    ConfigDef("log.message.timestamp.difference.max.ms", L, LONG_MAX, at_least(0), dynamic=True),
    ConfigDef("log.message.timestamp.before.max.ms", L, LONG_MAX, at_least(0), dynamic=True),
    ConfigDef("log.message.timestamp.after.max.ms", L, LONG_MAX, at_least(0), dynamic=True),
    ConfigDef("log.message.downconversion.enable", B, True, dynamic=True),
    ConfigDef("log.local.retention.ms", L, -2, at_least(-2), dynamic=True),
    ConfigDef("log.local.retention.bytes", L, -2, at_least(-2), dynamic=True),
    # log cleaner
    ConfigDef("log.cleaner.enable", B, True),
    ConfigDef("log.cleaner.threads", I, 1, at_least(0), dynamic=True),
    ConfigDef("log.cleaner.io.max.bytes.per.second", D, DOUBLE_MAX, dynamic=True),
    ConfigDef("log.cleaner.dedupe.buffer.size", L, 134217728, dynamic=True),
    ConfigDef("log.cleaner.io.buffer.size", I, 524288, at_least(0), dynamic=True),
    ConfigDef("log.cleaner.io.buffer.load.factor", D, 0.9, dynamic=True),
    ConfigDef("log.cleaner.backoff.ms", L, 15000, at_least(0), dynamic=True),
    ConfigDef("log.cleaner.min.cleanable.ratio", D, 0.5, between(0, 1), dynamic=True),
    ConfigDef("log.cleaner.delete.retention.ms", L, 86400000, at_least(0), dynamic=True),
    ConfigDef("log.cleaner.min.compaction.lag.ms", L, 0, at_least(0), dynamic=True),
    ConfigDef("log.cleaner.max.compaction.lag.ms", L, LONG_MAX, at_least(1), dynamic=True),
    # replication
    ConfigDef("replica.lag.time.max.ms", L, 30000),
    ConfigDef("replica.socket.timeout.ms", I, 30000),
    ConfigDef("replica.socket.receive.buffer.bytes", I, 65536),
    ConfigDef("replica.fetch.max.bytes", I, 1048576, at_least(0)),
    ConfigDef("replica.fetch.wait.max.ms", I, 500),
    ConfigDef("replica.fetch.backoff.ms", I, 1000, at_least(0)),
    ConfigDef("replica.fetch.min.bytes", I, 1),
    ConfigDef("replica.fetch.response.max.bytes", I, 10485760, at_least(0)),
    ConfigDef("num.replica.fetchers", I, 1, dynamic=True),
    ConfigDef("replica.high.watermark.checkpoint.interval.ms", L, 5000),
    ConfigDef("controller.socket.timeout.ms", I, 30000),
    ConfigDef("auto.leader.rebalance.enable", B, True),
    ConfigDef("leader.imbalance.per.broker.percentage", I, 10),
    ConfigDef("leader.imbalance.check.interval.seconds", L, 300, at_least(1)),
    ConfigDef("security.inter.broker.protocol", S, "PLAINTEXT", one_of(*SECURITY_PROTOCOLS)),
    ConfigDef("inter.broker.listener.name", S, None),
    # ZooKeeper
    ConfigDef("zookeeper.connect", S, None),
    ConfigDef("zookeeper.session.timeout.ms", I, 18000),
    ConfigDef("zookeeper.connection.timeout.ms", I, None),
    ConfigDef("zookeeper.max.in.flight.requests", I, 10, at_least(1)),
    ConfigDef("zookeeper.set.acl", B, False),
    # group coordinator
    ConfigDef("group.min.session.timeout.ms", I, 6000),
    ConfigDef("group.max.session.timeout.ms", I, 1800000),
    ConfigDef("group.initial.rebalance.delay.ms", I, 3000),
    ConfigDef("group.max.size", I, INT_MAX, at_least(1)),
    ConfigDef("offset.metadata.max.bytes", I, 4096),
    ConfigDef("offsets.load.buffer.size", I, 5242880, at_least(1)),
    ConfigDef("offsets.topic.replication.factor", H, 3, at_least(1)),
    ConfigDef("offsets.topic.num.partitions", I, 50, at_least(1)),
    ConfigDef("offsets.topic.segment.bytes", I, 104857600, at_least(1)),
    ConfigDef("offsets.topic.compression.codec", I, 0),
    ConfigDef("offsets.retention.minutes", I, 10080, at_least(1)),
    ConfigDef("offsets.retention.check.interval.ms", L, 600000, at_least(1)),
    ConfigDef("offsets.commit.timeout.ms", I, 5000, at_least(1)),
    # transactions
    ConfigDef("transaction.state.log.num.partitions", I, 50, at_least(1)),
    ConfigDef("transaction.state.log.segment.bytes", I, 104857600, at_least(1)),
    ConfigDef("transaction.state.log.replication.factor", H, 3, at_least(1)),
    ConfigDef("transaction.state.log.min.isr", I, 2, at_least(1)),
    ConfigDef("transaction.state.log.load.buffer.size", I, 5242880, at_least(1)),
    ConfigDef("transaction.partition.verification.enable", B, True, dynamic=True),
    ConfigDef("producer.id.expiration.ms", I, 86400000, at_least(1), dynamic=True),
    ConfigDef("producer.id.expiration.check.interval.ms", I, 600000, at_least(1), internal=True),
    ConfigDef("transactional.id.expiration.ms", I, 604800000, at_least(1)),
    ConfigDef("transaction.max.timeout.ms", I, 900000, at_least(1)),
    ConfigDef("transaction.abort.timed.out.transaction.cleanup.interval.ms", I, 10000, at_least(1)),
    ConfigDef("transaction.remove.expired.transaction.cleanup.interval.ms", I, 3600000, at_least(1)),
    # security
    ConfigDef("sasl.enabled.mechanisms", LI, ["GSSAPI"], dynamic=True),
    ConfigDef("sasl.mechanism.inter.broker.protocol", S, "GSSAPI", dynamic=True),
    ConfigDef("sasl.jaas.config", P, None, dynamic=True),
    ConfigDef("ssl.client.auth", S, "none", one_of("required", "requested", "none"), dynamic=True),
    ConfigDef("ssl.keystore.type", S, "JKS", dynamic=True),
    ConfigDef("ssl.keystore.location", S, None, dynamic=True),
    ConfigDef("ssl.keystore.password", P, None, dynamic=True),
    ConfigDef("ssl.key.password", P, None, dynamic=True),
    ConfigDef("ssl.truststore.type", S, "JKS", dynamic=True),
    ConfigDef("ssl.truststore.location", S, None, dynamic=True),
    ConfigDef("ssl.truststore.password", P, None, dynamic=True),
)
# fmt: on

# What replication honours (kafka_compat/replica/: the fetchers, the ISR, the
# high watermark checkpoint).
REPLICATION_CONFIGS = (
    "num.replica.fetchers", "replica.fetch.max.bytes", "replica.fetch.wait.max.ms", "replica.fetch.min.bytes",
    "replica.fetch.response.max.bytes", "replica.fetch.backoff.ms", "replica.socket.timeout.ms",
    "replica.lag.time.max.ms", "replica.high.watermark.checkpoint.interval.ms",
)

# Broker configs accepted (parsed, validated, reported by DescribeConfigs) that
# change nothing here yet; a user who sets one is warned at start-up
# (docs/compatibility.md explains each group). Checked against the code: none
# is read outside this module.
IGNORED_CONFIGS: frozenset[str] = frozenset(
    (
        # one event loop serves every connection
        "num.network.threads", "num.io.threads", "background.threads", "num.recovery.threads.per.data.dir",
        # not applied yet
        "request.timeout.ms",
        # sockets keep the operating system's buffer sizes and backlog
        "socket.send.buffer.bytes", "socket.receive.buffer.bytes", "socket.listen.backlog.size",
        "max.connection.creation.rate",
        # replication: no socket buffer sizes nor replica selector; no ZooKeeper tuning
        *(name for name in BROKER_CONFIGS if name.startswith(("replica.", "zookeeper."))
          and name not in ("zookeeper.connect", "zookeeper.session.timeout.ms", "zookeeper.connection.timeout.ms")
          and name not in REPLICATION_CONFIGS),
        # only PLAINTEXT listeners (a listener of another protocol stops the broker)
        *(name for name in BROKER_CONFIGS if name.startswith(("ssl.", "sasl."))),
    )
)

# Broker configs that set one value in different units, in order of precedence
# (Kafka's DynamicBrokerConfig.brokerConfigSynonyms).
_UNIT_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("log.roll.ms", "log.roll.hours"),
    ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
)
_LISTENER_OVERRIDE = re.compile(r"listener\.name\.[^.]*\.(.*)")
_HOST_PATTERN = re.compile(r"[0-9a-zA-Z\-%._:]*")  # Kafka's Utils.validHostPattern
# Set per listener and SASL mechanism: listener.name.<l>.<mechanism>.<config>.
_LISTENER_MECHANISM_CONFIGS = (
    "sasl.jaas.config",
    "sasl.login.callback.handler.class",
    "sasl.login.class",
    "sasl.server.callback.handler.class",
    "connections.max.reauth.ms",
)


def broker_synonyms(name: str) -> list[str]:
    """The names that set the same broker value, highest precedence first."""
    for group in _UNIT_SYNONYMS:
        if name in group:
            return list(group)
    if name == "log.flush.interval.ms":  # unset, the scheduler interval is used
        return [name, "log.flush.scheduler.interval.ms"]
    match = _LISTENER_OVERRIDE.fullmatch(name)
    if match:
        base = match.group(1)
        return [name, next((m for m in _LISTENER_MECHANISM_CONFIGS if base.endswith(m)), base)]
    return [name]


def broker_config_type(name: str) -> ConfigType | None:
    """Kafka's KafkaConfig.configType: the config's own type if it has one
    (log.retention.hours is an INT though its synonym log.retention.ms is a
    LONG), else a synonym's (a listener override has its base config's type)."""
    if name in BROKER_CONFIGS:
        return BROKER_CONFIGS[name].type
    for synonym in broker_synonyms(name):
        if synonym in BROKER_CONFIGS:
            return BROKER_CONFIGS[synonym].type
    return None


@dataclass(frozen=True, slots=True)
class Listener:
    """An endpoint from listeners / advertised.listeners."""

    name: str
    host: str
    port: int
    security_protocol: str


_ENDPOINT = re.compile(r"(.*)://\[?([0-9a-zA-Z\-%._:]*)\]?:(-?[0-9]+)")
DEV_HOST = "127.0.0.1"


def _csv(text: str) -> list[str]:
    return [item for item in _LIST_SEPARATOR.split(text) if item] if text else []


def _parse_protocol_map(text: str) -> dict[str, str]:
    protocols: dict[str, str] = {}
    for item in _csv(text):
        name, sep, protocol = item.rpartition(":")
        if not sep:
            raise ConfigError(
                f"Error parsing configuration property 'listener.security.protocol.map': "
                f"expected LISTENER_NAME:SECURITY_PROTOCOL, got '{item}'"
            )
        if protocol.strip().upper() not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"Invalid security protocol `{protocol.strip()}` defined in listener.security.protocol.map"
            )
        protocols[name.strip().upper()] = protocol.strip().upper()
    return protocols


def _parse_endpoints(text: str, protocols: Mapping[str, str]) -> list[Listener]:
    endpoints = []
    for entry in _csv(text.strip()):
        match = _ENDPOINT.fullmatch(entry)
        if not match or not 0 <= int(match.group(3)) <= 65535:
            raise ConfigError(
                f"Error creating broker listeners from '{text}': Unable to parse {entry} to a broker endpoint"
            )
        name = match.group(1).upper()
        if name not in protocols:
            raise ConfigError(
                f"Error creating broker listeners from '{text}': No security protocol defined for listener {name}"
            )
        endpoints.append(Listener(name, match.group(2), int(match.group(3)), protocols[name]))
    if len({e.name for e in endpoints}) != len(endpoints):
        raise ConfigError(f"Each listener must have a different name, listeners: {text}")
    return endpoints


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _check_distinct_ports(endpoints: Iterable[Listener], text: str) -> None:
    """Ports must differ, except that an IPv4 and an IPv6 address may share one
    (port 0, 'any free port', may repeat)."""
    by_port: dict[int, list[Listener]] = {}
    for e in endpoints:
        if e.port != 0:
            by_port.setdefault(e.port, []).append(e)
    for same in by_port.values():
        if len(same) > 1 and sorted(_ip_version(e.host) or 0 for e in same) != [4, 6]:
            raise ConfigError(f"Each listener must have a different port, listeners: {text}")


def _effective_ms(values: Mapping[str, Any], names: tuple[str, ...], units_ms: tuple[int, ...]) -> int:
    """The first of several unit synonyms that is set, in milliseconds."""
    for name, unit in zip(names, units_ms):
        if values[name] is not None:
            return values[name] * unit
    raise AssertionError(f"{names[-1]} has a default")


class BrokerConfig:
    """The broker's configuration: Kafka's defaults < properties < overrides.

    Every known config is a plain attribute named after it with dots as
    underscores (``num_partitions``, ``auto_create_topics_enable``), holding the
    parsed value; a few hold the value Kafka actually uses instead:

    - ``listeners`` / ``advertised_listeners``: tuples of ``Listener``, hosts
      resolved as the module docstring says (advertised defaults to listeners);
    - ``listener_security_protocol_map``: dict listener name -> protocol;
    - ``inter_broker_listener_name``: the advertised listener brokers reach
      each other on (inter.broker.listener.name, else the listener named after
      security.inter.broker.protocol); a broker's registration
      (``BrokerInfo.endpoint(name)``) gives its address there;
    - ``log_dirs``: tuple of directories (log.dirs, else log.dir);
    - ``log_retention_ms``, ``log_roll_ms``, ``log_roll_jitter_ms``: resolved
      from their minutes/hours synonyms (ms over minutes over hours), and a
      negative retention is -1 (unlimited), as in Kafka;
    - ``log_flush_interval_ms``: log.flush.scheduler.interval.ms when unset;
    - ``log_message_timestamp_before_max_ms`` / ``..._after_max_ms``: the
      deprecated difference.max.ms when left at their default (KIP-937);
    - ``log_message_format_version``: 3.0-IV1 whenever
      inter.broker.protocol.version >= 3.0-IV1, which ignores it.
    - ``max_connections_per_ip_overrides``: dict host -> maximum.

    ``values`` holds every known config parsed as given (or its default),
    ``originals`` what was supplied, and ``unknown_keys`` the supplied names
    Kafka would warn about ("The configuration 'x' was supplied but isn't a
    known config."). Overrides of the form listener.name.<listener>.<config> are
    kept in ``originals`` for the listener that reads them.
    """

    def __init__(self, properties: Mapping[str, object] | None = None, overrides: Mapping[str, object] | None = None):
        originals = {k: property_string(v) for k, v in {**(properties or {}), **(overrides or {})}.items()}
        # Kafka fills node.id from broker.id and the reverse when only one is given.
        if "broker.id" in originals and "node.id" not in originals:
            originals["node.id"] = originals["broker.id"]
        elif "node.id" in originals and "broker.id" not in originals:
            originals["broker.id"] = originals["node.id"]
        self.originals: dict[str, str] = originals
        self.unknown_keys: tuple[str, ...] = tuple(
            k for k in originals if k not in BROKER_CONFIGS and not _LISTENER_OVERRIDE.fullmatch(k)
        )
        self.values: dict[str, Any] = {
            name: definition.default if name not in originals else definition.parse(originals[name])
            for name, definition in BROKER_CONFIGS.items()
        }
        for name, value in self.values.items():
            setattr(self, name.replace(".", "_"), value)
        self._resolve()
        self._topic_defaults: dict[str, Any] | None = None

    @classmethod
    def from_properties(
        cls, properties: Mapping[str, object], overrides: Mapping[str, object] | None = None
    ) -> BrokerConfig:
        """The same as ``BrokerConfig(properties, overrides)``."""
        return cls(properties, overrides)

    # -- what Kafka derives --------------------------------------------------------
    def _resolve(self) -> None:
        v = self.values
        self.log_roll_ms = _effective_ms(v, ("log.roll.ms", "log.roll.hours"), (1, HOUR_MS))
        self.log_roll_jitter_ms = _effective_ms(v, ("log.roll.jitter.ms", "log.roll.jitter.hours"), (1, HOUR_MS))
        retention = _effective_ms(
            v, ("log.retention.ms", "log.retention.minutes", "log.retention.hours"), (1, 60 * 1000, HOUR_MS)
        )
        self.log_retention_ms = -1 if retention < 0 else retention
        if v["log.flush.interval.ms"] is None:
            self.log_flush_interval_ms = v["log.flush.scheduler.interval.ms"]
        difference = v["log.message.timestamp.difference.max.ms"]
        for kind in ("before", "after"):
            value = v[f"log.message.timestamp.{kind}.max.ms"]
            setattr(self, f"log_message_timestamp_{kind}_max_ms", difference if value == LONG_MAX else value)
        ibp = metadata_version(v["inter.broker.protocol.version"])
        ignores_format = METADATA_VERSIONS.index(ibp) >= METADATA_VERSIONS.index("3.0-IV1")
        fmt = "3.0-IV1" if ignores_format else v["log.message.format.version"]
        self.log_message_format_version = metadata_version(fmt)
        dirs = v["log.dirs"] if v["log.dirs"] is not None else v["log.dir"]
        self.log_dirs = tuple(_csv(dirs))
        self._check_values()
        self._resolve_listeners()
        self._resolve_connection_quotas()

    def _check_values(self) -> None:
        """KafkaConfig.validateValues, for the configs this broker has."""
        v, o = self.values, self.originals
        if "broker.id" in o and "node.id" in o and v["broker.id"] != v["node.id"]:
            raise ConfigError("You must set `node.id` to the same value as `broker.id`.")
        broker_id = v["broker.id"]
        if v["broker.id.generation.enable"]:
            if not -1 <= broker_id <= v["reserved.broker.max.id"]:
                raise invalid(
                    "broker.id", broker_id,
                    "must be greater than or equal to -1 and not greater than reserved.broker.max.id "
                    f"({v['reserved.broker.max.id']})",
                )
        elif broker_id < 0:
            raise invalid("broker.id", broker_id, "must be greater than or equal to 0")
        if self.log_roll_ms < 1:
            raise ConfigError("log.roll.ms must be greater than or equal to 1")
        if self.log_roll_jitter_ms < 0:
            raise ConfigError("log.roll.jitter.ms must be greater than or equal to 0")
        if self.log_retention_ms == 0:
            raise ConfigError("log.retention.ms must be unlimited (-1) or, greater than or equal to 1")
        if not self.log_dirs:
            raise ConfigError("At least one log directory must be defined via log.dirs or log.dir.")
        threads = v["log.cleaner.threads"]
        if threads > 0 and v["log.cleaner.dedupe.buffer.size"] // threads <= 1024 * 1024:
            raise ConfigError("log.cleaner.dedupe.buffer.size must be at least 1MB per cleaner thread.")
        if v["replica.fetch.wait.max.ms"] > v["replica.socket.timeout.ms"]:
            raise ConfigError(
                "replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms "
                "to prevent unnecessary socket timeouts"
            )
        if v["replica.fetch.wait.max.ms"] > v["replica.lag.time.max.ms"]:
            raise ConfigError(
                "replica.fetch.wait.max.ms should always be less than or equal to replica.lag.time.max.ms "
                "to prevent frequent changes in ISR"
            )

    def _resolve_listeners(self) -> None:
        v, o = self.values, self.originals
        protocols = _parse_protocol_map(v["listener.security.protocol.map"])
        self.listener_security_protocol_map = protocols
        listeners = _parse_endpoints(v["listeners"], protocols)
        _check_distinct_ports(listeners, v["listeners"])
        if v["advertised.listeners"] is None:
            advertised = listeners
        else:
            advertised = _parse_endpoints(v["advertised.listeners"], protocols)

        if v["inter.broker.listener.name"] is not None:
            if "security.inter.broker.protocol" in o:
                raise ConfigError(
                    "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set."
                )
            inter_broker = v["inter.broker.listener.name"].upper()
            if inter_broker not in protocols:
                raise ConfigError(
                    f"Listener with name {inter_broker} defined in inter.broker.listener.name "
                    "not found in listener.security.protocol.map."
                )
        else:
            inter_broker = v["security.inter.broker.protocol"]
        advertised_names = [e.name for e in advertised]
        if not advertised:
            raise ConfigError("There must be at least one broker advertised listener.")
        if inter_broker not in advertised_names:
            raise ConfigError(
                "inter.broker.listener.name must be a listener name defined in advertised.listeners. "
                f"The valid options based on currently configured listeners are {','.join(advertised_names)}"
            )
        listener_names = [e.name for e in listeners]
        if not set(advertised_names) <= set(listener_names):
            raise ConfigError(
                "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. "
                f"Found {','.join(advertised_names)}. The valid options based on the current configuration "
                f"are {','.join(listener_names)}"
            )
        if any(e.host == "0.0.0.0" for e in advertised):
            raise ConfigError(
                "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address."
            )
        self.inter_broker_listener_name = inter_broker
        self.listeners = tuple(_with_host(e) for e in listeners)
        self.advertised_listeners = tuple(_with_host(e) for e in advertised)

    def _resolve_connection_quotas(self) -> None:
        """max.connections.per.ip.overrides as Kafka reads it (Csv.parseCsvMap:
        'host:count' items split at the last colon) and checks it."""
        name = "max.connections.per.ip.overrides"
        overrides: dict[str, int] = {}
        for item in _csv(self.values[name]):
            host, sep, count = item.rpartition(":")
            count = count.strip()
            if not sep:
                raise ConfigError(f"Error parsing configuration property '{name}': expected HOST:COUNT, got '{item}'")
            if not _INTEGER.fullmatch(count) or not INT_MIN <= int(count) <= INT_MAX:
                raise ConfigError(f"Error parsing configuration property '{name}': For input string: \"{count}\"")
            overrides[host.strip()] = int(count)
        if self.values["max.connections.per.ip"] == 0 and not overrides:
            raise ConfigError(f"max.connections.per.ip can be set to zero only if {name} property is set.")
        bad = [host for host in overrides if not _HOST_PATTERN.fullmatch(host)]
        if bad:
            raise ConfigError(f"{name} contains invalid addresses : {','.join(bad)}")
        self.max_connections_per_ip_overrides = overrides

    def ignored_configs(self) -> list[str]:
        """The supplied configs this broker accepts but does not act on (see
        IGNORED_CONFIGS), for one start-up warning."""
        return [k for k in self.originals if k in IGNORED_CONFIGS or _LISTENER_OVERRIDE.fullmatch(k)]

    # -- topic-level configs ---------------------------------------------------------
    def topic_defaults(self) -> dict[str, Any]:
        """Every topic config's value for a topic without overrides (parsed); a
        fresh dict each call, so callers may change it."""
        if self._topic_defaults is None:
            self._topic_defaults = _topics().topic_defaults(self)
        return {k: list(v) if isinstance(v, list) else v for k, v in self._topic_defaults.items()}

    def effective_topic_config(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        """The topic configs a log uses: defaults overlaid with the topic's
        (validated) overrides, with message.timestamp.before/after.max.ms falling
        back to the topic's difference.max.ms while left at their default."""
        return _topics().effective_topic_config(self, overrides)

    # -- DescribeConfigs -----------------------------------------------------------------
    def synonyms(self, name: str, sensitive: bool) -> list[ConfigSynonym]:
        """Kafka's ConfigHelper.configSynonyms for the static broker config: the
        synonyms of ``name`` set in the properties, then those with a default,
        dropping any that come before ``name`` itself."""
        names = broker_synonyms(name)
        found = [
            ConfigSynonym(s, None if sensitive else self.originals[s], ConfigSource.STATIC_BROKER_CONFIG)
            for s in names
            if s in self.originals
        ]
        for s in names:
            definition = BROKER_CONFIGS.get(s)
            if definition is not None and definition.default is not None:
                value = None if sensitive else to_string(definition.default, definition.type)
                found.append(ConfigSynonym(s, value, ConfigSource.DEFAULT_CONFIG))
        while found and found[0].name != name:
            found.pop(0)
        return found

    def describe(self) -> list[ConfigEntry]:
        """The broker's configs as DescribeConfigs lists them for its own id:
        every known config and everything supplied, sorted by name. A supplied
        name of unknown type is reported sensitive (value hidden), as Kafka does;
        an internal config only when supplied."""
        entries = []
        listed = {name for name, definition in BROKER_CONFIGS.items() if not definition.internal}
        for name in sorted(listed | set(self.originals)):
            config_type = broker_config_type(name)
            sensitive = config_type in (None, ConfigType.PASSWORD)
            if sensitive:
                value = None
            elif name in self.values:
                value = to_string(self.values[name], config_type)
            else:
                value = self.originals[name]
            synonyms = self.synonyms(name, sensitive)
            definition = BROKER_CONFIGS.get(name)
            entries.append(
                ConfigEntry(
                    name=name,
                    value=value,
                    read_only=not (definition is not None and definition.dynamic),
                    source=synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG,
                    is_sensitive=sensitive,
                    synonyms=tuple(synonyms),
                    config_type=config_type or ConfigType.UNKNOWN,
                )
            )
        return entries

    def __repr__(self) -> str:
        return f"BrokerConfig(broker_id={self.values['broker.id']}, listeners={self.values['listeners']!r})"


def _with_host(endpoint: Listener) -> Listener:
    """An empty host means the dev default (see the module docstring)."""
    if endpoint.host:
        return endpoint
    return Listener(endpoint.name, DEV_HOST, endpoint.port, endpoint.security_protocol)


def _topics():
    """The topic_config module, which builds on this one (hence imported late)."""
    from kafka_compat import topic_config

    return topic_config


def validate_topic_configs(configs: Mapping[str, str | None], broker: BrokerConfig | None = None) -> dict[str, Any]:
    """See ``topic_config.validate_topic_configs``."""
    return _topics().validate_topic_configs(configs, broker)


def describe_topic_configs(broker: BrokerConfig, overrides: Mapping[str, str]) -> list[ConfigEntry]:
    """See ``topic_config.describe_topic_configs``."""
    return _topics().describe_topic_configs(broker, overrides)
