"""The kafka-compat command line: precedence of its settings and its error paths
(one line on stderr, exit status 2, never a traceback)."""
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kafka_compat.cli import broker_config, build_parser, main
from kafka_compat.config import Listener

ROOT = Path(__file__).resolve().parents[2]


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kafka_compat", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def config_from(argv):
    return broker_config(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    "args, message",
    [
        (["broker", "--override", "num.partitions=abc"],
         "kafka-compat: error: Invalid value abc for configuration num.partitions: Not a number of type INT"),
        (["broker", "/no/such/server.properties"],
         "kafka-compat: error: cannot read config file /no/such/server.properties: No such file or directory"),
        (["broker", "--no-such-flag"], "kafka-compat: error: unrecognized arguments: --no-such-flag"),
    ],
)
def test_errors_from_a_real_process(args, message):
    result = run_module(*args)
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert result.stdout == ""


def test_version_from_a_real_process():
    result = run_module("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("kafka-compat ")


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "the following arguments are required: COMMAND"),
        (["broker", "-o", "num.partitions"], "argument -o/--override: expected key=value, got 'num.partitions'"),
        (["broker", "-o", "=3"], "argument -o/--override: expected key=value, got '=3'"),
        (["broker", "--log-level", "loud"],
         "argument --log-level: unknown log level 'loud' (one of DEBUG, INFO, WARN, WARNING, ERROR)"),
        (["broker", "--broker-id", "x"], "Invalid value x for configuration broker.id: Not a number of type INT"),
        (["broker", "--listeners", "PLAINTEXT://0.0.0.0:9092"],
         "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address."),
    ],
)
def test_errors_are_one_line_and_status_2(capsys, argv, message):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"kafka-compat: error: {message}\n")


def test_bad_value_in_the_file(tmp_path, capsys):
    path = tmp_path / "server.properties"
    path.write_text("log.retention.hours=forever\n")
    assert main(["broker", str(path)]) == 2
    assert capsys.readouterr().err == (
        "kafka-compat: error: Invalid value forever for configuration log.retention.hours: Not a number of type INT\n"
    )


def test_defaults_then_file_then_flags_then_overrides(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text(
        "# a broker\n"
        "num.partitions=2\n"
        "broker.id=1\n"
        "log.retention.hours=5\n"
        "log.dirs=/from/file\n"
    )
    config = config_from([
        "broker", str(path),
        "--num-partitions", "3",
        "--log-dirs", str(tmp_path / "data"),
        "--listeners", "PLAINTEXT://127.0.0.1:19092",
        "--advertised-listeners", "PLAINTEXT://localhost:19092",
        "-o", "num.partitions=4",
        "--override", "log.segment.bytes=1024",
        "-o", "log.segment.bytes=2048",
    ])
    assert config.num_partitions == 4
    assert config.broker_id == 1
    assert config.log_retention_ms == 5 * 3600 * 1000
    assert config.log_dirs == (str(tmp_path / "data"),)
    assert config.listeners == (Listener("PLAINTEXT", "127.0.0.1", 19092, "PLAINTEXT"),)
    assert config.advertised_listeners == (Listener("PLAINTEXT", "localhost", 19092, "PLAINTEXT"),)
    assert config.log_segment_bytes == 2048
    assert config.default_replication_factor == 1


def test_broker_id_flag_and_override_values_keep_equals_signs():
    config = config_from(["broker", "--broker-id", "7", "-o", "broker.rack=a=b"])
    assert (config.broker_id, config.broker_rack) == (7, "a=b")


def test_log_level():
    assert build_parser().parse_args(["broker"]).log_level == logging.INFO
    assert build_parser().parse_args(["broker", "--log-level", "warn"]).log_level == logging.WARNING
    assert build_parser().parse_args(["broker", "--log-level", "DEBUG"]).log_level == logging.DEBUG


def test_start_up_failures_are_one_line_and_status_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_module("broker", "--listeners", f"PLAINTEXT://127.0.0.1:{port}", "--log-dirs", str(tmp_path / "d"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"kafka-compat: error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "Traceback" not in result.stderr

    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_module("broker", "--listeners", "PLAINTEXT://127.0.0.1:0", "--log-dirs", str(blocker / "sub"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith(f"cannot use log dir {blocker / 'sub'}: Not a directory")
