"""Which fields of the contract hold personal data: encrypted in the log, erased with the session.

The event fields and state keys below, plus ``public.storeUserEmail`` and any public key the rules
file lists (``personal_public_keys``). Everything else (event metadata, URLs, utm values, carts,
price tables) is not personal here and stays readable after an erasure (docs/security.md).

Pure declarations and path walks over parsed JSON; the encryption itself is ``streams.privacy``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

# A personal value in the log: ``"enc:v1:<data key id>:<base64url(nonce + ciphertext)>"``.
SEALED_PREFIX: Final = "enc:v1:"
# The same, as the bytes of a JSON string: a record or state holding none of it is not parsed.
SEALED_MARK: Final = b'"enc:v1:'

# auth.logged_in's data (and the login facts the fold keeps of it).
LOGIN_FIELDS: Final = frozenset({"userId", "email", "firstName", "lastName", "phone", "document"})
ALWAYS_PERSONAL_PUBLIC_KEYS: Final = frozenset({"storeUserEmail", "vtex-impersonated-customer-email"})
# What the transformers derive from a login.
PERSONAL_STATE_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "authentication": frozenset({"storeUserId", "storeUserEmail", "adminUserId", "adminUserEmail"}),
    "profile": frozenset({"id", "email", "firstName", "lastName", "phone", "document"}),
    "impersonate": frozenset({"storeUserId", "storeUserEmail"}),
    "cookie": frozenset({"vtex-impersonated-customer-email"}),
}
# The key names that are personal in any other namespace (a session app's own: its answers are
# recorded in the log, ``session.transformed``, and the app's namespace is not known here).
APP_PERSONAL_KEYS: Final = LOGIN_FIELDS | {"storeUserId", "storeUserEmail", "adminUserId", "adminUserEmail"}
# Namespaces whose personal keys are those above (or none): an app may not write them.
_KNOWN_NAMESPACES: Final = frozenset({"public", "account", "store", "rnb", "checkout", "search", "cookie", "cart"})
# A place inside a parsed JSON document: the container, the key in it, and the dotted path (the
# path is bound into the ciphertext, so a value cannot be moved to another field or session).
Place = tuple[dict[str, Any], str, str]


def public_keys(extra: frozenset[str]) -> frozenset[str]:
    return ALWAYS_PERSONAL_PUBLIC_KEYS | extra


def event_places(record: dict[str, Any], personal_public: frozenset[str]) -> Iterator[Place]:
    """The personal values of one event record (parsed CloudEvents JSON) that are set."""
    data = record.get("data")
    if not isinstance(data, dict):
        return
    kind = record.get("type")
    if kind == "auth.logged_in":
        for name in sorted(LOGIN_FIELDS & data.keys()):
            if data[name] is not None:
                yield data, name, f"data.{name}"
    elif kind == "session.public_set":
        public = data.get("public")
        if isinstance(public, dict):
            for name in sorted(personal_public & public.keys()):
                entry = public[name]
                if isinstance(entry, dict) and entry.get("value") is not None:
                    yield entry, "value", f"data.public.{name}.value"
    elif kind == "session.cookies_recorded":
        cookies = data.get("cookies")
        if isinstance(cookies, dict):
            for name in sorted(PERSONAL_STATE_KEYS["cookie"] & cookies.keys()):
                if isinstance(cookies[name], str):
                    yield cookies, name, f"data.cookies.{name}"
    elif kind == "session.transformed":
        outputs = data.get("outputs")
        if isinstance(outputs, dict):
            for namespace in sorted(outputs):
                keys = outputs[namespace]
                if not isinstance(keys, dict):
                    continue
                names = personal_public if namespace == "public" else APP_PERSONAL_KEYS
                for name in sorted(names & keys.keys()):
                    entry = keys[name]
                    # "" clears the key (VTEX's merge): it stays readable to the fold.
                    if isinstance(entry, dict) and entry.get("value") not in (None, ""):
                        yield entry, "value", f"data.outputs.{namespace}.{name}.value"


def state_places(state: dict[str, Any], personal_public: frozenset[str]) -> Iterator[Place]:
    """The personal values of one session state (parsed, as ``schemas.session`` encodes it)."""
    namespaces = state.get("namespaces") or {}
    for namespace, names in (*PERSONAL_STATE_KEYS.items(), ("public", personal_public), *_app_namespaces(namespaces)):
        keys = namespaces.get(namespace)
        if not keys:
            continue
        for name in sorted(names & keys.keys()):
            entry = keys[name]
            if isinstance(entry, dict) and entry.get("value") is not None:
                yield entry, "value", f"namespaces.{namespace}.{name}.value"
    login = (state.get("facts") or {}).get("login")
    if isinstance(login, dict):
        for name in sorted(LOGIN_FIELDS & login.keys()):
            if login[name] is not None:
                yield login, name, f"facts.login.{name}"


def is_personal_state(namespaces: Mapping[str, Any], facts: Mapping[str, Any], personal_public: frozenset[str]) -> bool:
    """Cheap check before any encoding (once per written session): does a state hold a personal
    value at all? Key-set intersections first: most states hold none of the names."""
    if "login" in facts:
        return True
    for namespace, names in (*PERSONAL_STATE_KEYS.items(), ("public", personal_public), *_app_namespaces(namespaces)):
        keys = namespaces.get(namespace)
        if keys:
            for name in names & keys.keys():
                if (keys[name] or {}).get("value") is not None:
                    return True
    return False


def _app_namespaces(namespaces: Mapping[str, Any]) -> Iterator[tuple[str, frozenset[str]]]:
    """The namespaces of session apps a state holds, each with the personal key names."""
    for namespace in namespaces.keys() - _KNOWN_NAMESPACES - PERSONAL_STATE_KEYS.keys():
        yield namespace, APP_PERSONAL_KEYS


def identifiers(record: dict[str, Any], personal_public: frozenset[str]) -> list[tuple[str, str]]:
    """(kind, normalized value) of the identifiers an event records, for the people index."""
    found: list[tuple[str, str]] = []
    data = record.get("data")
    if not isinstance(data, dict):
        return found
    if record.get("type") == "auth.logged_in":
        for field in ("email", "userId"):
            if isinstance(data.get(field), str):
                found.append((field, normalize(field, data[field])))
    elif record.get("type") == "session.public_set":
        entry = (data.get("public") or {}).get("storeUserEmail")
        if isinstance(entry, dict) and isinstance(entry.get("value"), str):
            found.append(("email", normalize("email", entry["value"])))
    return found


def normalize(kind: str, value: str) -> str:
    """E-mail addresses compare case-insensitively; user ids exactly."""
    return value.strip().lower() if kind == "email" else value


def stand_in(path: str, word: str) -> str:
    """What replaces a value that cannot be shown (``erased``, ``redacted``): still valid where the
    contract checks the value's shape (an e-mail address keeps an ``@``)."""
    parts = [part for part in path.split(".") if part != "value"]
    if parts and parts[-1].lower().endswith("email"):
        return f"[{word}]@{word}.invalid"
    return f"[{word}]"
