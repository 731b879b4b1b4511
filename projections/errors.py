"""What the fold refuses: an event the rules reject, not a bug."""

from __future__ import annotations


class EventRejected(ValueError):
    """A valid event the session refuses (an item in another currency than the cart's); ``str()``
    is the reason, for people. The worker dead-letters the event and the session stays as it was."""
