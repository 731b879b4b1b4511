"""The faust internals the control plane relies on (streams/control/faust_private.py) are still there.

Built on a real faust app (create_engine, no broker): a faust upgrade that renames or removes one
of them fails here, not in production during a rebalance.
"""

from __future__ import annotations

import inspect

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from streams.config.settings import Settings
from streams.control import faust_private
from streams.control.app import create_engine

pytestmark = pytest.mark.agent


@pytest.fixture
def engine(tmp_path):
    return create_engine(Settings(data_dir=tmp_path, app_id="private-api-test", partitions=2, web_port=1))


def test_the_event_topic_stays_paused_whatever_faust_resumes(engine):
    consumer = engine.app.consumer
    assert isinstance(consumer, faust_private._Consumer)
    events = {TP(engine.settings.events_topic, p) for p in range(2)}
    other = {TP("another-topic", 0)}
    consumer.pause_partitions(events | other)  # what faust does to every assigned partition
    faust_private.hold(engine.app, events | other)
    consumer.resume_partitions(events | other)  # what faust's recovery does afterwards
    assert events <= consumer._paused_partitions
    assert not other & consumer._paused_partitions


def test_the_group_generation_is_read_where_faust_keeps_it(engine):
    # Before start there is no aiokafka consumer: no generation, so the fold loop writes nothing.
    assert faust_private.group_generation(engine.app) is None
    # The path group_generation walks: faust consumer -> its thread -> aiokafka consumer -> coordinator.
    assert "self._thread" in inspect.getsource(driver.Consumer)
    assert callable(driver.AIOKafkaConsumerThread._ensure_consumer)
    assert "self._coordinator" in inspect.getsource(AIOKafkaConsumer)
    init = inspect.getsource(GroupCoordinator.__init__)
    assert "self.generation" in init and "self._rejoin_needed_fut" in init
    # request_rejoin: the coordinator's own method, called on the consumer thread's loop.
    assert callable(GroupCoordinator.request_rejoin)
    assert "thread_loop" in inspect.getsource(driver.AIOKafkaConsumerThread.__mro__[1])
    faust_private.request_rejoin(engine.app)  # before start: nothing to rejoin, no error


def test_the_assignor_publishes_the_owner_of_each_partition(engine):
    # The router's map of worker URL -> topic -> partitions (routing.owner_of reads it).
    assert engine.app.conf.table_standby_replicas >= 1, "without it faust falls back to round-robin"
    assert engine.app.assignor.external_topic_distribution == {}
    engine.app.assignor.external_topic_distribution = {"http://127.0.0.1:1": {engine.settings.events_topic: [0, 1]}}
    assert engine.app.assignor.external_topic_distribution["http://127.0.0.1:1"][engine.settings.events_topic] == [0, 1]


def test_faust_awaits_the_revocation_signal_before_going_on():
    # The fold loop lets go of partitions inside this signal; faust must await its receivers.
    from faust.app.base import App

    source = inspect.getsource(App._on_partitions_revoked)
    assert "on_partitions_revoked.send" in source and "await" in source


def test_the_assignor_places_standbys_of_the_event_topic_and_promotes_them(engine):
    # faust's copartitioned assignor gives every topic group standbys (table_standby_replicas), also
    # without a table, and on_assignment keeps them; standby_partitions reads them off it.
    from faust.assignor.client_assignment import ClientAssignment
    from faust.assignor.copartitioned_assignor import CopartitionedAssignor

    topic = engine.settings.events_topic
    engine.app.assignor._assignment = ClientAssignment(actives={topic: [0]}, standbys={topic: [1], "other": [0]})
    assert faust_private.standby_partitions(engine.app, topic) == {1}
    assert "Assign actives to standbys when possible" in inspect.getsource(CopartitionedAssignor)
