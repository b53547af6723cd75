"""Fixtures for the cluster tests: a real ZooKeeper server (Debian's
`zookeeper` package, see interop/zookeeper.py) shared by a module's tests,
and a chroot of its own for each test so tests never see each other's znodes."""
from __future__ import annotations

import re
import uuid

import pytest

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
