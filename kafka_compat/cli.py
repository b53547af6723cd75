"""The ``kafka-compat`` command.

``kafka-compat broker [server.properties] [--override key=value ...]`` starts a
broker like kafka-server-start.sh. Settings apply in this order, later winning:
Kafka's defaults, the properties file, the convenience flags (--listeners, ...),
then each --override in the order given.

A bad argument or config value is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import resource
import sys

from kafka_compat.config import BrokerConfig, ConfigError, load_properties

PROG = "kafka-compat"
LOG_FORMAT = "[%(asctime)s] %(levelname)s %(message)s (%(name)s)"  # Kafka's log4j layout
LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
              "WARNING": logging.WARNING, "ERROR": logging.ERROR}

# Convenience flags and the config each one sets.
FLAG_CONFIGS = {
    "listeners": "listeners",
    "advertised_listeners": "advertised.listeners",
    "log_dirs": "log.dirs",
    "broker_id": "broker.id",
    "num_partitions": "num.partitions",
}


class UsageError(Exception):
    """A command line that cannot be run."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage over several lines
        raise UsageError(message)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got '{text}'")
    return key.strip(), value


def _log_level(text: str) -> int:
    try:
        return LOG_LEVELS[text.upper()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown log level '{text}' (one of {', '.join(LOG_LEVELS)})") from None


def _version() -> str:
    try:
        return importlib.metadata.version("kafka-compat")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="An Apache Kafka wire-compatible broker.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    broker = commands.add_parser("broker", help="run a broker", description="Run a broker.")
    broker.add_argument("properties", nargs="?", metavar="server.properties", help="broker config file")
    broker.add_argument("-o", "--override", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="set a config, overriding the file and flags (repeatable)")
    broker.add_argument("--listeners", help="listeners, e.g. PLAINTEXT://127.0.0.1:9092")
    broker.add_argument("--advertised-listeners", help="advertised.listeners")
    broker.add_argument("--log-dirs", help="log.dirs: data directories, comma-separated")
    broker.add_argument("--broker-id", help="broker.id")
    broker.add_argument("--num-partitions", help="num.partitions for new topics")
    broker.add_argument("--log-level", type=_log_level, default=logging.INFO, metavar="LEVEL",
                        help="DEBUG, INFO (default), WARN or ERROR")
    broker.set_defaults(run=_run_broker)
    return parser


def broker_config(args: argparse.Namespace) -> BrokerConfig:
    properties = load_properties(args.properties) if args.properties else {}
    overrides = {key: getattr(args, flag) for flag, key in FLAG_CONFIGS.items() if getattr(args, flag) is not None}
    overrides.update(args.override)
    return BrokerConfig(properties, overrides)


def _raise_open_files_limit() -> None:
    """Every connection is an open file: raise the soft limit to the hard one,
    as the JVM does for Kafka (-XX:+MaxFDLimit, on by default)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. an unlimited hard limit above the kernel's nr_open
            pass


def _run_broker(args: argparse.Namespace) -> int:
    config = broker_config(args)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    _raise_open_files_limit()
    from kafka_compat import broker  # only when a broker really starts

    try:
        return broker.run(config)
    except broker.StartupError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (UsageError, ConfigError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
