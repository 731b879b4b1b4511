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
class StoreDefaults:
    channel: str | None = None
    currency_code: str | None = None
    currency_symbol: str | None = None
    country_code: str | None = None
    culture_info: str | None = None
    channel_privacy: str | None = None
    account_id: str | None = None


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


@dataclass(frozen=True)
class Rules:
    default_account: str | None = None
    accounts: Mapping[str, StoreDefaults] = field(default_factory=dict)
    campaigns: tuple[CampaignRule, ...] = ()
    regions: tuple[RegionRule, ...] = ()
    customer_price_tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Keys of ``public`` that hold personal data besides ``storeUserEmail`` (encrypted in the log
    # and erased with the session: ``schemas.personal``).
    personal_public_keys: frozenset[str] = frozenset()

    def store_for(self, account: str | None) -> StoreDefaults:
        name = account or self.default_account
        if name is not None and name in self.accounts:
            return self.accounts[name]
        return StoreDefaults()


EMPTY_RULES = Rules()

CAMPAIGN_KEYS = frozenset({"utm_source", "utm_campaign", "utmi_cp"})
_STORE_FIELDS = {
    "channel": "channel",
    "currency_code": "currency_code",
    "currency_symbol": "currency_symbol",
    "country_code": "country_code",
    "culture_info": "culture_info",
    "channel_privacy": "channel_privacy",
    "id": "account_id",
}


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
    for name, raw in _table(root.get("accounts", {}), "$.accounts").items():
        path = f"$.accounts.{name}"
        entry = _table(raw, path)
        _unknown(entry, set(_STORE_FIELDS), path)
        accounts[name] = StoreDefaults(**{_STORE_FIELDS[k]: _text(v, f"{path}.{k}") for k, v in entry.items()})

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
        _unknown(entry, {"country", "postal_code", "postal_code_prefix", "region_id"}, path)
        exact, prefix = entry.get("postal_code"), entry.get("postal_code_prefix")
        if (exact is None) == (prefix is None):
            raise RulesError(f"{path}: give exactly one of postal_code, postal_code_prefix")
        regions.append(
            RegionRule(
                country=_text(entry.get("country"), f"{path}.country").upper(),
                region_id=_text(entry.get("region_id"), f"{path}.region_id"),
                postal_code=normalize_postal_code(_text(exact, f"{path}.postal_code")) if exact else None,
                postal_code_prefix=(
                    normalize_postal_code(_text(prefix, f"{path}.postal_code_prefix")) if prefix else None
                ),
            )
        )

    customers: dict[str, tuple[str, ...]] = {}
    for email, raw in _table(root.get("customers", {}), "$.customers").items():
        path = f"$.customers.{email!r}"
        entry = _table(raw, path)
        _unknown(entry, {"price_tables"}, path)
        customers[email.lower()] = _price_tables(entry.get("price_tables", []), f"{path}.price_tables")

    personal = root.get("personal_public_keys", [])
    if not isinstance(personal, list) or not all(isinstance(k, str) and 0 < len(k) <= 256 for k in personal):
        raise RulesError("$.personal_public_keys: expected a list of public key names")

    return Rules(default_account, accounts, tuple(campaigns), tuple(regions), customers, frozenset(personal))
