"""Streams of events with retries, for the tests that kill, restart and rebuild workers.

Each session's last event is a marker (``public.marker``): once a worker serves it, every event
sent before it for that session has been folded, and the whole document can be compared with the
pure fold of the session's distinct events.
"""

from __future__ import annotations

import random

import orjson

from projections.rules import Rules
from projections.session import fold
from schemas.events import event_from_object
from schemas.session import encode_view
from streams.devkit.events import campaign_click, new_session_id, page_view
from tests.support.http import http_client
from tests.support.sessions import public_has, wait_for_session


def stream_of_events(seed: int, sessions: int, events: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """A shuffled stream over ``sessions`` sessions with ~5% of events sent again (same id) soon
    after, then one marker event per session; and each session's distinct events in order."""
    rng = random.Random(seed)
    ids = [new_session_id() for _ in range(sessions)]
    stream: list[dict] = []
    distinct: dict[str, list[dict]] = {sid: [] for sid in ids}
    for n in range(events):
        sid = rng.choice(ids)
        if rng.random() < 0.1:
            event = campaign_click(sid, n, utm_campaign=rng.choice(["blackfriday", "summer"]))
        else:
            event = page_view(sid, f"https://s/p?n={n}&color={rng.choice('rgb')}", n)
        stream.append(event)
        distinct[sid].append(event)
        if rng.random() < 0.05:
            stream.append(event)  # a retry: same id
    for sid in ids:
        marker = page_view(sid, "https://s/p?marker=end", events)
        stream.append(marker)
        distinct[sid].append(marker)
    return stream, distinct


def expected_views(distinct: dict[str, list[dict]], rules: Rules) -> dict[str, dict]:
    """The served document of each session: the pure fold of its distinct events."""
    return {
        sid: orjson.loads(encode_view(fold((event_from_object(e) for e in events), rules=rules)))
        for sid, events in distinct.items()
        if events
    }


def served_views(url: str, sids, timeout: float = 90.0) -> dict[str, dict]:
    """Each session as served once its marker (its last event) is folded."""
    with http_client(base_url=url, timeout=10) as client:
        return {sid: wait_for_session(client, sid, public_has("marker"), timeout)[0] for sid in sids}
