"""ZkClient against a real ZooKeeper server."""
from __future__ import annotations

import threading

import pytest
import trio
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType

from interop.broker_process import free_port
from interop.zookeeper import ZooKeeperProcess, expire_session
from kafka_compat.cluster.zk_data import PERSISTENT_PATHS
from kafka_compat.cluster.zk_client import (
    BadVersionError,
    CheckOp,
    CreateOp,
    DeleteOp,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    SessionEvent,
    SetDataOp,
    ZkClient,
    ZkConnectionTimeout,
)

DEADLINE = 10  # seconds to wait for anything ZooKeeper should do at once


@pytest.fixture
async def zk(zk_connect):
    async with ZkClient(zk_connect) as client:
        yield client


def recorder():
    """A callback that records what it is called with, and checks it runs on
    the trio thread; and the channel to read the records from."""
    send, receive = trio.open_memory_channel(100)
    trio_thread = threading.get_ident()

    def record(item):
        assert threading.get_ident() == trio_thread
        send.send_nowait(item)
    return record, receive


async def test_crud_with_versions(zk):
    assert await zk.create("/a", b"one") == "/a"
    data, stat = await zk.get("/a")
    assert (data, stat.version) == (b"one", 0)

    stat = await zk.set("/a", b"two", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        await zk.set("/a", b"stale", version=0)
    assert (await zk.get("/a"))[0] == b"two"
    assert (await zk.set("/a", b"any")).version == 2

    with pytest.raises(NodeExistsError):
        await zk.create("/a")
    with pytest.raises(NoNodeError):
        await zk.create("/missing/child")
    assert await zk.create("/b/c/d", b"deep", makepath=True) == "/b/c/d"
    assert sorted(await zk.get_children("/")) == ["a", "b"]

    first = await zk.create("/seq/n_", sequential=True, makepath=True)
    second = await zk.create("/seq/n_", sequential=True)
    assert (first, second) == ("/seq/n_0000000000", "/seq/n_0000000001")

    with pytest.raises(NotEmptyError):
        await zk.delete("/b")
    with pytest.raises(BadVersionError):
        await zk.delete("/a", version=1)
    await zk.delete("/a", version=2)
    assert await zk.exists("/a") is None
    with pytest.raises(NoNodeError):
        await zk.get("/a")
    with pytest.raises(NoNodeError):
        await zk.set("/a", b"")

    await zk.delete_recursive("/b")
    await zk.delete_recursive("/b")  # absent: nothing to do
    assert await zk.exists("/b") is None

    await zk.ensure_path("/x/y")
    await zk.ensure_path("/x/y")
    assert (await zk.get("/x/y"))[0] == b""


async def test_multi_is_all_or_nothing(zk):
    """Kafka's controller election: create the ephemeral /controller and bump
    /controller_epoch at the version read, in one transaction."""
    await zk.create("/controller_epoch", b"0")
    _, epoch = await zk.get("/controller_epoch")

    results = await zk.multi([
        CreateOp("/controller", b"me", ephemeral=True),
        SetDataOp("/controller_epoch", b"1", version=epoch.version),
    ])
    assert results[0] == "/controller"
    assert results[1].version == epoch.version + 1

    # A rival that read the same epoch: the epoch write fails, so its
    # /other is not created either.
    stale = SetDataOp("/controller_epoch", b"1", version=epoch.version)
    with pytest.raises(BadVersionError) as raised:
        await zk.multi([CreateOp("/other"), stale])
    assert raised.value.failed_op == stale
    assert await zk.exists("/other") is None
    assert (await zk.get("/controller_epoch"))[0] == b"1"

    with pytest.raises(NodeExistsError):
        await zk.multi([CreateOp("/controller", ephemeral=True), CheckOp("/controller_epoch", 1)])

    assert await zk.multi([CheckOp("/controller_epoch", 1), DeleteOp("/controller")]) == [True, True]
    assert await zk.exists("/controller") is None


async def test_ephemeral_goes_with_its_session(zk, zk_connect):
    record, events = recorder()
    async with ZkClient(zk_connect) as owner:
        await owner.create("/brokers/ids/1", b"{}", ephemeral=True, makepath=True)
        stat = await zk.exists("/brokers/ids/1", watch=record)
        assert stat.ephemeralOwner == owner.session_id
    with trio.fail_after(DEADLINE):
        event = await events.receive()
    assert (event.type, event.path) == (EventType.DELETED, "/brokers/ids/1")
    assert await zk.exists("/brokers/ids/1") is None


async def test_watches_fire_on_the_trio_loop(zk):
    record, events = recorder()
    await zk.create("/topics", b"")
    await zk.create("/topics/t", b"v0")

    data, _ = await zk.get("/topics/t", watch=record)
    await zk.get_children("/topics", watch=record)
    assert await zk.exists("/later", watch=record) is None

    await zk.set("/topics/t", b"v1")
    await zk.create("/topics/u")
    await zk.create("/later")
    with trio.fail_after(DEADLINE):
        got = {(event.type, event.path) for event in [await events.receive() for _ in range(3)]}
    assert got == {(EventType.CHANGED, "/topics/t"), (EventType.CHILD, "/topics"),
                   (EventType.CREATED, "/later")}

    # One-shot: nothing more until re-armed.
    await zk.set("/topics/t", b"v2")
    await zk.get("/topics/t", watch=record)  # re-arm
    await zk.get("/topics/t", watch=record)  # the same callback twice is one watch
    await zk.set("/topics/t", b"v3")
    with trio.fail_after(DEADLINE):
        event = await events.receive()
    assert (event.type, event.path) == (EventType.CHANGED, "/topics/t")
    await zk.set("/later", b"")  # a round trip after which a second event would be here
    with pytest.raises(trio.WouldBlock):
        events.receive_nowait()


async def test_chroot_is_created_and_confines_paths(zookeeper, zk_chroot):
    async with ZkClient(zookeeper.connect_string(zk_chroot + "/kafka")) as chrooted:
        assert await chrooted.get_children("/") == []
        await chrooted.create("/brokers/ids/0", b"{}", makepath=True)
        assert await chrooted.exists("/kafka") is None
    async with ZkClient(zookeeper.connect_string()) as root:
        data, _ = await root.get(f"{zk_chroot}/kafka/brokers/ids/0")
        assert data == b"{}"


async def test_forced_expiry_delivers_expired_then_new_session(zookeeper, zk_connect):
    record, events = recorder()
    async with ZkClient(zk_connect, session_timeout_ms=6000, on_session_event=record) as zk:
        await zk.create("/brokers/ids/1", ephemeral=True, makepath=True)
        old_session = zk.session_id
        await trio.to_thread.run_sync(expire_session, zookeeper.connect_string(), zk.client_id)
        with trio.fail_after(DEADLINE):
            seen = [await events.receive()]
            while seen[-1] != SessionEvent.NEW_SESSION:
                seen.append(await events.receive())
        assert SessionEvent.EXPIRED in seen
        assert zk.session_id not in (None, old_session)
        assert await zk.exists("/brokers/ids/1") is None
        await zk.create("/brokers/ids/1", ephemeral=True)  # re-registered
        assert (await zk.exists("/brokers/ids/1")).ephemeralOwner == zk.session_id


async def test_server_restart_within_the_session_keeps_it(tmp_path):
    """SUSPENDED while ZooKeeper is down, CONNECTED to the same session (its
    ephemerals intact) once it is back."""
    record, events = recorder()
    server = ZooKeeperProcess(data_dir=tmp_path / "zk", port=free_port())
    with server:
        async with ZkClient(server.connect_string(), session_timeout_ms=30000,
                            on_session_event=record) as zk:
            await zk.create("/eph", ephemeral=True)
            session = zk.session_id
            await trio.to_thread.run_sync(server.stop)
            with trio.fail_after(DEADLINE):
                assert await events.receive() == SessionEvent.SUSPENDED
            await trio.to_thread.run_sync(server.start)
            with trio.fail_after(DEADLINE):
                assert await events.receive() == SessionEvent.CONNECTED
            assert zk.session_id == session
            assert (await zk.exists("/eph")).ephemeralOwner == session


@pytest.mark.parametrize("chroot", ["", "/kafka"])
async def test_connection_timeout_gives_a_clear_error(chroot):
    dead = f"127.0.0.1:{free_port()}{chroot}"
    start = trio.current_time()
    with pytest.raises(ZkConnectionTimeout, match=r"Timed out waiting for connection to ZooKeeper"
                       rf" at 127\.0\.0\.1:\d+{chroot} within 1000 ms"):
        await ZkClient(dead, connection_timeout_ms=1000).connect()
    assert trio.current_time() - start < 1 + 2  # the timeout, plus closing kazoo


async def test_connection_timeout_defaults_to_the_session_timeout():
    client = ZkClient("127.0.0.1:1/kafka", session_timeout_ms=6000)
    assert (client.connection_timeout_ms, client.chroot, client.hosts) == (6000, "/kafka", "127.0.0.1:1")


async def test_kafka_top_level_paths_have_null_data(zookeeper, zk_connect, zk_chroot):
    """ensure_path creates what KafkaZkClient.createTopLevelPaths does, with
    null data as Kafka's createRecursive writes (zkCli shows `null`)."""
    async with ZkClient(zk_connect) as zk:
        async with trio.open_nursery() as nursery:
            for path in PERSISTENT_PATHS:
                nursery.start_soon(zk.ensure_path, path)
        assert sorted(await zk.get_children("/config")) == [
            "brokers", "changes", "clients", "ips", "topics", "users"]
        data, stat = await zk.get("/brokers/seqid")
        assert (data, stat.dataLength) == (b"", 0)

    def raw_data(path: str):
        raw = KazooClient(hosts=zookeeper.connect_string())
        raw.start(timeout=DEADLINE)
        try:
            return raw.get(path)[0]
        finally:
            raw.stop()
            raw.close()
    assert await trio.to_thread.run_sync(raw_data, f"{zk_chroot}/brokers/seqid") is None
    assert await trio.to_thread.run_sync(raw_data, f"{zk_chroot}/config") is None
    assert await trio.to_thread.run_sync(raw_data, zk_chroot) is None  # the chroot too
