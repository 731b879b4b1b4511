"""What a local broker's processes and listeners say: pids, ports, metadata answers, partition states."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.devkit.kafka.layout import BrokerLayout


def pid_alive(pid: int) -> bool:
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
    return pid if pid_alive(pid) else None


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
