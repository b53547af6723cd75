"""Fixtures for the real-client interop tests: a kafka-compat broker run as a
subprocess, exactly as a user starts it, and fresh topics on it."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from interop import admin
from interop.broker_process import BrokerProcess, venv_executable


def _broker(directory: Path, overrides: dict[str, str]) -> BrokerProcess:
    executable = venv_executable("kafka-compat")
    if not executable.exists():
        pytest.fail(f"{executable} is missing: install the package with "
                    "`pip install -e .` (./scripts/test does it)")
    return BrokerProcess(executable, data_dir=directory / "data", log_path=directory / "broker.log",
                         overrides=overrides)


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    """Broker configs (`--override KEY=VALUE`) for the module's brokers;
    a test module overrides this fixture to set some."""
    return {}


@pytest.fixture(scope="module")
def broker(tmp_path_factory, broker_overrides):
    """One broker shared by a module's tests; each test uses its own topics."""
    process = _broker(tmp_path_factory.mktemp("broker"), broker_overrides)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def own_broker(tmp_path, broker_overrides):
    """A broker for one test, free to stop, kill and restart it."""
    process = _broker(tmp_path, broker_overrides)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def topic_name(request):
    """A fresh, valid topic name derived from the test's name."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-")[:80]
    return lambda suffix="": f"{base}{suffix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_topic(request, topic_name):
    """Create a topic on the test's broker and return its name:
    `new_topic(partitions=1, configs=None)`."""
    def create(partitions: int = 1, configs: dict[str, str] | None = None) -> str:
        process = _test_broker(request)
        name = topic_name()
        admin.create_topic(process.bootstrap, name, partitions=partitions, configs=configs)
        return name
    return create


def _test_broker(request) -> BrokerProcess:
    for fixture in ("own_broker", "broker"):
        if fixture in request.fixturenames:
            return request.getfixturevalue(fixture)
    raise RuntimeError("new_topic needs the broker or own_broker fixture")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, show the end of the broker's log next to the traceback."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, BrokerProcess):
                state = "running" if value.running() else "not running"
                report.sections.append(
                    (f"broker {value.bootstrap} (pid {value.pid}, {state})", value.log_tail()))
    return report
