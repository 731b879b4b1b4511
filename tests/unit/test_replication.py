"""Replication settings, the topics the worker owns, and the local cluster's configuration
(docs/cluster.md): what the broker fault suite relies on, checked without a broker."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
from faust.assignor.leader_assignor import LeaderAssignor

from streams.config.settings import Settings, SettingsError
from streams.config.topics import generation_topics, worker_topics
from streams.control.faust_private import leader_topic
from streams.devkit import broker
from streams.devkit.kafka import cluster as local_cluster
from streams.devkit.kafka import layout

pytestmark = pytest.mark.unit


def test_min_insync_replicas_defaults_to_two_from_a_factor_of_three():
    assert Settings().min_insync == 1
    assert Settings(replication_factor=2).min_insync == 1
    assert Settings(replication_factor=3).min_insync == 2
    assert Settings(replication_factor=5).min_insync == 2
    assert Settings(replication_factor=3, min_insync_replicas=3).min_insync == 3
    env = {"SESSIONS_REPLICATION_FACTOR": "3", "SESSIONS_MIN_INSYNC_REPLICAS": "1"}
    assert Settings.from_env(env).min_insync == 1


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SESSIONS_REPLICATION_FACTOR": "0"}, "SESSIONS_REPLICATION_FACTOR"),
        ({"SESSIONS_REPLICATION_FACTOR": "3", "SESSIONS_MIN_INSYNC_REPLICAS": "4"}, "SESSIONS_MIN_INSYNC_REPLICAS"),
        ({"SESSIONS_MIN_INSYNC_REPLICAS": "-1"}, "SESSIONS_MIN_INSYNC_REPLICAS"),
    ],
)
def test_replication_settings_that_cannot_hold_are_refused_by_name(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_every_topic_the_worker_owns_gets_the_replication_of_the_settings():
    settings = Settings(replication_factor=3, app_id="shop", events_topic="events")
    specs = worker_topics(settings) + generation_topics(settings, 2)
    assert {spec.replication_factor for spec in specs} == {3}
    assert {spec.config["min.insync.replicas"] for spec in specs} == {"2"}
    names = {spec.name for spec in worker_topics(settings)}
    assert names == {
        "events", "events.dlq", "shop-sessions-state-changelog", "shop-session-keys", "shop-generations",
        "shop-__assignor-__leader",
    }  # fmt: skip


def test_the_leader_topic_made_for_faust_is_the_one_faust_looks_for():
    # faust creates it only when it is missing; made first by the worker, it is replicated like ours.
    app = faust.App("shop-x")
    assert LeaderAssignor(app)._leader_topic_name == leader_topic("shop-x")


def test_a_cluster_node_is_configured_for_production_replication_and_quick_failover(tmp_path: Path):
    nodes = tuple(broker.Node(n, 19_100 + n, 19_200 + n) for n in (1, 2, 3, 4))
    cluster = broker.LocalCluster(tmp_path, "cluster-id", nodes)
    voter = dict(
        line.split("=", 1)
        for line in broker.render_properties(cluster.layout(2), 19_102, 19_202, None, cluster.role(2)).splitlines()
        if line
    )
    assert voter["process.roles"] == "broker,controller"
    assert voter["node.id"] == "2"
    assert voter["controller.quorum.voters"] == "1@127.0.0.1:19201,2@127.0.0.1:19202,3@127.0.0.1:19203"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert voter[key] == "3", key
    assert voter["min.insync.replicas"] == voter["transaction.state.log.min.isr"] == "2"
    # The fourth node is a broker only: three voters decide, one of them may die.
    fourth = broker.render_properties(cluster.layout(4), 19_104, 19_204, None, cluster.role(4))
    assert "process.roles=broker\n" in fourth and "CONTROLLER://" not in fourth.split("listeners=", 1)[1].split("\n")[0]
    # A dead leader's partitions are led again (fenced after the broker session timeout, after a new
    # controller is elected when it was the controller) before a write's produce timeout runs out.
    worst_election_ms = (
        broker.CONTROLLER_QUORUM_FETCH_TIMEOUT_MS
        + broker.CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS
        + broker.BROKER_SESSION_TIMEOUT_MS
    )
    assert worst_election_ms < Settings().produce_timeout_s * 1000
    assert broker.BROKER_HEARTBEAT_INTERVAL_MS * 5 <= broker.BROKER_SESSION_TIMEOUT_MS


def test_a_cluster_keeps_its_ports_and_id_across_restarts(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(layout, "_own_range", [])
    broker.own_port_range(31_800, 31_899)
    made = local_cluster._new_cluster(tmp_path, 3, 0)
    ports = [port for node in made.nodes for port in (node.port, node.controller_port)]
    # Every listener of every node its own port, from the top of the range: nodes are restarted on
    # them, and everybody's ordinary cursor starts at the bottom.
    assert ports == list(range(31_899, 31_893, -1))
    assert broker.free_port() == 31_800
    assert broker.LocalCluster.load(tmp_path) == made
    assert made.bootstrap == ",".join(f"127.0.0.1:{node.port}" for node in made.nodes)
    with pytest.raises(broker.BrokerError, match="not 7"):
        made.node(7)
    (tmp_path / "given").mkdir()
    given = local_cluster._new_cluster(tmp_path / "given", 3, 31_850)
    assert [node.port for node in given.nodes] == [31_850, 31_851, 31_852]
