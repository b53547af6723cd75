"""Fixtures for the cluster tests: a real ZooKeeper server (Debian's
`zookeeper` package, see interop/zookeeper.py) shared by a module's tests,
and a chroot of its own for each test so tests never see each other's znodes."""
from __future__ import annotations

import os
import re
import signal
import uuid

import pytest
from kazoo.client import KazooClient

from interop.cluster import Cluster
from interop.zookeeper import ZooKeeperNotInstalled, ZooKeeperProcess


@pytest.fixture(scope="module")
def zookeeper():
    """A standalone ZooKeeper on a free port with a temporary data directory,
    stopped (and the directory removed) after the module's tests."""
    server = ZooKeeperProcess()
    try:
        server.start()
    except ZooKeeperNotInstalled as error:
        pytest.fail(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zk_chroot(request) -> str:
    """A chroot path no other test uses, e.g. `/test_watch-1a2b3c4d` (not
    created: a client connecting to it creates it, as Kafka does)."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-")[:80]
    return f"/{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def zk_connect(zookeeper, zk_chroot) -> str:
    """zookeeper.connect for this test: the shared server with its own chroot."""
    return zookeeper.connect_string(zk_chroot)


@pytest.fixture
def cluster_overrides() -> dict[str, str]:
    """Broker configs for the `cluster` fixture's brokers; a test module
    overrides this fixture to set some."""
    return {}


# The last broker to stop still leads partitions of replication factor 3 that
# nobody can take over; its controlled shutdown retries, as Kafka's does,
# controlled.shutdown.max.retries (3) times, each after this backoff (5 s by
# default, which made such a test's teardown last 10 s).
SHUTDOWN_RETRY_BACKOFF = {"controlled.shutdown.retry.backoff.ms": "500"}


@pytest.fixture
def cluster(zk_connect, tmp_path, cluster_overrides):
    """Three broker processes (ids 1-3) on this test's chroot, started and
    formed (every broker knows all three and the controller); afterwards
    any broker a test left stopped (SIGSTOP) is resumed and all are stopped."""
    brokers = Cluster(zk_connect, tmp_path, 3, {**SHUTDOWN_RETRY_BACKOFF, **cluster_overrides})
    try:
        brokers.start()
    except Exception:
        print(brokers.logs())
        brokers.stop()
        raise
    try:
        yield brokers
    finally:
        for broker in brokers.brokers.values():
            if broker.running():
                os.kill(broker.pid, signal.SIGCONT)
        brokers.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, show the end of each broker's log next to the traceback
    (what a broker saw is often the only clue to a failure under load)."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Cluster):
                for broker_id, broker in value.brokers.items():
                    state = "running" if broker.running() else "not running"
                    report.sections.append((f"broker {broker_id} at {broker.bootstrap} (pid {broker.pid}, {state})",
                                            broker.log_tail(100)))
    return report


@pytest.fixture
def zk(zk_connect):
    """A ZooKeeper client on this test's chroot, to look at what the brokers wrote."""
    client = KazooClient(hosts=zk_connect)
    client.start()
    yield client
    client.stop()
    client.close()
