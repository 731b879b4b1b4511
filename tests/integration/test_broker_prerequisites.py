"""streams/devkit/broker.py fails early with a message a person can act on.

Integration tier: these run the broker, which looks for Java and may run Maven.
"""

import socket

import pytest

from streams.devkit import broker
from streams.devkit.kafka import jars

pytestmark = pytest.mark.integration


def test_missing_java_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(jars.shutil, "which", lambda name: None)
    with pytest.raises(broker.BrokerError, match="Java not found"):
        broker.start(tmp_path, broker.free_port(), quiet=True)


def test_unfetched_jars_without_maven_are_named(monkeypatch, tmp_path):
    real_which = jars.shutil.which
    monkeypatch.setattr(jars, "CACHE", tmp_path / "empty-cache")
    monkeypatch.setattr(jars.shutil, "which", lambda name: None if name == "mvn" else real_which(name))
    with pytest.raises(broker.BrokerError, match="jars not fetched"):
        broker.start(tmp_path / "data", broker.free_port(), quiet=True)


def test_a_taken_port_is_named(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(broker.BrokerError, match=f"port 127.0.0.1:{port} is taken"):
            broker.start(tmp_path, port, quiet=True)
    assert broker.running_pid(broker.BrokerLayout(tmp_path)) is None


def test_rendered_config_is_single_node_kraft(tmp_path):
    text = broker.render_properties(broker.BrokerLayout(tmp_path), 19092, 19093)
    props = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"].startswith(str(tmp_path))


def test_cluster_ids_never_look_like_options():
    ids = [broker.new_cluster_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)
