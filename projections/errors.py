"""What the fold raises: an event the rules reject (not a bug), a transformer that breaks its contract.

The compiled build (``make compile``, ``projections.native``) leaves this module out: mypyc makes no
native class of a subclass of ``RuntimeError``, so the fold's ``TransformerContractError`` lives here."""

from __future__ import annotations

from typing import ClassVar


class EventRejected(ValueError):
    """A valid event the session refuses (an item in another currency than the cart's); ``str()``
    is the reason, for people. The worker dead-letters the event and the session stays as it was."""

    # The fold engine words the dead letter's reason with ``str()`` alone (not as a failure).
    dead_letter_reason: ClassVar[bool] = True


class TransformerContractError(RuntimeError):
    """A transformer read an input or wrote an output it did not declare."""
