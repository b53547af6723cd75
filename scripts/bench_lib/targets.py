"""The issue's performance targets, checked against a run's medians.

Each check reads the summaries (workload -> figure -> medians and ratios)
and says what was measured and whether the target is met; a target whose
workload did not run (or has no peer) is "not measured". Some targets are
against Apache Kafka itself and are checked only when it is the peer
(``--peer kafka``); the others hold for any peer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .cluster import SESSION_TIMEOUT_MS

NOT_MEASURED = ("not measured", None)
CLUSTER = "cluster-"
KILL9_LIMIT_S = SESSION_TIMEOUT_MS / 1000 + 1  # the bench's clusters' zookeeper.session.timeout.ms, + 1 s


KAFKA = "kafka"


@dataclass(frozen=True)
class Target:
    text: str
    check: Callable[[dict], tuple[str, bool | None]]
    # Checked only when the peer is this one (None: any peer), or never then.
    peer: str | None = None
    not_with_peer: str | None = None

    def applies(self, peer: str | None) -> bool:
        return (self.peer is None or self.peer == peer) and (self.not_with_peer is None or self.not_with_peer != peer)


def _rows(summaries: dict, prefix: str, figure: str) -> list[tuple[str, dict]]:
    """The single-broker-against-the-peer rows (the cluster's have their own checks)."""
    return [(name, figures[figure]) for name, figures in summaries.items()
            if name.startswith(prefix) and not name.startswith(CLUSTER) and figure in figures]


def _cluster_ratio_at_least(prefixes: tuple[str, ...], minimum: float) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(name, figures["msg_per_s"]["ratio"]) for name, figures in summaries.items()
                if name.startswith(prefixes) and figures["msg_per_s"]["ratio"] is not None]
        if not rows:
            return NOT_MEASURED
        name, ratio = min(rows, key=lambda r: r[1])
        return f"lowest {ratio:.2f}x ({name})", ratio >= minimum

    return check


def _cluster_at_most(prefix: str, figures: tuple[str, ...], limit: float, unit: str
                     ) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(f"{figure} {name}", row[figure]["cluster"]) for name, row in summaries.items()
                if name.startswith(prefix) for figure in figures if row[figure]["cluster"] is not None]
        if not rows:
            return NOT_MEASURED
        name, value = max(rows, key=lambda r: r[1])
        return f"{value:.2f} {unit} ({name})", value < limit

    return check


def _cluster_at_least(prefix: str, figure: str, minimum: float, unit: str
                      ) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(name, row[figure]["cluster"]) for name, row in summaries.items()
                if name.startswith(prefix) and row[figure]["cluster"] is not None]
        if not rows:
            return NOT_MEASURED
        name, value = min(rows, key=lambda r: r[1])
        return f"{value:,.1f} {unit} ({name})", value >= minimum

    return check


def _ratio_at_least(prefix: str, figure: str, minimum: float) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(name, row["ratio"]) for name, row in _rows(summaries, prefix, figure) if row["ratio"] is not None]
        if not rows:
            return NOT_MEASURED
        worst = min(rows, key=lambda r: r[1])
        below = [f"{name} {ratio:.2f}x" for name, ratio in rows if ratio < minimum]
        text = f"lowest {worst[1]:.2f}x ({worst[0]})" + (f"; below: {', '.join(below)}" if below else "")
        return text, not below

    return check


def _ratio_at_most(prefix: str, figure: str, maximum: float) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(name, row["ratio"]) for name, row in _rows(summaries, prefix, figure) if row["ratio"] is not None]
        if not rows:
            return NOT_MEASURED
        worst = max(rows, key=lambda r: r[1])
        above = [f"{name} {ratio:.2f}x" for name, ratio in rows if ratio > maximum]
        text = f"highest {worst[1]:.2f}x ({worst[0]})" + (f"; above: {', '.join(above)}" if above else "")
        return text, not above

    return check


def _of_ceiling_at_least(prefix: str, minimum: float) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(name, row["of_ceiling"]) for name, row in _rows(summaries, prefix, "msg_per_s")
                if row["of_ceiling"] is not None]
        if not rows:
            return NOT_MEASURED
        worst = min(rows, key=lambda r: r[1])
        return f"lowest {worst[1]:.0%} ({worst[0]})", worst[1] >= minimum

    return check


def _ratio_below(prefix: str, figure: str) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(name, row["ratio"]) for name, row in _rows(summaries, prefix, figure) if row["ratio"] is not None]
        if not rows:
            return NOT_MEASURED
        worst = max(rows, key=lambda r: r[1])
        return f"highest {worst[1]:.2f}x the peer's ({worst[0]})", worst[1] < 1

    return check


def _at_most(workload_prefix: str, figure: str, limit: float, unit: str) -> Callable[[dict], tuple[str, bool | None]]:
    def check(summaries: dict) -> tuple[str, bool | None]:
        rows = [(name, row["ours"]) for name, row in _rows(summaries, workload_prefix, figure)
                if row["ours"] is not None]
        if not rows:
            return NOT_MEASURED
        name, value = max(rows, key=lambda r: r[1])
        return f"{value:.2f} {unit} ({name})", value <= limit

    return check


def _workload_ratio_at_least(workload: str, baseline: str, figure: str, minimum: float
                             ) -> Callable[[dict], tuple[str, bool | None]]:
    """Our figure in ``workload`` against ours in ``baseline`` (same run)."""
    def check(summaries: dict) -> tuple[str, bool | None]:
        try:
            ours, base = summaries[workload][figure]["ours"], summaries[baseline][figure]["ours"]
        except KeyError:
            return NOT_MEASURED
        if ours is None or not base:
            return NOT_MEASURED
        return f"{ours / base:.2f}x ({ours:,.0f} against {base:,.0f})", ours / base >= minimum

    return check


def _compaction(summaries: dict) -> tuple[str, bool | None]:
    row = summaries.get("compaction-1KiB", {})
    rate = row.get("cleaner_mb_per_s", {}).get("ours")
    if rate is None:
        return NOT_MEASURED
    kafka = row["cleaner_mb_per_s"].get("peer")
    map_mb = row.get("map_mb", {}).get("ours")
    text = f"{rate:,.1f} MB/s, key map {map_mb:,.1f} MB" + (f" (the peer: {kafka:,.1f} MB/s)" if kafka else "")
    return text, rate >= 50 and map_mb is not None and map_mb <= 134.22


def _interference(summaries: dict) -> tuple[str, bool | None]:
    row = summaries.get("compaction-interference-1KiB", {})
    produce = row.get("produce_busy_over_idle", {}).get("ours")
    consume = row.get("consume_busy_over_idle", {}).get("ours")
    if produce is None or consume is None:
        return NOT_MEASURED
    return f"produce {produce:.2f}x, consume {consume:.2f}x", produce >= 0.9 and consume >= 0.9


TARGETS = [
    Target("every throughput figure >= 1.0x the peer", _ratio_at_least("", "msg_per_s", 1.0), not_with_peer=KAFKA),
    Target("every throughput figure >= 1.0x Apache Kafka's", _ratio_at_least("", "msg_per_s", 1.0), peer=KAFKA),
    Target("e2e latency at 2,000 msg/s: p99 no worse than Apache Kafka's",
           _ratio_at_most("latency-e2e", "e2e_p99_ms", 1.0), peer=KAFKA),
    Target("broker peak RSS <= 0.25x Apache Kafka's (every workload)",
           _ratio_at_most("", "peak_rss_mb", 0.25), peer=KAFKA),
    Target("produce 1 KiB >= 1.5x the peer", _ratio_at_least("produce-1KiB", "msg_per_s", 1.5)),
    Target("produce 1 KiB >= 75% of the client's ceiling", _of_ceiling_at_least("produce-1KiB", 0.75)),
    Target("consume 1 KiB >= 1.5x the peer", _ratio_at_least("consume-1KiB", "msg_per_s", 1.5)),
    Target("e2e latency at 2,000 msg/s: p99 <= 5 ms", _at_most("latency-e2e", "e2e_p99_ms", 5, "ms")),
    Target("produce-ack p99 <= 2 ms with a consumer attached", _at_most("latency-e2e", "ack_p99_ms", 2, "ms")),
    Target("broker CPU/msg at 1 KiB below the peer's", _ratio_below("produce-1KiB", "cpu_us_per_msg")),
    Target("broker CPU/msg consuming 1 KiB below the peer's", _ratio_below("consume-1KiB", "cpu_us_per_msg")),
    Target("peak RSS <= 150 MB reading 1 GB across 100 partitions", _at_most("read-1GB", "peak_rss_mb", 150, "MB")),
    Target("start-up to serving <= 1 s with 1,000 partitions", _at_most("startup", "startup_s", 1, "s")),
    Target("3-broker cluster produces and consumes >= 0.9x the single broker",
           _cluster_ratio_at_least(("cluster-produce", "cluster-consume"), 0.9)),
    Target("Metadata for 1,000 partitions (cluster): p99 < 5 ms",
           _cluster_at_most("cluster-metadata", ("metadata_p99_ms",), 5, "ms")),
    Target("controller failover with 1,000 partitions < 2 s after the election (and the rejoin)",
           _cluster_at_most("cluster-failover", ("failover_s", "rejoin_s"), 2, "s")),
    Target("create a 1,000-partition topic on 3 brokers < 3 s",
           _cluster_at_most("cluster-create", ("create_s",), 3, "s")),
    Target("transactional produce of 1 KiB in transactions of 1,000 >= 0.8x the idempotent producer",
           _workload_ratio_at_least("produce-transactional-1KiB-p6", "produce-idempotent-1KiB-p6", "msg_per_s", 0.8)),
    Target("EndTxn p99 < 10 ms on the single broker", _at_most("produce-transactional", "commit_p99_ms", 10, "ms")),
    Target("a read_committed consumer reads >= 0.9x as fast as read_uncommitted over the same committed data",
           _workload_ratio_at_least("consume-transactional-1KiB-p6-read-committed",
                                    "consume-transactional-1KiB-p6-read-uncommitted", "msg_per_s", 0.9)),
    Target("replication factor 3, acks=all: produce 1 KiB >= 0.5x the single broker's acks=1",
           _cluster_ratio_at_least(("cluster-rf3-produce",), 0.5)),
    Target("replication factor 3, acks=all at 2,000 msg/s: produce-ack p99 < 10 ms",
           _cluster_at_most("cluster-rf3-ack-latency", ("ack_p99_ms",), 10, "ms")),
    Target("a follower down for 1 GB of writes catches up at >= 100 MB/s",
           _cluster_at_least("cluster-follower-catch-up", "catch_up_mb_per_s", 100, "MB/s")),
    Target(f"kill -9 of a leader: its partitions have new leaders within zookeeper.session.timeout.ms + 1 s "
           f"({KILL9_LIMIT_S:g} s here)", _cluster_at_most("cluster-rf3-failover", ("kill9_s",), KILL9_LIMIT_S, "s")),
    Target("controlled shutdown of a leader: its partitions have new leaders within 1 s",
           _cluster_at_most("cluster-rf3-failover", ("sigterm_s",), 1, "s")),
    Target("the log cleaner compacts >= 50 MB/s of 1 KiB records on one core, its key map within "
           "log.cleaner.dedupe.buffer.size (134.2 MB)", _compaction),
    Target("the log cleaner at work slows produce and consume on other partitions by < 10% "
           "(busy/idle >= 0.9)", _interference),
]


def check_all(summaries: dict, peer: str | None = None) -> list[dict]:
    """The targets that apply with this peer (``kafka``, ``tansu`` or None:
    a peer given by command or address), checked."""
    out = []
    for target in TARGETS:
        if not target.applies(peer):
            continue
        measured, met = target.check(summaries)
        out.append({"target": target.text, "measured": measured, "met": met})
    return out


def table(checks: list[dict]) -> str:
    lines = ["| target | measured (medians) | met |", "|---|---|---|"]
    for c in checks:
        met = "–" if c["met"] is None else ("yes" if c["met"] else "**no**")
        lines.append(f"| {c['target']} | {c['measured']} | {met} |")
    return "\n".join(lines)
