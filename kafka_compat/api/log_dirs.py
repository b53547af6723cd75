"""DescribeLogDirs: each log dir with its replicas' sizes (leaders' and
followers' alike) and the space of its file system; an offline (failed) dir
answers KAFKA_STORAGE_ERROR alone, as Kafka's ReplicaManager.describeLogDirs
does. The offset lag is Kafka's getLogEndOffsetLag for a current (not
future) replica: how far its log end is below its own high watermark, which
is never (a follower's high watermark is capped at its log end); there are
no future logs (no moves between log dirs)."""
from __future__ import annotations

import os

from ..protocol.errors import ErrorCode
from .registry import handles


def _log_dir_result(log_dir, logs, wanted: set | None, offline: bool) -> dict:
    if offline:
        return {"error_code": ErrorCode.KAFKA_STORAGE_ERROR, "log_dir": str(log_dir.absolute()), "topics": [],
                "total_bytes": -1, "usable_bytes": -1}
    topics: dict[str, list] = {}
    for partition_log in logs:
        if wanted is None or (partition_log.topic, partition_log.partition) in wanted:
            topics.setdefault(partition_log.topic, []).append({
                "partition_index": partition_log.partition, "partition_size": partition_log.size_in_bytes,
                "offset_lag": max(partition_log.high_watermark - partition_log.log_end_offset, 0),
                "is_future_key": False})
    space = os.statvfs(log_dir)
    return {
        "error_code": ErrorCode.NONE,
        "log_dir": str(log_dir.absolute()),
        "topics": [{"name": name, "partitions": sorted(parts, key=lambda p: p["partition_index"])}
                   for name, parts in sorted(topics.items())],
        "total_bytes": space.f_blocks * space.f_frsize,
        "usable_bytes": space.f_bavail * space.f_frsize,
    }


@handles("DescribeLogDirs")
async def describe_log_dirs(ctx, request) -> dict:
    wanted = None if request.topics is None else {(t.topic, p) for t in request.topics for p in t.partitions}
    logs = ctx.broker.logs
    return {"error_code": ErrorCode.NONE,
            "results": [_log_dir_result(d, logs.in_dir(d), wanted, d in logs.offline_dirs) for d in logs.log_dirs]}
