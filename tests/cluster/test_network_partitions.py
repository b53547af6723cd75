"""Durability under network partitions (interop/partitions.py): ZooKeeper,
three brokers and the clients each in a network namespace of their own
(interop/netns.py; root only, as CI runs it), a topic with replication
factor 3 and min.insync.replicas=2, confluent-kafka and kafka-python
producers writing with acks=all and idempotence while the leader of a
partition (every other time the controller) is cut off, from everyone or
from ZooKeeper and the other brokers only, past its ZooKeeper session
timeout, then healed. Afterwards every acknowledged message is read back
exactly once, at the offset it was acknowledged with and in order; a consumer
group of both client families reads everything; every replica's log is
byte-identical.

This is the scenario in which Kafka 0.8 lost acknowledged writes: an isolated
leader must not complete an acks=all write once its followers have moved on
(Produce requests sent to the isolated leader alone check that directly, in
the cuts that leave it reachable by clients).

The namespaces (kc-<tag>-*) are created and removed by the test, also when
it fails or is interrupted (Ctrl-C or SIGTERM); after a hard kill,
`python -m interop.netns --list` / `--remove kc-<tag>` clean up."""
from __future__ import annotations

import os
import signal

import pytest

from interop.chaos import ChaosConfig, chaos_overrides
from interop.netns import NETNS_DIR, NetnsCluster, NetnsUnavailable, NetnsZooKeeper, Network, check_available
from interop.partitions import PartitionRun

CUTS = 6  # the controller and another leader: cut off from everyone, from ZooKeeper and the brokers only, from everyone
SESSION_TIMEOUT_MS = 4000


def _terminate(signum, frame):
    raise KeyboardInterrupt


@pytest.fixture
def network():
    """The namespaces, bridges and veth pairs (interop/netns.py), removed afterwards."""
    try:
        check_available()
    except NetnsUnavailable as error:
        pytest.fail(f"this test needs network namespaces: {error}")
    # SIGTERM, like Ctrl-C, unwinds through the clean-up below.
    previous = signal.signal(signal.SIGTERM, _terminate)
    net = Network(brokers=3)
    try:
        net.create()
        yield net
    finally:
        problems = net.destroy()
        signal.signal(signal.SIGTERM, previous)
        left = [n for n in os.listdir(NETNS_DIR) if n.startswith(net.prefix + "-")]
        assert not left and not problems, f"clean-up: {problems}; namespaces left: {left}"


@pytest.fixture
def netns_cluster(network, tmp_path):
    """ZooKeeper and brokers 1-3 in their namespaces; the test runs in the
    clients' namespace (its threads, the clients', stay there)."""
    overrides = {**chaos_overrides(session_timeout_ms=SESSION_TIMEOUT_MS), "replica.lag.time.max.ms": "3000"}
    with network.inside("cl"):
        zookeeper = NetnsZooKeeper(network, data_dir=tmp_path / "zookeeper")
        zookeeper.start()
        try:
            cluster = NetnsCluster(network, zookeeper.connect_string("/partitions"), tmp_path, 3, overrides)
            try:
                cluster.start()
            except Exception:
                print(cluster.logs())
                cluster.stop()
                raise
            try:
                yield cluster
            finally:
                network.heal_all()
                cluster.stop()
        finally:
            zookeeper.stop()


@pytest.mark.timeout(420)
def test_acknowledged_messages_survive_network_partitions(netns_cluster, network):
    config = ChaosConfig(topic="partitioned", partitions=3, replication_factor=3, min_insync_replicas=2,
                         kills=CUTS, pause=(1.0, 2.0), settle_timeout_s=20, max_chaos_s=200, stall_s=45)
    run = PartitionRun(netns_cluster, network, config)
    verdict = run.run()
    print(verdict.report())
    assert len(verdict.kills) >= CUTS, verdict.report()
    probes = run.killer.probes
    assert probes and all(p.outcomes for p in probes), \
        f"no isolated leader was probed (the 'cluster' cuts: {probes})\n" + verdict.report()
    assert verdict.ok, verdict.report()
