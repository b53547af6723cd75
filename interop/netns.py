"""A private network of Linux network namespaces for cluster tests whose
links are cut and healed (iproute2 `ip netns`, veth pairs, bridges; root only).

`Network(brokers=3)` creates, with names no other run uses
(``kc-<6 hex>-<node>``):

- a "switch" namespace holding two bridges: the *cluster* network
  (10.251.1.0/24), on which ZooKeeper and the brokers reach each other, and
  the *client* network (10.251.2.0/24), on which the clients reach them;
- one namespace per node: ``zk`` (ZooKeeper, 10.251.1.100) and ``b1``..``bN``
  (broker i at 10.251.1.i), each with ``eth0`` on the cluster network and
  ``eth1`` on the client network (10.251.2.100, 10.251.2.i);
- ``cl``, the clients' namespace (10.251.2.200), on the client network only,
  with a host route to every node's cluster address via that node's client
  address. A node accepts packets for its cluster address on either
  interface (Linux's weak host model), so every node has one address, the
  one its listeners bind and advertise, for the clients and its peers alike.

Every veth pair is created with one end in the switch namespace (a bridge
port named ``c-<node>`` or ``x-<node>``) and the other in the node's, so
nothing ever appears in the host's namespace and no host interface, address
or route is touched.

`cut(node)` sets the node's bridge ports down (its interfaces lose carrier,
its packets are dropped silently, as when a cable is pulled): cut off from
everyone, or with ``clients=False`` from ZooKeeper and the other brokers only,
the clients still reaching it. `heal(node)` sets them up again.

Processes are started inside a node's namespace with ``ip netns exec``, which
execs the command (the Popen's pid is the server's own). The test process
itself joins the clients' namespace with `inside("cl")`: setns(2) for the
calling thread only; threads it starts meanwhile (client libraries' included)
stay in that namespace for their lives. `destroy()` kills by pid whatever
still runs in these namespaces (only this run put processes there), then
deletes them, which removes their interfaces; a run killed before it could
clean up leaves namespaces that `python -m interop.netns --remove kc-<tag>`
removes.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys

from .broker_process import BrokerProcess
from .cluster import Cluster
from .zookeeper import ZooKeeperProcess

CLUSTER_NET = "10.251.1"  # ZooKeeper and the brokers, /24
CLIENT_NET = "10.251.2"  # the clients, /24
ZK_HOST, CLIENT_HOST = 100, 200
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"


class NetnsUnavailable(RuntimeError):
    """Network namespaces can't be created here (not root, no iproute2, ...)."""


def check_available() -> None:
    """Raise NetnsUnavailable with the reason unless this process can create
    and delete a network namespace."""
    if shutil.which("ip") is None:
        raise NetnsUnavailable("iproute2's `ip` is not installed (apt-get install iproute2)")
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root (CI runs the cluster tests as root)")
    name = f"kc-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as e:
        raise NetnsUnavailable(f"`ip netns add` failed: {e.stderr.strip()}") from None
    _ip("netns", "del", name)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


class Network:
    """ZooKeeper, ``brokers`` brokers and the clients, each in a namespace of
    its own, on two bridged networks (see the module docstring)."""

    def __init__(self, brokers: int = 3, tag: str | None = None):
        self.tag = tag or secrets.token_hex(3)
        self.prefix = f"kc-{self.tag}"
        self.servers = {"zk": ZK_HOST, **{f"b{i}": i for i in range(1, brokers + 1)}}
        self.created: list[str] = []  # namespaces, in creation order
        self.cut_nodes: set[str] = set()

    # -- names and addresses
    def ns(self, node: str) -> str:
        """The namespace of a node: "zk", "b1".."bN", "cl" (the clients) or "sw" (the switch)."""
        return f"{self.prefix}-{node}"

    def address(self, node: str) -> str:
        """The address a node listens on and is reached at (its cluster address)."""
        return f"{CLUSTER_NET}.{self.servers[node]}"

    def exec_command(self, node: str, argv: list[str]) -> list[str]:
        """``argv`` run inside the node's namespace."""
        return ["ip", "netns", "exec", self.ns(node), *argv]

    # -- life cycle
    def create(self) -> Network:
        """Create every namespace, bridge and veth pair; on failure remove what
        was created and raise."""
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise
        return self

    def _create(self) -> None:
        sw = self.ns("sw")
        for node in ["sw", *self.servers, "cl"]:
            self._run("netns", "add", self.ns(node))
            self.created.append(self.ns(node))
            self._run("-n", self.ns(node), "link", "set", "lo", "up")
        for bridge in ("brc", "brx"):
            self._run("-n", sw, "link", "add", bridge, "type", "bridge")
            self._run("-n", sw, "link", "set", bridge, "up")
        for node, host in self.servers.items():
            self._attach(node, f"c-{node}", "brc", "eth0", f"{CLUSTER_NET}.{host}")
            self._attach(node, f"x-{node}", "brx", "eth1", f"{CLIENT_NET}.{host}")
        self._attach("cl", "x-cl", "brx", "eth0", f"{CLIENT_NET}.{CLIENT_HOST}")
        for node, host in self.servers.items():
            self._run("-n", self.ns("cl"), "route", "add", f"{CLUSTER_NET}.{host}/32",
                      "via", f"{CLIENT_NET}.{host}", "dev", "eth0")

    def _attach(self, node: str, port: str, bridge: str, interface: str, address: str) -> None:
        """A veth pair: ``port`` on the switch's ``bridge``, ``interface`` with
        ``address``/24 in the node's namespace."""
        sw = self.ns("sw")
        self._run("-n", sw, "link", "add", port, "type", "veth", "peer", "name", interface, "netns", self.ns(node))
        self._run("-n", sw, "link", "set", port, "master", bridge)
        self._run("-n", sw, "link", "set", port, "up")
        self._run("-n", self.ns(node), "addr", "add", f"{address}/24", "dev", interface)
        self._run("-n", self.ns(node), "link", "set", interface, "up")

    def destroy(self) -> list[str]:
        """Kill (SIGKILL, by pid) any process still in these namespaces, then
        delete them (their veths go with them). Returns what went wrong, if
        anything (it tries everything regardless)."""
        problems = []
        me = os.getpid()
        for name in reversed(self.created):
            pids = [int(p) for p in _ip("netns", "pids", name, check=False).stdout.split() if p.isdigit()]
            for pid in pids:
                if pid == me:  # this process: some thread of it still in there; deleting the name is enough
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                    problems.append(f"pid {pid} was still running in {name}: killed")
                except ProcessLookupError:
                    pass
        for name in reversed(self.created):
            result = _ip("netns", "del", name, check=False)
            if result.returncode != 0 and os.path.exists(os.path.join(NETNS_DIR, name)):
                problems.append(f"could not delete namespace {name}: {result.stderr.strip()}")
        self.created = [n for n in self.created if os.path.exists(os.path.join(NETNS_DIR, n))]
        return problems

    def __enter__(self) -> Network:
        return self.create()

    def __exit__(self, *exc_info) -> None:
        self.destroy()

    # -- faults
    def cut(self, node: str, clients: bool = True) -> None:
        """Cut ``node`` off from ZooKeeper and the brokers, and unless
        ``clients=False`` from the clients too."""
        self.cut_nodes.add(node)
        self._run("-n", self.ns("sw"), "link", "set", f"c-{node}", "down")
        if clients:
            self._run("-n", self.ns("sw"), "link", "set", f"x-{node}", "down")

    def heal(self, node: str) -> None:
        for port in (f"c-{node}", f"x-{node}"):
            self._run("-n", self.ns("sw"), "link", "set", port, "up")
        self.cut_nodes.discard(node)

    def heal_all(self) -> None:
        for node in list(self.cut_nodes):
            self.heal(node)

    def links(self) -> dict[str, bool]:
        """Bridge port -> whether it is up (for messages)."""
        out = _ip("-n", self.ns("sw"), "-o", "link", "show", check=False).stdout
        return {m.group(1): "state UP" in line or ",UP" in line.split(">")[0]
                for line in out.splitlines() if (m := re.search(r"\d+: ([cx]-\w+)@", line))}

    # -- the test process's own threads
    @contextlib.contextmanager
    def inside(self, node: str = "cl"):
        """Run the calling thread in a node's namespace (the clients' by
        default) until the block ends; threads started meanwhile stay there."""
        with open("/proc/thread-self/ns/net") as home, open(os.path.join(NETNS_DIR, self.ns(node))) as there:
            _setns(there.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())

    def _run(self, *args: str) -> None:
        result = _ip(*args, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


# -- servers inside the namespaces ----------------------------------------------------


class NetnsBrokerProcess(BrokerProcess):
    """A broker in its node's namespace, listening on the node's address:9092."""

    def __init__(self, network: Network, node: str, *args, **kwargs):
        super().__init__(*args, port=9092, **kwargs)
        self.network = network
        self.node = node
        self.host = network.address(node)

    def command(self) -> list[str]:
        return self.network.exec_command(self.node, super().command())


class NetnsCluster(Cluster):
    """`interop.cluster.Cluster` with broker i in namespace ``b<i>``."""

    def __init__(self, network: Network, zk_connect: str, directory, size: int = 3,
                 overrides: dict[str, str] | None = None):
        from .broker_process import venv_executable

        self.network = network
        executable = venv_executable("kafka-compat")
        self.brokers = {}
        for i in range(1, size + 1):
            self.brokers[i] = NetnsBrokerProcess(
                network, f"b{i}", executable, data_dir=directory / f"broker-{i}",
                log_path=directory / f"broker-{i}.log",
                overrides={"broker.id": str(i), "zookeeper.connect": zk_connect, **(overrides or {})})


class NetnsZooKeeper(ZooKeeperProcess):
    """ZooKeeper in the ``zk`` namespace on its address:2181."""

    def __init__(self, network: Network, data_dir=None, **kwargs):
        super().__init__(data_dir=data_dir, port=2181, **kwargs)
        self.network = network
        self.host = network.address("zk")

    def command(self, config) -> list[str]:
        return self.network.exec_command("zk", super().command(config))


def main(argv: list[str] | None = None) -> int:
    """python -m interop.netns --remove kc-<tag>: delete the namespaces a run
    killed before its clean-up left behind (killing what still runs in them)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m interop.netns", description=main.__doc__)
    parser.add_argument("--list", action="store_true", help="list namespaces named kc-*")
    parser.add_argument("--remove", metavar="kc-TAG", help="remove the namespaces kc-TAG-*")
    args = parser.parse_args(argv)
    names = sorted(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else []
    if args.list or not args.remove:
        print("\n".join(n for n in names if n.startswith("kc-")) or "(no kc-* namespaces)")
        return 0
    if not re.fullmatch(r"kc-[0-9a-f]{6}", args.remove):
        parser.error("--remove takes a run's prefix, kc- and 6 hex digits")
    network = Network(tag=args.remove[3:])
    network.created = [n for n in names if n.startswith(args.remove + "-")]
    for problem in network.destroy():
        print(problem)
    if network.created:
        print(f"not removed: {', '.join(network.created)}")
        return 1
    print(f"removed {args.remove}-*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
