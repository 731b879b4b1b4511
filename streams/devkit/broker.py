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
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parent / "broker_config"
POM = CONFIG / "pom.xml"
LOG4J = CONFIG / "log4j2.yaml"
MIN_JAVA = 17
DEFAULT_HEAP = "-Xms256m -Xmx768m"
# The JIT and GC a broker runs with (SESSIONS_BROKER_JVM). "full" is Kafka's own choice, for a
# broker that runs long (make run, the bench). "light" (C1 only, the serial collector) halves the
# CPU a broker spends getting ready (2.8 s instead of 5.7 s, measured here) and trims its idle
# CPU: ops/test.sh asks for it, where a 2-core machine starts dozens of short-lived brokers
# alongside the workers under test.
JVM_MODES = {"full": "-XX:+UseG1GC", "light": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}


class BrokerError(RuntimeError):
    """A failure with a message meant for the person at the terminal."""


def _cache_dir() -> Path:
    """Where the fetched jars are kept (see the module's docstring)."""
    given = os.environ.get("SESSIONS_KAFKA_CACHE")
    if given:
        return Path(given)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "ops").is_dir():
        return checkout / "ops" / "kafka" / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "session-engine" / "kafka"


CACHE = _cache_dir()


def kafka_version() -> str:
    if not POM.is_file():
        raise BrokerError(f"{POM} is missing: reinstall the package (it ships broker_config/ beside this module)")
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise BrokerError(f"no <kafka.version> in {POM}")
    return match.group(1)


def lib_dir() -> Path:
    return CACHE / kafka_version() / "lib"


# --- prerequisites -------------------------------------------------------------------------------


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    java = str(candidate) if candidate and candidate.exists() else shutil.which("java")
    if not java:
        raise BrokerError(
            f"Java not found: Kafka needs Java {MIN_JAVA}+ on PATH or in JAVA_HOME "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerError(f"{java} is Java {major or '?'}; Kafka {kafka_version()} needs Java {MIN_JAVA}+")
    return java


def fetch_jars(quiet: bool = False) -> Path:
    """Copy the broker jars into the cache folder once; later calls reuse them."""
    target = lib_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError(
            f"Kafka jars not fetched ({target} is missing) and Maven is not on PATH to fetch them "
            "(Debian: apt-get install maven)"
        )
    partial = target.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    if not quiet:
        print(f"fetching Apache Kafka {kafka_version()} jars with Maven into {target}", file=sys.stderr)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
        raise BrokerError("Maven could not fetch the Kafka jars:\n" + (result.stdout + result.stderr)[-3000:])
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    marker.touch()
    return target


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerLayout:
    """Where one broker keeps everything: a folder of ours, nothing global."""

    data_dir: Path

    @property
    def properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def port_file(self) -> Path:
        return self.data_dir / "broker.port"

    @property
    def server_log(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"


@dataclass(frozen=True)
class SaslListener:
    """A second listener, SASL_PLAINTEXT with the PLAIN mechanism, for these users (name -> password):
    how the tests check that every client of the project connects with SASL when told to."""

    port: int
    users: dict[str, str]

    def properties(self) -> list[str]:
        accounts = " ".join(f'user_{name}="{password}"' for name, password in sorted(self.users.items()))
        return [
            "sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {accounts};",
        ]


@dataclass(frozen=True)
class ClusterRole:
    """One node of a local cluster: its id, the controller voters (node id -> controller port) and
    how many nodes the cluster has."""

    node_id: int
    voters: dict[int, int]
    nodes: int

    @property
    def replication_factor(self) -> int:
        return min(3, self.nodes)

    @property
    def min_insync_replicas(self) -> int:
        # One replica may be lost without refusing writes (2 of 3, Kafka's production advice).
        return max(1, self.replication_factor - 1)


# What keeps a local cluster's failover quick (docs/cluster.md has the measured figures). A broker
# that dies without a word (SIGKILL, a lost machine) keeps leading its partitions, and stays in
# their in-sync replicas (so acks=all writes to partitions it follows wait too), until the active
# controller fences it: after BROKER_SESSION_TIMEOUT_MS without its heartbeat. That timeout is most
# of the time a partition goes without a leader, and it must stay well below the producers' message
# timeout (SESSIONS_PRODUCE_TIMEOUT_S) for a write to ride through instead of answering 503. Kafka's
# defaults are 9 s and 2 s; 3 s with a heartbeat every 0.5 s fences a live broker by mistake only
# after six missed heartbeats (a long GC pause, a starved 2-core test machine).
BROKER_SESSION_TIMEOUT_MS = 3000
BROKER_HEARTBEAT_INTERVAL_MS = 500
# When the dead node was the active controller, the other voters notice after the quorum's fetch
# timeout and elect a new one within the election timeout (Kafka's defaults: 2 s and 1 s); the new
# controller then fences the dead broker a session timeout later.
CONTROLLER_QUORUM_FETCH_TIMEOUT_MS = 2000
CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS = 1000


def render_properties(
    layout: BrokerLayout,
    port: int,
    controller_port: int,
    sasl: SaslListener | None = None,
    cluster: ClusterRole | None = None,
) -> str:
    """A node's server.properties: the single-node broker (``cluster`` None), or one node of a
    local cluster (``controller_port`` is then its own when it is a voter, else unused)."""
    voter = cluster is None or cluster.node_id in cluster.voters
    listeners = f"PLAINTEXT://127.0.0.1:{port}" + (f",CONTROLLER://127.0.0.1:{controller_port}" if voter else "")
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if sasl is not None:
        listeners += f",SASL_PLAINTEXT://127.0.0.1:{sasl.port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
    if cluster is None:
        # Single-node KRaft, as the distribution's config/server.properties, with replication
        # factors of 1 (there is one disk) and the quorum bootstrapped by this node alone.
        identity = ["process.roles=broker,controller", "node.id=1"]
        quorum = [f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}"]
        factor, min_isr = 1, 1
    else:
        identity = [f"process.roles={'broker,controller' if voter else 'broker'}", f"node.id={cluster.node_id}"]
        voters = ",".join(f"{node}@127.0.0.1:{cport}" for node, cport in sorted(cluster.voters.items()))
        quorum = [
            f"controller.quorum.voters={voters}",
            f"controller.quorum.fetch.timeout.ms={CONTROLLER_QUORUM_FETCH_TIMEOUT_MS}",
            f"controller.quorum.election.timeout.ms={CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS}",
            f"broker.session.timeout.ms={BROKER_SESSION_TIMEOUT_MS}",
            f"broker.heartbeat.interval.ms={BROKER_HEARTBEAT_INTERVAL_MS}",
        ]
        factor, min_isr = cluster.replication_factor, cluster.min_insync_replicas
    return "\n".join(
        [
            *identity,
            *quorum,
            f"listeners={listeners}",
            f"advertised.listeners={listeners}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={protocols}",
            *(sasl.properties() if sasl is not None else []),
            f"log.dirs={layout.log_dir}",
            "num.partitions=1",
            "num.network.threads=2",
            "num.io.threads=4",
            # Production's layout on a cluster: every topic, Kafka's internal ones included, on
            # three brokers, and an acks=all write acknowledged by two of them.
            f"default.replication.factor={factor}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={factor}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={factor}",
            f"transaction.state.log.min.isr={min_isr}",
            "transaction.state.log.num.partitions=8",
            f"share.coordinator.state.topic.replication.factor={factor}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            # Kafka's floor for a member's session timeout is 6 s; tests and local runs may ask for
            # less (about 3 s) so that a killed or paused worker's partitions move sooner.
            "group.min.session.timeout.ms=1000",
            # Topics are created explicitly by the app (partition count, retention); a typo in a
            # topic name should fail loudly instead of creating a one-partition topic.
            "auto.create.topics.enable=false",
            "log.retention.hours=-1",
            "",
        ]
    )


def _previous_controller_port(layout: BrokerLayout) -> int | None:
    try:
        text = layout.properties.read_text()
    except OSError:
        return None
    match = re.search(r"^controller\.quorum\.bootstrap\.servers=127\.0\.0\.1:(\d+)$", text, re.MULTILINE)
    if not match:
        return None
    port = int(match.group(1))
    if not port_is_free(port):
        raise BrokerError(f"the controller port 127.0.0.1:{port} of this broker's data is taken by another process")
    return port


def new_cluster_id() -> str:
    """A KRaft cluster id: URL-safe base64 of a random UUID that, like Kafka's own, never starts
    with "-" (the storage tool would read it as an option: 1 start in 64 failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# Ports handed out by this process come from its own range once ``own_port_range`` was called:
# parallel test processes each own one (tests/conftest.py), below the kernel's ephemeral ports. A
# port the kernel draws for one process can be drawn again for another before the first binds it;
# a range of one's own only races with itself, and the cursor never repeats a port until it wraps.
_own_range: list[int] = []  # [low, high, cursor, top cursor]


def own_port_range(low: int, high: int) -> None:
    """Hand out this process's ports from ``low..high`` (inclusive) from now on."""
    _own_range[:] = [low, high, low, high]


def free_port(from_top: bool = False) -> int:
    """A port on 127.0.0.1 that nothing listens on (from this process's own range when it has one).

    ``from_top``: from the top of the range downwards, for a port that will be released and bound
    again later (a local cluster's node, restarted on its own port, which every other node's
    configuration names): every process's ordinary cursor starts at the bottom of its range, and a
    run of any engineer on the same machine with the same range would otherwise take it meanwhile."""
    if _own_range:
        low, high = _own_range[0], _own_range[1]
        index, step, wrap = (3, -1, high) if from_top else (2, 1, low)
        for _ in range(high - low + 1):
            port = _own_range[index]
            following = port + step
            _own_range[index] = following if low <= following <= high else wrap
            if port_is_free(port):
                return port
        raise BrokerError(f"no free port left in {low}-{high}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- process control -----------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) still answers kill(0); it is not a running broker.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def running_pid(layout: BrokerLayout) -> int | None:
    try:
        pid = int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def running_port(layout: BrokerLayout) -> int | None:
    try:
        return int(layout.port_file.read_text().strip())
    except (OSError, ValueError):
        return None


def metadata_client(bootstrap: str) -> Any:
    """A confluent-kafka admin client that logs nothing, for metadata requests (to reuse when
    polling). Raises ImportError without confluent-kafka."""
    from confluent_kafka.admin import AdminClient

    # "logger" takes a logging.Logger, which confluent-kafka's type stubs do not allow for.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0, "logger": _silent_logger()}
    return AdminClient(config)


def _cluster_metadata(source: Any, timeout: float) -> Any | None:
    """A metadata answer (confluent-kafka's ``ClusterMetadata``) through ``source`` (a bootstrap
    address, or a :func:`metadata_client`); None when none came. Raises ImportError without
    confluent-kafka."""
    admin = metadata_client(source) if isinstance(source, str) else source
    try:
        return admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "no answer (yet)"
        return None


def answers_metadata(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a Kafka metadata request to ``bootstrap`` succeeds."""
    try:
        metadata = _cluster_metadata(bootstrap, timeout)
    except ImportError:  # bare interpreter: a TCP connect is the best we can do
        host, port = bootstrap.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except OSError:
            return False
    return metadata is not None and bool(metadata.brokers)


def live_brokers(bootstrap: str, timeout: float = 2.0) -> set[int]:
    """The node ids the cluster's metadata lists as ``bootstrap`` answers it: registered and not
    fenced (a KRaft broker lists only those). Empty when it does not answer."""
    metadata = _cluster_metadata(bootstrap, timeout)
    return set(metadata.brokers) if metadata is not None else set()


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int  # -1: none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def describe_partitions(source: Any, timeout: float = 5.0) -> list[PartitionState] | None:
    """Every partition of every topic (Kafka's internal ones too) with its leader, replicas and
    in-sync replicas, as the cluster's metadata says (through ``source``: a bootstrap address or a
    :func:`metadata_client`); None when it does not answer."""
    metadata = _cluster_metadata(source, timeout)
    if metadata is None:
        return None
    return [
        PartitionState(topic.topic, part.id, part.leader, tuple(part.replicas), tuple(part.isrs))
        for topic in metadata.topics.values()
        for part in topic.partitions.values()
    ]


def _silent_logger() -> logging.Logger:
    logger = logging.getLogger("streams.devkit.broker.probe")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _log_tail(layout: BrokerLayout, lines: int = 40) -> str:
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


def _jvm(layout: BrokerLayout, quiet: bool) -> list[str]:
    """The java command line up to the main class, for the broker and its storage tool."""
    java = java_binary()
    libs = fetch_jars(quiet=quiet)
    return [
        java,
        *os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP).split(),
        *_jvm_mode().split(),
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        f"-Dkafka.logs.dir={layout.data_dir}",
        "-cp",
        f"{libs}/*",
    ]


def _format(jvm: list[str], layout: BrokerLayout, cluster_id: str, standalone: bool) -> None:
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


def _launch(jvm: list[str], layout: BrokerLayout, port: int) -> subprocess.Popen[bytes]:
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


def _wait_until(
    procs: dict[BrokerLayout, subprocess.Popen[bytes]], ready: Callable[[], bool], timeout: float, what: str
) -> None:
    """Poll ``ready`` until it holds; raise (after stopping ``procs``) when one of them exits or
    ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for layout, proc in procs.items():
            if proc.poll() is not None:
                layout.pid_file.unlink(missing_ok=True)
                _stop_layouts(list(procs), quiet=True)
                raise BrokerError(
                    f"the broker of {layout.data_dir} exited with code {proc.returncode}; last log lines:\n"
                    f"{_log_tail(layout)}"
                )
        if ready():
            return
        time.sleep(0.2)  # the interval of polling the JVMs for readiness
    _stop_layouts(list(procs), quiet=True)
    tails = "\n".join(f"--- {layout.data_dir} ---\n{_log_tail(layout)}" for layout in procs)
    raise BrokerError(f"{what} within {timeout:.0f}s; last log lines:\n{tails}")


def start(
    data_dir: Path, port: int = 9092, timeout: float = 90.0, quiet: bool = False, sasl: SaslListener | None = None
) -> str:
    """Start a broker (or find the one already running in ``data_dir``); return its bootstrap
    (the plaintext listener's; ``sasl`` adds a SASL_PLAINTEXT one on its own port). A data folder
    that holds a local cluster starts the cluster (:func:`start_cluster`)."""
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

    jvm = _jvm(layout, quiet)
    if not port_is_free(port):
        raise BrokerError(f"port 127.0.0.1:{port} is taken; pick another with --port (or stop what holds it)")
    # A restart keeps its controller port: the KRaft voter set recorded at format time names it.
    controller_port = _previous_controller_port(layout) or free_port()
    layout.properties.write_text(render_properties(layout, port, controller_port, sasl))
    _format(jvm, layout, new_cluster_id(), standalone=True)
    proc = _launch(jvm, layout, port)
    bootstrap = f"127.0.0.1:{port}"
    _wait_until({layout: proc}, lambda: answers_metadata(bootstrap, timeout=1.0), timeout,
                "the broker did not answer a metadata request")  # fmt: skip
    if not quiet:
        print(f"Kafka {kafka_version()} ready at {bootstrap} (pid {proc.pid}, data {layout.data_dir})", file=sys.stderr)
    return bootstrap


def _stop_layouts(layouts: list[BrokerLayout], timeout: float = 30.0, quiet: bool = False) -> list[int]:
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
    while time.monotonic() < deadline and any(_pid_alive(pid) for pid in running):
        time.sleep(0.1)  # the interval of polling for the exits
    for layout, pid in pids.items():
        if pid is not None:
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            layout.pid_file.unlink(missing_ok=True)
            if not quiet:
                print(f"Kafka (pid {pid}, {layout.data_dir}) stopped", file=sys.stderr)
    return running


def stop(data_dir: Path, timeout: float = 30.0, quiet: bool = False) -> bool:
    """Stop the broker of ``data_dir`` (every node of a local cluster at once): SIGTERM (clean
    shutdown), SIGKILL after ``timeout``. False when none ran."""
    cluster = LocalCluster.load(data_dir.resolve())
    layouts = [cluster.layout(n.node_id) for n in cluster.nodes] if cluster else [BrokerLayout(data_dir.resolve())]
    stopped = _stop_layouts(layouts, timeout, quiet)
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


# --- a local cluster -----------------------------------------------------------------------------

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
    jvm = _jvm(layout, quiet)
    layout.properties.write_text(
        render_properties(layout, node.port, node.controller_port, None, cluster.role(node.node_id))
    )
    _format(jvm, layout, cluster.cluster_id, standalone=False)
    return layout, _launch(jvm, layout, node.port)


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

    _wait_until(procs, ready, timeout, f"the {len(cluster.nodes)} nodes did not all list each other as live brokers")
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
        _wait_until({layout: proc}, lambda: node_id in live_brokers(address, timeout=1.0), timeout,
                    f"node {node_id} was not listed as a live broker")  # fmt: skip
    if not quiet:
        print(f"Kafka node {node_id} ready at {address}", file=sys.stderr)
    return address


def stop_node(data_dir: Path, node_id: int, timeout: float = 30.0, quiet: bool = False) -> bool:
    """SIGTERM one node (a controlled shutdown: its leaderships move first), SIGKILL after
    ``timeout``; False when it did not run."""
    cluster = _require_cluster(data_dir)
    cluster.node(node_id)
    return bool(_stop_layouts([cluster.layout(node_id)], timeout, quiet))


def kill_node(data_dir: Path, node_id: int) -> int | None:
    """SIGKILL one node, as a machine dies: no controlled shutdown, its leaderships stay with it
    until the controller fences it. The pid killed (None when it did not run), gone on return."""
    cluster = _require_cluster(data_dir)
    cluster.node(node_id)
    layout = cluster.layout(node_id)
    pid = running_pid(layout)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid):
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
