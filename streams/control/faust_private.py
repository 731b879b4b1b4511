"""Every use of a private faust-streaming (or aiokafka-inside-faust) API, in one place.

faust is the control plane only: it joins the group, places partitions with its assignor and
routes keys to their owner, while the fold loop (``streams.fold``) consumes the event topic with
its own client. Doing that needs a few internals; each is here with why, and
``tests/agent/test_faust_private.py`` fails when a faust upgrade removes one of them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faust
from faust.transport import drivers
from faust.transport.drivers import aiokafka as driver

SCHEME = "sessions-kafka"


class _Consumer(driver.Consumer):
    # Topics faust subscribes (so its assignor places them) but never reads: the fold loop does.
    # faust pauses every partition when it is assigned, and its table recovery then resumes all of
    # them; dropping ours from the resume keeps them paused (pause state resets on each rebalance).
    held_topics: ClassVar[frozenset[str]] = frozenset()

    def resume_partitions(self, tps: Any) -> None:
        super().resume_partitions({tp for tp in tps if tp.topic not in self.held_topics})


class Transport(driver.Transport):
    Consumer = _Consumer


def broker_url(bootstrap: str, held_topics: frozenset[str]) -> str:
    """The broker URL that selects this transport (registered on first use)."""
    _Consumer.held_topics = held_topics
    drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    return f"{SCHEME}://{bootstrap}"


def leader_topic(app_id: str) -> str:
    """The topic faust's leader assignor creates and subscribes (``LeaderAssignor._leader_topic_name``):
    created by the worker first (streams/config/topics.py), with the replication and
    ``min.insync.replicas`` of every topic it owns; faust then finds it and creates nothing."""
    return f"{app_id}-__assignor-__leader"


def hold(app: faust.App, tps: Any) -> None:
    """Keep faust's consumer off the given partitions (called on every assignment)."""
    app.consumer.pause_partitions({tp for tp in tps if tp.topic in _Consumer.held_topics})


def standby_partitions(app: faust.App, topic: str) -> set[int]:
    """The partitions of ``topic`` faust's assignor placed on this worker as standbys.

    Without a table faust only places them (its copartitioned assignor gives every topic group
    ``table_standby_replicas`` standbys, and promotes a standby when an owner leaves); it never
    reads them: the fold loop tails their changelog itself."""
    return {tp.partition for tp in app.assignor.assigned_standbys() if tp.topic == topic}


def request_rejoin(app: faust.App) -> None:
    """Make faust's consumer rejoin the group (any thread): the fold loop lost a partition to a
    newer owner's fence while the group may still count it as ours (a transaction the broker timed
    out fences too); the rejoin's revocation and assignment settle who serves it."""
    try:
        thread = app.consumer._thread  # type: ignore[attr-defined]
        coordinator = thread._ensure_consumer()._coordinator
    except Exception:  # noqa: BLE001 - not started or stopping: a rejoin is under way anyway
        return
    thread.thread_loop.call_soon_threadsafe(coordinator.request_rejoin)


def group_generation(app: faust.App) -> int | None:
    """The group generation faust's aiokafka consumer is a member of; None while it has to rejoin.

    The fold loop writes only while this equals the generation it was assigned under: a worker the
    group timed out (a long pause, a partition from the network) stops writing as soon as its own
    consumer notices, before the group's new owner starts. aiokafka keeps both on its coordinator.
    """
    try:
        coordinator = app.consumer._thread._ensure_consumer()._coordinator  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - not started or stopping: no generation to write under
        return None
    if coordinator._rejoin_needed_fut.done():
        return None
    generation: int = coordinator.generation
    return generation if generation >= 0 else None
