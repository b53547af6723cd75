"""Durability under kill -9: producers write with acks=all and idempotence
while brokers are killed one at a time; afterwards every acknowledged message
must be in the log exactly once, in order, and every replica's log must be
byte-identical to the others'.

`ChaosRun(cluster, ChaosConfig(...)).run()` drives a running
`interop.cluster.Cluster` and returns a `Verdict`:

1. creates the topic (replication factor, min.insync.replicas as configured);
2. starts producers from two client families, confluent-kafka (librdkafka)
   and kafka-python, each with ``enable.idempotence`` and ``acks=all``. Every
   message is self-describing (``<producer>-<seq>``) and sent to partition
   ``seq % partitions``; what the client reported for each message is kept
   (acknowledged with an offset, failed with an error, or never reported);
3. a killer, every few seconds, SIGKILLs the leader of a random partition
   (read from its state znode) or sometimes the controller (``/controller``),
   waits until ZooKeeper drops the broker's registration, restarts it, waits
   until it is registered again and (with a deadline) until every partition's
   ISR is full again, then paces before the next kill;
4. after the last kill: the ISR must become full again and every producer
   must be acknowledged again (the cluster recovers); producers stop;
5. verification: the whole topic is read back with an assigned consumer
   (every acknowledged message present exactly once, at the partition and
   offset it was acknowledged with, and per producer and partition in the
   order it was sent); a consumer group of both client families reads
   everything too; then the brokers are stopped cleanly and each partition's
   replicas' record batches are compared byte for byte from the segment files.

Only processes this module starts are signalled (BrokerProcess.kill9 on the
cluster's own Popen objects). Waits are on conditions with deadlines; the only
fixed sleeps are the killer's pacing and the producers' send rate.

``python -m interop.chaos --kills 200`` (``./scripts/chaos``) starts its own
ZooKeeper and three brokers on free ports and runs the same harness.
"""
from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException

from .cluster import Cluster, restart_after_crash
from .segments import BATCH_HEADER, LOG_OVERHEAD

LAST_OFFSET_DELTA_AT = 23  # after baseOffset, length, epoch, magic, crc, attributes
FAMILIES = ("confluent", "kafka-python")


@dataclass
class ChaosConfig:
    topic: str = "chaos"
    partitions: int = 3
    replication_factor: int = 3
    min_insync_replicas: int = 2
    kills: int = 20
    # the killer's pacing: a random pause in this range (seconds) before each kill
    pause: tuple[float, float] = (0.5, 2.0)
    controller_share: float = 0.3  # how often the victim is the controller rather than a leader
    families: tuple[str, ...] = FAMILIES
    rate: float = 150.0  # messages per second per producer
    delivery_timeout_s: float = 30.0  # message.timeout.ms / delivery_timeout_ms
    # After each restart: how long to wait for every partition's ISR to be
    # full before the next kill (past it the kill goes ahead, and is noted).
    settle_timeout_s: float = 15.0
    # After the last kill: the ISR full again, every producer acknowledged again.
    recovery_timeout_s: float = 60.0
    # Give up killing after this long (the run then fails: too few kills), or
    # once no producer has been acknowledged for stall_s (the cluster is down).
    max_chaos_s: float = 600.0
    stall_s: float = 60.0
    group_read: bool = True
    seed: int | None = None
    progress_every_s: float = 5.0
    # Route librdkafka's log lines through Python logging ("chaos.librdkafka.*")
    # instead of stderr; ./scripts/chaos sends them to clients.log in the run's
    # directory. librdkafka_debug adds debug contexts for the producers (e.g.
    # "eos,msg": why a message was reported as it was).
    client_logging: bool = False
    librdkafka_debug: str = ""


@dataclass
class Sent:
    """One message and what its producer's client said about it."""
    producer: str
    seq: int
    partition: int
    sent_at: float
    state: str = "pending"  # pending | acked | failed
    offset: int | None = None
    acked_at: float | None = None
    ack_index: int | None = None  # the order in which this producer's acks arrived
    error: str | None = None

    @property
    def value(self) -> bytes:
        return message_value(self.producer, self.seq)


def message_value(producer: str, seq: int) -> bytes:
    return f"{producer}-{seq:08d}".encode()


@dataclass
class Kill:
    number: int
    broker: int
    role: str
    at: float  # monotonic
    expired_after: float | None = None
    registered_after: float | None = None
    isr_full_after: float | None = None
    note: str = ""


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: list[str] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        lines = ["VERDICT: " + ("PASS" if self.ok else f"FAIL ({len(self.failures)} problems)")]
        lines += ["", "Statistics:"] + [f"  {s}" for s in self.stats]
        if self.failures:
            lines += ["", "Failures:"] + [f"  - {f}" for f in self.failures]
        if self.warnings:
            lines += ["", "Warnings (not failures):"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)


# -- ZooKeeper views ----------------------------------------------------------------


def partition_states(zk, topic: str, partitions: int) -> dict[int, dict | None]:
    """partition -> its state znode ({"leader", "leader_epoch", "isr", ...}) or None."""
    states = {}
    for p in range(partitions):
        path = f"/brokers/topics/{topic}/partitions/{p}/state"
        try:
            data, _ = zk.get(path)
            states[p] = json.loads(data)
        except Exception:  # NoNodeError, or a half-written node
            states[p] = None
    return states


def controller_of(zk) -> int | None:
    try:
        data, _ = zk.get("/controller")
        return int(json.loads(data)["brokerid"])
    except Exception:
        return None


def registration(zk, broker_id: int) -> int | None:
    """The broker's registration epoch (its znode's czxid), None if unregistered."""
    stat = zk.exists(f"/brokers/ids/{broker_id}")
    return None if stat is None else stat.czxid


def isr_full(states: dict[int, dict | None], replication_factor: int) -> bool:
    return all(s is not None and s["leader"] >= 0 and len(s["isr"]) >= replication_factor for s in states.values())


def describe_states(states: dict[int, dict | None], min_insync: int | None = None) -> str:
    text = ", ".join(f"p{p}: " + ("no state" if s is None else f"leader {s['leader']} epoch {s['leader_epoch']} "
                                  f"isr {s['isr']}") for p, s in sorted(states.items()))
    if min_insync is not None:
        short = [p for p, s in sorted(states.items()) if s is not None and len(s["isr"]) < min_insync]
        if short:
            text += (f" (the ISR of {', '.join(f'p{p}' for p in short)} is smaller than min.insync.replicas="
                     f"{min_insync}: acks=all produce is refused there with NOT_ENOUGH_REPLICAS)")
    return text


def poll_until(condition, timeout: float, interval: float = 0.1, stop: threading.Event | None = None):
    """``condition()``'s first true value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            return None
        time.sleep(interval)


# -- producers -----------------------------------------------------------------------


def librdkafka_logging(config: ChaosConfig, name: str, debug: str = "") -> dict:
    """Client configs sending a librdkafka client's log to Python logging."""
    if not (config.client_logging or debug):
        return {}
    logging_config = {"logger": logging.getLogger(f"chaos.librdkafka.{name}")}
    return {**logging_config, "debug": debug} if debug else logging_config


class TrackedProducer(threading.Thread):
    """Sends ``<name>-<seq>`` to partition seq % partitions at ``rate`` a second
    until stopped, keeping what the client reported for every message. A
    client in a fatal state is closed and replaced by a new one (a new
    incarnation: a new name, so a new idempotent producer id)."""

    family = ""
    short = ""

    def __init__(self, index: int, bootstrap: str, config: ChaosConfig, started: float):
        super().__init__(name=f"chaos-{self.short}{index}", daemon=True)
        self.index = index
        self.bootstrap = bootstrap
        self.config = config
        self.started = started
        self.incarnation = 0
        self.producer_name = ""
        self.messages: dict[bytes, Sent] = {}
        self.errors: Counter[str] = Counter()
        self.events: list[str] = []
        self.acks = 0
        self.last_ack_at: float | None = None
        self.last_ack_in: dict[int, float] = {}  # partition -> when it last had an acknowledgement
        # (seconds a partition went without an acknowledgement, the partition, when it ended: monotonic)
        self.longest_gap = (0.0, -1, started)
        self.crash: str | None = None
        self.stopping = threading.Event()
        self.stopped_at = started
        self.finished = threading.Event()
        self._seq = 0
        self._lock = threading.Lock()

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.stopped_at = time.monotonic()
        self.stopping.set()

    def run(self) -> None:
        try:
            self._run()
        except BaseException:
            self.crash = traceback.format_exc()
        finally:
            self.finished.set()

    def _next_name(self) -> str:
        self.incarnation += 1
        self.producer_name = f"{self.short}{self.index}.{self.incarnation}"
        return self.producer_name

    def _new_message(self) -> Sent:
        seq = self._seq
        self._seq += 1
        sent = Sent(self.producer_name, seq, seq % self.config.partitions, time.monotonic())
        with self._lock:  # progress() counts the messages meanwhile
            self.messages[sent.value] = sent
        return sent

    def _acked(self, value: bytes, partition: int, offset: int) -> None:
        now = time.monotonic()
        with self._lock:
            sent = self.messages[value]
            if sent.state != "pending":
                self.events.append(f"{value.decode()} reported twice: {sent.state}, then acked at {offset}")
            sent.state, sent.offset, sent.acked_at, sent.ack_index = "acked", offset, now, self.acks
            if partition != sent.partition:
                sent.error = f"acknowledged on partition {partition}, sent to {sent.partition}"
            self.acks += 1
            since = self.last_ack_in.get(sent.partition, self.started)
            if now - since > self.longest_gap[0]:
                self.longest_gap = (now - since, sent.partition, now)
            self.last_ack_in[sent.partition] = self.last_ack_at = now

    def _failed(self, value: bytes, error: str) -> None:
        with self._lock:
            sent = self.messages[value]
            self.errors[error] += 1
            if sent.state != "pending":
                self.events.append(f"{value.decode()} reported twice: {sent.state}, then failed ({error})")
                if sent.state == "acked":
                    return  # once acknowledged, it must be in the log whatever came after
            sent.state, sent.error = "failed", error

    def _pace(self, next_at: float) -> float:
        """Sleep until ``next_at`` (serving the client meanwhile); the next send time."""
        now = time.monotonic()
        if next_at > now:
            self._wait(next_at - now)
        else:
            next_at = max(next_at, now - 1.0)  # after a stall, no burst to catch up
        return next_at + 1.0 / self.config.rate

    def _wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(s.state for s in self.messages.values())


class ConfluentProducer(TrackedProducer):
    family, short = "confluent", "ck"
    fatal = None

    def _client(self):
        from confluent_kafka import Producer

        self.fatal = None
        name = self._next_name()

        def on_error(error):
            if error.fatal():
                self.fatal = error
        return Producer({
            "bootstrap.servers": self.bootstrap, "client.id": name,
            "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "message.timeout.ms": int(self.config.delivery_timeout_s * 1000),
            "socket.timeout.ms": 10_000, "retry.backoff.ms": 100, "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 5000,
            "error_cb": on_error,
            **librdkafka_logging(self.config, name, self.config.librdkafka_debug),
        })

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._failed(msg.value(), err.name())
        else:
            self._acked(msg.value(), msg.partition(), msg.offset())

    def _run(self) -> None:
        producer = self._producer = self._client()
        next_at = time.monotonic()
        while not self.stopping.is_set():
            if self.fatal is not None:
                self.events.append(f"{self.producer_name}: fatal error {self.fatal.name()}: {self.fatal.str()}; "
                                   "replaced by a new producer")
                self._flush(producer)
                producer = self._producer = self._client()
            sent = self._new_message()
            while True:
                try:
                    producer.produce(self.config.topic, value=sent.value, key=self.producer_name.encode(),
                                     partition=sent.partition, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self._serve(producer.poll, 0.05)
                except KafkaException as e:
                    self._failed(sent.value, f"not sent: {e.args[0].name()}")
                    self._fatal_or_raise(e)
                    break
            self._serve(producer.poll, 0)
            next_at = self._pace(next_at)
        self._flush(producer)
        self._producer = producer = None  # librdkafka's threads end with the last reference

    def _flush(self, producer) -> None:
        try:
            left = producer.flush(self.config.delivery_timeout_s + 10)
        except KafkaException as e:
            left = f"? ({e})"
        if left:
            self.events.append(f"{self.producer_name}: {left} messages unreported after flush")

    def _serve(self, method, timeout: float) -> None:
        """poll() or the like; a fatal error raised from it marks the producer for replacement."""
        try:
            method(timeout)
        except KafkaException as e:
            self._fatal_or_raise(e)

    def _fatal_or_raise(self, e: Exception) -> None:
        error = e.args[0] if e.args else None
        if error is None or not hasattr(error, "fatal") or not error.fatal():
            raise e
        self.fatal = error

    def _wait(self, seconds: float) -> None:
        # poll() returns after the first event it serves: poll until the time is up
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._serve(self._producer.poll, left)


class KafkaPythonProducer(TrackedProducer):
    family, short = "kafka-python", "kp"

    def _client(self):
        from kafka import KafkaProducer

        name = self._next_name()
        timeout_ms = int(self.config.delivery_timeout_s * 1000)
        return KafkaProducer(bootstrap_servers=self.bootstrap, client_id=name,
                             acks="all", enable_idempotence=True, linger_ms=5,
                             request_timeout_ms=min(10_000, timeout_ms - 10), delivery_timeout_ms=timeout_ms,
                             max_block_ms=10_000, retry_backoff_ms=100, reconnect_backoff_max_ms=1000,
                             metadata_max_age_ms=5000)

    def _fatal(self, producer) -> bool:
        manager = getattr(producer, "_transaction_manager", None)
        return bool(manager is not None and manager.has_fatal_error())

    def _run(self) -> None:
        from kafka.errors import KafkaTimeoutError

        producer = self._client()
        next_at = time.monotonic()
        while not self.stopping.is_set():
            if self._fatal(producer):
                error = getattr(producer._transaction_manager, "_last_error", None)
                self.events.append(f"{self.producer_name}: in a fatal state ({error!r}); replaced by a new producer")
                self._close(producer)
                producer = self._client()
            sent = self._new_message()
            value = sent.value
            try:
                future = producer.send(self.config.topic, value=value, key=self.producer_name.encode(),
                                       partition=sent.partition)
            except KafkaTimeoutError as e:  # no metadata or no buffer within max_block_ms: never sent
                self._failed(value, f"not sent: {type(e).__name__}")
            except Exception as e:
                self._failed(value, f"not sent: {type(e).__name__}: {e}")
                self.events.append(f"{self.producer_name}: send raised {type(e).__name__}: {e}; "
                                   "replaced by a new producer")
                self._close(producer)
                producer = self._client()
            else:
                future.add_callback(lambda md, v=value: self._acked(v, md.partition, md.offset))
                future.add_errback(lambda e, v=value: self._failed(v, type(e).__name__))
            next_at = self._pace(next_at)
        self._close(producer)

    def _close(self, producer) -> None:
        try:
            producer.flush(timeout=self.config.delivery_timeout_s + 10)
        except Exception as e:
            self.events.append(f"{self.producer_name}: flush raised {type(e).__name__}: {e}")
        try:
            producer.close(timeout=5)
        except Exception as e:
            self.events.append(f"{self.producer_name}: close raised {type(e).__name__}: {e}")


PRODUCERS = {"confluent": ConfluentProducer, "kafka-python": KafkaPythonProducer}


# -- the killer ----------------------------------------------------------------------


class Killer(threading.Thread):
    """Kill -9 a partition leader or the controller, wait for ZooKeeper to
    notice, restart it, wait for its registration and the full ISR; repeat."""

    def __init__(self, cluster: Cluster, zk, config: ChaosConfig, rng: random.Random, log, started: float):
        super().__init__(name="chaos-killer", daemon=True)
        self.cluster = cluster
        self.zk = zk
        self.config = config
        self.rng = rng
        self.log = log
        self.started = started
        self.session_timeout_s = int(next(iter(cluster.brokers.values())).overrides.get(
            "zookeeper.session.timeout.ms", 18000)) / 1000
        self.kills: list[Kill] = []
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.stopping = threading.Event()
        self.crash: str | None = None
        self.down: set[int] = set()  # brokers we killed and have not restarted yet

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            while len(self.kills) < self.config.kills and not self.stopping.is_set():
                self.check_unexpected_exits()
                self.stopping.wait(self.rng.uniform(*self.config.pause))  # pacing
                if self.stopping.is_set():
                    break
                self.kill_one()
        except BaseException:
            self.crash = traceback.format_exc()

    def check_unexpected_exits(self) -> None:
        """A broker that died without our kill is a failure; restart it to go on."""
        for broker_id, broker in self.cluster.brokers.items():
            if broker_id not in self.down and not broker.running():
                code = broker._process.returncode if broker._process else None
                self.failures.append(f"broker {broker_id} exited on its own (exit status {code}) at "
                                     f"t={time.monotonic() - self.started:.1f} s; see {broker.log_path}:\n"
                                     + broker.log_tail(40))
                self.log(f"broker {broker_id} exited on its own (status {code}); restarting it")
                restart_after_crash(broker, self.session_timeout_s + 30)

    def choose(self) -> tuple[int, str]:
        brokers = sorted(self.cluster.brokers)
        states = partition_states(self.zk, self.config.topic, self.config.partitions)
        controller = controller_of(self.zk)
        if self.rng.random() < self.config.controller_share and controller in self.cluster.brokers:
            victim = controller
        else:
            partition = self.rng.randrange(self.config.partitions)
            state = states[partition]
            leader = state["leader"] if state else -1
            victim = leader if leader in self.cluster.brokers else self.rng.choice(brokers)
        led = [p for p, s in sorted(states.items()) if s and s["leader"] == victim]
        roles = (["controller"] if victim == controller else []) + \
                ([f"leader of {', '.join(f'p{p}' for p in led)}"] if led else [])
        return victim, " and ".join(roles) or "a follower only"

    def wait_settled(self, kill: Kill, after_what: str) -> tuple[bool, dict[int, dict | None]]:
        """Until every partition's ISR is full again (or a broker we did not
        take down has exited: the next round reports and restarts it), at
        most settle_timeout_s; noted on `kill`. Whether it is full, and the
        partitions' states then."""
        def settled():
            if isr_full(partition_states(self.zk, self.config.topic, self.config.partitions),
                        self.config.replication_factor):
                return "full"
            if any(not b.running() for i, b in self.cluster.brokers.items() if i not in self.down):
                return "a broker exited"
            return None

        full = poll_until(settled, self.config.settle_timeout_s, stop=self.stopping) == "full"
        after = partition_states(self.zk, self.config.topic, self.config.partitions)
        if full:
            kill.isr_full_after = time.monotonic() - kill.at
        else:
            kill.note += (f"ISR not full {self.config.settle_timeout_s:g} s after the {after_what}: "
                          f"{describe_states(after)}")
        return full, after

    def kill_one(self) -> None:
        victim, role = self.choose()
        broker = self.cluster.brokers[victim]
        before = registration(self.zk, victim)
        states = partition_states(self.zk, self.config.topic, self.config.partitions)
        kill = Kill(len(self.kills) + 1, victim, role, time.monotonic())
        self.down.add(victim)
        broker.kill9()
        self.kills.append(kill)
        self.log(f"kill #{kill.number}: broker {victim} ({role}) at t={kill.at - self.started:.1f} s; "
                 f"before: {describe_states(states)}")
        # The cluster notices: the broker's ZooKeeper session expires.
        gone = poll_until(lambda: registration(self.zk, victim) != before or None,
                          self.session_timeout_s + 20, stop=self.stopping)
        if gone is None and not self.stopping.is_set():
            self.failures.append(f"kill #{kill.number}: broker {victim}'s registration was still there "
                                 f"{self.session_timeout_s + 20:.0f} s after kill -9")
        kill.expired_after = time.monotonic() - kill.at
        if gone is None:
            kill.note = "stopped before the registration was gone; "
        restart_after_crash(broker, self.session_timeout_s + 30)
        self.down.discard(victim)
        registered = poll_until(lambda: registration(self.zk, victim) not in (None, before), 30)
        if registered is None:
            self.failures.append(f"kill #{kill.number}: broker {victim} restarted but did not register within 30 s")
        kill.registered_after = time.monotonic() - kill.at
        full, _ = self.wait_settled(kill, "restart")
        self.log(f"  broker {victim}: registration gone after {kill.expired_after:.1f} s, registered again after "
                 f"{kill.registered_after:.1f} s, "
                 + (f"ISR full after {kill.isr_full_after:.1f} s" if full else kill.note))


# -- reading back -------------------------------------------------------------------


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-watermarks",
                         "enable.auto.commit": False})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1] for p in range(partitions)}
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, ends: dict[int, int], timeout: float
               ) -> tuple[dict[int, list[tuple[int, bytes]]], list[str]]:
    """Every record of every partition from its start up to ``ends``, with an
    assigned confluent-kafka consumer: partition -> [(offset, value)], and errors."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-reader", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "fetch.wait.max.ms": 100})
    records: dict[int, list[tuple[int, bytes]]] = {p: [] for p in ends}
    errors: list[str] = []
    done = {p for p, end in ends.items() if end == 0}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(str(msg.error()))
                    continue
                p, offset = msg.partition(), msg.offset()
                if offset < ends[p]:
                    records[p].append((offset, msg.value()))
                if offset >= ends[p] - 1:
                    done.add(p)
        for p in sorted(set(ends) - done):
            last = records[p][-1][0] if records[p] else None
            errors.append(f"partition {p}: read up to offset {last} of high watermark {ends[p]} in {timeout:g} s")
    finally:
        consumer.close()
    return records, errors


class GroupReader(threading.Thread):
    """A member of a consumer group reading the topic; keeps (partition, offset,
    value). Until ``go`` is set it holds its assigned partitions paused, so
    that every member is in the group before any reads (one member alone
    could otherwise read everything before the others join)."""

    def __init__(self, family: str, bootstrap: str, topic: str, group: str, index: int, go: threading.Event):
        super().__init__(name=f"chaos-group-{family}-{index}", daemon=True)
        self.family, self.bootstrap, self.topic, self.group = family, bootstrap, topic, group
        self.member = f"{family}-{index}"
        self.go = go
        self.assignment: set[int] = set()
        self.consumed: list[tuple[int, int, bytes]] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.crash: str | None = None
        self._paused = None

    def run(self) -> None:
        try:
            self._confluent() if self.family == "confluent" else self._kafka_python()
        except BaseException:
            self.crash = traceback.format_exc()

    def _assigned(self, consumer, partitions, pause) -> None:
        self.assignment = {p.partition for p in partitions}
        if not self.go.is_set() and partitions:
            pause(partitions)
            self._paused = (consumer, partitions)

    def _revoked(self) -> None:
        self.assignment = set()
        self._paused = None

    def _confluent(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                             "client.id": self.member, "auto.offset.reset": "earliest",
                             "enable.auto.commit": True, "auto.commit.interval.ms": 500,
                             "session.timeout.ms": 10_000, "fetch.wait.max.ms": 100})

        def on_assign(c, partitions):
            c.assign(partitions)  # now, so that they can be paused
            self._assigned(c, partitions, c.pause)

        consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=lambda c, partitions: self._revoked())
        try:
            while not self.stopping.is_set():
                self._resume_on_go(consumer.resume)
                for msg in consumer.consume(num_messages=5000, timeout=0.2):
                    if msg.error():
                        self.errors.append(str(msg.error()))
                    else:
                        self.consumed.append((msg.partition(), msg.offset(), msg.value()))
        finally:
            consumer.close()

    def _kafka_python(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group,
                                 client_id=self.member, auto_offset_reset="earliest", enable_auto_commit=True,
                                 auto_commit_interval_ms=500, session_timeout_ms=10_000, fetch_max_wait_ms=100)
        reader = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                reader._revoked()

            def on_partitions_assigned(self, assigned):
                reader._assigned(consumer, list(assigned), lambda partitions: consumer.pause(*partitions))

        consumer.subscribe([self.topic], listener=Listener())
        try:
            while not self.stopping.is_set():
                self._resume_on_go(lambda partitions: consumer.resume(*partitions))
                for batch in consumer.poll(timeout_ms=200).values():
                    self.consumed.extend((r.partition, r.offset, r.value) for r in batch)
        finally:
            consumer.close()

    def _resume_on_go(self, resume) -> None:
        if self.go.is_set() and self._paused is not None:
            _, partitions = self._paused
            self._paused = None
            resume(partitions)


# -- segment files -------------------------------------------------------------------


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    epoch: int
    crc: int
    data: bytes
    where: str  # segment file and position


def log_batches(partition_dir: Path) -> list[Batch]:
    """Every record batch in a partition directory's .log segments, in order."""
    batches = []
    for segment in sorted(Path(partition_dir).glob("*.log")):
        data = segment.read_bytes()
        position = 0
        while position + LAST_OFFSET_DELTA_AT + 4 <= len(data):
            base, length, epoch, magic, crc, _ = BATCH_HEADER.unpack_from(data, position)
            if length <= 0:
                break  # preallocated zeroes past the end of the log
            end = position + LOG_OVERHEAD + length
            if end > len(data):
                break  # a torn tail (recovery truncates it)
            delta = int.from_bytes(data[position + LAST_OFFSET_DELTA_AT:position + LAST_OFFSET_DELTA_AT + 4], "big")
            batches.append(Batch(base, base + delta, epoch, crc, data[position:end], f"{segment.name}@{position}"))
            position = end
    return batches


def compare_replicas(cluster: Cluster, topic: str, partition: int, replicas: list[int],
                     must_reach: int) -> tuple[list[str], list[str]]:
    """(failures, notes) from comparing the partition's batches on every
    replica byte for byte up to the smallest log end, which must be at least
    ``must_reach`` (the last acknowledged offset + 1)."""
    failures, notes = [], []
    logs = {b: log_batches(cluster.brokers[b].data_dir / f"{topic}-{partition}") for b in replicas}
    ends = {b: (batches[-1].last_offset + 1 if batches else 0) for b, batches in logs.items()}
    common = min(ends.values())
    if common < must_reach:
        short = [f"broker {b} ends at {e}" for b, e in sorted(ends.items()) if e < must_reach]
        failures.append(f"partition {partition}: a replica's log ends before the last acknowledged offset "
                        f"{must_reach - 1}: {', '.join(short)}")
    if len(set(ends.values())) > 1:
        failures.append(f"partition {partition}: the replicas' logs end at different offsets though the ISR was "
                        f"full and nothing was being written: "
                        + ", ".join(f"broker {b}: {e}" for b, e in sorted(ends.items())))
    prefixes = {b: [x for x in batches if x.base_offset < common] for b, batches in logs.items()}
    reference = replicas[0]
    for other in replicas[1:]:
        mine, theirs = prefixes[reference], prefixes[other]
        for i in range(max(len(mine), len(theirs))):
            a = mine[i] if i < len(mine) else None
            b = theirs[i] if i < len(theirs) else None
            if a is None or b is None or a.data != b.data:
                def show(broker, x):
                    return (f"broker {broker}: nothing" if x is None else
                            f"broker {broker}: batch {x.base_offset}..{x.last_offset} leader epoch {x.epoch} "
                            f"crc {x.crc:#010x} {len(x.data)} bytes at {x.where}")
                failures.append(f"partition {partition}: replicas differ from batch #{i} on (below the common "
                                f"log end {common}): {show(reference, a)}; {show(other, b)}")
                break
    sizes = {b: sum(len(x.data) for x in p) for b, p in prefixes.items()}
    notes.append(f"partition {partition}: replicas {replicas} log ends {[ends[b] for b in replicas]}, "
                 f"{len(prefixes[reference])} batches / {sizes[reference]} bytes compared")
    return failures, notes


# -- the run ---------------------------------------------------------------------------


class ChaosRun:
    def __init__(self, cluster: Cluster, config: ChaosConfig | None = None, log=print):
        self.cluster = cluster
        self.config = config or ChaosConfig()
        self.log = log
        self.rng = random.Random(self.config.seed)
        self.verdict = Verdict()
        self.producers: list[TrackedProducer] = []
        self.killer: Killer | None = None
        self.started = time.monotonic()

    # helpers
    def t(self, at: float | None = None) -> float:
        return (time.monotonic() if at is None else at) - self.started

    def fail(self, text: str) -> None:
        self.verdict.failures.append(text)
        self.log(f"FAILURE: {text.splitlines()[0]}")

    def states(self):
        return partition_states(self.zk, self.config.topic, self.config.partitions)

    def run(self) -> Verdict:
        from kazoo.client import KazooClient

        zk_connect = next(iter(self.cluster.brokers.values())).overrides["zookeeper.connect"]
        self.zk = KazooClient(hosts=zk_connect)
        self.zk.start(timeout=15)
        try:
            self._run()
        except KeyboardInterrupt:
            raise
        except BaseException:
            self.fail("the harness itself failed:\n" + traceback.format_exc())
            raise
        finally:
            self._stop_threads()
            self.zk.stop()
            self.zk.close()
        return self.verdict

    def _stop_threads(self) -> None:
        if self.killer is not None:
            self.killer.stop()
            self.killer.join()
        for producer in self.producers:
            producer.stop()
        for producer in self.producers:
            producer.join()

    def _run(self) -> None:
        config = self.config
        self.create_topic()
        self.started = time.monotonic()
        for i, family in enumerate(config.families):
            producer = PRODUCERS[family](i, self.cluster.bootstrap, config, self.started)
            self.producers.append(producer)
            producer.start()
        self.killer = self.make_killer()
        self.killer.start()
        self.watch(self.killer, config.max_chaos_s)
        self.killer.stop()
        self.killer.join()
        self.killer.check_unexpected_exits()
        kills = self.killer.kills
        self.verdict.kills = kills
        self.verdict.failures += self.killer.failures
        if self.killer.crash:
            self.fail(f"the killer crashed:\n{self.killer.crash}")
        if len(kills) < config.kills:
            self.fail(f"only {len(kills)} of {config.kills} kills happened in {config.max_chaos_s:g} s")
        self.log(f"chaos over after {len(kills)} kills at t={self.t():.1f} s; waiting for the cluster to recover")

        # The cluster recovers: the ISR is full and every producer is acknowledged again.
        recovered_at = time.monotonic()
        recovered = poll_until(lambda: isr_full(self.states(), config.replication_factor), config.recovery_timeout_s)
        if not recovered:
            self.fail(f"the ISR was not full {config.recovery_timeout_s:g} s after the last kill: "
                      f"{describe_states(self.states(), config.min_insync_replicas)}")
        for producer in self.producers if recovered else []:
            if not poll_until(lambda: producer.last_ack_at is not None and producer.last_ack_at > recovered_at,
                              max(1.0, recovered_at + config.recovery_timeout_s - time.monotonic())):
                self.fail(f"{producer.family} producer {producer.producer_name} was not acknowledged in the "
                          f"{config.recovery_timeout_s:g} s after the last kill (errors so far: "
                          f"{dict(producer.errors.most_common(5))})")
        self.log(f"t={self.t():.1f} s: stopping the producers")
        for producer in self.producers:
            producer.stop()
        for producer in self.producers:
            producer.join()
            if producer.crash:
                self.fail(f"{producer.family} producer thread crashed:\n{producer.crash}")
        self.progress()

        if not poll_until(lambda: isr_full(self.states(), config.replication_factor),
                          config.recovery_timeout_s if recovered else 5):
            self.fail(f"the ISR was not full after the producers stopped: "
                      f"{describe_states(self.states())}")
        self.verify()

    def make_killer(self) -> Killer:
        """The thread that disturbs the cluster (interop/partitions.py cuts
        network links instead of killing)."""
        return Killer(self.cluster, self.zk, self.config, self.rng, self.log, self.started)

    def create_topic(self) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        config = self.config
        admin = AdminClient({"bootstrap.servers": self.cluster.bootstrap})
        topic = NewTopic(config.topic, config.partitions, config.replication_factor,
                         config={"min.insync.replicas": str(config.min_insync_replicas)})
        admin.create_topics([topic], operation_timeout=30)[config.topic].result(30)
        if not poll_until(lambda: all(s and s["leader"] >= 0 for s in self.states().values()), 30):
            raise TimeoutError(f"topic {config.topic} has partitions without a leader 30 s after creation: "
                               f"{describe_states(self.states())}")

    def watch(self, killer: Killer, timeout: float) -> None:
        """Print progress until the killer is done (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        next_report = time.monotonic() + self.config.progress_every_s
        while killer.is_alive() and time.monotonic() < deadline:
            killer.join(min(0.5, max(0.0, next_report - time.monotonic())))
            if time.monotonic() >= next_report:
                self.progress()
                next_report += self.config.progress_every_s
            for producer in self.producers:
                if producer.crash and not getattr(producer, "_reported", False):
                    producer._reported = True
                    self.log(f"{producer.family} producer thread crashed:\n{producer.crash}")
            last_ack = max((p.last_ack_at or self.started) for p in self.producers)
            if time.monotonic() - last_ack > self.config.stall_s:
                self.fail(f"no producer was acknowledged for {self.config.stall_s:g} s (at t={self.t():.0f} s, after "
                          f"{len(killer.kills)} kills; errors: "
                          + "; ".join(f"{p.producer_name}: {dict(p.errors.most_common(4))}" for p in self.producers)
                          + f"; partition states: {describe_states(self.states(), self.config.min_insync_replicas)}"
                          "): giving up the chaos")
                break

    def progress(self) -> None:
        kills = self.killer.kills if self.killer else []
        parts = [f"t={self.t():6.1f} s", f"kills {len(kills)}/{self.config.kills} "
                 f"(controller {sum('controller' in k.role for k in kills)})"]
        for p in self.producers:
            c = p.counts()
            errors = ", ".join(f"{e} x{n}" for e, n in p.errors.most_common(2))
            parts.append(f"{p.producer_name}: acked {c['acked']} failed {c['failed']} pending {c['pending']}"
                         + (f" ({errors})" if errors else ""))
        self.log(" | ".join(parts))

    # -- verification
    def verify(self) -> None:
        config, verdict = self.config, self.verdict
        ends = high_watermarks(self.cluster.bootstrap, config.topic, config.partitions)
        records, errors = read_topic(self.cluster.bootstrap, config.topic, ends, 120)
        for error in errors:
            self.fail(f"reading the topic back: {error}")
        self.check_log(records)
        if config.group_read:
            self.check_group(records, ends)
        self.stats(ends)

        # Segment files: stop the brokers cleanly first.
        assignment = self.assignment()
        self.log(f"t={self.t():.1f} s: stopping the brokers to compare their segment files")
        try:
            self.cluster.stop()
        except TimeoutError as e:
            self.fail(f"a broker did not stop cleanly: {e}")
        last_acked = defaultdict(lambda: -1)
        for producer in self.producers:
            for sent in producer.messages.values():
                if sent.state == "acked" and sent.offset is not None:
                    last_acked[sent.partition] = max(last_acked[sent.partition], sent.offset)
        for p in range(config.partitions):
            failures, notes = compare_replicas(self.cluster, config.topic, p, assignment[p], last_acked[p] + 1)
            for failure in failures:
                self.fail(failure)
            verdict.stats += notes

    def assignment(self) -> dict[int, list[int]]:
        data, _ = self.zk.get(f"/brokers/topics/{self.config.topic}")
        return {int(p): replicas for p, replicas in json.loads(data)["partitions"].items()}

    def check_log(self, records: dict[int, list[tuple[int, bytes]]]) -> None:
        """Every acknowledged message once, where it was acknowledged, in order."""
        where: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        for p, entries in records.items():
            for offset, value in entries:
                where[value].append((p, offset))
        sent_by_value = {v: s for producer in self.producers for v, s in producer.messages.items()}
        strangers = [(v, locs) for v, locs in where.items() if v not in sent_by_value]
        if strangers:
            self.fail(f"{len(strangers)} values in the log that no producer sent, e.g. "
                      + ", ".join(f"{v!r} at {locs}" for v, locs in strangers[:10]))
        lost, duplicated, misplaced, misreported, unacked_dups, no_offset = [], [], [], [], [], []
        present_unacked = Counter()
        for value, sent in sent_by_value.items():
            locations = where.get(value, [])
            if sent.state == "acked":
                if sent.error:
                    misreported.append(f"{value.decode()}: {sent.error}")
                if not locations:
                    lost.append(sent)
                elif len(locations) > 1:
                    duplicated.append((sent, locations))
                elif sent.offset is None or sent.offset < 0:
                    no_offset.append(sent)
                    if locations[0][0] != sent.partition:
                        misplaced.append((sent, locations[0]))
                elif locations[0] != (sent.partition, sent.offset):
                    misplaced.append((sent, locations[0]))
            else:
                if len(locations) > 1:
                    unacked_dups.append((sent, locations))
                if locations:
                    present_unacked[sent.state] += 1
        if lost:
            self.fail(f"LOST {len(lost)} acknowledged messages (acknowledged, not in the log):\n"
                      + self.describe_runs(lost))
        if duplicated:
            self.fail(f"DUPLICATED {len(duplicated)} acknowledged messages (in the log more than once): "
                      + "; ".join(f"{s.value.decode()} acknowledged at p{s.partition}@{s.offset}, found at "
                                  + ", ".join(f"p{p}@{o}" for p, o in locs) for s, locs in duplicated[:20]))
        if misplaced:
            self.fail(f"{len(misplaced)} acknowledged messages are not at the offset they were acknowledged with "
                      "(another record took their place, e.g. after a truncation): "
                      + "; ".join(f"{s.value.decode()} acknowledged at p{s.partition}@{s.offset} "
                                  f"(t={self.t(s.acked_at):.1f} s{self.kill_context(s.acked_at)}), found at "
                                  f"p{loc[0]}@{loc[1]}" for s, loc in misplaced[:20]))
        if misreported:
            self.fail("acknowledgements on the wrong partition: " + "; ".join(misreported[:20]))
        if unacked_dups:
            self.verdict.warnings.append(
                f"{len(unacked_dups)} messages not acknowledged are in the log more than once: "
                + "; ".join(f"{s.value.decode()} ({s.state}: {s.error}) at "
                            + ", ".join(f"p{p}@{o}" for p, o in locs) for s, locs in unacked_dups[:10]))
        if no_offset:
            by_producer = Counter(s.producer for s in no_offset)
            self.verdict.warnings.append(
                f"{len(no_offset)} acknowledgements came without an offset ({dict(by_producer)}), e.g. "
                + ", ".join(f"{s.value.decode()} (found at p{where[s.value][0][0]}@{where[s.value][0][1]}, "
                            f"acknowledged at t={self.t(s.acked_at):.1f} s{self.kill_context(s.acked_at)})"
                            for s in no_offset[:5])
                + ". librdkafka reports a message without its offset when a later batch's acknowledgement "
                "implies it (an implicit ack) or when the broker answers its retry DUPLICATE_SEQUENCE_NUMBER; "
                "each was checked to be in the log once, on its partition and in order")
        if present_unacked:
            self.verdict.warnings.append(
                "messages whose outcome the client reported as unknown or failed but which are in the log "
                f"(allowed: a timeout does not undo a write): {dict(present_unacked)}")
        self.check_order(where)

    def check_order(self, where: dict[bytes, list[tuple[int, int]]]) -> None:
        """Per producer and partition, acknowledged messages appear in the
        order they were sent and in the order they were acknowledged."""
        groups: dict[tuple[str, int], list[Sent]] = defaultdict(list)
        for producer in self.producers:
            for sent in producer.messages.values():
                if sent.state == "acked" and len(where.get(sent.value, [])) == 1:
                    groups[(sent.producer, sent.partition)].append(sent)
        for (name, partition), sents in sorted(groups.items()):
            # An acknowledgement without an offset (librdkafka's implicit ack) is
            # reported when a later batch's is: its order of acknowledgement says nothing.
            with_offset = [s for s in sents if s.offset is not None and s.offset >= 0]
            for chosen, key, what in ((sents, lambda s: s.seq, "sent"),
                                      (with_offset, lambda s: s.ack_index, "acknowledged")):
                ordered = sorted(chosen, key=key)
                found = [where[s.value][0][1] for s in ordered]
                inversions = [(ordered[i], found[i], ordered[i + 1], found[i + 1])
                              for i in range(len(ordered) - 1) if found[i + 1] <= found[i]]
                if inversions:
                    self.fail(f"REORDERED: {name} partition {partition}: {len(inversions)} acknowledged messages "
                              f"appear in the log before messages {what} earlier, e.g. "
                              + "; ".join(f"{a.value.decode()} at offset {oa} but {b.value.decode()} at {ob}"
                                          for a, oa, b, ob in inversions[:10]))

    def check_group(self, records: dict[int, list[tuple[int, bytes]]], ends: dict[int, int]) -> None:
        """A consumer group with a member of each client family reads every
        record (a record read twice after a rebalance is allowed)."""
        group = f"chaos-group-{self.config.topic}"
        go = threading.Event()
        members = [GroupReader(family, self.cluster.bootstrap, self.config.topic, group, i, go)
                   for i, family in enumerate(self.config.families)]
        for member in members:
            member.start()
        # Every member assigned a share of the partitions, then all read.
        formed = poll_until(lambda: sum(1 for m in members if m.assignment) == min(len(members), self.config.partitions)
                            and sum(len(m.assignment) for m in members) == self.config.partitions, 60)
        go.set()
        if not formed:
            self.verdict.warnings.append(
                "the consumer group did not give every member partitions within 60 s: "
                + ", ".join(f"{m.member} {sorted(m.assignment)}" for m in members))
        wanted = {(p, o): v for p, entries in records.items() for o, v in entries}
        unseen = set(wanted)
        seen_upto = [0] * len(members)

        def covered() -> bool:
            for i, m in enumerate(members):
                fresh = m.consumed[seen_upto[i]:]
                seen_upto[i] += len(fresh)
                unseen.difference_update((p, o) for p, o, _ in fresh)
            return not unseen

        done = poll_until(covered, 120, interval=0.2)
        for member in members:
            member.stopping.set()
        for member in members:
            member.join(60)
        consumed: dict[tuple[int, int], list[tuple[str, bytes]]] = defaultdict(list)
        for member in members:
            if member.crash:
                self.fail(f"group member {member.member} crashed:\n{member.crash}")
            for p, o, v in member.consumed:
                consumed[(p, o)].append((member.member, v))
        missing = sorted(wanted.keys() - consumed.keys())
        if not done or missing:
            self.fail(f"the consumer group ({', '.join(m.member for m in members)}) did not read "
                      f"{len(missing)} of {len(wanted)} records within 120 s, e.g. "
                      + ", ".join(f"p{p}@{o}" for p, o in missing[:10]))
        different = [(k, wanted[k], got) for k, got in consumed.items() if k in wanted
                     and any(v != wanted[k] for _, v in got)]
        if different:
            self.fail(f"the group read other values than the assigned reader at {len(different)} offsets, e.g. "
                      + "; ".join(f"p{k[0]}@{k[1]}: {w!r} vs {g}" for k, w, g in different[:10]))
        beyond = sorted(k for k in consumed if k not in wanted)
        if beyond:
            self.verdict.warnings.append(f"the group read {len(beyond)} records past the high watermarks read "
                                         f"before it started: {beyond[:5]}")
        idle = [m.member for m in members if not m.consumed]
        if idle:
            self.verdict.warnings.append(f"group members that read nothing (assigned no partition?): {idle}")
        twice = sum(1 for got in consumed.values() if len(got) > 1)
        self.verdict.stats.append(
            "consumer group: " + ", ".join(f"{m.member} read {len(m.consumed)}" for m in members)
            + f"; {twice} records read more than once (rebalances)")

    def stats(self, ends: dict[int, int]) -> None:
        verdict, kills = self.verdict, self.verdict.kills
        full = [k.isr_full_after for k in kills if k.isr_full_after is not None]
        verdict.stats.append(
            f"{len(kills)} kills ({sum('controller' in k.role for k in kills)} of the controller, "
            f"{sum('leader' in k.role for k in kills)} of a partition leader) in {self.t():.0f} s; "
            f"ISR full again after a restart {len(full)}/{len(kills)} times"
            + (f" (median {sorted(full)[len(full) // 2]:.1f} s after the kill)" if full else ""))
        for k in kills:
            if k.note:
                verdict.warnings.append(f"kill #{k.number} (broker {k.broker}, {k.role}): {k.note}")
        verdict.stats.append(f"high watermarks: {dict(sorted(ends.items()))}")
        for producer in self.producers:
            counts = producer.counts()
            verdict.acked[producer.family] = verdict.acked.get(producer.family, 0) + counts["acked"]
            gap, gap_partition, gap_end = producer.longest_gap
            for p in range(self.config.partitions):  # a partition acknowledged nothing since some time
                tail = producer.stopped_at - producer.last_ack_in.get(p, self.started)
                if tail > gap:
                    gap, gap_partition, gap_end = tail, p, producer.stopped_at
            names = ", ".join(f"{producer.short}{producer.index}.{i}" for i in range(1, producer.incarnation + 1))
            verdict.stats.append(
                f"{producer.family} ({names}): "
                f"sent {len(producer.messages)}, acknowledged {counts['acked']}, failed {counts['failed']}, "
                f"never reported {counts['pending']}; errors {dict(producer.errors.most_common(6))}; "
                f"longest time a partition went without an acknowledgement {gap:.1f} s "
                f"(p{gap_partition}, t={self.t(gap_end - gap):.1f}..{self.t(gap_end):.1f} s)")
            if counts["acked"] == 0:
                self.fail(f"{producer.family}: not one of {len(producer.messages)} messages was acknowledged "
                          f"({counts['failed']} failed: {dict(producer.errors.most_common(6))}; "
                          f"{counts['pending']} never reported)")
            for event in producer.events:
                verdict.warnings.append(f"{producer.family}: {event}")
        verdict.stats.append("broker logs: " + ", ".join(str(b.log_path) for b in self.cluster.brokers.values()))

    def kill_context(self, at: float | None) -> str:
        if at is None:
            return ""
        kills = self.verdict.kills
        before = [k for k in kills if k.at <= at]
        after = [k for k in kills if k.at > at]
        parts = []
        if before:
            k = before[-1]
            parts.append(f"{at - k.at:.1f} s after kill #{k.number} of broker {k.broker} ({k.role})")
        if after:
            k = after[0]
            parts.append(f"{k.at - at:.1f} s before kill #{k.number} of broker {k.broker} ({k.role})")
        return ", " + ", ".join(parts) if parts else ""

    def describe_runs(self, sents: list[Sent], limit: int = 20) -> str:
        """Messages as runs of consecutive seqs per producer and partition."""
        by_group: dict[tuple[str, int], list[Sent]] = defaultdict(list)
        for s in sents:
            by_group[(s.producer, s.partition)].append(s)
        lines = []
        step = self.config.partitions
        for (name, partition), group in sorted(by_group.items()):
            group.sort(key=lambda s: s.seq)
            runs, run = [], [group[0]]
            for s in group[1:]:
                if s.seq == run[-1].seq + step:
                    run.append(s)
                else:
                    runs.append(run)
                    run = [s]
            runs.append(run)
            for run in runs:
                first, last = run[0], run[-1]
                lines.append(f"    {name} partition {partition}: {len(run)} messages {first.value.decode()}"
                             f"..{last.value.decode()}, acknowledged at offsets {first.offset}..{last.offset} "
                             f"at t={self.t(first.acked_at):.1f}..{self.t(last.acked_at):.1f} s"
                             f"{self.kill_context(first.acked_at)}")
        if len(lines) > limit:
            lines = lines[:limit] + [f"    ... and {len(lines) - limit} more runs"]
        return "\n".join(lines)


# -- ./scripts/chaos ----------------------------------------------------------------------


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """./scripts/chaos: ZooKeeper and 3 brokers on free ports, producers of
    both client families with acks=all and idempotence, kill -9 of leaders and
    controllers, then every acknowledged message and every replica checked."""
    import argparse
    import shutil
    import signal
    import tempfile

    from .zookeeper import ZooKeeperNotInstalled, ZooKeeperProcess

    parser = argparse.ArgumentParser(prog="scripts/chaos", description=main.__doc__)
    parser.add_argument("--kills", type=int, default=200, help="how many brokers to kill (default 200)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--min-insync-replicas", type=int, default=2)
    parser.add_argument("--rate", type=float, default=150.0, help="messages a second per producer (default 150)")
    parser.add_argument("--pause", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                        help="seconds between a restarted broker settling and the next kill (default 0.5 2)")
    parser.add_argument("--controller-share", type=float, default=0.3,
                        help="how often the controller is the victim (default 0.3)")
    parser.add_argument("--session-timeout-ms", type=int, default=3000,
                        help="zookeeper.session.timeout.ms: how long a killed broker stays registered")
    parser.add_argument("--seed", type=int, default=None, help="seeds the killer's choice of victims")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where brokers and ZooKeeper keep data and logs (default: a new directory "
                             "under data/chaos, removed after a passing run unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory after a passing run")
    parser.add_argument("arguments", nargs="*", metavar="name=value", help="more broker configs")
    args = parser.parse_args(argv)

    overrides = chaos_overrides(args.session_timeout_ms)
    for item in args.arguments:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"not a name=value config: {item!r}")
        overrides[name] = value
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    root = Path(__file__).resolve().parent.parent
    if args.data_dir is None:
        (root / "data" / "chaos").mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=root / "data" / "chaos"))
    else:
        directory = args.data_dir
        directory.mkdir(parents=True, exist_ok=True)
    config = ChaosConfig(topic="chaos", partitions=args.partitions, min_insync_replicas=args.min_insync_replicas,
                         kills=args.kills, pause=tuple(args.pause), controller_share=args.controller_share,
                         rate=args.rate, seed=seed, max_chaos_s=max(600.0, args.kills * 60.0),
                         client_logging=True)
    # The clients' own log lines (reconnects, retries) go to a file, not the terminal.
    logging.basicConfig(filename=directory / "clients.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def log(text: str) -> None:
        print(text, flush=True)

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    zookeeper = ZooKeeperProcess(data_dir=directory / "zookeeper")
    cluster = None
    verdict = None
    started = time.monotonic()
    try:
        zookeeper.start()
        cluster = Cluster(zookeeper.connect_string("/chaos"), directory, 3, overrides)
        log(f"chaos run: seed {seed}, {args.kills} kills, data and logs in {directory} "
            "(the clients' logs in clients.log)")
        log(f"ZooKeeper pid {zookeeper.pid} on {zookeeper.connect_string()}")
        cluster.start()
        for broker_id, broker in cluster.brokers.items():
            log(f"broker {broker_id}: {broker.bootstrap}, pid {broker.pid}, log {broker.log_path}")
        verdict = ChaosRun(cluster, config, log).run()
    except KeyboardInterrupt:
        log("\ninterrupted: stopping everything this run started")
    except ZooKeeperNotInstalled as e:
        print(f"error: {e}", file=sys.stderr)
    except Exception:
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        try:
            if cluster is not None:
                try:
                    cluster.stop()
                except TimeoutError as e:
                    print(f"error: {e}", file=sys.stderr)
        finally:
            zookeeper.stop()
    if verdict is None:
        log(f"no verdict; data and logs kept in {directory}")
        return 2
    log("")
    log(verdict.report())
    log(f"\nwall time {time.monotonic() - started:.0f} s, seed {seed}")
    if verdict.ok and not args.keep and args.data_dir is None:
        shutil.rmtree(directory, ignore_errors=True)
        log(f"passed: removed {directory} (--keep keeps it)")
    else:
        log(f"data and logs kept in {directory}")
    return 0 if verdict.ok else 1


def chaos_overrides(session_timeout_ms: int = 3000) -> dict[str, str]:
    """Broker configs for a quick but realistic run: a killed broker's session
    expires in a few seconds, a follower that stops fetching leaves the ISR
    in 5 s, __consumer_offsets is replicated 3 times like any topic here."""
    return {
        "zookeeper.session.timeout.ms": str(session_timeout_ms),
        "replica.lag.time.max.ms": "5000",
        "replica.fetch.backoff.ms": "200",
        "offsets.topic.replication.factor": "3",
        "offsets.topic.num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
        "controlled.shutdown.retry.backoff.ms": "500",
    }


if __name__ == "__main__":
    sys.exit(main())
