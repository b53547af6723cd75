"""The broker the transaction tests run against: ours, or, with
INTEROP_TXN_BROKER=kafka, Apache Kafka itself (interop/reference_kafka.py),
which is how the tests were checked to expect what Kafka does. Either one is
started, killed with SIGKILL and restarted on the same ports and data.

Kafka 4.4 finalizes transaction.version 2 (KIP-890 part 2: an epoch bump per
transaction, no AddPartitionsToTxn from the client) on a new cluster; it is
downgraded to 1 at the first start, so that its clients speak to it as to a
3.9 broker, the protocol ours implements."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from interop.broker_process import BrokerProcess, venv_executable
from interop.process import free_port
from interop.reference_kafka import ROOT, ReferenceKafka

# Kafka's names, for both brokers: one broker replicates its internal topics
# once; fewer partitions to load; timed-out transactions are looked for every
# second (Kafka's default is 10 s); groups start without the 3 s wait.
CONFIGS = {
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "3",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "3",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    "group.initial.rebalance.delay.ms": "0",
}


def against_kafka() -> bool:
    return os.environ.get("INTEROP_TXN_BROKER") == "kafka"


class TxnBroker:
    """One broker, ours or Kafka's, in `directory`."""

    def __init__(self, directory: Path, overrides: dict[str, str] | None = None):
        configs = {**CONFIGS, **(overrides or {})}
        self._started = False
        if against_kafka():
            self.process = ReferenceKafka(directory=directory, port=free_port(),
                                          controller_port=free_port(), overrides=configs)
        else:
            executable = venv_executable("kafka-compat")
            if not executable.exists():
                pytest.fail(f"{executable} is missing: install the package with `pip install -e .`")
            self.process = BrokerProcess(executable, data_dir=directory / "data",
                                         log_path=directory / "broker.log", overrides=configs)

    @property
    def bootstrap(self) -> str:
        return self.process.bootstrap

    @property
    def data_dir(self) -> Path:
        """The log dir (log.dirs) holding the partitions' directories."""
        return self.process.directory / "data" if against_kafka() else self.process.data_dir

    def start(self) -> None:
        first = not self._started
        self.process.start()
        self._started = True
        if first and against_kafka():
            tool = subprocess.run(
                [str(ROOT / "scripts" / "kafka-tool"), "kafka-features", "--bootstrap-server",
                 self.bootstrap, "downgrade", "--feature", "transaction.version=1"],
                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            assert tool.returncode == 0, tool.stderr

    def stop(self) -> None:
        self.process.stop()

    def kill9(self) -> None:
        """SIGKILL the broker and wait for it to be gone."""
        self.process.kill9()

    def log_tail(self) -> str:
        return self.process.log_tail()
