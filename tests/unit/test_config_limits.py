"""Connection-limit configs as Kafka parses and checks them, the configs we
accept but ignore, and what a user sees at start-up for both."""
import subprocess
import sys
from pathlib import Path

import pytest

from kafka_compat.config import BROKER_CONFIGS, IGNORED_CONFIGS, BrokerConfig, ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_per_ip_overrides_are_host_count_pairs_split_at_the_last_colon():
    config = BrokerConfig({"max.connections.per.ip.overrides": "localhost:5, 10.0.0.1 : 3,::1:7"})
    assert config.max_connections_per_ip_overrides == {"localhost": 5, "10.0.0.1": 3, "::1": 7}
    assert BrokerConfig().max_connections_per_ip_overrides == {}


@pytest.mark.parametrize("props, message", [
    ({"max.connections.per.ip.overrides": "localhost"},
     "Error parsing configuration property 'max.connections.per.ip.overrides': expected HOST:COUNT, got 'localhost'"),
    ({"max.connections.per.ip.overrides": "localhost:many"},
     "Error parsing configuration property 'max.connections.per.ip.overrides': For input string: \"many\""),
    ({"max.connections.per.ip.overrides": "bad host:1,ok:2"},
     "max.connections.per.ip.overrides contains invalid addresses : bad host"),
    ({"max.connections.per.ip": "0"},
     "max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides property is set."),
])
def test_bad_per_ip_limits_are_refused_with_kafkas_words(props, message):
    with pytest.raises(ConfigError) as e:
        BrokerConfig(props)
    assert str(e.value) == message


def test_ignored_configs_are_the_supplied_ones_we_do_not_act_on():
    assert IGNORED_CONFIGS <= set(BROKER_CONFIGS)
    config = BrokerConfig({"num.io.threads": "8", "num.partitions": "3", "zookeeper.connect": "zk:2181",
                           "zookeeper.max.in.flight.requests": "5",
                           "listener.name.plaintext.max.connections": "10", "no.such.config": "1"})
    assert config.ignored_configs() == ["num.io.threads", "zookeeper.max.in.flight.requests",
                                        "listener.name.plaintext.max.connections"]
    assert BrokerConfig().ignored_configs() == []


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kafka_compat", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_an_ssl_listener_stops_the_broker_with_one_line_and_status_1(tmp_path):
    result = run_module("broker", "--listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
                        "--log-dirs", str(tmp_path / "d"))
    assert result.returncode == 1
    assert result.stderr == (
        "kafka-compat: error: listener SSL://127.0.0.1:0 uses security protocol SSL, which kafka-compat "
        "does not implement (only PLAINTEXT); not starting rather than serving it as plaintext\n")
    assert not (tmp_path / "d").exists()
