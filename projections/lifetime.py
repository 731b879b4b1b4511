"""A session's lifetime: the one rule for when an inactive session has expired.

A session lives until more than its lifetime has passed since its latest event. The fold asks it
with the time of the next event (that event then starts the session afresh: ``projections.step``),
a read or the expiry sweep with the clock of now, a replay with the instant it looks at; every one
measures from the same activity, the latest event *time* folded into the session (epoch ms), so a
replay or an export meets the expiries the worker met.

Pure: times come from the caller, in whole milliseconds, as the worker stores a session's activity.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FOREVER = 0  # a lifetime of 0: sessions never expire
UNKNOWN = 0  # an activity of 0: none yet, or a value stored before the activity was kept


def expired(activity_ms: int, at_ms: int, lifetime_ms: int) -> bool:
    """The session whose latest event was at ``activity_ms`` had expired by ``at_ms``.

    Never with a lifetime of ``FOREVER``, nor with an ``UNKNOWN`` activity (nothing to measure from:
    such a session waits for its next event, which sets the activity)."""
    return lifetime_ms != FOREVER and activity_ms != UNKNOWN and at_ms - activity_ms > lifetime_ms


def epoch_ms(moment: datetime) -> int:
    """A timezone-aware time in whole milliseconds since the epoch (how activity is kept)."""
    return int(moment.timestamp() * 1000)


def lifetime_ms_of(lifetime: timedelta | None) -> int:
    """A lifetime as the rule takes it (None: forever)."""
    return FOREVER if lifetime is None else int(lifetime.total_seconds() * 1000)
