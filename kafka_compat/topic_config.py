"""Topic-level configs (Kafka 3.9): the table, the broker config each falls back
to, validation of a topic's overrides, and what DescribeConfigs reports."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kafka_compat.config import (
    COMPRESSION_TYPES,
    GZIP_LEVEL,
    LONG_MAX,
    LZ4_LEVEL,
    ZSTD_LEVEL,
    B,
    D,
    I,
    L,
    LI,
    S,
    ConfigDef,
    ConfigEntry,
    ConfigError,
    ConfigSource,
    ConfigSynonym,
    ConfigType,
    at_least,
    between,
    config_table,
    one_of,
    throttled_replicas,
    to_string,
    valid_metadata_version,
)
from kafka_compat.protocol.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from kafka_compat.config import BrokerConfig

# In Kafka's definition order, which decides which bad value is reported first.
# The defaults are Kafka's built-in ones; a broker's come from topic_defaults().
# fmt: off
TOPIC_CONFIGS: dict[str, ConfigDef] = config_table(
    ConfigDef("segment.bytes", I, 1073741824, at_least(14)),
    ConfigDef("segment.ms", L, 604800000, at_least(1)),
    ConfigDef("segment.jitter.ms", L, 0, at_least(0)),
    ConfigDef("segment.index.bytes", I, 10485760, at_least(4)),
    ConfigDef("flush.messages", L, LONG_MAX, at_least(1)),
    ConfigDef("flush.ms", L, LONG_MAX, at_least(0)),
    ConfigDef("retention.bytes", L, -1),
    ConfigDef("retention.ms", L, 604800000, at_least(-1)),
    ConfigDef("max.message.bytes", I, 1048588, at_least(0)),
    ConfigDef("index.interval.bytes", I, 4096, at_least(0)),
    ConfigDef("delete.retention.ms", L, 86400000, at_least(0)),
    ConfigDef("min.compaction.lag.ms", L, 0, at_least(0)),
    ConfigDef("max.compaction.lag.ms", L, LONG_MAX, at_least(1)),
    ConfigDef("file.delete.delay.ms", L, 60000, at_least(0)),
    ConfigDef("min.cleanable.dirty.ratio", D, 0.5, between(0, 1)),
    ConfigDef("cleanup.policy", LI, ["delete"], one_of("compact", "delete")),
    ConfigDef("unclean.leader.election.enable", B, False),
    ConfigDef("min.insync.replicas", I, 1, at_least(1)),
    ConfigDef("compression.type", S, "producer", one_of(*COMPRESSION_TYPES)),
    ConfigDef("compression.gzip.level", I, -1, GZIP_LEVEL),
    ConfigDef("compression.lz4.level", I, 9, LZ4_LEVEL),
    ConfigDef("compression.zstd.level", I, 3, ZSTD_LEVEL),
    ConfigDef("preallocate", B, False),
    ConfigDef("message.format.version", S, "3.0-IV1", valid_metadata_version),
    ConfigDef("message.timestamp.type", S, "CreateTime", one_of("CreateTime", "LogAppendTime")),
    ConfigDef("message.timestamp.difference.max.ms", L, LONG_MAX, at_least(0)),
    ConfigDef("message.timestamp.before.max.ms", L, LONG_MAX, at_least(0)),
    ConfigDef("message.timestamp.after.max.ms", L, LONG_MAX, at_least(0)),
    ConfigDef("leader.replication.throttled.replicas", LI, [], throttled_replicas),
    ConfigDef("follower.replication.throttled.replicas", LI, [], throttled_replicas),
    ConfigDef("message.downconversion.enable", B, True),
    ConfigDef("remote.storage.enable", B, False),
    ConfigDef("local.retention.ms", L, -2, at_least(-2)),
    ConfigDef("local.retention.bytes", L, -2, at_least(-2)),
    ConfigDef("remote.log.copy.disable", B, False),
    ConfigDef("remote.log.delete.on.disable", B, False),
)
# fmt: on

# The broker config each topic config falls back to (Kafka's
# ServerTopicConfigSynonyms). Its own unit synonyms (log.retention.hours, ...)
# are the broker's business: see config.broker_synonyms. Topic configs missing
# here have no broker default.
SERVER_DEFAULTS: dict[str, str] = {
    "segment.bytes": "log.segment.bytes",
    "segment.ms": "log.roll.ms",
    "segment.jitter.ms": "log.roll.jitter.ms",
    "segment.index.bytes": "log.index.size.max.bytes",
    "flush.messages": "log.flush.interval.messages",
    "flush.ms": "log.flush.interval.ms",
    "retention.bytes": "log.retention.bytes",
    "retention.ms": "log.retention.ms",
    "max.message.bytes": "message.max.bytes",
    "index.interval.bytes": "log.index.interval.bytes",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "cleanup.policy": "log.cleanup.policy",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
    "min.insync.replicas": "min.insync.replicas",
    "compression.type": "compression.type",
    "compression.gzip.level": "compression.gzip.level",
    "compression.lz4.level": "compression.lz4.level",
    "compression.zstd.level": "compression.zstd.level",
    "preallocate": "log.preallocate",
    "message.format.version": "log.message.format.version",
    "message.timestamp.type": "log.message.timestamp.type",
    "message.timestamp.difference.max.ms": "log.message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "message.downconversion.enable": "log.message.downconversion.enable",
    "local.retention.ms": "log.local.retention.ms",
    "local.retention.bytes": "log.local.retention.bytes",
}


def topic_defaults(broker: BrokerConfig) -> dict[str, Any]:
    """Each topic config's value for a topic without overrides: the value the
    broker uses for its server default (e.g. retention.ms from log.retention.ms,
    else .minutes, else .hours), or Kafka's default when it has none."""
    defaults = {}
    for name, definition in TOPIC_CONFIGS.items():
        server = SERVER_DEFAULTS.get(name)
        defaults[name] = definition.default if server is None else getattr(broker, server.replace(".", "_"))
    return defaults


class InvalidTopicConfigValue(KafkaError):
    """A value Kafka's LogConfig refuses with a ConfigException (a bad value, not a
    bad name): CreateTopics answers INVALID_CONFIG, AlterConfigs INVALID_REQUEST."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.INVALID_CONFIG, message)


def _invalid_config(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_CONFIG, message)


def validate_topic_configs(configs: Mapping[str, str | None], broker: BrokerConfig | None = None) -> dict[str, Any]:
    """Check a topic's overrides (CreateTopics / AlterConfigs) as Kafka does and
    return them parsed. Raises KafkaError(INVALID_CONFIG) with Kafka's message.

    Values are checked against each other combined with the broker's topic
    defaults (Kafka's built-in ones without a broker). Tiered storage is not
    supported, so remote.storage.enable=true is refused as Kafka refuses it on
    a broker with remote.log.storage.system.enable=false.
    """
    nulls = [name for name, value in configs.items() if value is None]
    if nulls:
        raise _invalid_config("Null value not supported for topic configs: " + ",".join(nulls))
    for name in configs:
        if name not in TOPIC_CONFIGS:
            raise _invalid_config(f"Unknown topic config name: {name}")
    parsed = {}
    for name, definition in TOPIC_CONFIGS.items():
        if name in configs:
            try:
                parsed[name] = definition.parse(configs[name])
            except ConfigError as e:
                raise InvalidTopicConfigValue(str(e)) from None
    base = broker.topic_defaults() if broker is not None else {n: d.default for n, d in TOPIC_CONFIGS.items()}
    combined = {**base, **parsed}
    if combined["min.compaction.lag.ms"] > combined["max.compaction.lag.ms"]:
        raise _invalid_config(
            "conflict topic config setting min.compaction.lag.ms "
            f"({combined['min.compaction.lag.ms']}) > max.compaction.lag.ms ({combined['max.compaction.lag.ms']})"
        )
    if combined["remote.storage.enable"]:
        raise InvalidTopicConfigValue(
            "Tiered Storage functionality is disabled in the broker. "
            "Topic cannot be configured with remote log storage."
        )
    return parsed


def effective_topic_config(broker: BrokerConfig, overrides: Mapping[str, str]) -> dict[str, Any]:
    """What a topic's log uses: broker defaults overlaid with its overrides, and
    message.timestamp.before/after.max.ms falling back to the topic's
    difference.max.ms while they are at their default (Kafka's LogConfig)."""
    config = {**broker.topic_defaults(), **validate_topic_configs(overrides, broker)}
    for name in ("message.timestamp.before.max.ms", "message.timestamp.after.max.ms"):
        if config[name] == LONG_MAX:
            config[name] = config["message.timestamp.difference.max.ms"]
    return config


def describe_topic_configs(broker: BrokerConfig, overrides: Mapping[str, str]) -> list[ConfigEntry]:
    """Every topic config as DescribeConfigs reports it, sorted by name.

    A config the topic overrides has source DYNAMIC_TOPIC_CONFIG; otherwise the
    source is that of its broker server default: STATIC_BROKER_CONFIG when set
    in server.properties, else DEFAULT_CONFIG. Synonyms list the override, then
    the server default as set, then its default, as Kafka's ConfigHelper does
    (which lists nothing when only a unit synonym such as log.retention.hours
    is set, because it starts the list at log.retention.ms).
    """
    values = {**broker.topic_defaults(), **validate_topic_configs(overrides, broker)}
    entries = []
    for name in sorted(TOPIC_CONFIGS):
        definition = TOPIC_CONFIGS[name]
        sensitive = definition.type is ConfigType.PASSWORD
        value = None if sensitive else to_string(values[name], definition.type)
        synonyms = []
        if name in overrides:
            synonyms.append(ConfigSynonym(name, value, ConfigSource.DYNAMIC_TOPIC_CONFIG))
        if name in SERVER_DEFAULTS:
            synonyms += broker.synonyms(SERVER_DEFAULTS[name], sensitive)
        entries.append(
            ConfigEntry(
                name=name,
                value=value,
                read_only=False,
                source=synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG,
                is_sensitive=sensitive,
                synonyms=tuple(synonyms),
                config_type=definition.type,
            )
        )
    return entries
