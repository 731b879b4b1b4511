"""A local broker's layout and configuration: its data folder, its server.properties (one node or one
node of a local cluster), its cluster id and the loopback ports it listens on."""

from __future__ import annotations

import base64
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path


class BrokerError(RuntimeError):
    """A failure with a message meant for the person at the terminal."""


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
            # The active controller appends a no-op record to the metadata log when it has written
            # nothing for this long (Kafka's default: 500 ms), and every node reads and stores it:
            # most of what an idle node does. An idle 3-node cluster used 0.157 CPU seconds a
            # second with the default, 0.120 with 5 s. Nothing here waits on those records.
            "metadata.max.idle.interval.ms=5000",
            "",
        ]
    )


def previous_controller_port(layout: BrokerLayout) -> int | None:
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
