"""AlterConfigs (the whole override set) and IncrementalAlterConfigs (SET,
DELETE, APPEND, SUBTRACT) for topics, and the broker's logger levels, with
Kafka's checks in Kafka's order (ConfigAdminManager, then ZkAdminManager).

Broker configs cannot be changed at runtime here: Kafka's dynamic broker
configs are not supported, and such requests get INVALID_REQUEST saying so.
"""
from __future__ import annotations

import logging
import re
from collections import Counter

from ..cluster.metadata import validate_topic_name
from ..config import BROKER_CONFIGS, ConfigType
from ..protocol.errors import ErrorCode, KafkaError
from ..topic_config import TOPIC_CONFIGS, InvalidTopicConfigValue, validate_topic_configs
from .describe_configs import BROKER, BROKER_LOGGER, LOG4J_LEVELS, TOPIC, logger_names
from .registry import handles

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
_OP_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}
_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def _invalid_request(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_REQUEST, message)


def _check_shape(resource, incremental: bool) -> None:
    """Kafka's preprocessing: duplicate keys, then missing values."""
    names = [c.name for c in resource.configs]
    if len(set(names)) != len(names):
        raise _invalid_request("Error due to duplicate config keys")
    nulls = [c.name for c in resource.configs
             if c.value is None and not (incremental and c.config_operation == DELETE)]
    if nulls:
        raise _invalid_request("Null value not supported for : " + ", ".join(nulls))


def _check_node_id(broker, name: str) -> None:
    if not _JAVA_INT.fullmatch(name):  # as Integer.parseInt reads it: no spaces, no underscores
        raise _invalid_request(f"Node id must be an integer, but it is: {name}")
    if int(name) != broker.config.broker_id:
        raise _invalid_request(f"Unexpected broker id, expected {broker.config.broker_id}, but received {name}")


def _alter_broker(broker, resource) -> None:
    if resource.resource_name != "":
        _check_node_id(broker, resource.resource_name)
    static = [c.name for c in resource.configs if c.name in BROKER_CONFIGS and not BROKER_CONFIGS[c.name].dynamic]
    if static:
        raise _invalid_request(f"Cannot update these configs dynamically: Set({', '.join(static)})")
    raise _invalid_request("Dynamic broker configs are not supported by kafka-compat: "
                           "set them in server.properties and restart")


def _alter_loggers(broker, resource, validate_only: bool) -> None:
    _check_node_id(broker, resource.resource_name)
    existing = set(logger_names())
    for c in resource.configs:
        op = c.config_operation
        if op in (APPEND, SUBTRACT):
            raise _invalid_request(f"{_OP_NAMES[op]} operation is not allowed for the BROKER_LOGGER resource")
        if op not in (SET, DELETE):
            raise _invalid_request(f"Unknown operation type {op} is not allowed for the BROKER_LOGGER resource")
        if c.name not in existing:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Logger {c.name} does not exist!")
        if op == SET and c.value not in LOG4J_LEVELS:
            raise KafkaError(
                ErrorCode.INVALID_CONFIG,
                f"Cannot set the log level of {c.name} to {c.value} as it is not a supported log level. "
                f"Valid log levels are {', '.join(sorted(LOG4J_LEVELS))}",  # sorted, as RuntimeLoggerManager
            )
        if op == DELETE and c.name == "root":
            raise _invalid_request("Removing the log level of the root logger is not allowed")
    if validate_only:
        return
    for c in resource.configs:
        logger = logging.getLogger() if c.name == "root" else logging.getLogger(c.name)
        logger.setLevel(LOG4J_LEVELS[c.value] if c.config_operation == SET else logging.NOTSET)


def _apply_ops(overrides: dict[str, str], resource) -> None:
    """IncrementalAlterConfigs' operations on a topic's overrides, in order."""
    for c in resource.configs:
        op = c.config_operation
        if op == SET:
            overrides[c.name] = c.value
        elif op == DELETE:
            overrides.pop(c.name, None)
        elif op in (APPEND, SUBTRACT):
            definition = TOPIC_CONFIGS.get(c.name)
            if definition is None:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {c.name}")
            if definition.type is not ConfigType.LIST:
                # ConfigAdminManager.prepareIncrementalConfigs throws an
                # InvalidConfigurationException (INVALID_CONFIG), 3.9 and 4.4 alike.
                verb = "append" if op == APPEND else "subtract"
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"Config value {verb} is not allowed for config key: {c.name}")
            current = overrides[c.name].split(",") if c.name in overrides else list(definition.default)
            given = c.value.split(",")
            if op == APPEND:  # only the values not there yet, as Kafka's filterNot(contains)
                current = [v for v in current if v]
                values = current + [v for v in given if v not in current]
            else:  # one occurrence removed per value given, as Scala's diff does
                values = list(current)
                for v in given:
                    if v in values:
                        values.remove(v)
            overrides[c.name] = ",".join(v for v in values if v)
        else:
            raise _invalid_request(f"Unknown operations type {op}")


async def _alter_topic(broker, resource, incremental: bool, validate_only: bool) -> None:
    name = resource.resource_name
    if not name:  # ZkAdminManager, before anything else (and Kafka 4.4's controller)
        raise _invalid_request("Default topic resources are not allowed.")
    meta = broker.topics.get(name)
    if incremental:
        overrides = dict(meta.configs) if meta is not None else {}
        _apply_ops(overrides, resource)
    else:
        overrides = {c.name: c.value for c in resource.configs}
    validate_topic_name(name)
    if meta is None:
        # ZkAdminManager.alterTopicConfigs's metadata cache check (Kafka 4.4 says the same)
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    try:
        validate_topic_configs(overrides, broker.config)
    except InvalidTopicConfigValue as e:
        # INVALID_CONFIG: Kafka's ZkAdminManager wraps the ConfigException in
        # an InvalidConfigurationException (found by the differential suite).
        raise KafkaError(
            ErrorCode.INVALID_CONFIG,
            f"Invalid config value for resource ConfigResource(type=TOPIC, name='{name}'): {e.message}"
        ) from None
    if not validate_only:
        await broker.topics.alter_configs(name, overrides)


async def _alter_one(broker, resource, incremental: bool, validate_only: bool) -> None:
    _check_shape(resource, incremental)
    kind = resource.resource_type
    if kind == TOPIC:
        await _alter_topic(broker, resource, incremental, validate_only)
    elif kind == BROKER:
        _alter_broker(broker, resource)
    elif kind == BROKER_LOGGER and incremental:  # the legacy API has no logger resource
        _alter_loggers(broker, resource, validate_only)
    else:
        raise _invalid_request(f"Unknown resource type {kind}")


async def _alter(ctx, request, incremental: bool) -> dict:
    seen = Counter((r.resource_type, r.resource_name) for r in request.resources)
    responses = []
    for resource in request.resources:
        response = {"resource_type": resource.resource_type, "resource_name": resource.resource_name,
                    "error_code": ErrorCode.NONE, "error_message": None}
        responses.append(response)
        try:
            if seen[(resource.resource_type, resource.resource_name)] > 1:
                raise _invalid_request("Each resource must appear at most once.")
            await _alter_one(ctx.broker, resource, incremental, request.validate_only)
        except KafkaError as e:
            response.update(error_code=e.code, error_message=e.message)
    return {"responses": responses}


@handles("AlterConfigs")
async def alter_configs(ctx, request) -> dict:
    return await _alter(ctx, request, incremental=False)


@handles("IncrementalAlterConfigs")
async def incremental_alter_configs(ctx, request) -> dict:
    return await _alter(ctx, request, incremental=True)
