"""A local cluster: N broker nodes under one data folder (three of them controller voters), started,
stopped and SIGKILLed node by node for the broker fault tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from streams.devkit.kafka.jars import kafka_version
from streams.devkit.kafka.layout import (
    BrokerError,
    BrokerLayout,
    ClusterRole,
    free_port,
    new_cluster_id,
    port_is_free,
    render_properties,
)
from streams.devkit.kafka.probes import answers_metadata, live_brokers, pid_alive, running_pid
from streams.devkit.kafka.process import format_storage, jvm_command, launch, stop_layouts, wait_until

CLUSTER_FILE = "cluster.json"
VOTERS = 3  # controller voters of a local cluster: one may die and the quorum (2 of 3) still decides


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int  # its PLAINTEXT listener, what clients bootstrap from
    controller_port: int  # its CONTROLLER listener (voters only)


@dataclass(frozen=True)
class LocalCluster:
    """N nodes under one data folder: ``cluster.json`` (the cluster id and each node's ports, fixed
    at creation: the voters are named by port in every node's configuration) and ``node-<id>/``,
    each node's :class:`BrokerLayout`."""

    data_dir: Path
    cluster_id: str
    nodes: tuple[Node, ...]

    @classmethod
    def load(cls, data_dir: Path) -> LocalCluster | None:
        try:
            saved = json.loads((data_dir / CLUSTER_FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BrokerError(f"{data_dir / CLUSTER_FILE} cannot be read: {exc}") from None
        nodes = tuple(Node(n["node_id"], n["port"], n["controller_port"]) for n in saved["nodes"])
        return cls(data_dir, saved["cluster_id"], nodes)

    def save(self) -> None:
        saved = {"cluster_id": self.cluster_id, "nodes": [vars(n) for n in self.nodes]}
        (self.data_dir / CLUSTER_FILE).write_text(json.dumps(saved, indent=2) + "\n")

    @property
    def voters(self) -> dict[int, int]:
        return {n.node_id: n.controller_port for n in self.nodes[:VOTERS]}

    @property
    def bootstrap(self) -> str:
        """Every node's address: what a client is given (it needs any one of them to answer)."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def node(self, node_id: int) -> Node:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise BrokerError(f"the cluster of {self.data_dir} has nodes {[n.node_id for n in self.nodes]}, not {node_id}")

    def layout(self, node_id: int) -> BrokerLayout:
        return BrokerLayout(self.data_dir / f"node-{node_id}")

    def role(self, node_id: int) -> ClusterRole:
        return ClusterRole(node_id, self.voters, len(self.nodes))


def _new_cluster(data_dir: Path, nodes: int, port: int) -> LocalCluster:
    if nodes < 1:
        raise BrokerError(f"a cluster needs at least one node, not {nodes}")
    if (data_dir / "server.properties").exists():
        raise BrokerError(f"{data_dir} holds a single-node broker; give the cluster another --data-dir")
    taken: set[int] = set()

    def pick(wanted: int) -> int:
        chosen = wanted or free_port(from_top=True)
        while not wanted and chosen in taken:  # the kernel may hand out a port twice before it is bound
            chosen = free_port(from_top=True)
        if chosen in taken or not port_is_free(chosen):
            raise BrokerError(f"port 127.0.0.1:{chosen} is taken; pick another with --port (or stop what holds it)")
        taken.add(chosen)
        return chosen

    members = tuple(Node(node_id, pick(port + node_id - 1 if port else 0), pick(0)) for node_id in range(1, nodes + 1))
    cluster = LocalCluster(data_dir, new_cluster_id(), members)
    cluster.save()
    return cluster


def _require_cluster(data_dir: Path) -> LocalCluster:
    cluster = LocalCluster.load(data_dir.resolve())
    if cluster is None:
        raise BrokerError(f"{data_dir} holds no local cluster (start one with --nodes 3)")
    return cluster


def _spawn_node(cluster: LocalCluster, node: Node, quiet: bool) -> tuple[BrokerLayout, subprocess.Popen[bytes]]:
    layout = cluster.layout(node.node_id)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    for port in (node.port, node.controller_port) if node.node_id in cluster.voters else (node.port,):
        if not port_is_free(port):
            raise BrokerError(f"port 127.0.0.1:{port} of node {node.node_id} is taken by another process")
    jvm = jvm_command(layout, quiet)
    layout.properties.write_text(
        render_properties(layout, node.port, node.controller_port, None, cluster.role(node.node_id))
    )
    format_storage(jvm, layout, cluster.cluster_id, standalone=False)
    return layout, launch(jvm, layout, node.port)


def start_cluster(
    data_dir: Path, nodes: int | None = None, port: int = 0, timeout: float = 120.0, quiet: bool = False
) -> str:
    """Start a local cluster of ``nodes`` nodes in ``data_dir`` (created on first use, on ports
    ``port``, ``port + 1``, ... or free ones for 0), or the nodes of the one there that do not run;
    wait until every node lists every other as a live broker; return the bootstrap list."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster.load(data_dir)
    if cluster is None:
        cluster = _new_cluster(data_dir, nodes or VOTERS, port)
    elif nodes is not None and nodes != len(cluster.nodes):
        raise BrokerError(f"{data_dir} holds a cluster of {len(cluster.nodes)} nodes, not {nodes}")
    # Every node at once: a node cannot register before a majority of the voters runs.
    procs = dict(
        _spawn_node(cluster, n, quiet) for n in cluster.nodes if running_pid(cluster.layout(n.node_id)) is None
    )
    everyone = {n.node_id for n in cluster.nodes}

    def ready() -> bool:
        return all(live_brokers(f"127.0.0.1:{n.port}", timeout=1.0) == everyone for n in cluster.nodes)

    wait_until(procs, ready, timeout, f"the {len(cluster.nodes)} nodes did not all list each other as live brokers")
    if not quiet:
        print(f"Kafka {kafka_version()} cluster of {len(cluster.nodes)} nodes ready at {cluster.bootstrap} "
              f"(data {data_dir})", file=sys.stderr)  # fmt: skip
    return cluster.bootstrap


def start_node(data_dir: Path, node_id: int, timeout: float = 90.0, quiet: bool = False) -> str:
    """Start one node of the local cluster in ``data_dir`` (a no-op when it runs) and wait until the
    cluster lists it as a live broker (registered, caught up with the metadata, unfenced); its
    address. Its replicas then catch up in the background (:func:`describe_partitions` shows when
    they are in sync again)."""
    cluster = _require_cluster(data_dir)
    node = cluster.node(node_id)
    address = f"127.0.0.1:{node.port}"
    if running_pid(cluster.layout(node_id)) is None:
        layout, proc = _spawn_node(cluster, node, quiet)
        wait_until({layout: proc}, lambda: node_id in live_brokers(address, timeout=1.0), timeout,
                    f"node {node_id} was not listed as a live broker")  # fmt: skip
    if not quiet:
        print(f"Kafka node {node_id} ready at {address}", file=sys.stderr)
    return address


def stop_node(data_dir: Path, node_id: int, timeout: float = 30.0, quiet: bool = False) -> bool:
    """SIGTERM one node (a controlled shutdown: its leaderships move first), SIGKILL after
    ``timeout``; False when it did not run."""
    cluster = _require_cluster(data_dir)
    cluster.node(node_id)
    return bool(stop_layouts([cluster.layout(node_id)], timeout, quiet))


def kill_node(data_dir: Path, node_id: int) -> int | None:
    """SIGKILL one node, as a machine dies: no controlled shutdown, its leaderships stay with it
    until the controller fences it. The pid killed (None when it did not run), gone on return."""
    cluster = _require_cluster(data_dir)
    cluster.node(node_id)
    layout = cluster.layout(node_id)
    pid = running_pid(layout)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.01)  # the kernel ends it at once; the wait is for its sockets to close
    layout.pid_file.unlink(missing_ok=True)
    return pid


def cluster_status(data_dir: Path) -> list[tuple[Node, int | None, bool]]:
    """Each node of the local cluster: its pid (None when it does not run) and whether it answers."""
    cluster = _require_cluster(data_dir)
    found = []
    for node in cluster.nodes:
        pid = running_pid(cluster.layout(node.node_id))
        found.append((node, pid, pid is not None and answers_metadata(f"127.0.0.1:{node.port}", timeout=1.0)))
    return found
