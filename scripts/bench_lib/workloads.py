"""What the benchmark measures.

A workload is set-up steps (not measured), then one measured step, run on a
freshly started system with a topic of its own. A step is a client step
(bench_lib.client, in a subprocess) or RESTART: a clean shutdown and a start on
the same data, whose measured figure is the time to serving. The cluster
workloads run on our single broker and on a 3-broker cluster side by side
(a controller failover on the cluster alone: the measured step Failover). The
replication workloads (cluster-rf3-*, cluster-follower-catch-up) use
replication factor 3; where the single broker's figure is the baseline to
compare with, it runs a step of its own (``Workload.single``: acks=1 and
replication factor 1), and the leader failover and a follower's catch-up
run on the cluster alone (LeaderFailover, CatchUp).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

RESTART = "restart"

THROUGHPUT = ("msg_per_s", "mb_per_s", "cpu_us_per_msg", "peak_rss_mb")
ACK_LATENCY = ("ack_p50_ms", "ack_p99_ms", "ack_p999_ms")
E2E_LATENCY = ("e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms")
METADATA_LATENCY = ("metadata_p50_ms", "metadata_p99_ms", "metadata_p999_ms")
COMMIT_LATENCY = ("commit_p50_ms", "commit_p99_ms", "commit_max_ms")
SINGLE_AND_CLUSTER = ("ours", "cluster")

KIB = 1024


@dataclass(frozen=True)
class ClientStep:
    step: str  # a name in bench_lib.client.STEPS
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Failover:
    """kill -9 of the cluster's controller, then a restart of its broker (bench_lib.cluster)."""

    partitions: int  # of the workload's topic, made in the set-up


@dataclass(frozen=True)
class LeaderFailover:
    """Controlled shutdown (SIGTERM) of a broker leading partitions, its
    restart, then kill -9 of another: until every partition each led has a
    new leader (bench_lib.cluster). Replication factor 3; the topic is made
    in the set-up."""

    partitions: int


@dataclass(frozen=True)
class CatchUp:
    """A follower stopped (SIGTERM) while ``messages`` x ``size`` bytes are
    written with acks=all, then restarted: until its logs hold every byte of
    its leaders' (bench_lib.cluster). Replication factor 3, the stopped
    broker leading none of the ``partitions``."""

    partitions: int
    messages: int
    size: int


@dataclass(frozen=True)
class Compaction:
    """The log cleaner compacting ``messages`` records of ``size`` bytes over
    ``keys`` keys in one cleaning (bench_lib.compaction)."""

    messages: int
    size: int
    keys: int


@dataclass(frozen=True)
class Interference:
    """``pairs`` busy rounds between ``pairs`` + 1 idle ones on one broker,
    each round producing then consuming ``messages`` x ``size`` bytes on
    ordinary partitions, the log cleaner idle, or busy compacting a log of
    ``log_messages`` x ``size`` bytes over ``keys`` keys in segments of
    ``segment_bytes`` (bench_lib.interference)."""

    pairs: int
    messages: int
    size: int
    partitions: int
    log_messages: int
    keys: int
    segment_bytes: int


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    measure: ClientStep | Failover | LeaderFailover | CatchUp | Compaction | Interference | str
    figures: tuple[str, ...]
    setup: tuple[ClientStep | str, ...] = ()
    ceiling: bool = False  # also run against the sink: the client's ceiling
    warm: bool = True  # warm the system up (produce and fetch once) before the set-up
    only_systems_keeping_data: bool = False
    # The systems it runs on when not the default (ours, the peer, the sink if ceiling).
    systems: tuple[str, ...] | None = None
    # The measured step on our single broker when it differs from the
    # cluster's: the baseline the cluster's figure is divided by.
    single: ClientStep | None = None
    ours_only: bool = False  # runs on our broker alone (its figures compare two states of it)

    @property
    def restarts(self) -> bool:
        return RESTART in self.setup or self.measure == RESTART


@dataclass(frozen=True)
class Sizes:
    small: int  # messages of 100 B
    large: int  # messages of 1 KiB
    latency_seconds: float
    many_producers: int  # messages of 1 KiB, all producers together
    metadata_requests: int
    cluster: int  # messages of 1 KiB, cluster throughput (100,000 take a mere 0.1-0.2 s)
    catch_up: int  # messages of 1 KiB written while a follower is down
    interference: int  # messages of 1 KiB produced, then consumed, in a round beside the log cleaner
    interference_pairs: int  # busy rounds in a run (between idle ones)
    interference_log: int  # messages of 1 KiB in the log it cleans meanwhile


FULL = Sizes(small=1_000_000, large=100_000, latency_seconds=10, many_producers=100_000, metadata_requests=5000,
             cluster=500_000, catch_up=1_000_000, interference=300_000, interference_pairs=8,
             interference_log=600_000)
QUICK = Sizes(small=300_000, large=100_000, latency_seconds=4, many_producers=40_000, metadata_requests=2000,
              cluster=300_000, catch_up=250_000, interference=200_000, interference_pairs=4,
              interference_log=300_000)

LATENCY_RATE = 2000
TRANSACTION_SIZE = 1000  # messages per transaction
PRODUCERS = 20
STARTUP_PARTITIONS = 1000
RSS_PARTITIONS = 100
RSS_MESSAGES = 1_000_000  # of 1 KiB: 1 GB on disk
CLUSTER_PARTITIONS = 1000
REPLICATION_FACTOR = 3
CATCH_UP_PARTITIONS = 6
LEADER_FAILOVER_PARTITIONS = 300  # 100 led by each broker


def _produce(count: int, size: int, partitions: int, acks: str = "all", **extra) -> ClientStep:
    return ClientStep("produce", {"count": count, "size": size, "partitions": partitions, "acks": acks, **extra})


def _consume(count: int, size: int, partitions: int, **extra) -> ClientStep:
    return ClientStep("consume", {"count": count, "size": size, "partitions": partitions, **extra})


def _size_name(size: int) -> str:
    return f"{size // KIB}KiB" if size >= KIB else f"{size}B"


def _partitions(n: int) -> str:
    return "1 partition" if n == 1 else f"{n} partitions"


def produce_workloads(sizes: Sizes) -> list[Workload]:
    out = []
    for size, count in ((100, sizes.small), (KIB, sizes.large)):
        for partitions in (1, 6):
            for acks in ("1", "all"):
                out.append(Workload(
                    f"produce-{_size_name(size)}-p{partitions}-acks{acks}",
                    f"produce {count:,} x {_size_name(size)} into {_partitions(partitions)}, acks={acks}",
                    _produce(count, size, partitions, acks), THROUGHPUT, ceiling=True))
    out.append(Workload(
        "produce-idempotent-1KiB-p6",
        f"idempotent producer, {sizes.large:,} x 1KiB into 6 partitions",
        _produce(sizes.large, KIB, 6, idempotent=True), THROUGHPUT, ceiling=True))
    out.append(Workload(
        "produce-transactional-1KiB-p6",
        f"transactional producer, {sizes.large:,} x 1KiB into 6 partitions in committed transactions of "
        f"{TRANSACTION_SIZE:,}; the commits' latency (EndTxn, the messages flushed before it)",
        _produce(sizes.large, KIB, 6, transaction_size=TRANSACTION_SIZE), THROUGHPUT + COMMIT_LATENCY))
    out.append(Workload(
        f"produce-{PRODUCERS}-producers-1KiB-p6",
        f"{PRODUCERS} producers at once, {sizes.many_producers:,} x 1KiB in all into 6 partitions, acks=all",
        _produce(sizes.many_producers, KIB, 6, producers=PRODUCERS), THROUGHPUT, ceiling=True))
    return out


def consume_workloads(sizes: Sizes) -> list[Workload]:
    committed = _produce(sizes.large, KIB, 6, transaction_size=TRANSACTION_SIZE)
    return [
        Workload(f"consume-{_size_name(size)}-p6",
                 f"consume {count:,} x {_size_name(size)} from offset 0 of 6 partitions",
                 _consume(count, size, 6), THROUGHPUT, setup=(_produce(count, size, 6, "1"),), ceiling=True)
        for size, count in ((100, sizes.small), (KIB, sizes.large))
    ] + [
        Workload(f"consume-transactional-1KiB-p6-{isolation.replace('_', '-')}",
                 f"consume {sizes.large:,} x 1KiB written in committed transactions of {TRANSACTION_SIZE:,}, "
                 f"from offset 0 of 6 partitions, isolation.level={isolation}",
                 _consume(sizes.large, KIB, 6, isolation=isolation), THROUGHPUT, setup=(committed,))
        for isolation in ("read_committed", "read_uncommitted")
    ]


def latency_workloads(sizes: Sizes) -> list[Workload]:
    params = {"rate": LATENCY_RATE, "seconds": sizes.latency_seconds, "size": 100}
    return [
        Workload(f"latency-e2e-{LATENCY_RATE}-per-s",
                 f"produce-to-consume at {LATENCY_RATE} msg/s for {sizes.latency_seconds:g} s, 100 B, "
                 "consumer's default fetch wait; the acks seen meanwhile",
                 ClientStep("latency", {**params, "with_consumer": True}),
                 E2E_LATENCY + ACK_LATENCY + ("cpu_us_per_msg", "peak_rss_mb")),
        Workload(f"latency-ack-{LATENCY_RATE}-per-s",
                 f"produce-ack at {LATENCY_RATE} msg/s for {sizes.latency_seconds:g} s, 100 B, no consumer",
                 ClientStep("latency", {**params, "with_consumer": False}),
                 ACK_LATENCY + ("cpu_us_per_msg", "peak_rss_mb"), ceiling=True),
    ]


def startup_workload() -> Workload:
    return Workload(
        f"startup-{STARTUP_PARTITIONS}-partitions",
        f"start-up to serving with {STARTUP_PARTITIONS:,} partitions on disk (10 x 1KiB each) after a clean shutdown",
        RESTART, ("startup_s", "peak_rss_mb"),
        setup=(_produce(STARTUP_PARTITIONS * 10, KIB, STARTUP_PARTITIONS, "1"),),
        warm=False, only_systems_keeping_data=True)


def rss_workload() -> Workload:
    return Workload(
        "read-1GB-100-partitions",
        f"peak RSS reading {RSS_MESSAGES:,} x 1KiB (1 GB on disk) across {RSS_PARTITIONS} partitions "
        "after a restart",
        _consume(RSS_MESSAGES, KIB, RSS_PARTITIONS), THROUGHPUT,
        setup=(_produce(RSS_MESSAGES, KIB, RSS_PARTITIONS, "1"), RESTART),
        only_systems_keeping_data=True)


def cluster_workloads(sizes: Sizes) -> list[Workload]:
    create = ClientStep("create", {"partitions": CLUSTER_PARTITIONS})
    count = sizes.cluster
    return [
        Workload("cluster-produce-1KiB-p6", f"produce {count:,} x 1KiB into 6 partitions, acks=all",
                 _produce(count, KIB, 6), THROUGHPUT, systems=SINGLE_AND_CLUSTER),
        Workload("cluster-consume-1KiB-p6", f"consume {count:,} x 1KiB from offset 0 of 6 partitions",
                 _consume(count, KIB, 6), THROUGHPUT, setup=(_produce(count, KIB, 6, "1"),),
                 systems=SINGLE_AND_CLUSTER),
        Workload(f"cluster-metadata-{CLUSTER_PARTITIONS}-partitions",
                 f"Metadata v12 for one topic of {CLUSTER_PARTITIONS:,} partitions, "
                 f"{sizes.metadata_requests:,} requests one at a time",
                 ClientStep("metadata", {"partitions": CLUSTER_PARTITIONS, "requests": sizes.metadata_requests}),
                 METADATA_LATENCY + ("cpu_us_per_msg",), systems=SINGLE_AND_CLUSTER),
        Workload(f"cluster-create-{CLUSTER_PARTITIONS}-partitions",
                 f"CreateTopics of {CLUSTER_PARTITIONS:,} partitions, replication factor 1, until answered",
                 create, ("create_s",), systems=SINGLE_AND_CLUSTER),
        Workload(f"cluster-failover-{CLUSTER_PARTITIONS}-partitions",
                 f"kill -9 of the controller with {CLUSTER_PARTITIONS:,} partitions, replication factor 1: "
                 "new controller to every live partition led; restart to every partition led",
                 Failover(CLUSTER_PARTITIONS), ("failover_s", "rejoin_s"), setup=(create,), warm=False, systems=("cluster",)),
    ]


def replication_workloads(sizes: Sizes) -> list[Workload]:
    count, rf = sizes.cluster, REPLICATION_FACTOR
    latency = {"rate": LATENCY_RATE, "seconds": sizes.latency_seconds, "size": KIB, "with_consumer": False}
    catch_up_mb = sizes.catch_up * KIB / 1e6
    return [
        Workload("cluster-rf3-produce-acks-all",
                 f"produce {count:,} x 1KiB into 6 partitions, replication factor {rf}, acks=all; "
                 "the single broker: acks=1",
                 _produce(count, KIB, 6, "all", replication_factor=rf), THROUGHPUT, systems=SINGLE_AND_CLUSTER,
                 single=_produce(count, KIB, 6, "1")),
        Workload("cluster-rf3-ack-latency",
                 f"produce-ack at {LATENCY_RATE} msg/s for {sizes.latency_seconds:g} s, 1KiB, acks=all, "
                 f"replication factor {rf}, no consumer; the single broker: the same at replication factor 1",
                 ClientStep("latency", {**latency, "replication_factor": rf}),
                 ACK_LATENCY + ("ack_max_ms", "cpu_us_per_msg", "peak_rss_mb"), systems=SINGLE_AND_CLUSTER,
                 single=ClientStep("latency", latency)),
        Workload("cluster-rf3-ack-latency-linger5",
                 "the same with linger.ms=5 (librdkafka's default), so that messages sent meanwhile share a request",
                 ClientStep("latency", {**latency, "replication_factor": rf, "linger_ms": 5}),
                 ACK_LATENCY + ("ack_max_ms", "cpu_us_per_msg", "peak_rss_mb"), systems=SINGLE_AND_CLUSTER,
                 single=ClientStep("latency", {**latency, "linger_ms": 5})),
        Workload("cluster-follower-catch-up",
                 f"a follower stopped (SIGTERM) while {sizes.catch_up:,} x 1KiB ({catch_up_mb:,.0f} MB) go into "
                 f"{CATCH_UP_PARTITIONS} partitions, replication factor {rf}, acks=all; restart to its logs "
                 "level with the leaders'",
                 CatchUp(CATCH_UP_PARTITIONS, sizes.catch_up, KIB),
                 ("catch_up_mb_per_s", "catch_up_s", "isr_s", "startup_s", "behind_mb"), warm=False,
                 systems=("cluster",)),
        Workload("cluster-rf3-failover",
                 f"{LEADER_FAILOVER_PARTITIONS} partitions, replication factor {rf}: SIGTERM (controlled shutdown) "
                 "of a broker that leads a third of them, then (restarted, back in every ISR) kill -9 of another: "
                 "until Metadata shows a new leader for each partition it led",
                 LeaderFailover(LEADER_FAILOVER_PARTITIONS), ("sigterm_s", "kill9_s", "expired_s"),
                 setup=(_produce(10 * LEADER_FAILOVER_PARTITIONS, KIB, LEADER_FAILOVER_PARTITIONS,
                                 replication_factor=rf),),
                 warm=False, systems=("cluster",)),
    ]


COMPACTION_KEYS = 5000


def compaction_workload(sizes: Sizes) -> Workload:
    messages = sizes.large
    return Workload(
        "compaction-1KiB",
        f"the log cleaner compacting {messages:,} x 1KiB over {COMPACTION_KEYS:,} keys (MB of log a second of "
        "cleaning, one core; Kafka's as its cleaner logs it)",
        Compaction(messages, KIB, COMPACTION_KEYS), ("cleaner_mb_per_s", "map_mb"),
        warm=False, only_systems_keeping_data=True)


INTERFERENCE_SEGMENT_BYTES = 1024 * 1024
INTERFERENCE = ("produce_busy_over_idle", "consume_busy_over_idle", "produce_idle_msg_per_s",
                "produce_busy_msg_per_s", "consume_idle_msg_per_s", "consume_busy_msg_per_s",
                "broker_cpu_busy_over_idle", "cleaner_cpu_share", "segments_swapped")


def interference_workload(sizes: Sizes) -> Workload:
    log_mb = sizes.interference_log * KIB / 1e6
    return Workload(
        "compaction-interference-1KiB",
        f"{2 * sizes.interference_pairs + 1} rounds, each producing then consuming {sizes.interference:,} x 1KiB "
        "on 6 ordinary partitions, with the log cleaner in turn idle (its worker process stopped mid-cleaning) and "
        f"busy compacting a log of {sizes.interference_log:,} x 1KiB ({log_mb:,.0f} MB) over {COMPACTION_KEYS:,} "
        f"keys in segments of {INTERFERENCE_SEGMENT_BYTES // KIB // KIB} MiB; each busy round over the idle ones "
        "beside it",
        Interference(sizes.interference_pairs, sizes.interference, KIB, 6, sizes.interference_log, COMPACTION_KEYS,
                     INTERFERENCE_SEGMENT_BYTES),
        INTERFERENCE, warm=False, ours_only=True)


def all_workloads(quick: bool, catch_up_mb: float | None = None) -> list[Workload]:
    sizes = QUICK if quick else FULL
    if catch_up_mb is not None:
        sizes = replace(sizes, catch_up=max(1, round(catch_up_mb * 1e6 / KIB)))
    workloads = (produce_workloads(sizes) + consume_workloads(sizes) + latency_workloads(sizes)
                 + [startup_workload(), compaction_workload(sizes), interference_workload(sizes)]
                 + cluster_workloads(sizes)
                 + replication_workloads(sizes))
    if not quick:
        workloads.append(rss_workload())
    return workloads
