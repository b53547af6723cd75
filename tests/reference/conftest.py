"""Fixtures for the tests that run Apache Kafka itself (interop/reference_kafka.py)."""
from __future__ import annotations

import pytest

from interop.reference_kafka import ReferenceKafka


@pytest.fixture(scope="module")
def reference_kafka():
    """Apache Kafka (one KRaft node) on free ports in a temporary directory,
    shared by a module's tests and stopped (the directory removed) after them."""
    kafka = ReferenceKafka()
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, show the end of Kafka's log next to the traceback."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, ReferenceKafka) and value.directory is not None:
                state = "running" if value.running() else "not running"
                report.sections.append(
                    (f"Apache Kafka {value.bootstrap} (pid {value.pid}, {state})",
                     value.log_tail()))
    return report
