"""DescribeConfigs for topics, the broker and its loggers, as Kafka lists them."""
from __future__ import annotations

import logging
import re

from ..cluster.metadata import validate_topic_name
from ..config import describe_topic_configs
from ..protocol.errors import ErrorCode, KafkaError
from .registry import handles

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
_JAVA_INT = re.compile(r"[+-]?[0-9]+")  # what Scala's String.toInt takes

# Kafka's log4j levels and the Python levels they are here (no TRACE: DEBUG).
LOG4J_LEVELS = {"FATAL": logging.CRITICAL, "ERROR": logging.ERROR, "WARN": logging.WARNING,
                "INFO": logging.INFO, "DEBUG": logging.DEBUG, "TRACE": logging.DEBUG}
_LOG4J_NAMES = {level: name for name, level in reversed(LOG4J_LEVELS.items())}


def logger_names() -> list[str]:
    """The loggers the broker lists (and lets clients set): root and ours."""
    return ["root"] + sorted(n for n in logging.root.manager.loggerDict if n.startswith("kafka_compat"))


def _logger_entries() -> list[dict]:
    """Logger levels, in the shape Kafka gives its log4j loggers."""
    entries = []
    for name in logger_names():
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        level = logger.getEffectiveLevel()
        # As Kafka's ConfigHelper builds a logger's entry: source
        # DYNAMIC_BROKER_LOGGER_CONFIG (6), which kafka-configs --describe
        # filters on; type and documentation left at their defaults.
        entries.append({"name": name, "value": _LOG4J_NAMES.get(level, logging.getLevelName(level)),
                        "read_only": False, "is_default": False, "config_source": 6,
                        "is_sensitive": False, "synonyms": [], "config_type": 0,
                        "documentation": ""})
    return entries


def _entries(broker, resource) -> list[dict]:
    if resource.resource_type == TOPIC:
        validate_topic_name(resource.resource_name)
        meta = broker.topics.get(resource.resource_name)
        if meta is None:  # Kafka's ConfigHelper gives no message (the field's default, "")
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "")
        configs = describe_topic_configs(broker.config, meta.configs)
    elif resource.resource_type in (BROKER, BROKER_LOGGER):
        name = resource.resource_name
        # Kafka's ConfigHelper, check for check and message for message.
        if resource.resource_type == BROKER and name == "":
            return []  # cluster-wide dynamic defaults: none are set
        if resource.resource_type == BROKER_LOGGER and name == "":
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Broker id must not be empty")
        if not _JAVA_INT.fullmatch(name):
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}")
        if int(name) != broker.config.broker_id:
            expected = "" if resource.resource_type == BROKER_LOGGER else " or empty string,"
            raise KafkaError(
                ErrorCode.INVALID_REQUEST,
                f"Unexpected broker id, expected {broker.config.broker_id}{expected} but received {name}",
            )
        if resource.resource_type == BROKER_LOGGER:
            return _logger_entries()
        configs = broker.config.describe()
    else:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource.resource_type}")
    return [
        {
            "name": c.name,
            "value": c.value,
            "read_only": c.read_only,
            "is_default": c.is_default,
            "config_source": c.source,
            "is_sensitive": c.is_sensitive,
            "synonyms": [{"name": s.name, "value": s.value, "source": s.source} for s in c.synonyms],
            "config_type": c.config_type,
            "documentation": c.documentation,
        }
        for c in configs
    ]


@handles("DescribeConfigs")
async def describe_configs(ctx, request) -> dict:
    results = []
    for resource in request.resources:
        result = {"resource_type": resource.resource_type, "resource_name": resource.resource_name,
                  "error_code": ErrorCode.NONE, "error_message": "", "configs": []}
        results.append(result)
        try:
            if (resource.resource_type == TOPIC and ctx.broker.cluster is not None
                    and ctx.broker.topics.get(resource.resource_name) is not None):
                # Read from ZooKeeper, as Kafka's ZkConfigRepository does: a
                # client reads its own AlterConfigs before this broker has
                # the change notification.
                await ctx.broker.cluster.topic_config(resource.resource_name)
            entries = _entries(ctx.broker, resource)
        except KafkaError as e:
            result.update(error_code=e.code, error_message=e.message)
            continue
        if resource.configuration_keys:  # null or empty: every config, as Kafka's ConfigHelper
            keys = set(resource.configuration_keys)
            entries = [e for e in entries if e["name"] in keys]
        for e in entries:
            if not request.include_synonyms:
                e["synonyms"] = []
            if not request.include_documentation and resource.resource_type != BROKER_LOGGER:
                e["documentation"] = None
        result["configs"] = entries
    return {"results": results}
