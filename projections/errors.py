"""What the fold refuses: an event the rules reject, not a bug."""

from __future__ import annotations

from typing import ClassVar


class EventRejected(ValueError):
    """A valid event the session refuses (an item in another currency than the cart's); ``str()``
    is the reason, for people. The worker dead-letters the event and the session stays as it was."""

    # The fold engine words the dead letter's reason with ``str()`` alone (not as a failure).
    dead_letter_reason: ClassVar[bool] = True
