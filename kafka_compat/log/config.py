"""Topic-level log configuration under Kafka's names.

A partition log is configured by a flat dict keyed by Kafka topic config names
('segment.bytes', 'retention.ms', ...) holding already-parsed values. Missing
keys fall back to the broker's defaults, then to Kafka's built-in defaults.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LONG_MAX = 2**63 - 1

# Kafka's built-in topic defaults for the settings the log itself acts on.
TOPIC_DEFAULTS: dict[str, Any] = {
    "segment.bytes": 1024 * 1024 * 1024,
    "segment.ms": 7 * 24 * 3600 * 1000,
    "segment.jitter.ms": 0,
    "segment.index.bytes": 10 * 1024 * 1024,
    "index.interval.bytes": 4096,
    "retention.ms": 7 * 24 * 3600 * 1000,
    "retention.bytes": -1,
    "flush.messages": LONG_MAX,
    "flush.ms": LONG_MAX,
    "file.delete.delay.ms": 60000,
    "message.timestamp.type": "CreateTime",
    "cleanup.policy": ["delete"],
    "max.message.bytes": 1048588,
}

# Broker (server.properties) names that supply a topic default, in order of
# precedence, with the factor that turns the broker unit into the topic unit.
BROKER_SYNONYMS: dict[str, list[tuple[str, int]]] = {
    "segment.bytes": [("log.segment.bytes", 1)],
    "segment.ms": [("log.roll.ms", 1), ("log.roll.hours", 3600 * 1000)],
    "segment.jitter.ms": [("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3600 * 1000)],
    "segment.index.bytes": [("log.index.size.max.bytes", 1)],
    "index.interval.bytes": [("log.index.interval.bytes", 1)],
    "retention.ms": [
        ("log.retention.ms", 1),
        ("log.retention.minutes", 60 * 1000),
        ("log.retention.hours", 3600 * 1000),
    ],
    "retention.bytes": [("log.retention.bytes", 1)],
    "flush.messages": [("log.flush.interval.messages", 1)],
    # Kafka: log.flush.interval.ms unset means "use log.flush.scheduler.interval.ms".
    "flush.ms": [("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)],
    "file.delete.delay.ms": [("log.segment.delete.delay.ms", 1)],
    "message.timestamp.type": [("log.message.timestamp.type", 1)],
    "cleanup.policy": [("log.cleanup.policy", 1)],
    "max.message.bytes": [("message.max.bytes", 1)],
}


def topic_defaults_from_broker(broker: Mapping[str, Any]) -> dict[str, Any]:
    """Topic-level defaults implied by broker settings (unset/None ones skipped)."""
    out: dict[str, Any] = {}
    for topic_name, synonyms in BROKER_SYNONYMS.items():
        for broker_name, factor in synonyms:
            value = broker.get(broker_name)
            if value is not None:
                out[topic_name] = value * factor if factor != 1 else value
                break
    return out


class LogConfig:
    """Merged topic config with typed accessors for what the log uses.

    ``values`` keeps every key given (including ones the log ignores) so callers
    can read e.g. 'max.message.bytes' from the same place.
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None):
        merged = dict(TOPIC_DEFAULTS)
        merged.update(defaults or {})
        merged.update(overrides or {})
        self.values = merged
        self.segment_bytes = int(merged["segment.bytes"])
        self.segment_ms = int(merged["segment.ms"])
        self.segment_jitter_ms = int(merged["segment.jitter.ms"])
        self.segment_index_bytes = int(merged["segment.index.bytes"])
        self.index_interval_bytes = int(merged["index.interval.bytes"])
        self.retention_ms = int(merged["retention.ms"])
        self.retention_bytes = int(merged["retention.bytes"])
        self.flush_messages = int(merged["flush.messages"])
        self.flush_ms = int(merged["flush.ms"])
        self.file_delete_delay_ms = int(merged["file.delete.delay.ms"])
        self.log_append_time = merged["message.timestamp.type"] == "LogAppendTime"
        policy = merged["cleanup.policy"]
        if isinstance(policy, str):
            policy = [p.strip() for p in policy.split(",") if p.strip()]
        self.cleanup_policy = frozenset(policy)

    @property
    def delete_enabled(self) -> bool:
        return "delete" in self.cleanup_policy

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)
