"""A kafka-compat cluster of broker subprocesses sharing a ZooKeeper, as a
user starts one (broker.id and zookeeper.connect per broker), for the cluster
tests and ./scripts/cluster."""
from __future__ import annotations

import time
from pathlib import Path

from .broker_process import BrokerProcess, venv_executable


class Cluster:
    """Brokers 1..size, each with its own data dir and log under ``directory``."""

    def __init__(self, zk_connect: str, directory: Path, size: int = 3,
                 overrides: dict[str, str] | None = None, ports: list[int] | None = None):
        executable = venv_executable("kafka-compat")
        self.brokers: dict[int, BrokerProcess] = {}
        for i in range(1, size + 1):
            self.brokers[i] = BrokerProcess(
                executable, data_dir=directory / f"broker-{i}", log_path=directory / f"broker-{i}.log",
                overrides={"broker.id": str(i), "zookeeper.connect": zk_connect, **(overrides or {})},
                port=ports[i - 1] if ports else None)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def start(self) -> None:
        for broker in self.brokers.values():
            broker.start()

    def stop(self) -> None:
        """Stop every broker still running (SIGTERM; SIGKILL if it hangs)."""
        errors = []
        for broker in self.brokers.values():
            try:
                broker.stop()
            except TimeoutError as e:
                errors.append(str(e))
        if errors:
            raise TimeoutError("\n".join(errors))

    def logs(self) -> str:
        return "\n".join(b.log_tail(60) for b in self.brokers.values())


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something true; that value. Raises
    TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
