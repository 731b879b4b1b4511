"""The rules the transformers apply: configuration, not code.

Parsed from a plain mapping (the worker reads it from a TOML file, see ``ops/rules.sample.toml``
and docs/operations.md's "Rules file" section). Parsing is strict and names the offending path, so a typo
fails at start-up instead of silently matching nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class RulesError(ValueError):
    """An invalid rules document; the message starts with the path of the bad entry."""


@dataclass(frozen=True)
class Channel:
    """A sales channel (VTEX's trade policy): what ``store.*`` holds while it is the session's."""

    id: str
    currency_code: str | None = None
    currency_symbol: str | None = None
    country_code: str | None = None
    culture_info: str | None = None
    channel_privacy: str | None = None  # "public" or "private" (only customers allowed to use it)
    price_tables: tuple[str, ...] = ()  # -> store.priceTables, then profile.priceTables and the segment


@dataclass(frozen=True)
class Binding:
    """A binding (VTEX's store binding): a sales channel and a locale served under a host."""

    id: str
    channel: str
    locale: str | None = None
    host: str | None = None  # lowercased; a new session made on this host gets this binding


@dataclass(frozen=True)
class StoreDefaults:
    """An account: its default sales channel (``channel``), the store fields every channel falls
    back to, its sales channels and its bindings."""

    channel: str | None = None
    currency_code: str | None = None
    currency_symbol: str | None = None
    country_code: str | None = None
    culture_info: str | None = None
    channel_privacy: str | None = None
    account_id: str | None = None
    channels: Mapping[str, Channel] = field(default_factory=dict)
    bindings: Mapping[str, Binding] = field(default_factory=dict)

    def default_channel(self) -> Channel | None:
        """The channel of a session that asks for none: ``channel``, else the first one listed;
        without any, the account-level fields alone (a store with no ``channel`` at all)."""
        if self.channel is not None:
            return self.channels.get(self.channel)
        if self.channels:
            return next(iter(self.channels.values()))
        return None


@dataclass(frozen=True)
class CampaignRule:
    """A campaign audience: every condition must hold (values compare case-insensitively)."""

    name: str
    when: tuple[tuple[str, str], ...]  # (public key, expected value)
    price_tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegionRule:
    country: str
    region_id: str
    postal_code: str | None = None  # exact, after normalization
    postal_code_prefix: str | None = None
    area: tuple[float, float, float, float] | None = None  # (west, south, east, north), degrees


class CoordinatesError(ValueError):
    """Not ``"longitude,latitude"`` in degrees (VTEX's ``geoCoordinates``)."""


def parse_coordinates(value: Any) -> tuple[float, float]:
    """``"lon,lat"`` (VTEX's order: longitude first) -> (lon, lat). Raises CoordinatesError."""
    if not isinstance(value, str):
        raise CoordinatesError('expected a string "longitude,latitude"')
    parts = value.split(",")
    if len(parts) != 2:
        raise CoordinatesError('expected "longitude,latitude", e.g. "-46.6388,-23.5489"')
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise CoordinatesError('expected two decimal numbers "longitude,latitude"') from None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise CoordinatesError("longitude must be within -180..180 and latitude within -90..90")
    return lon, lat


@dataclass(frozen=True)
class Rules:
    default_account: str | None = None
    accounts: Mapping[str, StoreDefaults] = field(default_factory=dict)
    campaigns: tuple[CampaignRule, ...] = ()
    regions: tuple[RegionRule, ...] = ()
    customer_price_tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The private sales channels each customer (by e-mail, lowercased) may use once logged in.
    customer_channels: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Telesales: the customers (e-mail, lowercased) who may impersonate others once logged in, and
    # the user id of customers (for impersonate.storeUserId).
    impersonators: frozenset[str] = frozenset()
    customer_ids: Mapping[str, str] = field(default_factory=dict)
    # Keys of ``public`` that hold personal data besides ``storeUserEmail`` (encrypted in the log
    # and erased with the session: ``schemas.personal``).
    personal_public_keys: frozenset[str] = frozenset()

    def store_for(self, account: str | None) -> StoreDefaults:
        name = account or self.default_account
        if name is not None and name in self.accounts:
            return self.accounts[name]
        return StoreDefaults()

    def account_of_host(self, host: str) -> tuple[str, Binding] | None:
        """The account and binding whose ``host`` is ``host`` (lowercased, without a port)."""
        for name, store in self.accounts.items():
            for binding in store.bindings.values():
                if binding.host == host:
                    return name, binding
        return None


EMPTY_RULES = Rules()

CAMPAIGN_KEYS = frozenset({"utm_source", "utm_campaign", "utmi_cp"})
# The store fields an account gives every channel that does not set them itself.
_CHANNEL_FIELDS = ("currency_code", "currency_symbol", "country_code", "culture_info", "channel_privacy")
_STORE_FIELDS = {**{name: name for name in _CHANNEL_FIELDS}, "channel": "channel", "id": "account_id"}
_CHANNEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PRIVACY = ("public", "private")


def normalize_postal_code(value: str) -> str:
    return re.sub(r"[\s.-]", "", value).upper()


def _table(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RulesError(f"{path}: expected a table, got {type(value).__name__}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise RulesError(f"{path}: expected a non-empty string")
    return value


def _price_tables(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v and "," not in v for v in value):
        raise RulesError(f"{path}: expected a list of price table names (no commas)")
    return tuple(value)


def _array(root: Mapping[str, Any], name: str) -> list[Any]:
    value = root.get(name, [])
    if not isinstance(value, list):
        raise RulesError(f"$.{name}: expected an array of tables ([[{name}]])")
    return value


def _unknown(table: Mapping[str, Any], allowed: set[str], path: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise RulesError(f"{path}.{extra[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")


def parse_rules(document: Mapping[str, Any]) -> Rules:
    """A rules mapping (as loaded from TOML or JSON) -> :class:`Rules`. Raises :class:`RulesError`."""
    root = _table(document, "$")
    _unknown(root, {"default_account", "accounts", "campaigns", "regions", "customers", "personal_public_keys"}, "$")

    accounts: dict[str, StoreDefaults] = {}
    hosts: dict[str, str] = {}
    for name, raw in _table(root.get("accounts", {}), "$.accounts").items():
        accounts[name] = _account(name, _table(raw, f"$.accounts.{name}"), hosts)

    default_account = root.get("default_account")
    if default_account is not None:
        default_account = _text(default_account, "$.default_account")
        if default_account not in accounts:
            raise RulesError(f"$.default_account: {default_account!r} is not under [accounts]")

    campaigns = []
    for index, raw in enumerate(_array(root, "campaigns")):
        path = f"$.campaigns[{index}]"
        entry = _table(raw, path)
        _unknown(entry, {"name", "when", "price_tables"}, path)
        when = _table(entry.get("when"), f"{path}.when")
        if not when:
            raise RulesError(f"{path}.when: needs at least one condition")
        _unknown(when, set(CAMPAIGN_KEYS), f"{path}.when")
        campaigns.append(
            CampaignRule(
                name=_text(entry.get("name"), f"{path}.name"),
                when=tuple(sorted((k, _text(v, f"{path}.when.{k}").lower()) for k, v in when.items())),
                price_tables=_price_tables(entry.get("price_tables", []), f"{path}.price_tables"),
            )
        )

    regions = []
    for index, raw in enumerate(_array(root, "regions")):
        path = f"$.regions[{index}]"
        entry = _table(raw, path)
        _unknown(entry, {"country", "postal_code", "postal_code_prefix", "area", "region_id"}, path)
        exact, prefix, area = entry.get("postal_code"), entry.get("postal_code_prefix"), entry.get("area")
        if sum(value is not None for value in (exact, prefix, area)) != 1:
            raise RulesError(f"{path}: give exactly one of postal_code, postal_code_prefix, area")
        regions.append(
            RegionRule(
                country=_text(entry.get("country"), f"{path}.country").upper(),
                region_id=_text(entry.get("region_id"), f"{path}.region_id"),
                postal_code=normalize_postal_code(_text(exact, f"{path}.postal_code")) if exact else None,
                postal_code_prefix=(
                    normalize_postal_code(_text(prefix, f"{path}.postal_code_prefix")) if prefix else None
                ),
                area=_area(area, f"{path}.area") if area is not None else None,
            )
        )

    customers: dict[str, tuple[str, ...]] = {}
    customer_channels: dict[str, frozenset[str]] = {}
    impersonators: set[str] = set()
    customer_ids: dict[str, str] = {}
    for email, raw in _table(root.get("customers", {}), "$.customers").items():
        path = f"$.customers.{email!r}"
        entry = _table(raw, path)
        _unknown(entry, {"price_tables", "channels", "can_impersonate", "user_id"}, path)
        can_impersonate = entry.get("can_impersonate", False)
        if not isinstance(can_impersonate, bool):
            raise RulesError(f"{path}.can_impersonate: expected true or false")
        if can_impersonate:
            impersonators.add(email.lower())
        if "user_id" in entry:
            customer_ids[email.lower()] = _text(entry["user_id"], f"{path}.user_id")
        customers[email.lower()] = _price_tables(entry.get("price_tables", []), f"{path}.price_tables")
        channels = entry.get("channels", [])
        if not isinstance(channels, list) or not all(isinstance(c, str) and _CHANNEL_ID.match(c) for c in channels):
            raise RulesError(f"{path}.channels: expected a list of sales channel ids")
        if channels:
            customer_channels[email.lower()] = frozenset(channels)

    personal = root.get("personal_public_keys", [])
    if not isinstance(personal, list) or not all(isinstance(k, str) and 0 < len(k) <= 256 for k in personal):
        raise RulesError("$.personal_public_keys: expected a list of public key names")

    return Rules(
        default_account=default_account,
        accounts=accounts,
        campaigns=tuple(campaigns),
        regions=tuple(regions),
        customer_price_tables=customers,
        customer_channels=customer_channels,
        impersonators=frozenset(impersonators),
        customer_ids=customer_ids,
        personal_public_keys=frozenset(personal),
    )


def _account(name: str, entry: Mapping[str, Any], hosts: dict[str, str]) -> StoreDefaults:
    """One ``[accounts.<name>]`` table: its fields, ``[accounts.<name>.channels.<id>]`` and
    ``[accounts.<name>.bindings.<id>]``. ``hosts`` (binding host -> where) spans every account."""
    path = f"$.accounts.{name}"
    _unknown(entry, {*_STORE_FIELDS, "channels", "bindings"}, path)
    fields = {_STORE_FIELDS[k]: _text(v, f"{path}.{k}") for k, v in entry.items() if k not in ("channels", "bindings")}
    if fields.get("channel_privacy") not in (None, *_PRIVACY):
        raise RulesError(f"{path}.channel_privacy: expected one of {', '.join(_PRIVACY)}")
    inherited = {k: fields.get(k) for k in _CHANNEL_FIELDS}
    channels: dict[str, Channel] = {}
    default = fields.get("channel")
    if default is not None:
        # The account-level fields are its default channel's (the format before channels existed).
        channels[default] = _channel(default, inherited, ())
    for channel_id, raw in _table(entry.get("channels", {}), f"{path}.channels").items():
        where = f"{path}.channels.{channel_id}"
        if not _CHANNEL_ID.match(channel_id):
            raise RulesError(f"{where}: a sales channel id has 1 to 64 letters, digits, '_' or '-'")
        table = _table(raw, where)
        _unknown(table, {*_CHANNEL_FIELDS, "price_tables"}, where)
        own = {k: _text(v, f"{where}.{k}") for k, v in table.items() if k != "price_tables"}
        if own.get("channel_privacy") not in (None, *_PRIVACY):
            raise RulesError(f"{where}.channel_privacy: expected one of {', '.join(_PRIVACY)}")
        tables = _price_tables(table.get("price_tables", []), f"{where}.price_tables")
        channels[channel_id] = _channel(channel_id, {**inherited, **own}, tables)
    bindings: dict[str, Binding] = {}
    for binding_id, raw in _table(entry.get("bindings", {}), f"{path}.bindings").items():
        where = f"{path}.bindings.{binding_id}"
        if not 0 < len(binding_id) <= 128:
            raise RulesError(f"{where}: a binding id has 1 to 128 characters")
        table = _table(raw, where)
        _unknown(table, {"channel", "locale", "host"}, where)
        channel = _text(table.get("channel"), f"{where}.channel")
        if channel not in channels:
            raise RulesError(f"{where}.channel: {channel!r} is not a sales channel of account {name!r}")
        locale = _text(table["locale"], f"{where}.locale") if "locale" in table else None
        host = _text(table["host"], f"{where}.host").lower() if "host" in table else None
        if host is not None:
            if host in hosts:
                raise RulesError(f"{where}.host: {host!r} is already the host of {hosts[host]}")
            hosts[host] = where
        bindings[binding_id] = Binding(binding_id, channel, locale, host)
    return StoreDefaults(**fields, channels=channels, bindings=bindings)


def _channel(channel_id: str, fields: Mapping[str, str | None], price_tables: tuple[str, ...]) -> Channel:
    return Channel(
        channel_id,
        currency_code=fields.get("currency_code"),
        currency_symbol=fields.get("currency_symbol"),
        country_code=fields.get("country_code"),
        culture_info=fields.get("culture_info"),
        channel_privacy=fields.get("channel_privacy"),
        price_tables=price_tables,
    )


def _area(value: Any, path: str) -> tuple[float, float, float, float]:
    if not (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise RulesError(f"{path}: expected [west, south, east, north] in degrees")
    west, south, east, north = (float(v) for v in value)
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise RulesError(f"{path}: expected west <= east within -180..180 and south <= north within -90..90")
    return west, south, east, north
