"""A kafka-compat cluster of broker subprocesses sharing a ZooKeeper, as a
user starts one (broker.id and zookeeper.connect per broker), for the cluster
tests and ./scripts/cluster."""
from __future__ import annotations

import socket
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .broker_process import BrokerProcess, round_trip, venv_executable

METADATA_KEY = 3


class Cluster:
    """Brokers 1..size, each with its own data dir and log under ``directory``."""

    def __init__(self, zk_connect: str, directory: Path, size: int = 3,
                 overrides: dict[str, str] | None = None, ports: list[int] | None = None):
        executable = venv_executable("kafka-compat")
        self.brokers: dict[int, BrokerProcess] = {}
        for i in range(1, size + 1):
            self.brokers[i] = BrokerProcess(
                executable, data_dir=directory / f"broker-{i}", log_path=directory / f"broker-{i}.log",
                overrides={"broker.id": str(i), "zookeeper.connect": zk_connect, **(overrides or {})},
                port=ports[i - 1] if ports else None)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def start(self, timeout: float = 30.0) -> None:
        """Start every broker; return once each one's Metadata lists all of
        them and names a controller. (A broker serves before the controller's
        first UpdateMetadata reaches it; until then its Metadata has no
        brokers and no controller, and a client asking then may wait long.)"""
        for broker in self.brokers.values():
            broker.start()
        self.wait_until_formed(timeout)

    def wait_until_formed(self, timeout: float) -> None:
        """Until every running broker's Metadata lists exactly the running
        brokers and names one of them controller."""
        expected = {b for b, broker in self.brokers.items() if broker.running()}
        for broker in self.brokers.values():
            if broker.running():
                wait_for(lambda: (view := cluster_view(broker.host, broker.port)) and view[0] == expected
                         and view[1] in expected, timeout, f"broker at {broker.bootstrap} to see the whole cluster")

    def stop(self) -> None:
        """Stop every broker still running (SIGTERM; SIGKILL if it hangs): the
        others at once, then the controller, so that no broker's controlled
        shutdown loses its controller midway (it would retry after
        controlled.shutdown.retry.backoff.ms)."""
        def stop(broker: BrokerProcess) -> str | None:
            try:
                broker.stop()
            except TimeoutError as e:
                return str(e)
            return None

        views = (cluster_view(b.host, b.port) for b in self.brokers.values() if b.running())
        view = next((v for v in views if v), None)
        controller = self.brokers.get(view[1]) if view else None
        others = [b for b in self.brokers.values() if b is not controller]
        with ThreadPoolExecutor(len(others) or 1) as pool:
            errors = [e for e in pool.map(stop, others) if e]
        if controller is not None and (error := stop(controller)):
            errors.append(error)
        if errors:
            raise TimeoutError("\n".join(errors))

    def logs(self) -> str:
        return "\n".join(b.log_tail(60) for b in self.brokers.values())


def restart_after_crash(broker: BrokerProcess, timeout: float) -> None:
    """Start a broker killed with kill -9 again. As with Kafka, it refuses to
    start while ZooKeeper still holds its old registration (until the old
    session expires), so keep trying until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            broker.start()
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise


def cluster_view(host: str, port: int, timeout: float = 2.0) -> tuple[set[int], int] | None:
    """(the broker ids, the controller id) a broker's Metadata v1 answers, or
    None if it does not answer. Plain sockets, so ./scripts/cluster needs no client library."""
    correlation_id = 0x5EE
    client_id = b"interop-cluster"
    # header v1, then an empty topic array (brokers and controller only)
    body = struct.pack(">hhih", METADATA_KEY, 1, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    response = round_trip(host, port, body, timeout)
    if response is None:
        return None
    got_id, count = struct.unpack_from(">ii", response)
    if got_id != correlation_id:
        return None
    offset, brokers = 8, set()
    for _ in range(count):
        node_id, host_length = struct.unpack_from(">ih", response, offset)
        offset += 6 + host_length + 4  # node id, host, port
        rack_length = struct.unpack_from(">h", response, offset)[0]
        offset += 2 + max(rack_length, 0)
        brokers.add(node_id)
    controller = struct.unpack_from(">i", response, offset)[0]
    return brokers, controller


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something true; that value. Raises
    TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def port_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now (with SO_REUSEADDR, as
    the broker binds: connections of a previous run in TIME_WAIT don't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """./scripts/cluster: one ZooKeeper and N brokers until Ctrl-C."""
    import argparse
    import signal

    from .zookeeper import ZooKeeperNotInstalled, ZooKeeperProcess

    parser = argparse.ArgumentParser(prog="scripts/cluster", description=main.__doc__)
    parser.add_argument("arguments", nargs="*", metavar="[N] name=value",
                        help="the number of brokers (default 3), then broker configs for every broker")
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    configs = list(args.arguments)
    size = int(configs.pop(0)) if configs and configs[0].isdigit() else 3
    if size < 1:
        parser.error("the cluster needs at least one broker")
    overrides = {}
    for item in configs:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"not a name=value config: {item!r}")
        overrides[name] = value
    ports = [9092 + i for i in range(size)]
    taken = [p for p in ports if not port_free(p)]
    if taken:
        print(f"error: port(s) {', '.join(map(str, taken))} on 127.0.0.1 already in use "
              "(another Kafka or ./scripts/broker?)", file=sys.stderr)
        return 1

    # A user's own ZooKeeper may be on 2181: take it only when free.
    zookeeper = ZooKeeperProcess(data_dir=args.data_dir / "zookeeper", port=2181 if port_free(2181) else None)
    # Ctrl-C and SIGTERM stop the cluster (SIGINT set explicitly: a shell
    # starting us in the background ignores it). Ctrl-C reaches the brokers
    # too, as they share our process group; ZooKeeper has its own and is stopped last.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        zookeeper.start()
    except (ZooKeeperNotInstalled, RuntimeError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    cluster = Cluster(zookeeper.connect_string(), args.data_dir, size, overrides, ports)
    try:
        print(f"zookeeper.connect={zookeeper.connect_string()}"
              + ("" if zookeeper.port == 2181 else "   (port 2181 is taken, so a free port)"), flush=True)
        cluster.start()
        print(f"bootstrap.servers={cluster.bootstrap}")
        print(f"ZooKeeper: pid {zookeeper.pid}, data {zookeeper.data_dir}, log {zookeeper.log_path}")
        for broker_id, broker in cluster.brokers.items():
            print(f"broker {broker_id}: {broker.bootstrap}, pid {broker.pid}, data {broker.data_dir}, "
                  f"log {broker.log_path}")
        print("Ctrl-C stops the cluster", flush=True)
        reported = set()
        while True:
            for broker_id, broker in cluster.brokers.items():
                if broker_id not in reported and not broker.running():
                    reported.add(broker_id)
                    print(f"broker {broker_id} exited with status {broker.stop()}: see {broker.log_path}",
                          flush=True)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the brokers, then ZooKeeper", flush=True)
    except (RuntimeError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        try:
            cluster.stop()
        finally:
            zookeeper.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
