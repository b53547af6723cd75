"""Topic administration: CreateTopics, DeleteTopics, CreatePartitions."""
from __future__ import annotations

from collections import Counter

from ..config import describe_topic_configs
from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles

ZERO_UUID = bytes(16)


def _duplicates(names) -> set:
    return {n for n, c in Counter(names).items() if c > 1}


@handles("CreateTopics")
async def create_topics(ctx, request) -> dict:
    broker = ctx.broker
    topics = broker.topics
    dupes = _duplicates(t.name for t in request.topics)
    results = []
    for t in request.topics:
        result = {"name": t.name, "topic_id": ZERO_UUID, "num_partitions": -1, "replication_factor": -1, "configs": []}
        results.append(result)
        if t.name in dupes:
            result.update(error_code=ErrorCode.INVALID_REQUEST, error_message=(
                f"Create topics request from client `{ctx.header.client_id}` contains multiple entries "
                f"for the following topics: {', '.join(sorted(dupes))}"))
            continue
        configs = {c.name: c.value for c in t.configs}
        assignments = {a.partition_index: list(a.broker_ids) for a in t.assignments}
        try:
            replicas, _ = topics.plan_create(t.name, t.num_partitions, t.replication_factor, assignments, configs)
            if request.validate_only:
                meta_id, overrides = ZERO_UUID, {k: v for k, v in configs.items() if v is not None}
            else:
                meta = await topics.create(t.name, replicas, configs)
                meta_id, overrides = meta.topic_id, meta.configs
        except KafkaError as e:
            result.update(error_code=e.code, error_message=e.message)
            continue
        result.update(
            error_code=ErrorCode.NONE,
            error_message=None,
            topic_id=meta_id,
            num_partitions=len(replicas),
            replication_factor=len(replicas[0]),
            configs=[
                {
                    "name": c.name,
                    "value": c.value,
                    "read_only": c.read_only,
                    "config_source": c.source,
                    "is_sensitive": c.is_sensitive,
                }
                for c in describe_topic_configs(broker.config, overrides)
            ],
        )
    return {"topics": results}


@handles("DeleteTopics")
async def delete_topics(ctx, request) -> dict:
    broker = ctx.broker
    wanted = [(name, None) for name in request.topic_names] + [(t.name, t.topic_id) for t in request.topics]
    responses = []
    for name, topic_id in wanted:
        entry = {"name": name, "topic_id": topic_id or ZERO_UUID, "error_message": None}
        responses.append(entry)
        has_id = topic_id is not None and topic_id != ZERO_UUID
        if name is not None and has_id:
            entry.update(error_code=ErrorCode.INVALID_REQUEST, error_message="Topic name and topic id cannot both be set.")
            continue
        if has_id:
            meta = broker.metadata.topic_by_id(topic_id)
            if meta is None:
                entry.update(error_code=ErrorCode.UNKNOWN_TOPIC_ID, error_message="This server does not host this topic ID.")
                continue
            name = entry["name"] = meta.name
        else:
            meta = broker.topics.get(name)
            if meta is None:
                entry.update(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                             error_message="This server does not host this topic-partition.")
                continue
            entry["topic_id"] = meta.topic_id
        try:
            await broker.topics.delete(name)
            broker.groups.on_topic_deleted(name)  # Kafka drops the topic's committed offsets
            entry["error_code"] = ErrorCode.NONE
        except KafkaError as e:
            entry.update(error_code=e.code, error_message=e.message)
    return {"responses": responses}


@handles("CreatePartitions")
async def create_partitions(ctx, request) -> dict:
    topics = ctx.broker.topics
    dupes = _duplicates(t.name for t in request.topics)
    results = []
    for t in request.topics:
        result = {"name": t.name, "error_code": ErrorCode.NONE, "error_message": None}
        results.append(result)
        if t.name in dupes:
            result.update(error_code=ErrorCode.INVALID_REQUEST, error_message="Duplicate topic in request.")
            continue
        assignments = None if t.assignments is None else [list(a.broker_ids) for a in t.assignments]
        try:
            new_replicas = topics.plan_partitions(t.name, t.count, assignments)
            if not request.validate_only:
                await topics.add_partitions(t.name, new_replicas)
        except KafkaError as e:
            result.update(error_code=e.code, error_message=e.message)
    return {"results": results}
