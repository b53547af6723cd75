"""Topic-level log configuration under Kafka's names.

A partition log is configured by a flat dict keyed by Kafka topic config names
('segment.bytes', 'retention.ms', ...) holding already-parsed values: the
topic's overrides over the broker's topic defaults
(topic_config.topic_defaults), over Kafka's built-in defaults.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka_compat.topic_config import TOPIC_CONFIGS


class LogConfig:
    """Merged topic config with typed accessors for what the log acts on.

    ``values`` keeps every key (including ones the log ignores, such as
    'max.message.bytes') so callers can read them from the same place.
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None):
        merged = {name: definition.default for name, definition in TOPIC_CONFIGS.items()}
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
