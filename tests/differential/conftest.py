"""Apache Kafka and kafka-compat side by side, once per test module."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from interop.broker_process import BrokerProcess, venv_executable
from interop.reference_kafka import ReferenceKafka

# Configs both brokers run with (Kafka's names), each for a reason:
COMMON_CONFIGS = {
    # A first member's JoinGroup would wait 3 s for others (Kafka's default).
    "group.initial.rebalance.delay.ms": "0",
    # Fewer __consumer_offsets partitions to create and load on a 2-core machine.
    "offsets.topic.num.partitions": "3",
}
# The reference is KRaft node 1; our single broker takes the same id so that
# node ids (leaders, coordinators, controller) compare without being ignored.
OURS_CONFIGS = {"broker.id": "1"}


@dataclass
class Brokers:
    reference: ReferenceKafka
    ours: BrokerProcess

    @property
    def reference_address(self):
        return self.reference.host, self.reference.port

    @property
    def ours_address(self):
        return self.ours.host, self.ours.port


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    """Configs both brokers of a module run with besides COMMON_CONFIGS; a
    test module overrides this fixture to set some."""
    return {}


@pytest.fixture(scope="module")
def brokers(tmp_path_factory, broker_overrides):
    executable = venv_executable("kafka-compat")
    if not executable.exists():
        pytest.fail(f"{executable} is missing: install the package with `pip install -e .` "
                    "(./scripts/test does it)")
    directory = tmp_path_factory.mktemp("ours")
    ours = BrokerProcess(executable, data_dir=directory / "data", log_path=directory / "broker.log",
                         overrides={**COMMON_CONFIGS, **broker_overrides, **OURS_CONFIGS})
    reference = ReferenceKafka(overrides={**COMMON_CONFIGS, **broker_overrides})
    try:
        ours.start()
        reference.start()
        yield Brokers(reference, ours)
    finally:
        try:
            reference.stop()
        finally:
            ours.stop()


@pytest.fixture(scope="module")
def shared(brokers):
    """The client cases' admin clients and Java admin session, one of each per
    broker, kept for the module (tests/differential/clients.py)."""
    from .clients import Shared
    sides = {"kafka": Shared(brokers.reference.bootstrap), "ours": Shared(brokers.ours.bootstrap)}
    try:
        yield sides
    finally:
        for side in sides.values():
            side.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, show the end of both brokers' logs next to the traceback."""
    report = yield
    if report.failed:
        brokers = getattr(item, "funcargs", {}).get("brokers")
        if isinstance(brokers, Brokers):
            report.sections.append((f"Apache Kafka {brokers.reference.bootstrap}",
                                    brokers.reference.log_tail(30)))
            report.sections.append((f"kafka-compat {brokers.ours.bootstrap}", brokers.ours.log_tail(30)))
    return report
