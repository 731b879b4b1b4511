"""Running one broker JVM: its command line, formatting its storage, launching it, waiting until it is
ready, stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from streams.devkit.kafka import class_archive
from streams.devkit.kafka.jars import LOG4J, fetch_jars, java_binary
from streams.devkit.kafka.layout import (
    BrokerError,
    BrokerLayout,
    SaslListener,
    free_port,
    new_cluster_id,
    previous_controller_port,
    render_properties,
)
from streams.devkit.kafka.probes import answers_metadata, pid_alive, running_pid

DEFAULT_HEAP = "-Xms256m -Xmx768m"
# The JIT and GC a broker runs with (SESSIONS_BROKER_JVM). "full" is Kafka's own choice, for a
# broker that runs long (make run, the bench). "light" (C1 only, the serial collector) halves the
# CPU a broker spends getting ready (2.8 s instead of 5.7 s, measured here) and trims its idle
# CPU: ops/test.sh asks for it, where a 2-core machine starts dozens of short-lived brokers
# alongside the workers under test.
JVM_MODES = {"full": "-XX:+UseG1GC", "light": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}


def log_tail(layout: BrokerLayout, lines: int = 40) -> str:
    try:
        text = layout.server_log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server.log)"
    return "\n".join(text[-lines:])


def _jvm_mode() -> str:
    mode = os.environ.get("SESSIONS_BROKER_JVM", "full")
    if mode not in JVM_MODES:
        raise BrokerError(f"SESSIONS_BROKER_JVM={mode!r}: expected one of {', '.join(JVM_MODES)}")
    return JVM_MODES[mode]


def jvm_command(layout: BrokerLayout, quiet: bool, dump_classes_to: Path | None = None) -> list[str]:
    """The java command line up to the main class, for the broker and its storage tool; with
    ``dump_classes_to``, of the JVM that writes the shared class archive there at its exit."""
    java = java_binary()
    libs = fetch_jars(quiet=quiet)
    shared = (
        class_archive.dump_options(dump_classes_to)
        if dump_classes_to is not None
        else class_archive.options(java, libs, _make_class_archive, quiet)
    )
    return [
        java,
        *os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP).split(),
        *_jvm_mode().split(),
        *shared,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        f"-Dkafka.logs.dir={layout.data_dir}",
        "-cp",
        f"{libs}/*",
    ]


def _make_class_archive(path: Path) -> None:
    """A throw-away single broker, started until it answers and stopped, whose JVM writes the class
    archive to ``path`` as it exits."""
    with tempfile.TemporaryDirectory(prefix="kafka-classes-") as scratch:
        layout = BrokerLayout(Path(scratch))
        try:
            run_single(jvm_command(layout, quiet=True, dump_classes_to=path), layout, free_port(), 90.0)
        finally:
            stop_layouts([layout], quiet=True)


def run_single(
    jvm: list[str], layout: BrokerLayout, port: int, timeout: float, sasl: SaslListener | None = None
) -> subprocess.Popen[bytes]:
    """Configure, format (once) and launch a single-node broker on ``port``; return when it answers."""
    # A restart keeps its controller port: the KRaft voter set recorded at format time names it.
    controller_port = previous_controller_port(layout) or free_port()
    layout.properties.write_text(render_properties(layout, port, controller_port, sasl))
    format_storage(jvm, layout, new_cluster_id(), standalone=True)
    proc = launch(jvm, layout, port)
    bootstrap = f"127.0.0.1:{port}"
    wait_until({layout: proc}, lambda: answers_metadata(bootstrap, timeout=1.0), timeout,
               "the broker did not answer a metadata request")  # fmt: skip
    return proc


def format_storage(jvm: list[str], layout: BrokerLayout, cluster_id: str, standalone: bool) -> None:
    """Format the node's storage once (a formatted one is left as it is)."""
    if (layout.log_dir / "meta.properties").exists():
        return
    layout.cluster_id_file.write_text(cluster_id)
    # A single node bootstraps its quorum alone (--standalone); a cluster's nodes name their voters
    # in controller.quorum.voters, and share the cluster id.
    mode = ["--standalone"] if standalone else []
    fmt = subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(layout.properties), *mode,
         "--ignore-formatted"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if fmt.returncode != 0:
        raise BrokerError("formatting the KRaft storage failed:\n" + (fmt.stdout + fmt.stderr)[-3000:])


def launch(jvm: list[str], layout: BrokerLayout, port: int) -> subprocess.Popen[bytes]:
    with open(layout.server_log, "ab") as log:
        proc = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(layout.properties)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
    layout.pid_file.write_text(str(proc.pid))
    layout.port_file.write_text(str(port))
    return proc


def wait_until(
    procs: dict[BrokerLayout, subprocess.Popen[bytes]], ready: Callable[[], bool], timeout: float, what: str
) -> None:
    """Poll ``ready`` until it holds; raise (after stopping ``procs``) when one of them exits or
    ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for layout, proc in procs.items():
            if proc.poll() is not None:
                layout.pid_file.unlink(missing_ok=True)
                stop_layouts(list(procs), quiet=True)
                raise BrokerError(
                    f"the broker of {layout.data_dir} exited with code {proc.returncode}; last log lines:\n"
                    f"{log_tail(layout)}"
                )
        if ready():
            return
        time.sleep(0.2)  # the interval of polling the JVMs for readiness
    stop_layouts(list(procs), quiet=True)
    tails = "\n".join(f"--- {layout.data_dir} ---\n{log_tail(layout)}" for layout in procs)
    raise BrokerError(f"{what} within {timeout:.0f}s; last log lines:\n{tails}")


def stop_layouts(layouts: list[BrokerLayout], timeout: float = 30.0, quiet: bool = False) -> list[int]:
    """SIGTERM the brokers of ``layouts`` all at once (each shuts down cleanly: a controlled
    shutdown moves its leaderships first), SIGKILL whichever still runs after ``timeout``; the
    pids stopped."""
    pids = {layout: running_pid(layout) for layout in layouts}
    for layout, pid in pids.items():
        if pid is None:
            layout.pid_file.unlink(missing_ok=True)
        else:
            os.kill(pid, signal.SIGTERM)
    running = [pid for pid in pids.values() if pid is not None]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in running):
        time.sleep(0.1)  # the interval of polling for the exits
    for layout, pid in pids.items():
        if pid is not None:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            layout.pid_file.unlink(missing_ok=True)
            if not quiet:
                print(f"Kafka (pid {pid}, {layout.data_dir}) stopped", file=sys.stderr)
    return running
