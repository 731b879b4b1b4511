"""What the web layer needs of a running worker: settings, the appender, the fold's store and
waiters, tokens, keys. Built by ``streams.control.app``; imports no web code (the views import this)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import faust

from projections.rules import Rules
from streams.config.settings import Settings
from streams.fold.loop import FoldLoop
from streams.fold.waiters import FoldWaiters
from streams.history.timeline import SessionHistory
from streams.observability.activity import Activity
from streams.observability.metrics import Metrics
from streams.privacy.appender import SealingAppender
from streams.privacy.keyring import KeyRing

if TYPE_CHECKING:
    from streams.web.service_auth import Access, ServiceKeys
    from streams.web.tokens import SessionTokens


@dataclass
class Engine:
    settings: Settings
    app: faust.App
    events: faust.TopicT  # subscribed by faust's group (for placement and routing), read by the fold loop
    producer: SealingAppender  # the event appender: personal values sealed (streams.privacy)
    rules: Rules
    waiters: FoldWaiters
    tokens: SessionTokens
    service_keys: ServiceKeys  # digests only: streams.web.service_auth
    fold: FoldLoop
    history: SessionHistory  # a session's events, read back for its timeline and past states
    metrics: Metrics = field(default_factory=Metrics)  # this worker's own registry (/metrics)
    keys: KeyRing | None = None  # the sessions' data keys and the people index (erasure)
    # (METHOD, path) -> the access the route declares (filled as the views register).
    access: dict[tuple[str, str], Access] = field(default_factory=dict)
    # Recently active sessions and events folded per second, for the explorer (streams.observability.activity).
    activity: Activity = field(default_factory=Activity)
    # Set while the group's assignment is known, cleared from a rebalance's revocation until its
    # assignment (streams.control.app): requests wait for it before choosing a partition's owner.
    assignment_known: asyncio.Event = field(default_factory=asyncio.Event)

    def read_session(self, session_id: str) -> bytes | None:
        """The stored state of a session this worker owns (callers route to the owner first).

        Raises ``streams.fold.store.StoreClosed`` while its partition is not served here."""
        return self.fold.read(session_id.encode())

    def is_ready(self) -> bool:
        """Partitions assigned, and every one of them restored and folded by the running loop."""
        return bool(self.app.rebalancing is False and self.fold.ready)
