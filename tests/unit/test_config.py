"""Broker and topic configuration: properties files, Kafka's defaults and value
syntax, validation messages, and what DescribeConfigs reports."""
import pytest

from kafka_compat.config import (
    BROKER_CONFIGS,
    LONG_MAX,
    BrokerConfig,
    ConfigError,
    ConfigSource,
    ConfigType,
    Listener,
    describe_topic_configs,
    java_double_str,
    load_properties,
    parse_properties,
    validate_topic_configs,
)
from kafka_compat.protocol.errors import ErrorCode, KafkaError
from kafka_compat.topic_config import SERVER_DEFAULTS, TOPIC_CONFIGS

# -- Java .properties -------------------------------------------------------------


def test_properties_separators_comments_and_blanks():
    text = (
        "# a comment\n"
        "! another comment\n"
        "\n"
        "   \t\n"
        "a=1\n"
        "b = 2\n"
        "c:3\n"
        "d : 4\n"
        "e 5\n"
        "   f=6\n"
        "g\n"
        "h=\n"
        "i = x = y\n"
    )
    assert parse_properties(text) == {
        "a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "", "h": "", "i": "x = y",
    }


def test_properties_keep_trailing_blanks_and_last_key_wins():
    assert parse_properties("a=1\na=two  \n") == {"a": "two  "}


def test_properties_continuation_lines():
    text = "listeners=PLAINTEXT://:9092,\\\n    SSL://:9093\nnext=1\n"
    assert parse_properties(text) == {"listeners": "PLAINTEXT://:9092,SSL://:9093", "next": "1"}


def test_properties_even_backslashes_do_not_continue():
    assert parse_properties("a=x\\\\\nb=y\n") == {"a": "x\\", "b": "y"}


def test_properties_comment_ending_in_backslash_does_not_continue():
    assert parse_properties("# comment \\\na=1\n") == {"a": "1"}


def test_properties_continuation_line_starting_with_hash_is_data():
    assert parse_properties("a=1,\\\n  #2\n") == {"a": "1,#2"}


def test_properties_backslash_at_end_of_file():
    assert parse_properties("a=1\\") == {"a": "1"}


def test_properties_escapes():
    text = "tab=a\\tb\nnl=a\\nb\nslash=C:\\\\dir\nuni=\\u00e9t\\u00E9\nother=\\q\nkey\\=with\\:sep\\ s=v\n"
    assert parse_properties(text) == {
        "tab": "a\tb", "nl": "a\nb", "slash": "C:\\dir", "uni": "été", "other": "q", "key=with:sep s": "v",
    }


def test_properties_line_endings():
    assert parse_properties("a=1\r\nb=2\rc=3\n") == {"a": "1", "b": "2", "c": "3"}


def test_properties_malformed_unicode_escape():
    with pytest.raises(ConfigError, match=r"^line 2: Malformed \\uxxxx encoding.$"):
        parse_properties("a=1\nb=\\u12x4\n")


def test_load_properties_from_file(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text("broker.id=3\nlog.dirs=/data/é\n", encoding="utf-8")
    assert load_properties(str(path)) == {"broker.id": "3", "log.dirs": "/data/é"}


def test_load_properties_latin1_like_java(tmp_path):
    path = tmp_path / "server.properties"
    path.write_bytes("log.dirs=/data/é\n".encode("iso-8859-1"))
    assert load_properties(str(path)) == {"log.dirs": "/data/é"}


@pytest.mark.parametrize("name", ["missing.properties", "."])
def test_load_properties_unreadable(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(ConfigError) as e:
        load_properties(str(path))
    assert str(e.value).startswith(f"cannot read config file {path}: ")
    assert "\n" not in str(e.value)


def test_load_properties_malformed_file_names_the_file(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text("a=\\uzzzz\n")
    with pytest.raises(ConfigError, match=f"config file {path}: line 1: Malformed"):
        load_properties(str(path))


# -- defaults ------------------------------------------------------------------------

KAFKA_DEFAULTS = {
    "node.id": 0,
    "listener.security.protocol.map": "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
    "log.dir": "/tmp/kafka-logs",
    "log.dirs": None,
    "num.partitions": 1,
    "default.replication.factor": 1,
    "auto.create.topics.enable": True,
    "delete.topic.enable": True,
    "message.max.bytes": 1048588,
    "socket.request.max.bytes": 104857600,
    "log.segment.bytes": 1073741824,
    "log.roll.ms": None,
    "log.roll.hours": 168,
    "log.retention.ms": None,
    "log.retention.minutes": None,
    "log.retention.hours": 168,
    "log.retention.bytes": -1,
    "log.retention.check.interval.ms": 300000,
    "log.flush.interval.messages": LONG_MAX,
    "log.flush.interval.ms": None,
    "log.flush.scheduler.interval.ms": LONG_MAX,
    "log.index.interval.bytes": 4096,
    "log.index.size.max.bytes": 10485760,
    "log.message.timestamp.type": "CreateTime",
    "log.message.timestamp.difference.max.ms": LONG_MAX,
    "log.message.timestamp.before.max.ms": LONG_MAX,
    "log.message.timestamp.after.max.ms": LONG_MAX,
    "compression.type": "producer",
    "log.cleanup.policy": ["delete"],
    "min.insync.replicas": 1,
    "offsets.topic.num.partitions": 50,
    "offsets.topic.replication.factor": 3,
    "offsets.retention.minutes": 10080,
    "group.initial.rebalance.delay.ms": 3000,
    "group.min.session.timeout.ms": 6000,
    "group.max.session.timeout.ms": 1800000,
    "group.max.size": 2**31 - 1,
    "transactional.id.expiration.ms": 604800000,
    "transaction.max.timeout.ms": 900000,
    "producer.id.expiration.ms": 86400000,
    "producer.id.expiration.check.interval.ms": 600000,
    "zookeeper.connect": None,
    "zookeeper.session.timeout.ms": 18000,
    "controlled.shutdown.enable": True,
    "num.network.threads": 3,
    "num.io.threads": 8,
}


def test_defaults_are_kafkas():
    config = BrokerConfig()
    for name, expected in KAFKA_DEFAULTS.items():
        assert config.values[name] == expected, name
    assert config.unknown_keys == ()


def test_no_config_is_a_usable_dev_broker():
    config = BrokerConfig()
    assert config.broker_id == 0
    assert config.listeners == (Listener("PLAINTEXT", "127.0.0.1", 9092, "PLAINTEXT"),)
    assert config.advertised_listeners == config.listeners
    assert config.log_dirs == ("/tmp/kafka-logs",)
    assert config.inter_broker_listener_name == "PLAINTEXT"


def test_plain_attributes_for_every_config():
    config = BrokerConfig({"num.partitions": "4", "auto.create.topics.enable": "false"})
    assert config.num_partitions == 4
    assert config.auto_create_topics_enable is False
    assert config.offsets_topic_num_partitions == 50


def test_effective_time_configs_by_default():
    config = BrokerConfig()
    assert config.log_retention_ms == 168 * 3600 * 1000
    assert config.log_roll_ms == 168 * 3600 * 1000
    assert config.log_roll_jitter_ms == 0
    assert config.log_flush_interval_ms == LONG_MAX
    assert config.log_message_timestamp_before_max_ms == LONG_MAX


# -- precedence -------------------------------------------------------------------


def test_overrides_beat_properties_beat_defaults():
    config = BrokerConfig({"num.partitions": "3", "log.dirs": "/a"}, {"num.partitions": "5"})
    assert config.num_partitions == 5
    assert config.log_dirs == ("/a",)
    assert config.default_replication_factor == 1


def test_programmatic_values_are_written_as_properties():
    config = BrokerConfig({"num.partitions": 7, "delete.topic.enable": False, "log.cleanup.policy": ["compact"]})
    assert (config.num_partitions, config.delete_topic_enable, config.log_cleanup_policy) == (7, False, ["compact"])
    assert config.originals["delete.topic.enable"] == "false"


@pytest.mark.parametrize(
    "props, expected",
    [
        ({"log.retention.hours": "1"}, 3600 * 1000),
        ({"log.retention.hours": "1", "log.retention.minutes": "2"}, 120 * 1000),
        ({"log.retention.hours": "1", "log.retention.minutes": "2", "log.retention.ms": "5"}, 5),
        ({"log.retention.ms": "-5"}, -1),
        ({"log.retention.hours": "-1"}, -1),
    ],
)
def test_retention_ms_over_minutes_over_hours(props, expected):
    assert BrokerConfig(props).log_retention_ms == expected


def test_roll_and_flush_synonyms():
    config = BrokerConfig(
        {"log.roll.hours": "2", "log.roll.jitter.hours": "1", "log.flush.scheduler.interval.ms": "500"}
    )
    assert (config.log_roll_ms, config.log_roll_jitter_ms, config.log_flush_interval_ms) == (7200000, 3600000, 500)
    config = BrokerConfig({"log.roll.hours": "2", "log.roll.ms": "10", "log.flush.interval.ms": "7"})
    assert (config.log_roll_ms, config.log_flush_interval_ms) == (10, 7)


def test_timestamp_before_after_fall_back_to_difference():
    config = BrokerConfig({"log.message.timestamp.difference.max.ms": "1000"})
    assert (config.log_message_timestamp_before_max_ms, config.log_message_timestamp_after_max_ms) == (1000, 1000)
    config = BrokerConfig(
        {"log.message.timestamp.difference.max.ms": "1000", "log.message.timestamp.after.max.ms": "5"}
    )
    assert (config.log_message_timestamp_before_max_ms, config.log_message_timestamp_after_max_ms) == (1000, 5)


def test_message_format_version_ignored_from_ibp_3():
    assert BrokerConfig({"log.message.format.version": "2.1"}).log_message_format_version == "3.0-IV1"
    old = BrokerConfig({"log.message.format.version": "2.1", "inter.broker.protocol.version": "2.8"})
    assert old.log_message_format_version == "2.1-IV2"


def test_log_dirs_over_log_dir():
    assert BrokerConfig({"log.dir": "/x"}).log_dirs == ("/x",)
    assert BrokerConfig({"log.dir": "/x", "log.dirs": "/a, /b"}).log_dirs == ("/a", "/b")


def test_broker_id_and_node_id_fill_each_other():
    assert BrokerConfig({"broker.id": "4"}).node_id == 4
    assert BrokerConfig({"node.id": "6"}).broker_id == 6
    with pytest.raises(ConfigError, match=r"You must set `node.id` to the same value as `broker.id`."):
        BrokerConfig({"broker.id": "1", "node.id": "2"})


# -- values and their errors ---------------------------------------------------------


def test_value_syntax():
    config = BrokerConfig({
        "auto.create.topics.enable": " FALSE ",
        "num.partitions": " +3 ",
        "log.retention.bytes": "-1",
        "log.cleaner.min.cleanable.ratio": "0.25",
        "log.cleaner.io.buffer.load.factor": "1e-1",
        "log.cleanup.policy": " compact , delete ",
        "sasl.enabled.mechanisms": "",
        "broker.rack": "  r1 ",
    })
    assert config.auto_create_topics_enable is False
    assert config.num_partitions == 3
    assert config.log_cleaner_min_cleanable_ratio == 0.25
    assert config.log_cleaner_io_buffer_load_factor == 0.1
    assert config.log_cleanup_policy == ["compact", "delete"]
    assert config.sasl_enabled_mechanisms == []
    assert config.broker_rack == "r1"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("num.partitions", "abc", "Invalid value abc for configuration num.partitions: Not a number of type INT"),
        ("num.partitions", "", "Invalid value  for configuration num.partitions: Not a number of type INT"),
        ("num.partitions", "1_0", "Invalid value 1_0 for configuration num.partitions: Not a number of type INT"),
        ("num.partitions", "2147483648",
         "Invalid value 2147483648 for configuration num.partitions: Not a number of type INT"),
        ("num.partitions", "0", "Invalid value 0 for configuration num.partitions: Value must be at least 1"),
        ("offsets.topic.replication.factor", "40000",
         "Invalid value 40000 for configuration offsets.topic.replication.factor: Not a number of type SHORT"),
        ("log.retention.ms", "1.5", "Invalid value 1.5 for configuration log.retention.ms: Not a number of type LONG"),
        ("delete.topic.enable", "yes",
         "Invalid value yes for configuration delete.topic.enable: Expected value to be either true or false"),
        ("log.cleaner.min.cleanable.ratio", "1.5",
         "Invalid value 1.5 for configuration log.cleaner.min.cleanable.ratio: Value must be no more than 1"),
        ("log.cleaner.min.cleanable.ratio", "half",
         "Invalid value half for configuration log.cleaner.min.cleanable.ratio: Not a number of type DOUBLE"),
        ("compression.type", "brotli", "Invalid value brotli for configuration compression.type: "
         "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
        ("log.cleanup.policy", "delete,", "Invalid value  for configuration log.cleanup.policy: "
         "String must be one of: compact, delete"),
        ("compression.gzip.level", "10", "Invalid value 10 for configuration compression.gzip.level: "
         "Value must be between 1 and 9 or equal to -1"),
        ("log.message.format.version", "9.9",
         "Invalid value 9.9 for configuration log.message.format.version: Version 9.9 is not a valid version"),
        ("broker.id", "1001", "Invalid value 1001 for configuration broker.id: must be greater than or equal to -1 "
         "and not greater than reserved.broker.max.id (1000)"),
    ],
)
def test_invalid_values(name, value, message):
    with pytest.raises(ConfigError) as e:
        BrokerConfig({name: value})
    assert str(e.value) == message


@pytest.mark.parametrize(
    "props, message",
    [
        ({"log.dirs": ""}, "At least one log directory must be defined via log.dirs or log.dir."),
        ({"log.retention.ms": "0"}, "log.retention.ms must be unlimited (-1) or, greater than or equal to 1"),
        ({"log.roll.ms": "0"}, "log.roll.ms must be greater than or equal to 1"),
        ({"broker.id.generation.enable": "false", "broker.id": "-1"},
         "Invalid value -1 for configuration broker.id: must be greater than or equal to 0"),
        ({"log.cleaner.threads": "200"}, "log.cleaner.dedupe.buffer.size must be at least 1MB per cleaner thread."),
        ({"replica.fetch.wait.max.ms": "40000"},
         "replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms "
         "to prevent unnecessary socket timeouts"),
    ],
)
def test_inconsistent_values(props, message):
    with pytest.raises(ConfigError) as e:
        BrokerConfig(props)
    assert str(e.value) == message


def test_explicit_minus_one_broker_id_is_kept():
    assert BrokerConfig({"broker.id": "-1"}).broker_id == -1


def test_unknown_keys_are_collected_in_order():
    config = BrokerConfig({"foo.bar": "1", "num.partitions": "2", "listener.name.plaintext.ssl.key.password": "x"},
                          {"baz": "2"})
    assert config.unknown_keys == ("foo.bar", "baz")
    assert config.originals["listener.name.plaintext.ssl.key.password"] == "x"


# -- listeners ------------------------------------------------------------------------


def test_listeners_and_advertised_listeners():
    config = BrokerConfig({
        "listeners": "PLAINTEXT://0.0.0.0:9092, SSL://[::1]:9093,internal://:0",
        "advertised.listeners": "PLAINTEXT://kafka.example:19092,INTERNAL://:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:sasl_plaintext",
    })
    assert config.listeners == (
        Listener("PLAINTEXT", "0.0.0.0", 9092, "PLAINTEXT"),
        Listener("SSL", "::1", 9093, "SSL"),
        Listener("INTERNAL", "127.0.0.1", 0, "SASL_PLAINTEXT"),
    )
    assert config.advertised_listeners == (
        Listener("PLAINTEXT", "kafka.example", 19092, "PLAINTEXT"),
        Listener("INTERNAL", "127.0.0.1", 0, "SASL_PLAINTEXT"),
    )
    assert config.listener_security_protocol_map["INTERNAL"] == "SASL_PLAINTEXT"


def test_ipv4_and_ipv6_may_share_a_port_and_port_zero_may_repeat():
    config = BrokerConfig({
        "listeners": "PLAINTEXT://127.0.0.1:9092,SSL://[::1]:9092,SASL_PLAINTEXT://:0,SASL_SSL://:0",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:9092",
    })
    assert [listener.port for listener in config.listeners] == [9092, 9092, 0, 0]


def test_inter_broker_listener_name():
    config = BrokerConfig({
        "listeners": "IN://:9092,OUT://:9093",
        "listener.security.protocol.map": "IN:PLAINTEXT,OUT:SSL",
        "inter.broker.listener.name": "in",
    })
    assert config.inter_broker_listener_name == "IN"


@pytest.mark.parametrize(
    "props, message",
    [
        ({"listeners": "PLAINTEXT:9092"},
         "Error creating broker listeners from 'PLAINTEXT:9092': Unable to parse PLAINTEXT:9092 to a broker endpoint"),
        ({"listeners": "PLAINTEXT://:99999"},
         "Error creating broker listeners from 'PLAINTEXT://:99999': "
         "Unable to parse PLAINTEXT://:99999 to a broker endpoint"),
        ({"listeners": "FOO://:9092"},
         "Error creating broker listeners from 'FOO://:9092': No security protocol defined for listener FOO"),
        ({"listeners": "PLAINTEXT://:9092,plaintext://:9093"},
         "Each listener must have a different name, listeners: PLAINTEXT://:9092,plaintext://:9093"),
        ({"listeners": "PLAINTEXT://:9092,SSL://:9092"},
         "Each listener must have a different port, listeners: PLAINTEXT://:9092,SSL://:9092"),
        ({"listener.security.protocol.map": "PLAINTEXT:TLS"},
         "Invalid security protocol `TLS` defined in listener.security.protocol.map"),
        ({"listener.security.protocol.map": "PLAINTEXT"},
         "Error parsing configuration property 'listener.security.protocol.map': "
         "expected LISTENER_NAME:SECURITY_PROTOCOL, got 'PLAINTEXT'"),
        ({"listeners": "PLAINTEXT://0.0.0.0:9092"},
         "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address."),
        ({"listeners": "SSL://:9093"},
         "inter.broker.listener.name must be a listener name defined in advertised.listeners. "
         "The valid options based on currently configured listeners are SSL"),
        ({"advertised.listeners": "SSL://host:9093", "security.inter.broker.protocol": "SSL"},
         "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. "
         "Found SSL. The valid options based on the current configuration are PLAINTEXT"),
        ({"listeners": ""}, "There must be at least one broker advertised listener."),
        ({"inter.broker.listener.name": "PLAINTEXT", "security.inter.broker.protocol": "PLAINTEXT"},
         "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set."),
        ({"inter.broker.listener.name": "REPL"},
         "Listener with name REPL defined in inter.broker.listener.name not found in listener.security.protocol.map."),
    ],
)
def test_bad_listeners(props, message):
    with pytest.raises(ConfigError) as e:
        BrokerConfig(props)
    assert str(e.value) == message


# -- topic configs ------------------------------------------------------------------


def test_topic_table_matches_kafka_39():
    assert len(TOPIC_CONFIGS) == 36
    assert set(SERVER_DEFAULTS) <= set(TOPIC_CONFIGS)
    assert set(TOPIC_CONFIGS) - set(SERVER_DEFAULTS) == {
        "leader.replication.throttled.replicas", "follower.replication.throttled.replicas",
        "remote.storage.enable", "remote.log.copy.disable", "remote.log.delete.on.disable",
    }
    assert set(SERVER_DEFAULTS.values()) <= set(BROKER_CONFIGS)


def test_topic_defaults_follow_the_broker():
    config = BrokerConfig({
        "log.retention.hours": "1",
        "log.segment.bytes": "1024",
        "message.max.bytes": "2000",
        "log.cleanup.policy": "compact",
        "log.roll.hours": "2",
        "log.message.timestamp.type": "LogAppendTime",
    })
    defaults = config.topic_defaults()
    assert defaults["retention.ms"] == 3600000
    assert defaults["segment.bytes"] == 1024
    assert defaults["max.message.bytes"] == 2000
    assert defaults["cleanup.policy"] == ["compact"]
    assert defaults["segment.ms"] == 7200000
    assert defaults["message.timestamp.type"] == "LogAppendTime"
    assert defaults["flush.ms"] == LONG_MAX
    assert defaults["remote.storage.enable"] is False
    defaults["cleanup.policy"].append("delete")
    assert config.topic_defaults()["cleanup.policy"] == ["compact"]


def test_topic_defaults_of_a_default_broker_are_kafkas():
    defaults = BrokerConfig().topic_defaults()
    assert defaults == {name: definition.default for name, definition in TOPIC_CONFIGS.items()}


def test_validate_topic_configs_returns_parsed_values():
    parsed = validate_topic_configs({
        "retention.ms": " 1000 ",
        "cleanup.policy": "compact,delete",
        "min.cleanable.dirty.ratio": "0.1",
        "preallocate": "TRUE",
        "message.format.version": "2.8",
        "leader.replication.throttled.replicas": "0:1,1:2",
    })
    assert parsed == {"retention.ms": 1000, "cleanup.policy": ["compact", "delete"], "min.cleanable.dirty.ratio": 0.1,
                      "preallocate": True, "message.format.version": "2.8",
                      "leader.replication.throttled.replicas": ["0:1", "1:2"]}
    assert validate_topic_configs({"follower.replication.throttled.replicas": "*"}) == {
        "follower.replication.throttled.replicas": ["*"]}


@pytest.mark.parametrize(
    "configs, message",
    [
        ({"retention.ms": "abc"}, "Invalid value abc for configuration retention.ms: Not a number of type LONG"),
        ({"x": "1"}, "Unknown topic config name: x"),
        ({"retention.ms": None, "segment.ms": None},
         "Null value not supported for topic configs: retention.ms,segment.ms"),
        ({"segment.bytes": "13"}, "Invalid value 13 for configuration segment.bytes: Value must be at least 14"),
        ({"retention.ms": "-2"}, "Invalid value -2 for configuration retention.ms: Value must be at least -1"),
        ({"cleanup.policy": "Delete"},
         "Invalid value Delete for configuration cleanup.policy: String must be one of: compact, delete"),
        ({"message.timestamp.type": "create"}, "Invalid value create for configuration message.timestamp.type: "
         "String must be one of: CreateTime, LogAppendTime"),
        ({"compression.zstd.level": "23"},
         "Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22"),
        ({"leader.replication.throttled.replicas": "0-1"},
         "Invalid value [0-1] for configuration leader.replication.throttled.replicas: "
         "leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following "
         "format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
        ({"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"},
         "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"),
        ({"remote.storage.enable": "true"},
         "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."),
        # Kafka parses in definition order: segment.bytes before retention.ms.
        ({"retention.ms": "x", "segment.bytes": "y"},
         "Invalid value y for configuration segment.bytes: Not a number of type INT"),
    ],
)
def test_invalid_topic_configs(configs, message):
    with pytest.raises(KafkaError) as e:
        validate_topic_configs(configs)
    assert (e.value.code, e.value.message) == (ErrorCode.INVALID_CONFIG, message)


def test_topic_config_conflict_checked_against_the_broker():
    broker = BrokerConfig({"log.cleaner.max.compaction.lag.ms": "100"})
    assert validate_topic_configs({"min.compaction.lag.ms": "200"}) == {"min.compaction.lag.ms": 200}
    with pytest.raises(KafkaError, match=r"\(200\) > max.compaction.lag.ms \(100\)"):
        validate_topic_configs({"min.compaction.lag.ms": "200"}, broker)


def test_effective_topic_config():
    broker = BrokerConfig({"log.retention.bytes": "500"})
    config = broker.effective_topic_config({"retention.ms": "10", "message.timestamp.difference.max.ms": "1000"})
    assert config["retention.ms"] == 10
    assert config["retention.bytes"] == 500
    assert config["message.timestamp.before.max.ms"] == 1000
    assert config["message.timestamp.after.max.ms"] == 1000
    assert broker.effective_topic_config({"message.timestamp.difference.max.ms": "1000",
                                "message.timestamp.after.max.ms": "7"})["message.timestamp.after.max.ms"] == 7


# -- DescribeConfigs --------------------------------------------------------------


def _by_name(entries):
    return {e.name: e for e in entries}


def _synonyms(entry):
    return [(s.name, s.value, s.source) for s in entry.synonyms]


def test_describe_topic_without_overrides():
    broker = BrokerConfig({"log.segment.bytes": "1024", "log.retention.hours": "1", "message.max.bytes": " 2000 "})
    entries = describe_topic_configs(broker, {})
    assert [e.name for e in entries] == sorted(TOPIC_CONFIGS)
    described = _by_name(entries)
    segment = described["segment.bytes"]
    assert (segment.value, segment.source, segment.read_only, segment.is_sensitive, segment.config_type) == (
        "1024", ConfigSource.STATIC_BROKER_CONFIG, False, False, ConfigType.INT)
    assert _synonyms(segment) == [
        ("log.segment.bytes", "1024", ConfigSource.STATIC_BROKER_CONFIG),
        ("log.segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG),
    ]
    # Static synonyms are reported as written in the file.
    assert _synonyms(described["max.message.bytes"])[0] == ("message.max.bytes", " 2000 ",
                                                          ConfigSource.STATIC_BROKER_CONFIG)
    assert described["max.message.bytes"].value == "2000"
    index = described["index.interval.bytes"]
    assert (index.value, index.source, index.is_default) == ("4096", ConfigSource.DEFAULT_CONFIG, True)
    assert _synonyms(index) == [("log.index.interval.bytes", "4096", ConfigSource.DEFAULT_CONFIG)]
    # Kafka starts retention.ms' synonyms at log.retention.ms, so hours alone lists none.
    retention = described["retention.ms"]
    assert (retention.value, retention.source, retention.synonyms) == ("3600000", ConfigSource.DEFAULT_CONFIG, ())
    assert described["remote.storage.enable"].synonyms == ()
    assert described["cleanup.policy"].value == "delete"
    assert described["min.cleanable.dirty.ratio"].value == "0.5"
    assert described["leader.replication.throttled.replicas"].value == ""
    assert described["message.format.version"].value == "3.0-IV1"


def test_describe_topic_with_overrides():
    broker = BrokerConfig({"log.retention.ms": "5000", "log.flush.interval.ms": "100"})
    described = _by_name(describe_topic_configs(broker, {"retention.ms": "1000", "cleanup.policy": "compact, delete"}))
    retention = described["retention.ms"]
    assert (retention.value, retention.source) == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert _synonyms(retention) == [
        ("retention.ms", "1000", ConfigSource.DYNAMIC_TOPIC_CONFIG),
        ("log.retention.ms", "5000", ConfigSource.STATIC_BROKER_CONFIG),
        ("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG),
    ]
    assert described["cleanup.policy"].value == "compact,delete"
    flush = described["flush.ms"]
    assert (flush.value, flush.source) == ("100", ConfigSource.STATIC_BROKER_CONFIG)
    assert _synonyms(flush) == [
        ("log.flush.interval.ms", "100", ConfigSource.STATIC_BROKER_CONFIG),
        ("log.flush.scheduler.interval.ms", str(LONG_MAX), ConfigSource.DEFAULT_CONFIG),
    ]


def test_describe_broker():
    broker = BrokerConfig(
        {"num.partitions": "3", "log.retention.hours": "24", "ssl.keystore.password": "secret", "my.plugin": "x",
         "listener.name.plaintext.ssl.key.password": "pw", "listener.name.plaintext.ssl.keystore.type": "PEM"},
        {"message.max.bytes": "2000"},
    )
    entries = broker.describe()
    assert [e.name for e in entries] == sorted(e.name for e in entries)
    described = _by_name(entries)
    assert {name for name, d in BROKER_CONFIGS.items() if not d.internal} <= set(described)
    # An internal config (Kafka's defineInternal) is listed only when supplied.
    assert "producer.id.expiration.check.interval.ms" not in described
    supplied = _by_name(BrokerConfig({"producer.id.expiration.check.interval.ms": "500"}).describe())
    assert supplied["producer.id.expiration.check.interval.ms"].value == "500"

    partitions = described["num.partitions"]
    assert (partitions.value, partitions.source, partitions.read_only, partitions.config_type) == (
        "3", ConfigSource.STATIC_BROKER_CONFIG, True, ConfigType.INT)
    assert _synonyms(partitions) == [("num.partitions", "3", ConfigSource.STATIC_BROKER_CONFIG),
                                     ("num.partitions", "1", ConfigSource.DEFAULT_CONFIG)]
    max_bytes = described["message.max.bytes"]
    assert (max_bytes.value, max_bytes.source, max_bytes.read_only) == (
        "2000", ConfigSource.STATIC_BROKER_CONFIG, False)

    hours = described["log.retention.hours"]
    assert (hours.value, hours.source) == ("24", ConfigSource.STATIC_BROKER_CONFIG)
    millis = described["log.retention.ms"]
    assert (millis.value, millis.source, millis.synonyms) == (None, ConfigSource.DEFAULT_CONFIG, ())

    password = described["ssl.keystore.password"]
    assert (password.value, password.is_sensitive, password.config_type) == (None, True, ConfigType.PASSWORD)
    assert _synonyms(password) == [("ssl.keystore.password", None, ConfigSource.STATIC_BROKER_CONFIG)]

    unknown = described["my.plugin"]
    assert (unknown.value, unknown.is_sensitive, unknown.read_only, unknown.config_type, unknown.source) == (
        None, True, True, ConfigType.UNKNOWN, ConfigSource.STATIC_BROKER_CONFIG)

    key_password = described["listener.name.plaintext.ssl.key.password"]
    assert (key_password.value, key_password.config_type) == (None, ConfigType.PASSWORD)
    keystore_type = described["listener.name.plaintext.ssl.keystore.type"]
    assert (keystore_type.value, keystore_type.is_sensitive) == ("PEM", False)
    assert _synonyms(keystore_type) == [
        ("listener.name.plaintext.ssl.keystore.type", "PEM", ConfigSource.STATIC_BROKER_CONFIG),
        ("ssl.keystore.type", "JKS", ConfigSource.DEFAULT_CONFIG),
    ]

    assert described["log.cleaner.io.max.bytes.per.second"].value == "1.7976931348623157E308"
    assert described["log.cleanup.policy"].value == "delete"
    assert described["advertised.listeners"].value is None
    assert described["node.id"].value == "0"


def test_describe_broker_id_synonym_is_static():
    described = _by_name(BrokerConfig({"broker.id": "2"}).describe())
    assert (described["node.id"].value, described["node.id"].source) == ("2", ConfigSource.STATIC_BROKER_CONFIG)


@pytest.mark.parametrize(
    "value, text",
    [(0.5, "0.5"), (100.0, "100.0"), (0.001, "0.001"), (1e7, "1.0E7"), (1.5e-5, "1.5E-5"), (-2.5e10, "-2.5E10"),
     (0.0, "0.0"), (1.7976931348623157e308, "1.7976931348623157E308"), (float("inf"), "Infinity"),
     (float("nan"), "NaN")],
)
def test_java_double_str(value, text):
    assert java_double_str(value) == text


def test_wire_numbers():
    """DescribeConfigs' ConfigSource and ConfigType numbering."""
    assert [(s.name, int(s)) for s in ConfigSource][:6] == [
        ("UNKNOWN", 0), ("DYNAMIC_TOPIC_CONFIG", 1), ("DYNAMIC_BROKER_CONFIG", 2),
        ("DYNAMIC_DEFAULT_BROKER_CONFIG", 3), ("STATIC_BROKER_CONFIG", 4), ("DEFAULT_CONFIG", 5),
    ]
    assert [int(t) for t in (ConfigType.BOOLEAN, ConfigType.STRING, ConfigType.INT, ConfigType.SHORT,
                             ConfigType.LONG, ConfigType.DOUBLE, ConfigType.LIST, ConfigType.CLASS,
                             ConfigType.PASSWORD)] == list(range(1, 10))
