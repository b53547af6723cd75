"""Partition logs on disk in Kafka's format: segments, indexes, recovery,
retention, flushing, and the LogManager that holds them all."""
from .config import LogConfig
from .manager import LogManager
from .partition_log import AppendResult, PartitionLog, ReadResult, TimestampOffset

__all__ = [
    "AppendResult",
    "LogConfig",
    "LogManager",
    "PartitionLog",
    "ReadResult",
    "TimestampOffset",
]
