"""Transformers: pure rules that derive namespaces from other namespaces, run to a fixpoint.

Each declares what it reads (``inputs``) and the only keys it may write (``outputs``); keys are
``"namespace.key"``, or ``"@fact"`` for what events recorded outside the namespaces (the login, the
account). A transformer returns the value of every output it has (absent = no value), so the
outputs are a function of the inputs and the rules alone. After an event, the transformers whose
inputs changed run, then those whose inputs *they* changed, until nothing changes or the round
cap is reached (a cycle: logged, never a hang).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from projections import channels, regions
from projections.errors import TransformerContractError
from projections.rules import Channel, CoordinatesError, Rules, StoreDefaults, parse_coordinates
from schemas.session import Namespaces

log = logging.getLogger(__name__)

MAX_ROUNDS: Final = 8


class Inputs:
    """The declared inputs of one transformer, and nothing else."""

    __slots__ = ("_allowed", "_facts", "_name", "_namespaces")

    def __init__(self, name: str, namespaces: Namespaces, facts: Mapping[str, Any], allowed: frozenset[str]) -> None:
        self._name = name
        self._namespaces = namespaces
        self._facts = facts
        self._allowed = allowed

    def get(self, key: str) -> Any:
        """The input's value; ``None`` when absent or the empty string (VTEX's "cleared")."""
        if key not in self._allowed:
            raise TransformerContractError(f"transformer {self._name!r} read undeclared input {key!r}")
        value = read_value(self._namespaces, self._facts, key)
        return None if value == "" else value


def read_value(namespaces: Namespaces, facts: Mapping[str, Any], key: str) -> Any:
    if key.startswith("@"):
        return facts.get(key[1:])
    namespace, _, name = key.partition(".")
    entry = namespaces.get(namespace, {}).get(name)
    return None if entry is None else entry.get("value")


Compute = Callable[[Inputs, Rules], Mapping[str, Any]]


@dataclass(frozen=True)
class Transformer:
    name: str
    inputs: frozenset[str]
    outputs: frozenset[str]
    compute: Compute
    run_on_create: bool = False
    # The outputs in a fixed order (written in that order) as (key, namespace, name), computed once,
    # not per event. Outputs are namespace keys only: facts are what events record.
    ordered_outputs: tuple[tuple[str, str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = []
        for key in sorted(self.outputs):
            namespace, dot, name = key.partition(".")
            if key.startswith("@") or not dot:
                raise TransformerContractError(f"transformer {self.name!r}: output {key!r} is not a namespace.key path")
            ordered.append((key, namespace, name))
        object.__setattr__(self, "ordered_outputs", tuple(ordered))


_EMPTY: Final[dict[str, Any]] = {}
Memos = dict[int, tuple[Any, dict[Any, Any]]]


def _answers(memos: Memos, owner: Any) -> dict[Any, Any]:
    """The memoised answers for ``owner`` (a transformer set, a rule set): kept referenced with it,
    so its id is not reused while the entry lives; both levels are bounded."""
    memo = memos.get(id(owner))
    if memo is None or memo[0] is not owner:
        if len(memos) > 16:
            memos.clear()
        memo = memos[id(owner)] = (owner, {})
    if len(memo[1]) > 4096:
        memo[1].clear()
    return memo[1]


# Which transformers a set of changed keys wakes: events change the same few keys over and over.
_WAKES: Memos = {}


def _affected(transformers: tuple[Transformer, ...], changed: frozenset[str], created: bool) -> tuple[Transformer, ...]:
    answers = _answers(_WAKES, transformers)
    answer: tuple[Transformer, ...] | None = answers.get((changed, created))
    if answer is None:
        answer = tuple(t for t in transformers if (created and t.run_on_create) or not t.inputs.isdisjoint(changed))
        answers[(changed, created)] = answer
    return answer


def _csv(values: Iterable[str]) -> str | None:
    unique = list(dict.fromkeys([v for v in values if v]))
    return ",".join(unique) if unique else None


def _split_csv(value: Any) -> list[str]:
    return [part for part in str(value).split(",") if part] if value else []


# --- built-in transformers ---------------------------------------------------------------------


def _account(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    name = inputs.get("@account") or rules.default_account
    return {"account.accountName": name, "account.id": rules.store_for(name).account_id}


def _store(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    # vtex.store-session: the sales channel (projections.channels) and what it sets.
    store = rules.store_for(inputs.get("@account"))
    choice = channels.choose_for(inputs.get, rules)
    fields: Channel | StoreDefaults = choice.channel or store  # an account without channels: its own fields
    binding_locale = choice.binding.locale if choice.binding is not None else None
    culture = inputs.get("public.locale") or inputs.get("public.cultureInfo") or binding_locale or fields.culture_info
    return {
        "store.channel": choice.channel.id if choice.channel is not None else store.channel,
        "store.countryCode": fields.country_code,
        "store.cultureInfo": culture,
        "store.currencyCode": fields.currency_code,
        "store.currencySymbol": fields.currency_symbol,
        "store.channelPrivacy": fields.channel_privacy,
        "store.admin_cultureInfo": inputs.get("public.admin_cultureInfo"),
        "store.priceTables": _csv(choice.channel.price_tables) if choice.channel is not None else None,
    }


def _campaigns(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    present = tuple(str(inputs.get(f"public.{key}") or "").lower() for key in _CAMPAIGN_KEYS)
    campaigns, price_tables = _matching_campaigns(rules.campaigns, present)
    return {"rnb.campaigns": campaigns, "rnb.priceTables": price_tables}


_CAMPAIGN_KEYS: Final = ("utm_source", "utm_campaign", "utmi_cp")
# The answer for each utm triple, per rule set: pages repeat the same few campaign links, and
# matching every rule on every event was a fold hot spot.
_CAMPAIGN_ANSWERS: Memos = {}


def _matching_campaigns(rules: tuple[Any, ...], present: tuple[str, ...]) -> tuple[str | None, str | None]:
    answers = _answers(_CAMPAIGN_ANSWERS, rules)
    answer: tuple[str | None, str | None] | None = answers.get(present)
    if answer is None:
        values = dict(zip(_CAMPAIGN_KEYS, present, strict=True))
        matched = [rule for rule in rules if all(values.get(key) == value for key, value in rule.when)]
        answer = (
            _csv([rule.name for rule in matched]),
            _csv([table for rule in matched for table in rule.price_tables]),
        )
        answers[present] = answer
    return answer


def _region(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    # vtex.checkout-session's region: projections.regions.
    explicit = inputs.get("public.regionId")
    if explicit:
        return {"checkout.regionId": explicit}
    found = regions.region_inputs(
        inputs.get("public.country"), inputs.get("public.postalCode"), inputs.get("public.geoCoordinates")
    )
    if found is None:
        return {"checkout.regionId": None}
    answered, region = regions.recorded(inputs.get("@region"), found)
    return {"checkout.regionId": region if answered else regions.from_table(rules.regions, found)}


CHECKOUT_COOKIE: Final = "checkout.vtex.com"


def order_form_id(cookie: Any) -> str | None:
    """The orderForm id in the storefront's checkout cookie (``checkout.vtex.com=__ofid=<id>``)."""
    if not isinstance(cookie, str):
        return None
    for part in cookie.split("&"):
        name, _, value = part.partition("=")
        if name.strip() == "__ofid" and value.strip():
            return value.strip()
    return None


def _checkout(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    # vtex.checkout-session's cart: a client's explicit public.orderFormId wins over the cookie
    # (a headless client that has no cookie jar names its cart). VTEX's cartId is the same id.
    explicit = inputs.get("public.orderFormId")
    order_form = explicit if isinstance(explicit, str) else order_form_id(inputs.get(f"cookie.{CHECKOUT_COOKIE}"))
    return {"checkout.orderFormId": order_form, "checkout.cartId": order_form}


# vtex.search-session's location facets, in the order its segments show them.
_LOCATION_FACETS: Final = (("country", "public.country"), ("zip-code", "public.postalCode"))


def _search(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    # vtex.search-session: search.facets is "key=value;" pairs, the client's public.facets first,
    # then the shopper's location (what Intelligent Search filters by, and the segment carries).
    pairs: list[str] = []
    facets = inputs.get("public.facets")
    if isinstance(facets, str):
        pairs += [part.strip() for part in facets.split(";") if "=" in part and part.strip()[:1] != "="]
    for name, key in _LOCATION_FACETS:
        value = inputs.get(key)
        if isinstance(value, str) and value.strip():
            pairs.append(f"{name}={value.strip().upper() if name == 'country' else value.strip()}")
    geo = inputs.get("public.geoCoordinates")
    try:
        parse_coordinates(geo)
    except CoordinatesError:
        pass  # no coordinates, or not "lon,lat": no facet (the API refuses those at intake)
    else:
        pairs.append(f"coordinates={geo.replace(' ', '')}")
    return {"search.facets": "".join(f"{pair};" for pair in pairs) or None}


def _authentication(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    # vtex.authentication-session: the store user, and the admin user when the token is an admin's.
    login = inputs.get("@login") or {}
    admin = login.get("admin") is True
    return {
        "authentication.storeUserId": login.get("userId"),
        "authentication.storeUserEmail": login.get("email"),
        "authentication.adminUserId": login.get("userId") if admin else None,
        "authentication.adminUserEmail": login.get("email") if admin else None,
    }


IMPERSONATED_KEY: Final = "vtex-impersonated-customer-email"


def _impersonate(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    # vtex.impersonate-session: a logged-in telesales operator (the rules' can_impersonate) asks
    # for a customer by public.vtex-impersonated-customer-email, or the telesales UI's cookie of
    # that name; the customer's identity follows.
    operator = inputs.get("authentication.storeUserEmail")
    if operator is None:
        return {}
    allowed = str(operator).lower() in rules.impersonators
    customer = inputs.get(f"public.{IMPERSONATED_KEY}") or inputs.get(f"cookie.{IMPERSONATED_KEY}")
    email = str(customer).lower() if allowed and isinstance(customer, str) and "@" in customer else None
    return {
        "impersonate.canImpersonate": "true" if allowed else "false",
        "impersonate.storeUserEmail": email,
        "impersonate.storeUserId": rules.customer_ids.get(email) if email else None,
    }


def _profile(inputs: Inputs, rules: Rules) -> Mapping[str, Any]:
    # The sales channel's tables first (store.priceTables), then the shopper's, then campaigns'.
    shared_tables = [*_split_csv(inputs.get("store.priceTables")), *_split_csv(inputs.get("rnb.priceTables"))]
    impersonated = inputs.get("impersonate.storeUserEmail")
    if impersonated:
        # The operator sees the store as the customer: the customer's identity and price tables.
        tables = [*rules.customer_price_tables.get(str(impersonated), ()), *shared_tables]
        return {
            "profile.id": inputs.get("impersonate.storeUserId"),
            "profile.email": impersonated,
            "profile.priceTables": _csv(tables),
            "profile.isAuthenticated": "true",
        }
    user_id = inputs.get("authentication.storeUserId")
    if user_id:
        login = inputs.get("@login") or {}
        email = str(inputs.get("authentication.storeUserEmail") or login.get("email") or "")
        tables = [*rules.customer_price_tables.get(email.lower(), ()), *login.get("priceTables", ()), *shared_tables]
        return {
            "profile.id": user_id,
            "profile.email": email or None,
            "profile.firstName": login.get("firstName"),
            "profile.lastName": login.get("lastName"),
            "profile.phone": login.get("phone"),
            "profile.document": login.get("document"),
            "profile.priceTables": _csv(tables),
            "profile.isAuthenticated": "true",
        }
    # Identified without a login: only the customer's price tables, never their personal data.
    identified = str(inputs.get("public.storeUserEmail") or "").lower()
    tables = [*rules.customer_price_tables.get(identified, ()), *shared_tables]
    return {"profile.priceTables": _csv(tables), "profile.isAuthenticated": "false"}


def _keys(*keys: str) -> frozenset[str]:
    return frozenset(keys)


_PROFILE_OUTPUTS = _keys(
    "profile.id",
    "profile.email",
    "profile.firstName",
    "profile.lastName",
    "profile.phone",
    "profile.document",
    "profile.priceTables",
    "profile.isAuthenticated",
)

BUILT_IN: Final[tuple[Transformer, ...]] = (
    Transformer("account", _keys("@account"), _keys("account.accountName", "account.id"), _account, run_on_create=True),
    Transformer(
        "store",
        _keys(*channels.INPUTS, "public.locale", "public.cultureInfo", "public.admin_cultureInfo"),
        _keys(
            "store.channel",
            "store.countryCode",
            "store.cultureInfo",
            "store.currencyCode",
            "store.currencySymbol",
            "store.channelPrivacy",
            "store.admin_cultureInfo",
            "store.priceTables",
        ),
        _store,
        run_on_create=True,
    ),
    Transformer(
        "authentication",
        _keys("@login"),
        _keys(
            "authentication.storeUserId",
            "authentication.storeUserEmail",
            "authentication.adminUserId",
            "authentication.adminUserEmail",
        ),
        _authentication,
    ),
    Transformer(
        "impersonate",
        _keys("authentication.storeUserEmail", f"public.{IMPERSONATED_KEY}", f"cookie.{IMPERSONATED_KEY}"),
        _keys("impersonate.canImpersonate", "impersonate.storeUserEmail", "impersonate.storeUserId"),
        _impersonate,
    ),
    Transformer(
        "campaigns",
        _keys("public.utm_source", "public.utm_campaign", "public.utmi_cp"),
        _keys("rnb.campaigns", "rnb.priceTables"),
        _campaigns,
    ),
    Transformer(
        "region",
        _keys("public.country", "public.postalCode", "public.geoCoordinates", "public.regionId", "@region"),
        _keys("checkout.regionId"),
        _region,
    ),
    Transformer(
        "checkout",
        _keys("public.orderFormId", f"cookie.{CHECKOUT_COOKIE}"),
        _keys("checkout.orderFormId", "checkout.cartId"),
        _checkout,
    ),
    Transformer(
        "search",
        _keys("public.facets", "public.country", "public.postalCode", "public.geoCoordinates"),
        _keys("search.facets"),
        _search,
    ),
    Transformer(
        "profile",
        _keys(
            "authentication.storeUserId",
            "authentication.storeUserEmail",
            "public.storeUserEmail",
            "rnb.priceTables",
            "store.priceTables",
            "impersonate.storeUserEmail",
            "impersonate.storeUserId",
            "@login",
        ),
        _PROFILE_OUTPUTS,
        _profile,
        run_on_create=True,
    ),
)


# Keys VTEX serves with ``keepAlive: true`` (its OpenAPI example: the account's id).
KEEP_ALIVE: Final = frozenset({"account.id"})


def _write_all(namespaces: Namespaces, changes: list[tuple[str, Any]]) -> Namespaces:
    """``namespaces`` with the changes (None removes), copying each touched namespace once."""
    updated = dict(namespaces)
    copied: set[str] = set()
    for key, value in changes:
        namespace, _, name = key.partition(".")
        if namespace not in copied:
            updated[namespace] = dict(updated.get(namespace, {}))
            copied.add(namespace)
        if value is None:
            updated[namespace].pop(name, None)
        elif key in KEEP_ALIVE:
            updated[namespace][name] = {"value": value, "keepAlive": True}
        else:
            updated[namespace][name] = {"value": value}
    for namespace in copied:
        if not updated[namespace]:
            del updated[namespace]
    return updated


def run_transformers(
    namespaces: Namespaces,
    facts: Mapping[str, Any],
    rules: Rules,
    changed: Iterable[str],
    created: bool = False,
    transformers: tuple[Transformer, ...] = BUILT_IN,
) -> Namespaces:
    """Re-run the transformers affected by ``changed`` keys until nothing changes (or the cap)."""
    dirty = frozenset(changed)
    if not dirty and not created:
        return namespaces  # most page views: nothing a transformer reads has changed
    pending = _affected(transformers, dirty, created)
    for _ in range(MAX_ROUNDS):
        if not pending:
            return namespaces
        changed_now: set[str] = set()
        for transformer in pending:
            result = transformer.compute(Inputs(transformer.name, namespaces, facts, transformer.inputs), rules)
            if not transformer.outputs.issuperset(result):
                undeclared = sorted(set(result) - transformer.outputs)
                raise TransformerContractError(
                    f"transformer {transformer.name!r} wrote undeclared outputs {undeclared}"
                )
            changes = []
            for key, namespace, name in transformer.ordered_outputs:
                value = result.get(key)
                entry = namespaces.get(namespace, _EMPTY).get(name)
                if value != (None if entry is None else entry.get("value")):
                    changes.append((key, value))
            if changes:
                namespaces = _write_all(namespaces, changes)
                changed_now.update(key for key, _ in changes)
        pending = _affected(transformers, frozenset(changed_now), False)
    if pending:
        log.warning(
            "transformers still changing after %d rounds (a cycle?): %s; keeping the state as it is",
            MAX_ROUNDS,
            ", ".join(t.name for t in pending),
        )
    return namespaces
