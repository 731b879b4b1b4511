"""A single-node Apache Kafka broker (KRaft, controller+broker in one JVM) on loopback, no Docker.

The jars come from Maven Central through ``broker_config/pom.xml`` (beside this module, shipped
with the package) into a cache folder: ``ops/kafka/.cache/<version>/lib`` in a checkout of the
repository, else ``$XDG_CACHE_HOME/session-engine/kafka`` (``~/.cache/...``), or wherever
``SESSIONS_KAFKA_CACHE`` says. The broker's config, storage, logs and pid file live in one data
folder of the caller's choosing. Used by ``make run``/``make test`` and the ``kafka-*`` targets, by
the pytest broker fixture and by ``sessionctl broker``.

Only the standard library is needed to start and stop it; the readiness probe speaks the Kafka
protocol through confluent-kafka when it is installed (a real metadata request), and falls back to a
TCP connect otherwise.

    python -m streams.kafka.broker start --data-dir var/kafka --port 9092
    python -m streams.kafka.broker status --data-dir var/kafka
    python -m streams.kafka.broker stop --data-dir var/kafka
    python -m streams.kafka.broker fetch
"""

from __future__ import annotations

import argparse
import base64
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parent / "broker_config"
POM = CONFIG / "pom.xml"
LOG4J = CONFIG / "log4j2.yaml"
MIN_JAVA = 17
DEFAULT_HEAP = "-Xms256m -Xmx768m"


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


def render_properties(layout: BrokerLayout, port: int, controller_port: int, sasl: SaslListener | None = None) -> str:
    # Single-node KRaft, as the distribution's config/server.properties, with replication factors
    # of 1 and no initial rebalance delay so consumer groups form at once.
    listeners = f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if sasl is not None:
        listeners += f",SASL_PLAINTEXT://127.0.0.1:{sasl.port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
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
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=8",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
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
_own_range: list[int] = []  # [low, high, cursor]


def own_port_range(low: int, high: int) -> None:
    """Hand out this process's ports from ``low..high`` (inclusive) from now on."""
    _own_range[:] = [low, high, low]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (from this process's own range when it has one)."""
    if _own_range:
        low, high, cursor = _own_range
        for _ in range(high - low + 1):
            port, cursor = cursor, low if cursor >= high else cursor + 1
            _own_range[2] = cursor
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


def answers_metadata(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a Kafka metadata request to ``bootstrap`` succeeds."""
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:  # bare interpreter: a TCP connect is the best we can do
        host, port = bootstrap.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except OSError:
            return False
    # "logger" takes a logging.Logger, which confluent-kafka's type stubs do not allow for.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0, "logger": _silent_logger()}
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    return bool(metadata.brokers)


def _silent_logger() -> logging.Logger:
    logger = logging.getLogger("streams.kafka.broker.probe")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def _log_tail(layout: BrokerLayout, lines: int = 40) -> str:
    try:
        text = layout.server_log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server.log)"
    return "\n".join(text[-lines:])


def start(
    data_dir: Path, port: int = 9092, timeout: float = 90.0, quiet: bool = False, sasl: SaslListener | None = None
) -> str:
    """Start a broker (or find the one already running in ``data_dir``); return its bootstrap
    (the plaintext listener's; ``sasl`` adds a SASL_PLAINTEXT one on its own port)."""
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

    java = java_binary()
    libs = fetch_jars(quiet=quiet)
    if not port_is_free(port):
        raise BrokerError(f"port 127.0.0.1:{port} is taken; pick another with --port (or stop what holds it)")
    # A restart keeps its controller port: the KRaft voter set recorded at format time names it.
    controller_port = _previous_controller_port(layout) or free_port()

    layout.properties.write_text(render_properties(layout, port, controller_port, sasl))
    classpath = f"{libs}/*"
    jvm = [
        java,
        *os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP).split(),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        f"-Dkafka.logs.dir={layout.data_dir}",
        "-cp",
        classpath,
    ]

    if not (layout.log_dir / "meta.properties").exists():
        cluster_id = new_cluster_id()
        layout.cluster_id_file.write_text(cluster_id)
        fmt = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(layout.properties),
                "--standalone",
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise BrokerError("formatting the KRaft storage failed:\n" + (fmt.stdout + fmt.stderr)[-3000:])

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

    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            layout.pid_file.unlink(missing_ok=True)
            raise BrokerError(f"the broker exited with code {proc.returncode}; last log lines:\n{_log_tail(layout)}")
        if answers_metadata(bootstrap, timeout=1.0):
            if not quiet:
                print(
                    f"Kafka {kafka_version()} ready at {bootstrap} (pid {proc.pid}, data {layout.data_dir})",
                    file=sys.stderr,
                )
            return bootstrap
        time.sleep(0.2)
    stop(layout.data_dir, quiet=True)
    raise BrokerError(
        f"the broker did not answer a metadata request within {timeout:.0f}s; last log lines:\n{_log_tail(layout)}"
    )


def stop(data_dir: Path, timeout: float = 30.0, quiet: bool = False) -> bool:
    """Stop the broker of ``data_dir``: SIGTERM (clean shutdown), SIGKILL after ``timeout``."""
    layout = BrokerLayout(data_dir.resolve())
    pid = running_pid(layout)
    if pid is None:
        layout.pid_file.unlink(missing_ok=True)
        if not quiet:
            print("Kafka is not running", file=sys.stderr)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    layout.pid_file.unlink(missing_ok=True)
    if not quiet:
        print(f"Kafka (pid {pid}) stopped", file=sys.stderr)
    return True


def status(data_dir: Path) -> str | None:
    """The bootstrap address of the running, answering broker of ``data_dir``, else None."""
    layout = BrokerLayout(data_dir.resolve())
    port = running_port(layout)
    if running_pid(layout) is None or port is None:
        return None
    bootstrap = f"127.0.0.1:{port}"
    return bootstrap if answers_metadata(bootstrap) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    parser.add_argument("--port", type=int, default=9092, help="0 picks a free port")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_jars())
        elif args.command == "start":
            print(start(args.data_dir, args.port or free_port(), args.timeout))
        elif args.command == "stop":
            stop(args.data_dir)
        else:
            bootstrap = status(args.data_dir)
            if bootstrap is None:
                print("Kafka is not running", file=sys.stderr)
                return 1
            print(bootstrap)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
