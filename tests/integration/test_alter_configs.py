"""AlterConfigs and IncrementalAlterConfigs on the wire: Kafka's semantics and
errors, the change seen by DescribeConfigs, the logs and a restart."""
from __future__ import annotations

import logging

import trio

from kafka_compat.protocol.errors import ErrorCode

from .conftest import make_config, start_broker
from .test_requests import create_topic, produce, records

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


async def overrides(client, topic: str) -> dict:
    """The topic's configs whose source is the topic itself."""
    resp = await client.request("DescribeConfigs", 4, {"resources": [
        {"resource_type": TOPIC, "resource_name": topic, "configuration_keys": None}]})
    return {c.name: c.value for c in resp.results[0].configs if c.config_source == 1}


def topic_resource(name: str, configs: list[tuple], resource_type: int = TOPIC) -> dict:
    """configs: (name, value) for AlterConfigs, (name, op, value) for the incremental API."""
    if configs and len(configs[0]) == 3:
        entries = [{"name": n, "config_operation": op, "value": v} for n, op, v in configs]
    else:
        entries = [{"name": n, "value": v} for n, v in configs]
    return {"resource_type": resource_type, "resource_name": name, "configs": entries}


async def alter(client, *resources, validate_only: bool = False):
    resp = await client.request("AlterConfigs", 2, {"resources": list(resources), "validate_only": validate_only})
    return resp.responses


async def incremental(client, *resources, validate_only: bool = False):
    resp = await client.request("IncrementalAlterConfigs", 1,
                                {"resources": list(resources), "validate_only": validate_only})
    return resp.responses


async def test_alter_configs_replaces_the_whole_override_set(broker):
    client = await broker.client()
    await create_topic(client, "t", 1, {"retention.ms": "1000", "cleanup.policy": "compact"})
    [r] = await alter(client, topic_resource("t", [("segment.bytes", "1048576")]))
    assert (r.error_code, r.error_message, r.resource_name) == (ErrorCode.NONE, None, "t")
    assert await overrides(client, "t") == {"segment.bytes": "1048576"}
    [r] = await alter(client, topic_resource("t", [("retention.ms", "5000")]), validate_only=True)
    assert r.error_code == ErrorCode.NONE
    assert await overrides(client, "t") == {"segment.bytes": "1048576"}


async def test_incremental_set_delete_append_subtract(broker):
    client = await broker.client()
    await create_topic(client, "t", 1, {"retention.ms": "1000", "segment.bytes": "1048576"})
    [r] = await incremental(client, topic_resource("t", [
        ("retention.ms", SET, "2000"), ("segment.bytes", DELETE, None), ("cleanup.policy", APPEND, "compact")]))
    assert r.error_code == ErrorCode.NONE
    # APPEND starts from Kafka's default, [delete]
    assert await overrides(client, "t") == {"retention.ms": "2000", "cleanup.policy": "delete,compact"}
    [r] = await incremental(client, topic_resource("t", [("cleanup.policy", SUBTRACT, "delete")]))
    assert r.error_code == ErrorCode.NONE
    assert await overrides(client, "t") == {"retention.ms": "2000", "cleanup.policy": "compact"}
    # APPEND adds only the values not there yet (Kafka's filterNot(oldValueList.contains)).
    [r] = await incremental(client, topic_resource("t", [("cleanup.policy", APPEND, "compact,delete")]))
    assert r.error_code == ErrorCode.NONE
    assert await overrides(client, "t") == {"retention.ms": "2000", "cleanup.policy": "compact,delete"}


async def test_errors_in_kafka_order(broker):
    client = await broker.client()
    for name in "abcde":
        await create_topic(client, name)
    dup_a, dup_b, keys, nulls, missing, unknown, bad_value, not_list, bad_name, default = await incremental(
        client,
        topic_resource("dup", [("retention.ms", SET, "1")]),
        topic_resource("dup", [("retention.ms", SET, "1")]),
        topic_resource("a", [("retention.ms", SET, "1"), ("retention.ms", DELETE, None)]),
        topic_resource("b", [("retention.ms", SET, None), ("segment.ms", APPEND, None), ("flush.ms", DELETE, None)]),
        topic_resource("nope", [("retention.ms", SET, "1")]),
        topic_resource("c", [("no.such.config", SET, "1")]),
        topic_resource("d", [("retention.ms", SET, "soon")]),
        topic_resource("e", [("retention.ms", APPEND, "1")]),
        topic_resource("bad/name", [("retention.ms", SET, "1")]),
        topic_resource("", [("retention.ms", SET, "1")]),
    )
    for r in (dup_a, dup_b):
        assert (r.error_code, r.error_message) == (ErrorCode.INVALID_REQUEST, "Each resource must appear at most once.")
    assert (keys.error_code, keys.error_message) == (ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
    assert (nulls.error_code, nulls.error_message) == (
        ErrorCode.INVALID_REQUEST, "Null value not supported for : retention.ms, segment.ms")
    assert (missing.error_code, missing.error_message) == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The topic 'nope' does not exist.")
    assert (unknown.error_code, unknown.error_message) == (ErrorCode.INVALID_CONFIG, "Unknown topic config name: no.such.config")
    assert bad_value.error_code == ErrorCode.INVALID_CONFIG
    assert bad_value.error_message == (
        "Invalid config value for resource ConfigResource(type=TOPIC, name='d'): "
        "Invalid value soon for configuration retention.ms: Not a number of type LONG")
    assert (not_list.error_code, not_list.error_message) == (
        ErrorCode.INVALID_CONFIG, "Config value append is not allowed for config key: retention.ms")
    assert bad_name.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert (default.error_code, default.error_message) == (
        ErrorCode.INVALID_REQUEST, "Default topic resources are not allowed.")
    for name in "abcde":
        assert await overrides(client, name) == {}
    # The legacy API has no DELETE: a missing value is refused, and so is the logger resource.
    nulled, logger = await alter(client, topic_resource("a", [("retention.ms", None)]),
                                 topic_resource(str(broker.broker.config.broker_id), [("root", "INFO")], BROKER_LOGGER))
    assert (nulled.error_code, nulled.error_message) == (ErrorCode.INVALID_REQUEST, "Null value not supported for : retention.ms")
    assert (logger.error_code, logger.error_message) == (ErrorCode.INVALID_REQUEST, "Unknown resource type 8")


async def test_broker_configs_cannot_change_at_runtime(broker):
    client = await broker.client()
    node = str(broker.broker.config.broker_id)
    static, dynamic, other = await incremental(
        client,
        topic_resource(node, [("broker.id", SET, "7")], BROKER),
        topic_resource("", [("log.retention.ms", SET, "1000")], BROKER),
        topic_resource("42", [("log.retention.ms", SET, "1000")], BROKER),
    )
    assert (static.error_code, static.error_message) == (
        ErrorCode.INVALID_REQUEST, "Cannot update these configs dynamically: Set(broker.id)")
    assert dynamic.error_code == ErrorCode.INVALID_REQUEST and "not supported" in dynamic.error_message
    assert (other.error_code, other.error_message) == (
        ErrorCode.INVALID_REQUEST, f"Unexpected broker id, expected {node}, but received 42")


async def test_logger_levels(broker):
    client = await broker.client()
    node = str(broker.broker.config.broker_id)
    name = "kafka_compat.api.produce"
    logging.getLogger(name)
    try:
        [r] = await incremental(client, topic_resource(node, [(name, SET, "DEBUG")], BROKER_LOGGER))
        assert r.error_code == ErrorCode.NONE
        assert logging.getLogger(name).level == logging.DEBUG
        described = await client.request("DescribeConfigs", 4, {"resources": [
            {"resource_type": BROKER_LOGGER, "resource_name": node, "configuration_keys": None}]})
        levels = {c.name: c.value for c in described.results[0].configs}
        assert levels[name] == "DEBUG" and levels["root"] in {"FATAL", "ERROR", "WARN", "INFO", "DEBUG"}
        # Kafka's source DYNAMIC_BROKER_LOGGER_CONFIG (kafka-configs --describe shows only those),
        # type UNKNOWN and documentation "" (left at their defaults).
        assert {(c.config_source, c.config_type, c.documentation, c.read_only, c.is_default)
                for c in described.results[0].configs} == {(6, 0, "", False, False)}
        # An empty key list means every config, as null does.
        every = await client.request("DescribeConfigs", 4, {"resources": [
            {"resource_type": BROKER_LOGGER, "resource_name": node, "configuration_keys": []}]})
        assert {c.name: c.value for c in every.results[0].configs} == levels
        refused = []
        for resource_name, op in ((node, (name, SET, "LOUD")), (node, ("no.such.logger", SET, "INFO")),
                                  ("x" + node, (name, DELETE, None)), (node, ("root", DELETE, None)),
                                  (node, (name, APPEND, "INFO"))):
            refused += await incremental(client, topic_resource(resource_name, [op], BROKER_LOGGER))
        bad_level, no_logger, bad_node, root_delete, append = refused
        assert (bad_level.error_code, bad_level.error_message) == (
            ErrorCode.INVALID_CONFIG, f"Cannot set the log level of {name} to LOUD as it is not a supported "
            "log level. Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN")
        assert (no_logger.error_code, no_logger.error_message) == (
            ErrorCode.INVALID_CONFIG, "Logger no.such.logger does not exist!")
        assert (bad_node.error_code, bad_node.error_message) == (
            ErrorCode.INVALID_REQUEST, f"Node id must be an integer, but it is: x{node}")
        assert (root_delete.error_code, root_delete.error_message) == (
            ErrorCode.INVALID_REQUEST, "Removing the log level of the root logger is not allowed")
        assert append.error_code == ErrorCode.INVALID_REQUEST
        assert logging.getLogger(name).level == logging.DEBUG  # nothing applied from refused resources
        [r] = await incremental(client, topic_resource(node, [(name, DELETE, None)], BROKER_LOGGER))
        assert r.error_code == ErrorCode.NONE and logging.getLogger(name).level == logging.NOTSET
    finally:
        logging.getLogger(name).setLevel(logging.NOTSET)


async def test_the_logs_use_new_configs_and_they_survive_a_restart(tmp_path):
    config = make_config(tmp_path / "data")
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await create_topic(client, "t")
        assert (await produce(client, "t", records(20))).error_code == ErrorCode.NONE
        [r] = await alter(client, topic_resource("t", [("max.message.bytes", "100")]))
        assert r.error_code == ErrorCode.NONE
        assert (await produce(client, "t", records(20))).error_code == ErrorCode.MESSAGE_TOO_LARGE
        await client.aclose()
        broker.shutdown()
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        assert await overrides(client, "t") == {"max.message.bytes": "100"}
        assert (await produce(client, "t", records(20))).error_code == ErrorCode.MESSAGE_TOO_LARGE
        await client.aclose()
        broker.shutdown()
