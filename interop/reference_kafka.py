"""Apache Kafka itself, as a reference broker for side-by-side tests.

`ReferenceKafka` runs the `kafka_2.13` release pinned in
interop/java/kafka-version (the jars `scripts/kafka-jars` fetches with Maven)
as one KRaft node in combined mode (process.roles=broker,controller,
node.id=1) on 127.0.0.1: it writes a server.properties into a temporary
directory, formats the storage with the release's storage tool and a random
cluster id, starts `kafka.Kafka`, waits until the broker answers ApiVersions
and lists itself in Metadata, and stops it by PID. `./scripts/reference-kafka`
is the same from a terminal:

    python -m interop.reference_kafka [--port N] [--controller-port N] [name=value ...]

Configs are Kafka's defaults, except what one node needs (replication
factors of the internal topics 1) and what a test passes in `overrides`;
the JVM runs with the options kafka-server-start.sh gives it by default.
The broker's output goes to `kafka.log` in its directory.

`ReferenceKafka.prepare()` does the same set-up without starting Kafka and
returns the server's java command line, for a caller that runs the JVM
itself (the benchmark's `--peer kafka`, scripts/bench_lib/kafka.py).
"""
from __future__ import annotations

import argparse
import base64
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from interop import process
from interop.broker_process import api_versions_round_trip, round_trip
from interop.process import PortTaken, free_port

ROOT = Path(__file__).resolve().parent.parent
KAFKA_JARS = ROOT / "scripts" / "kafka-jars"
VERSION_FILE = ROOT / "interop" / "java" / "kafka-version"
# The JVM options kafka-server-start.sh runs the broker with when no
# KAFKA_*_OPTS is set: its heap (KAFKA_HEAP_OPTS), kafka-run-class.sh's
# KAFKA_JVM_PERFORMANCE_OPTS (MaxInlineLevel=15 is JDK 17's default anyway)
# and KAFKA_JMX_OPTS (the local JMX agent, no port), and the GC log that
# kafka-server-start.sh's -loggc turns on (SERVER_GC_LOG, into kafka.logs.dir).
HEAP_OPTIONS = ["-Xmx1G", "-Xms1G"]
JVM_OPTIONS = ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true"]
JMX_OPTIONS = ["-Dcom.sun.management.jmxremote=true", "-Dcom.sun.management.jmxremote.authenticate=false",
               "-Dcom.sun.management.jmxremote.ssl=false"]
SERVER_GC_LOG = "-Xlog:gc*:file={logs_dir}/kafkaServer-gc.log:time,tags:filecount=10,filesize=100M"
METADATA_KEY = 3
# A single node can't replicate its internal topics three times.
ONE_NODE_CONFIGS = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}


def kafka_version() -> str:
    return VERSION_FILE.read_text().strip()


def kafka_libs() -> Path:
    """The directory of the pinned release's jars, fetched first if needed
    (scripts/kafka-jars does nothing when its cache is complete)."""
    result = subprocess.run([str(KAFKA_JARS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka-jars failed ({result.returncode}):\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def random_cluster_id() -> str:
    """A cluster id as `kafka-storage random-uuid` prints it: 16 random
    bytes, URL-safe base64 without padding, never starting with "-" (Kafka's
    Uuid.randomUuid draws again: the id must pass as a command-line value)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def metadata_broker_count(host: str, port: int, timeout: float = 2.0) -> int:
    """Send Metadata v1 for no topics; the number of brokers the answer
    lists (0 if there is no answer)."""
    correlation_id = 0x2C0FFEE
    client_id = b"reference-probe"
    body = (struct.pack(">hhih", METADATA_KEY, 1, correlation_id, len(client_id)) + client_id
            + struct.pack(">i", 0))
    response = round_trip(host, port, body, timeout)
    if response is None or len(response) < 8:
        return 0
    got_id, brokers = struct.unpack_from(">ii", response)
    return brokers if got_id == correlation_id else 0


class ReferenceKafka(process.ProcessOwner):
    """One Apache Kafka node (KRaft, broker and controller in one process).

    `directory=None` uses a temporary directory, removed by `stop()`; a given
    one is kept (and formatted only once). `port`/`controller_port=None` pick
    free ports (never 9092). `overrides` are broker configs by Kafka's names.
    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, directory: Path | None = None, port: int | None = None,
                 controller_port: int | None = None, overrides: dict[str, str] | None = None,
                 startup_timeout: float = 90.0, heap_options: list[str] | None = None):
        self._given_directory = Path(directory) if directory is not None else None
        self._fixed_port = port
        self._fixed_controller_port = controller_port
        self.host = "127.0.0.1"
        self.port = port
        self.controller_port = controller_port
        self.overrides = dict(overrides or {})
        self.startup_timeout = startup_timeout
        self.heap_options = list(heap_options or HEAP_OPTIONS)
        self.directory: Path | None = None
        self.cluster_id: str | None = None
        self._libs: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "kafka.log"

    def configs(self) -> dict[str, str]:
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": (f"PLAINTEXT://{self.host}:{self.port},"
                          f"CONTROLLER://{self.host}:{self.controller_port}"),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.directory / "data"),
            **ONE_NODE_CONFIGS,
            **self.overrides,
        }

    def _set_up(self) -> None:
        if shutil.which("java") is None:
            raise RuntimeError("java is not installed (./scripts/test installs it)")
        self._libs = kafka_libs()
        if self._given_directory is not None:
            self.directory = self._given_directory
            self.directory.mkdir(parents=True, exist_ok=True)
        else:
            self.directory = Path(tempfile.mkdtemp(prefix="reference-kafka-"))

    def _pick_ports(self) -> None:
        self.port = self._fixed_port or free_port()
        self.controller_port = self._fixed_controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()

    def prepare(self) -> list[str]:
        """Everything `start()` does short of starting Kafka: the directory
        (server.properties, the storage formatted unless it already is) and
        the ports; returns the command line that runs the server in the
        foreground, for a caller that runs it itself (the process is then
        the JVM itself, e.g. for its CPU time and memory). A temporary
        directory is the caller's to remove."""
        self._set_up()
        self._pick_ports()
        return self._prepare_server()

    def start(self) -> ReferenceKafka:
        if self.running():
            raise RuntimeError(f"Kafka already running as pid {self.pid}")
        self._set_up()
        try:
            # A free port can be taken before Kafka binds it: then Kafka exits
            # at once and other ports are tried.
            for _ in range(3):
                self._pick_ports()
                try:
                    self._launch()
                    return self
                except PortTaken:
                    if self._fixed_port and self._fixed_controller_port:
                        raise RuntimeError(f"port {self.port} or {self.controller_port} is in use\n"
                                           + self.log_tail()) from None
            raise RuntimeError("Kafka could not bind free ports\n" + self.log_tail())
        except BaseException:
            self.stop()
            raise

    def _java(self, main_class: str, *args: str, log_config: str, extra: tuple[str, ...] = ()) -> list[str]:
        cache = self._libs.parent
        return ["java", *self.heap_options, *JVM_OPTIONS, *extra,
                f"-Dlog4j2.configurationFile={cache / log_config}",
                f"-Dkafka.logs.dir={self.directory / 'logs'}",
                "-cp", f"{self._libs}/*", main_class, *args]

    def _prepare_server(self) -> list[str]:
        """Write server.properties, format the storage if it isn't yet; the
        server's command line, as kafka-server-start.sh would run it."""
        properties = self.directory / "server.properties"
        properties.write_text("".join(f"{k}={v}\n" for k, v in self.configs().items()))
        if not (self.directory / "data" / "meta.properties").exists():
            self.cluster_id = random_cluster_id()
            command = self._java("kafka.tools.StorageTool", "format", "--cluster-id",
                                 self.cluster_id, "--config", str(properties),
                                 log_config="tools-log4j2.properties")
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed ({result.returncode}):\n"
                                   + result.stdout)
        else:
            meta = (self.directory / "data" / "meta.properties").read_text()
            self.cluster_id = next((line.split("=", 1)[1] for line in meta.splitlines()
                                    if line.startswith("cluster.id=")), None)
        logs_dir = self.directory / "logs"
        logs_dir.mkdir(exist_ok=True)  # kafka-run-class.sh makes it too
        return self._java("kafka.Kafka", str(properties), log_config="log4j2.properties",
                          extra=(SERVER_GC_LOG.format(logs_dir=logs_dir), *JMX_OPTIONS))

    def _launch(self) -> None:
        command = self._prepare_server()
        # Own session: Ctrl-C in ./scripts/reference-kafka reaches the
        # script, which stops Kafka itself.
        self._process = process.launch(command, self.log_path, new_session=True)
        process.wait_until_ready(
            self._process, lambda: (api_versions_round_trip(self.host, self.port, timeout=1.0)
                                    and metadata_broker_count(self.host, self.port) > 0),
            self.startup_timeout, name="Kafka", not_ready=f"Kafka on {self.bootstrap} did not answer",
            log_tail=self.log_tail, interval=0.1)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (Kafka's own shutdown), then SIGKILL after `timeout`
        seconds; removes a temporary directory. Returns the exit status
        (None if never started)."""
        status = None
        if self._process is not None:
            process.stop(self._process, timeout)
            status = self._process.returncode
        if self._given_directory is None and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        return status

    def log_tail(self, lines: int = 60) -> str:
        return process.log_tail(self.directory and self.log_path, lines) or ""

    def __enter__(self) -> ReferenceKafka:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reference-kafka",
        description=f"Run Apache Kafka {kafka_version()} (KRaft, one combined node, node.id 1) "
                    "in a temporary directory until Ctrl-C or SIGTERM; the directory is "
                    "removed then.")
    parser.add_argument("--port", type=int, help="the broker's port (default: a free one)")
    parser.add_argument("--controller-port", type=int,
                        help="the KRaft controller's port (default: a free one)")
    parser.add_argument("--dir", type=Path,
                        help="keep Kafka's files here instead of a temporary directory")
    parser.add_argument("configs", nargs="*", metavar="name=value",
                        help="broker configs, Kafka's names")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.configs:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"expected name=value, got {item!r}")
        overrides[name] = value

    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    kafka = ReferenceKafka(directory=args.dir, port=args.port,
                           controller_port=args.controller_port, overrides=overrides)
    started = time.monotonic()
    try:
        kafka.start()
    except BaseException as error:  # noqa: BLE001 - reported, then a non-zero exit
        print(f"reference-kafka: {error}", file=sys.stderr)
        kafka.stop()
        return 1
    print(f"Apache Kafka {kafka_version()} up in {time.monotonic() - started:.1f}s "
          f"(pid {kafka.pid}, cluster id {kafka.cluster_id})")
    print(f"directory: {kafka.directory} (log: {kafka.log_path})")
    print(f"bootstrap: {kafka.bootstrap}", flush=True)
    try:
        while not stopping and kafka.running():
            time.sleep(0.2)
    finally:
        crashed = not kafka.running()
        tail = kafka.log_tail() if crashed else ""
        status = kafka.stop()
    if crashed and not stopping:
        print(f"reference-kafka: Kafka exited with code {status}\n{tail}", file=sys.stderr)
        return 1
    print(f"stopped (exit code {status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
