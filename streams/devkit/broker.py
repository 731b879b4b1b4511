"""A local Apache Kafka broker (KRaft, controller+broker in one JVM) on loopback, no Docker, or a
local cluster of N such nodes (three of them controller voters) for the broker fault tests.

The jars come from Maven Central through ``broker_config/pom.xml`` (beside this module, shipped
with the package) into a cache folder: ``ops/kafka/.cache/<version>/lib`` in a checkout of the
repository, else ``$XDG_CACHE_HOME/session-engine/kafka`` (``~/.cache/...``), or wherever
``SESSIONS_KAFKA_CACHE`` says. The broker's config, storage, logs and pid file live in one data
folder of the caller's choosing. Used by ``make run``/``make test`` and the ``kafka-*`` targets, by
the pytest broker fixture and by ``sessionctl broker``.

Only the standard library is needed to start and stop it; the readiness probe speaks the Kafka
protocol through confluent-kafka when it is installed (a real metadata request), and falls back to a
TCP connect otherwise.

    python -m streams.devkit.broker start --data-dir var/kafka --port 9092
    python -m streams.devkit.broker status --data-dir var/kafka
    python -m streams.devkit.broker stop --data-dir var/kafka
    python -m streams.devkit.broker fetch

A cluster (``--nodes 3``: nodes on --port, --port+1, ... or free ports with --port 0; its layout is
kept in ``<data dir>/cluster.json``, each node under ``<data dir>/node-<id>``); one node can be
SIGKILLed, stopped and started alone:

    python -m streams.devkit.broker start --data-dir var/kafka3 --nodes 3 --port 0
    python -m streams.devkit.broker kill --data-dir var/kafka3 --node 2
    python -m streams.devkit.broker start --data-dir var/kafka3 --node 2
    python -m streams.devkit.broker status --data-dir var/kafka3
    python -m streams.devkit.broker stop --data-dir var/kafka3

This module is the front door: the commands, and every name its callers use. The parts are in
``streams/devkit/kafka/``: ``layout`` (folders, server.properties, ports), ``jars``, ``probes``,
``process`` (one JVM), ``node`` (one broker) and ``cluster``, and ``class_archive``: the first start
after the jars are fetched also makes a throw-away broker whose JVM writes Kafka's loaded classes into
an archive beside the jars, which every later broker JVM maps (it starts in half the time and CPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streams.devkit.kafka.cluster import (
    CLUSTER_FILE,
    VOTERS,
    LocalCluster,
    Node,
    cluster_status,
    kill_node,
    start_cluster,
    start_node,
    stop_node,
)
from streams.devkit.kafka.jars import (
    CACHE,
    CONFIG,
    LOG4J,
    MIN_JAVA,
    POM,
    fetch_jars,
    java_binary,
    kafka_version,
    lib_dir,
)
from streams.devkit.kafka.layout import (
    BROKER_HEARTBEAT_INTERVAL_MS,
    BROKER_SESSION_TIMEOUT_MS,
    CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS,
    CONTROLLER_QUORUM_FETCH_TIMEOUT_MS,
    BrokerError,
    BrokerLayout,
    ClusterRole,
    SaslListener,
    free_port,
    new_cluster_id,
    own_port_range,
    port_is_free,
    render_properties,
)
from streams.devkit.kafka.node import start, status, stop
from streams.devkit.kafka.probes import (
    PartitionState,
    answers_metadata,
    describe_partitions,
    live_brokers,
    metadata_client,
    running_pid,
    running_port,
)
from streams.devkit.kafka.process import DEFAULT_HEAP, JVM_MODES

# What callers use (the tests, ops/, sessionctl broker): the parts' names, from one module.
__all__ = [
    "BROKER_HEARTBEAT_INTERVAL_MS",
    "BROKER_SESSION_TIMEOUT_MS",
    "CACHE",
    "CLUSTER_FILE",
    "CONFIG",
    "CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS",
    "CONTROLLER_QUORUM_FETCH_TIMEOUT_MS",
    "DEFAULT_HEAP",
    "JVM_MODES",
    "LOG4J",
    "MIN_JAVA",
    "POM",
    "VOTERS",
    "BrokerError",
    "BrokerLayout",
    "ClusterRole",
    "LocalCluster",
    "Node",
    "PartitionState",
    "SaslListener",
    "answers_metadata",
    "cluster_status",
    "describe_partitions",
    "fetch_jars",
    "free_port",
    "java_binary",
    "kafka_version",
    "kill_node",
    "lib_dir",
    "live_brokers",
    "main",
    "metadata_client",
    "new_cluster_id",
    "own_port_range",
    "port_is_free",
    "print_status",
    "render_properties",
    "run_start",
    "running_pid",
    "running_port",
    "start",
    "start_cluster",
    "start_node",
    "status",
    "stop",
    "stop_node",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "start", "stop", "status", "kill"])
    parser.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    parser.add_argument("--port", type=int, default=9092, help="0 picks free ports")
    parser.add_argument("--nodes", type=int, help="start a local cluster of this many nodes (default: one broker)")
    parser.add_argument("--node", type=int, help="start, stop or kill only this node of the local cluster")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_jars())
        elif args.command == "start":
            print(run_start(args.data_dir, args.port, args.nodes, args.node, args.timeout))
        elif args.command == "stop":
            if args.node is not None:
                stop_node(args.data_dir, args.node)
            else:
                stop(args.data_dir)
        elif args.command == "kill":
            if args.node is None:
                raise BrokerError("kill needs --node (stop stops the whole cluster)")
            pid = kill_node(args.data_dir, args.node)
            print(f"node {args.node} " + (f"killed (pid {pid})" if pid else "was not running"), file=sys.stderr)
        else:
            return print_status(args.data_dir)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_start(data_dir: Path, port: int, nodes: int | None, node: int | None, timeout: float) -> str:
    """What ``start`` does from the command line (this module's and ``sessionctl broker``)."""
    if node is not None:
        return start_node(data_dir, node, timeout)
    if (nodes or 1) > 1 or LocalCluster.load(data_dir.resolve()) is not None:
        return start_cluster(data_dir, nodes, port, max(timeout, 120.0))
    return start(data_dir, port or free_port(), timeout)


def print_status(data_dir: Path) -> int:
    """What ``status`` does from the command line: the bootstrap on stdout (exit 1 when nothing
    answers), and for a cluster each node and the partitions without a leader or short of replicas
    on stderr."""
    bootstrap = status(data_dir)
    if LocalCluster.load(data_dir.resolve()) is not None:
        for node, pid, answers in cluster_status(data_dir):
            state = "answers" if answers else ("runs, does not answer" if pid else "down")
            print(f"node {node.node_id}  127.0.0.1:{node.port}  pid {pid or '-'}  {state}", file=sys.stderr)
        partitions = describe_partitions(bootstrap) if bootstrap else None
        if partitions is not None:
            leaderless = sum(1 for p in partitions if p.leader < 0)
            short = sum(1 for p in partitions if len(p.isr) < len(p.replicas))
            print(f"{len(partitions)} partitions: {leaderless} without a leader, {short} under-replicated",
                  file=sys.stderr)  # fmt: skip
    if bootstrap is None:
        print("Kafka is not running", file=sys.stderr)
        return 1
    print(bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
