"""Event-to-visible accounting for the stream phases: when each produced event became visible, and
how far the fold was behind the stream at each moment (its lag), from the worker's changelog.

An event is visible once the changelog holds a record of its session whose ``eventCount`` is at
least the event's own count in that session (the record's producer timestamp is the moment). The
lag at time t is the number of events sent by t that are not visible at t: a fold that keeps up
has a lag that stays within a band; one that does not has a lag that grows with the phase.
Pure functions: the phases feed them what they recorded.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence


def visible_at_ms(records: Sequence[tuple[str, int]], changes: Iterable[tuple[str, int | None, int]]) -> dict[int, int]:
    """index -> the timestamp (ms) of the changelog record that made ``records[index]`` visible.

    ``records`` are (session, the session's event count once this event is folded), in the order
    sent; ``changes`` are (session, eventCount or None, timestamp ms) in changelog order (a
    session's records are on one partition, so in order). Events never made visible are absent."""
    pending: dict[str, deque[int]] = defaultdict(deque)
    for index, (session, _) in enumerate(records):
        pending[session].append(index)
    found: dict[int, int] = {}
    for session, count, timestamp_ms in changes:
        if count is None:
            continue
        queue = pending.get(session)
        while queue and records[queue[0]][1] <= count:
            found[queue.popleft()] = timestamp_ms
    return found


def lag_by_second(sent_ns: Sequence[int], visible_ms: dict[int, int], step_ms: int = 100) -> list[int]:
    """The worst lag (events sent, not yet visible) in each second from the first send to the last,
    sampled every ``step_ms``. ``sent_ns[i]`` is event i's send time (wall clock, ns)."""
    if not sent_ns:
        return []
    sent = sorted(ns / 1e6 for ns in sent_ns)
    seen = sorted(visible_ms.values())
    first, last = sent[0], sent[-1]
    seconds = int((last - first) // 1000) + 1
    worst = [0] * seconds
    at = first
    while at <= last:
        lag = bisect.bisect_right(sent, at) - bisect.bisect_right(seen, at)
        second = int((at - first) // 1000)
        worst[second] = max(worst[second], lag)
        at += step_ms
    return worst


def lag_bounded(worst_by_second: Sequence[int], floor: int) -> bool:
    """The fold kept up: the worst lag of the phase's last third is no more than the worst before
    it, or ``floor`` (a lag any fold has: the events of its batch wait and linger) if that is more.
    A lag that grows with the phase's length makes its last third the worst: a backlog."""
    if not worst_by_second:
        return False
    third = max(1, len(worst_by_second) // 3)
    before = worst_by_second[:-third] or [0]
    return max(worst_by_second[-third:]) <= max(max(before), floor)
