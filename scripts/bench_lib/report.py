"""Medians, per-pair ratios, the table and the JSON file.

Run i of our broker and run i of the peer form a pair (they ran one after
the other); the ratio ours/peer is taken per pair and its median shown beside
the pairs. The ceiling is the median against the sink, for the figures where
the sink's value means something (throughput, ack latency). A cluster
workload pairs run i of the 3-broker cluster with run i of the single broker
instead: its ratio is cluster/single.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from .workloads import Workload


@dataclass(frozen=True)
class Figure:
    label: str
    fmt: str
    higher_is_better: bool
    has_ceiling: bool = False
    per_run: bool = False  # our cell shows each run's figure beside the median


FIGURES = {
    "msg_per_s": Figure("msg/s", "{:,.0f}", True, True),
    "mb_per_s": Figure("MB/s", "{:,.1f}", True, True),
    "cpu_us_per_msg": Figure("broker CPU µs/msg", "{:.2f}", False),
    "peak_rss_mb": Figure("peak RSS MB", "{:.1f}", False),
    "e2e_p50_ms": Figure("e2e p50 ms", "{:.2f}", False),
    "e2e_p99_ms": Figure("e2e p99 ms", "{:.2f}", False),
    "e2e_p999_ms": Figure("e2e p99.9 ms", "{:.2f}", False),
    "ack_p50_ms": Figure("ack p50 ms", "{:.2f}", False, True),
    "ack_p99_ms": Figure("ack p99 ms", "{:.2f}", False, True),
    "ack_p999_ms": Figure("ack p99.9 ms", "{:.2f}", False, True),
    "ack_max_ms": Figure("ack max ms", "{:.2f}", False, True),
    "commit_p50_ms": Figure("commit p50 ms", "{:.2f}", False),
    "commit_p99_ms": Figure("commit p99 ms", "{:.2f}", False),
    "commit_max_ms": Figure("commit max ms", "{:.2f}", False),
    "startup_s": Figure("start-up s", "{:.3f}", False),
    "metadata_p50_ms": Figure("Metadata p50 ms", "{:.2f}", False),
    "metadata_p99_ms": Figure("Metadata p99 ms", "{:.2f}", False),
    "metadata_p999_ms": Figure("Metadata p99.9 ms", "{:.2f}", False),
    "create_s": Figure("create s", "{:.3f}", False),
    "failover_s": Figure("failover s", "{:.3f}", False),
    "rejoin_s": Figure("rejoin s", "{:.3f}", False),
    "sigterm_s": Figure("SIGTERM to new leaders s", "{:.3f}", False),
    "kill9_s": Figure("kill -9 to new leaders s", "{:.3f}", False),
    "expired_s": Figure("kill -9 to session expiry s", "{:.3f}", False),
    "catch_up_mb_per_s": Figure("catch-up MB/s", "{:,.1f}", True),
    "catch_up_s": Figure("restart to caught up s", "{:.2f}", False),
    "isr_s": Figure("restart to back in every ISR s", "{:.2f}", False),
    "behind_mb": Figure("behind MB", "{:,.0f}", False),
    "cleaner_mb_per_s": Figure("cleaner MB/s", "{:,.1f}", True),
    "map_mb": Figure("key map MB", "{:,.1f}", False),
    "produce_busy_over_idle": Figure("produce msg/s, cleaner busy/idle", "{:.2f}", True, per_run=True),
    "consume_busy_over_idle": Figure("consume msg/s, cleaner busy/idle", "{:.2f}", True, per_run=True),
    "produce_idle_msg_per_s": Figure("produce msg/s, cleaner idle", "{:,.0f}", True, per_run=True),
    "produce_busy_msg_per_s": Figure("produce msg/s, cleaner busy", "{:,.0f}", True, per_run=True),
    "consume_idle_msg_per_s": Figure("consume msg/s, cleaner idle", "{:,.0f}", True, per_run=True),
    "consume_busy_msg_per_s": Figure("consume msg/s, cleaner busy", "{:,.0f}", True, per_run=True),
    "broker_cpu_busy_over_idle": Figure("broker CPU, cleaner busy/idle", "{:.2f}", False, per_run=True),
    "cleaner_cpu_share": Figure("cleaner worker's CPU, cores", "{:.2f}", False, per_run=True),
    "segments_swapped": Figure("segments cleaned meanwhile", "{:,.0f}", False, per_run=True),
}


def _values(runs: list[dict], key: str) -> list[float]:
    return [r[key] for r in runs if key in r]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(workload: Workload, by_system: dict[str, list[dict]]) -> dict:
    """{figure: {"ours", "peer", "ratios", "ratio", "ceiling", "of_ceiling"}} of medians
    ({figure: {"cluster", "single", "ratios", "ratio"}} for a cluster workload)."""
    if workload.systems is not None:
        return _summarize_cluster(workload, by_system)
    ours, peer, sink = (by_system.get(name, []) for name in ("ours", "peer", "sink"))
    summary = {}
    for key in workload.figures:
        ratios = [o[key] / p[key] for o, p in zip(ours, peer) if key in o and key in p and p[key]]
        row = {"ours": _median(_values(ours, key)), "peer": _median(_values(peer, key)),
               "ratios": ratios, "ratio": _median(ratios), "ceiling": None, "of_ceiling": None,
               "ours_runs": _values(ours, key)}
        if FIGURES[key].has_ceiling:
            row["ceiling"] = _median(_values(sink, key))
            if row["ours"] is not None and row["ceiling"]:
                row["of_ceiling"] = row["ours"] / row["ceiling"]
        summary[key] = row
    return summary


def _summarize_cluster(workload: Workload, by_system: dict[str, list[dict]]) -> dict:
    cluster, single = by_system.get("cluster", []), by_system.get("ours", [])
    summary = {}
    for key in workload.figures:
        ratios = [c[key] / s[key] for c, s in zip(cluster, single) if key in c and key in s and s[key]]
        summary[key] = {"cluster": _median(_values(cluster, key)), "single": _median(_values(single, key)),
                        "ratios": ratios, "ratio": _median(ratios)}
    return summary


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _ours_cell(row: dict, figure: Figure) -> str:
    runs = row.get("ours_runs", [])
    if not figure.per_run or len(runs) < 2:
        return _cell(row["ours"], figure.fmt)
    return f"{_cell(row['ours'], figure.fmt)} ({', '.join(figure.fmt.format(v) for v in runs)})"


def _ratio_cell(row: dict) -> str:
    if row["ratio"] is None:
        return "–"
    if len(row["ratios"]) == 1:
        return f"{row['ratio']:.2f}"
    return f"{row['ratio']:.2f} ({', '.join(f'{r:.2f}' for r in row['ratios'])})"


def table(workloads: list[Workload], summaries: dict[str, dict]) -> str:
    """A Markdown table: one row per workload and figure (the cluster workloads apart)."""
    lines = ["| workload | figure | ours | peer | ours/peer (pairs) | ceiling | ours/ceiling |",
             "|---|---|--:|--:|--:|--:|--:|"]
    for workload in workloads:
        if workload.systems is not None:
            continue
        for key, row in summaries[workload.name].items():
            figure = FIGURES[key]
            arrow = "↑" if figure.higher_is_better else "↓"
            lines.append(
                f"| {workload.name} | {figure.label} {arrow} | {_ours_cell(row, figure)} "
                f"| {_cell(row['peer'], figure.fmt)} | {_ratio_cell(row)} | {_cell(row['ceiling'], figure.fmt)} "
                f"| {_cell(row['of_ceiling'], '{:.0%}')} |")
    return "\n".join(lines)


def cluster_table(workloads: list[Workload], summaries: dict[str, dict]) -> str:
    """The cluster workloads: our 3-broker cluster beside our single broker."""
    lines = ["| workload | figure | 3-broker cluster | single broker | cluster/single (pairs) |",
             "|---|---|--:|--:|--:|"]
    for workload in workloads:
        if workload.systems is None:
            continue
        for key, row in summaries[workload.name].items():
            figure = FIGURES[key]
            arrow = "↑" if figure.higher_is_better else "↓"
            lines.append(f"| {workload.name} | {figure.label} {arrow} | {_cell(row['cluster'], figure.fmt)} "
                         f"| {_cell(row['single'], figure.fmt)} | {_ratio_cell(row)} |")
    return "\n".join(lines)


def host_steal(results: dict) -> dict | None:
    """The host's stolen CPU share over the measured steps: the median and
    the highest, with the run it was in; None if none was measured."""
    measured = [(run["steal_pct"], f"{workload} on {system}, run {i + 1}")
                for workload, by_system in results.items() for system, runs in by_system.items()
                for i, run in enumerate(runs) if "steal_pct" in run]
    if not measured:
        return None
    highest = max(measured)
    return {"median_pct": statistics.median(v for v, _ in measured), "max_pct": highest[0], "max_in": highest[1]}


def failures(results: dict) -> list[str]:
    return [f"{workload} on {system}, run {i + 1}: {run['error']}"
            for workload, by_system in results.items() for system, runs in by_system.items()
            for i, run in enumerate(runs) if "error" in run]


def write_json(path: Path, header: dict, workloads: list[Workload], results: dict, summaries: dict) -> None:
    document = {
        **header,
        "workloads": {
            w.name: {"title": w.title, "runs": results[w.name], "summary": summaries[w.name]} for w in workloads
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
