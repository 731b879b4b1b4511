"""The ``items=`` filter of the storefront API: ``ns.key,ns.key2``, ``ns.*`` or ``*``."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.session import Namespaces


class ItemsError(ValueError):
    """An ``items`` entry that is not ``*``, ``ns.*`` or ``ns.key``."""


@dataclass(frozen=True)
class Items:
    everything: bool
    namespaces: frozenset[str]  # ns.*
    keys: frozenset[tuple[str, str]]  # ns.key


def parse_items(text: str) -> Items:
    everything = False
    namespaces: set[str] = set()
    keys: set[tuple[str, str]] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            everything = True
            continue
        namespace, dot, key = item.partition(".")
        if not dot or not namespace or not key:
            raise ItemsError(f"items entry {item!r} is not 'namespace.key', 'namespace.*' or '*'")
        if key == "*":
            namespaces.add(namespace)
        else:
            keys.add((namespace, key))
    return Items(everything, frozenset(namespaces), frozenset(keys))


def select(namespaces: Namespaces, items: Items) -> Namespaces:
    """Only the requested keys; requested keys the session lacks are simply absent."""
    if items.everything:
        return namespaces
    selected: Namespaces = {}
    for namespace in items.namespaces:
        if namespace in namespaces:
            selected[namespace] = dict(namespaces[namespace])
    for namespace, key in sorted(items.keys):
        entry = namespaces.get(namespace, {}).get(key)
        if entry is not None:
            selected.setdefault(namespace, {})[key] = entry
    return selected
