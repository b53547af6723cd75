"""Durability under network partitions: the chaos harness (interop/chaos.py)
with its killer replaced by a partitioner that cuts a partition leader's
network links (interop/netns.py) instead of killing it.

Every cut isolates the leader of a partition (every other cut the
controller, which then leads partitions too) from ZooKeeper and the other
brokers, and in "everyone" mode from the clients as well; in "cluster" mode
the clients still reach it. The cut lasts until the isolated broker's
ZooKeeper session has expired and every partition it led has a new leader
(and, in "cluster" mode, until a probe producer that knows no broker but the
isolated one has had its acks=all answer). Then the links come back, the
broker registers again and the ISR fills up before the next cut.

Meanwhile the isolated broker still believes it leads: nothing tells it
otherwise until it hears from the new controller. Its followers fetch from
the new leader, so an acks=all write it takes can complete only if it drops
them from the ISR, and that needs the controller (AlterPartition), which it
can't reach (nor ZooKeeper, when it is the controller itself). This is where
Kafka 0.8 lost acknowledged writes (Jepsen, 2013): a leader that had shrunk
the ISR to itself acknowledged writes no other replica had, and once it was
cut off another replica took over without them. The probe checks the
isolated leader directly (an acknowledgement from it is a failure); the
harness's verification checks every acknowledged message of the real
producers afterwards (once each, where and in the order it was
acknowledged; replicas byte-identical).
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from .chaos import (ChaosRun, Kill, Killer, controller_of, describe_states, partition_states, poll_until,
                    registration)
from .netns import Network

MODES = ("everyone", "cluster")  # cut off from: everyone; ZooKeeper and the brokers only


@dataclass
class Probe:
    """What the isolated leader answered to an acks=all write to each
    partition it still believed it led (Partitioner.probe)."""
    cut: int
    broker: int
    outcomes: dict[int, str] = field(default_factory=dict)  # partition -> "acknowledged at N" or the error


class Partitioner(Killer):
    """Cuts a partition leader's links, waits for the cluster to move on
    without it, heals, waits for it to rejoin; ``config.kills`` times."""

    def __init__(self, cluster, zk, config, rng, log, started, network: Network,
                 modes: tuple[str, ...] = MODES, probe_timeout_s: float = 3.0):
        super().__init__(cluster, zk, config, rng, log, started)
        self.name = "chaos-partitioner"
        self.network = network
        self.modes = modes
        self.probe_timeout_s = probe_timeout_s
        self.probes: list[Probe] = []

    def choose(self) -> tuple[int, str]:
        """Cuts alternate between the controller and the leader of a
        partition the controller doesn't lead (when there is one)."""
        states = partition_states(self.zk, self.config.topic, self.config.partitions)
        controller = controller_of(self.zk)
        leaders = {p: s["leader"] for p, s in states.items() if s and s["leader"] in self.cluster.brokers}
        others = sorted(p for p, leader in leaders.items() if leader != controller)
        if len(self.kills) % 2 == 0 and controller in self.cluster.brokers or not others:
            victim = controller if controller in self.cluster.brokers else self.rng.choice(sorted(self.cluster.brokers))
        else:
            victim = leaders[self.rng.choice(others)]
        led = [p for p, leader in sorted(leaders.items()) if leader == victim]
        roles = (["controller"] if victim == controller else []) + \
                ([f"leader of {', '.join(f'p{p}' for p in led)}"] if led else [])
        return victim, " and ".join(roles) or "a follower only"

    def kill_one(self) -> None:
        number = len(self.kills) + 1
        mode = self.modes[(number - 1) // 2 % len(self.modes)]  # two cuts (controller, leader) per mode
        victim, role = self.choose()
        node = f"b{victim}"
        before = registration(self.zk, victim)
        states = partition_states(self.zk, self.config.topic, self.config.partitions)
        led = [p for p, s in sorted(states.items()) if s and s["leader"] == victim]
        cut_off_from = "everyone" if mode == "everyone" else "ZooKeeper and the brokers"
        kill = Kill(number, victim, f"{role}; cut off from {cut_off_from}", time.monotonic())
        self.network.cut(node, clients=(mode == "everyone"))
        self.kills.append(kill)
        self.log(f"cut #{number}: broker {victim} ({kill.role}) at t={kill.at - self.started:.1f} s; "
                 f"before: {describe_states(states)}")
        try:
            self._while_cut(kill, led, before, mode)
        finally:
            self.network.heal(node)
        healed_at = time.monotonic()
        registered = poll_until(lambda: registration(self.zk, victim) not in (None, before), 30, stop=self.stopping)
        if registered is None and not self.stopping.is_set():
            self.failures.append(f"cut #{number}: broker {victim} did not register again within 30 s of the heal")
        kill.registered_after = time.monotonic() - kill.at
        full, after = self.wait_settled(kill, "heal")
        self.log(f"  broker {victim}: registration gone after {kill.expired_after or -1:.1f} s, healed after "
                 f"{healed_at - kill.at:.1f} s, registered again after {kill.registered_after:.1f} s, "
                 + (f"ISR full after {kill.isr_full_after:.1f} s" if full else kill.note)
                 + f"; now: {describe_states(after)}")

    def _while_cut(self, kill: Kill, led: list[int], before: int | None, mode: str) -> None:
        victim, number = kill.broker, kill.number
        # The cluster notices: the isolated broker's ZooKeeper session expires...
        gone = poll_until(lambda: registration(self.zk, victim) != before or None,
                          self.session_timeout_s + 20, stop=self.stopping)
        if gone is None:
            if not self.stopping.is_set():
                self.failures.append(f"cut #{number}: broker {victim}'s registration was still there "
                                     f"{self.session_timeout_s + 20:.0f} s after the cut")
            return
        kill.expired_after = time.monotonic() - kill.at
        # ... and the controller (a new one, if the isolated broker was it)
        # gives the partitions it led to other leaders.
        moved = poll_until(lambda: all((s := partition_states(self.zk, self.config.topic, self.config.partitions)[p])
                                       and s["leader"] not in (victim, -1) for p in led) or None,
                           20, stop=self.stopping)
        if moved is None:
            if not self.stopping.is_set():
                self.failures.append(
                    f"cut #{number}: the partitions broker {victim} led ({led}) had no other leader 20 s after its "
                    "session expired: " + describe_states(partition_states(self.zk, self.config.topic,
                                                                           self.config.partitions)))
            return
        if mode == "cluster" and led:
            self.probe(kill, led)
        else:
            self.stopping.wait(1.0)  # the cluster runs on without it a little longer

    def probe(self, kill: Kill, partitions: list[int]) -> None:
        """acks=all writes to the isolated broker alone (it still believes it
        leads ``partitions``): they must not be acknowledged. Plain Produce
        requests (kafka-python's codecs) on connections to that broker only (a
        client library would ask the other brokers for metadata too and send
        the write to the new leader), one connection per partition (a broker
        answers a connection's requests in order)."""
        broker = self.cluster.brokers[kill.broker]
        probe = Probe(kill.number, kill.broker)
        self.probes.append(probe)
        sockets = {}
        try:
            for p in partitions:
                try:
                    sockets[p] = socket.create_connection((broker.host, broker.port), timeout=self.probe_timeout_s + 5)
                    sockets[p].sendall(produce_request(self.config.topic, p, f"probe-{kill.number}-p{p}".encode(),
                                                       int(self.probe_timeout_s * 1000)))
                except OSError as e:
                    probe.outcomes[p] = f"not sent: {e}"
                    sockets.pop(p, None)
            for p, sock in sockets.items():
                try:
                    probe.outcomes[p] = produce_outcome(sock)
                except (OSError, EOFError) as e:
                    probe.outcomes[p] = f"no answer: {e!r}"
        finally:
            for sock in sockets.values():
                sock.close()
        acknowledged = {p: o for p, o in probe.outcomes.items() if o.startswith("acknowledged")}
        if acknowledged:
            self.failures.append(
                f"cut #{kill.number}: broker {kill.broker}, cut off from ZooKeeper and the other brokers, "
                f"acknowledged acks=all writes after the controller gave its partitions to other leaders: "
                + ", ".join(f"p{p} {o}" for p, o in sorted(acknowledged.items())))
        self.log(f"  probe of the isolated broker {kill.broker}: "
                 + ", ".join(f"p{p}: {probe.outcomes.get(p, 'no answer')}" for p in partitions))


PRODUCE_VERSION = 9


def produce_request(topic: str, partition: int, value: bytes, timeout_ms: int) -> bytes:
    """One framed Produce v9 request, acks=all, with one record."""
    from kafka.protocol.producer import ProduceRequest
    from kafka.record.memory_records import MemoryRecordsBuilder

    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 16)
    builder.append(timestamp=None, key=None, value=value, headers=[])
    builder.close()
    data = ProduceRequest.TopicProduceData
    request = ProduceRequest[PRODUCE_VERSION](transactional_id=None, acks=-1, timeout_ms=timeout_ms, topic_data=[
        data(name=topic, partition_data=[data.PartitionProduceData(index=partition, records=builder.buffer())])])
    request.with_header(correlation_id=partition + 1, client_id="partition-probe")
    return request.encode(header=True, framed=True)


def produce_outcome(sock: socket.socket) -> str:
    """The answer to produce_request: "acknowledged at <offset>" or the error's name."""
    from kafka.errors import for_code
    from kafka.protocol.producer import ProduceResponse

    size = struct.unpack(">i", _recv(sock, 4))[0]
    response = ProduceResponse.decode(_recv(sock, size), version=PRODUCE_VERSION, header=True)
    answer = response.responses[0].partition_responses[0]
    if answer.error_code == 0:
        return f"acknowledged at {answer.base_offset}"
    return for_code(answer.error_code).__name__


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


class PartitionRun(ChaosRun):
    """ChaosRun with the Partitioner in place of the Killer."""

    def __init__(self, cluster, network: Network, config=None, log=print, **partitioner_options):
        super().__init__(cluster, config, log)
        self.network = network
        self.partitioner_options = partitioner_options

    def make_killer(self) -> Partitioner:
        return Partitioner(self.cluster, self.zk, self.config, self.rng, self.log, self.started,
                           self.network, **self.partitioner_options)

    def stats(self, ends) -> None:
        before = len(self.verdict.stats)
        super().stats(ends)
        if len(self.verdict.stats) > before:  # the first line counts "kills": these are cuts
            self.verdict.stats[before] = (self.verdict.stats[before].replace(" kills (", " cuts (")
                                          .replace("after a restart", "after the heal"))
        for probe in getattr(self.killer, "probes", []):
            self.verdict.stats.append(
                f"probe in cut #{probe.cut} (broker {probe.broker} cut off from ZooKeeper and the brokers): "
                + ", ".join(f"p{p}: {o}" for p, o in sorted(probe.outcomes.items())))
