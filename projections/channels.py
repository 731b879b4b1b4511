"""Which sales channel and binding a session has: the one rule, used by the fold and by the API.

VTEX's store-session takes ``public.sc`` as a *request* for a trade policy: granted when it is one
of the shopper's options, else refused (401 for an anonymous shopper, 403 for a logged-in one).
Here the options are the account's sales channels of the rules file; a ``private`` one only for a
logged-in customer the rules allow it. The fold never refuses (an event already on the log must
fold, whoever wrote it): a refused request leaves the session on the channel it would have without
it, and the API refuses the request before appending anything, from the same answer.

Precedence: a granted ``public.sc``, else the binding's channel, else the account's default.
The binding: ``public.__bindingId`` when the account has it, else the one the session was created
under (its host). An id the account does not have selects nothing: render-session sends its own
binding id on every page load, also to stores that define none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from projections.rules import Binding, Channel, Rules, StoreDefaults

# What the choice reads: the account and binding recorded at creation, the client's requests, and
# the login (a private channel is open to logged-in customers only; the e-mail names them). Typed in
# full: the compiled build (mypyc) checks the transformers, which use it, before it infers this.
INPUTS: Final[tuple[str, ...]] = (
    "@account",
    "@binding",
    "public.sc",
    "public.__bindingId",
    "authentication.storeUserEmail",
)


@dataclass(frozen=True)
class ChannelChoice:
    channel: Channel | None  # None: the account has no sales channels (the store fields alone)
    binding: Binding | None
    refused: str | None = None  # why the requested ``sc`` was not granted (None: granted or none asked)


def _text(value: Any) -> str | None:
    # Clients write any JSON: the number 2 asks for channel "2"; anything else that is not a
    # channel id (true, an object) asks for a channel no store has, and is refused as such.
    return None if value is None or value == "" else str(value)


def choose(
    store: StoreDefaults,
    sc: Any,
    binding_id: Any,
    created_binding: Any,
    customer: str | None,
    customer_channels: Mapping[str, frozenset[str]],
) -> ChannelChoice:
    """The session's sales channel and binding.

    ``sc`` and ``binding_id`` are the public values as clients wrote them (any JSON), ``created_binding``
    the binding recorded when the session was made, ``customer`` the logged-in shopper's e-mail
    (None when anonymous)."""
    binding = store.bindings.get(_text(binding_id) or "") or store.bindings.get(_text(created_binding) or "")
    base = store.channels.get(binding.channel) if binding is not None else store.default_channel()
    requested = _text(sc)
    if requested is None or not store.channels:
        return ChannelChoice(base, binding)
    channel = store.channels.get(requested)
    if channel is None:
        known = ", ".join(sorted(store.channels))
        return ChannelChoice(base, binding, f"sales channel {requested!r} is not one of this store's ({known})")
    if channel.channel_privacy == "private":
        if customer is None:
            return ChannelChoice(base, binding, f"sales channel {requested!r} is private: log in first")
        if requested not in customer_channels.get(customer.lower(), frozenset()):
            return ChannelChoice(base, binding, f"sales channel {requested!r} is private and not open to this customer")
    return ChannelChoice(channel, binding)


def choose_for(read: Callable[[str], Any], rules: Rules) -> ChannelChoice:
    """:func:`choose` for a session, ``read`` giving the value of each of :data:`INPUTS` (None
    when absent or cleared): the store transformer and the API's refusal both ask this."""
    return choose(
        rules.store_for(read("@account")),
        read("public.sc"),
        read("public.__bindingId"),
        read("@binding"),
        read("authentication.storeUserEmail"),
        rules.customer_channels,
    )
