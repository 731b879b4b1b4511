"""One local broker (controller and broker in one JVM): start it, stop it, ask where it answers; a data
folder that holds a local cluster is handed to the cluster."""

from __future__ import annotations

import sys
from pathlib import Path

from streams.devkit.kafka.cluster import LocalCluster, cluster_status, start_cluster
from streams.devkit.kafka.jars import kafka_version
from streams.devkit.kafka.layout import (
    BrokerError,
    BrokerLayout,
    SaslListener,
    port_is_free,
)
from streams.devkit.kafka.probes import answers_metadata, running_pid, running_port
from streams.devkit.kafka.process import jvm_command, run_single, stop_layouts


def start(
    data_dir: Path,
    port: int = 9092,
    timeout: float = 90.0,
    quiet: bool = False,
    sasl: SaslListener | None = None,
    dump_classes_to: Path | None = None,
) -> str:
    """Start a broker (or find the one already running in ``data_dir``); return its bootstrap
    (the plaintext listener's; ``sasl`` adds a SASL_PLAINTEXT one on its own port). A data folder
    that holds a local cluster starts the cluster (:func:`start_cluster`). ``dump_classes_to``: the
    JVM writes the shared class archive there at its exit (``streams.devkit.kafka.class_archive``)."""
    if LocalCluster.load(data_dir.resolve()) is not None:
        return start_cluster(data_dir, timeout=max(timeout, 120.0), quiet=quiet)
    layout = BrokerLayout(data_dir.resolve())
    layout.data_dir.mkdir(parents=True, exist_ok=True)

    pid = running_pid(layout)
    if pid is not None:
        existing = running_port(layout)
        bootstrap = f"127.0.0.1:{existing}"
        if existing and answers_metadata(bootstrap):
            if not quiet:
                print(f"Kafka already running (pid {pid}) at {bootstrap}", file=sys.stderr)
            return bootstrap
        raise BrokerError(f"a broker process {pid} owns {layout.data_dir} but does not answer; stop it first")

    jvm = jvm_command(layout, quiet, dump_classes_to)
    if not port_is_free(port):
        raise BrokerError(f"port 127.0.0.1:{port} is taken; pick another with --port (or stop what holds it)")
    proc = run_single(jvm, layout, port, timeout, sasl)
    bootstrap = f"127.0.0.1:{port}"
    if not quiet:
        print(f"Kafka {kafka_version()} ready at {bootstrap} (pid {proc.pid}, data {layout.data_dir})", file=sys.stderr)
    return bootstrap


def stop(data_dir: Path, timeout: float = 30.0, quiet: bool = False) -> bool:
    """Stop the broker of ``data_dir`` (every node of a local cluster at once): SIGTERM (clean
    shutdown), SIGKILL after ``timeout``. False when none ran."""
    cluster = LocalCluster.load(data_dir.resolve())
    layouts = [cluster.layout(n.node_id) for n in cluster.nodes] if cluster else [BrokerLayout(data_dir.resolve())]
    stopped = stop_layouts(layouts, timeout, quiet)
    if not stopped and not quiet:
        print("Kafka is not running", file=sys.stderr)
    return bool(stopped)


def status(data_dir: Path) -> str | None:
    """The bootstrap address of the running, answering broker of ``data_dir`` (of a local cluster:
    its running nodes that answer, comma-separated), else None."""
    cluster = LocalCluster.load(data_dir.resolve())
    if cluster is not None:
        up = [n for n, pid, answers in cluster_status(data_dir) if pid is not None and answers]
        return ",".join(f"127.0.0.1:{n.port}" for n in up) or None
    layout = BrokerLayout(data_dir.resolve())
    port = running_port(layout)
    if running_pid(layout) is None or port is None:
        return None
    bootstrap = f"127.0.0.1:{port}"
    return bootstrap if answers_metadata(bootstrap) else None
