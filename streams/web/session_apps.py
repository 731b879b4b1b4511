"""Session apps over HTTP: a store's own logic owning namespaces, in VTEX's contract.

On VTEX any app declares ``input`` and ``output`` keys per namespace in
``vtex.session/configuration.json`` and answers ``POST /_v/<app>/session/transform``: the body
holds every declared input (in session shape, ``{"<ns>": {"<key>": {"value": ...}}}``), the answer
the outputs it sets (a value overwrites, ``""`` clears, a key left out keeps its value). Here the
manifest is that file's object with each app's ``url`` added (``SESSIONS_SESSION_APPS_FILE``):

    {"storefront-permissions": {"url": "http://127.0.0.1:9000",
                                "input": {"authentication": ["storeUserEmail"]},
                                "output": {"public": ["sc", "facets"], "storefront-permissions": ["organization"]}}}

The storefront API calls an app before appending a change when the app's inputs (in the session
the change would make) differ from those it last answered for, and appends its answer as a
``session.transformed`` event: a replay, a rebuild or a timeline never calls it. Apps due in the
same round are called together and their answers appended in dependency order (an app whose
outputs another reads comes first); rounds repeat while answers change inputs, up to
:data:`MAX_ROUNDS`. An app that fails (unreachable, slow, a non-200 answer, not JSON) keeps its
last outputs: nothing is appended for it, the failure is logged and counted, and the next change
asks again. Outputs it did not declare are refused (dropped, logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiohttp import ClientError, ClientTimeout

from projections.transformers import BUILT_IN
from schemas.session import SessionState
from streams.config.settings import SettingsError

if TYPE_CHECKING:
    from streams.control.engine import Engine

log = logging.getLogger(__name__)

MAX_ROUNDS: Final = 4
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# Namespaces the built-in transformers (or the API itself) write: an app writing them would be
# overwritten on the next run of a transformer, so a manifest may not declare them as outputs.
RESERVED_NAMESPACES: Final = frozenset(key.partition(".")[0] for t in BUILT_IN for key in t.outputs) | {
    "cookie",
    "cart",
}

Key = tuple[str, str]  # (namespace, key)


@dataclass(frozen=True)
class SessionApp:
    name: str
    url: str  # the app's base URL; called at <url>/_v/<name>/session/transform
    inputs: tuple[Key, ...]
    outputs: frozenset[Key]

    @property
    def transform_url(self) -> str:
        return f"{self.url.rstrip('/')}/_v/{self.name}/session/transform"


def _keys(value: Any, path: str) -> list[Key]:
    if not isinstance(value, Mapping):
        raise SettingsError(f"{path}: expected {{namespace: [keys]}}")
    keys: list[Key] = []
    for namespace, names in value.items():
        if not 0 < len(namespace) <= 128:
            raise SettingsError(f"{path}: a namespace name has 1 to 128 characters")
        if not isinstance(names, list) or not all(isinstance(n, str) and 0 < len(n) <= 256 for n in names):
            raise SettingsError(f"{path}.{namespace}: expected a list of key names")
        keys += [(str(namespace), name) for name in names]
    return keys


def parse_manifest(document: Any, where: str) -> tuple[SessionApp, ...]:
    """The apps of a manifest, in dependency order. Raises SettingsError naming the entry."""
    if not isinstance(document, Mapping):
        raise SettingsError(f"{where}: expected a JSON object of apps")
    apps: list[SessionApp] = []
    for name, entry in document.items():
        path = f"{where}: {name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise SettingsError(f"{path}: an app name has lowercase letters, digits, '.', '_' or '-'")
        if not isinstance(entry, Mapping):
            raise SettingsError(f"{path}: expected an object with url, input, output")
        extra = sorted(set(entry) - {"url", "input", "output"})
        if extra:
            raise SettingsError(f"{path}.{extra[0]}: unknown key (allowed: input, output, url)")
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SettingsError(f"{path}.url: expected an http(s):// URL")
        outputs = _keys(entry.get("output", {}), f"{path}.output")
        for namespace, _ in outputs:
            if namespace in RESERVED_NAMESPACES:
                raise SettingsError(
                    f"{path}.output.{namespace}: a namespace the engine writes itself; an app writes public "
                    "keys (the inputs of the built-in transformers) or namespaces of its own"
                )
        apps.append(SessionApp(name, url, tuple(_keys(entry.get("input", {}), f"{path}.input")), frozenset(outputs)))
    return _in_dependency_order(apps)


def _in_dependency_order(apps: list[SessionApp]) -> tuple[SessionApp, ...]:
    """An app whose outputs another reads comes before it (the manifest's order otherwise, and
    for a cycle, which the round cap ends)."""
    ordered: list[SessionApp] = []
    remaining = list(apps)
    while remaining:
        ready = [
            app
            for app in remaining
            if not any(other is not app and other.outputs & set(app.inputs) for other in remaining)
        ]
        chosen = ready[0] if ready else remaining[0]
        ordered.append(chosen)
        remaining.remove(chosen)
    return tuple(ordered)


def load_manifest(path: str) -> tuple[SessionApp, ...]:
    try:
        document = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise SettingsError(f"SESSIONS_SESSION_APPS_FILE: cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise SettingsError(f"SESSIONS_SESSION_APPS_FILE: {path} is not JSON: {exc}") from None
    return parse_manifest(document, path)


def inputs_of(app: SessionApp, state: SessionState) -> dict[str, dict[str, Any]]:
    """The app's declared inputs the session has, in session shape (VTEX sends all of them)."""
    body: dict[str, dict[str, Any]] = {}
    for namespace, key in app.inputs:
        entry = state.namespaces.get(namespace, {}).get(key)
        if entry is not None and entry.get("value") not in (None, ""):
            body.setdefault(namespace, {})[key] = {"value": entry["value"]}
    return body


def digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


NOTHING_ASKED: Final = digest({})  # an app never called has answered, as it were, for no inputs


def due(app: SessionApp, state: SessionState) -> str | None:
    """The digest of the app's inputs when they differ from those it last answered for."""
    current = digest(inputs_of(app, state))
    answered = (state.facts.get("apps") or {}).get(app.name, NOTHING_ASKED)
    return current if current != answered else None


class SessionApps:
    """The manifest's apps and how the calls went (failures per app, for the logs and tests)."""

    def __init__(self, apps: tuple[SessionApp, ...], timeout_s: float) -> None:
        self.apps = apps
        self.timeout_s = timeout_s
        self.failures: Counter[str] = Counter()

    async def call(self, engine: Engine, app: SessionApp, body: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
        """The app's outputs (declared ones only, in session shape), or None when it failed."""
        try:
            async with engine.app.http_client.post(
                app.transform_url,
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=ClientTimeout(total=self.timeout_s),
            ) as answer:
                raw, status = await answer.read(), answer.status
        except TimeoutError:
            self._failed(app, f"no answer within {self.timeout_s:g}s")
            return None
        except ClientError as exc:
            self._failed(app, f"unreachable ({type(exc).__name__})")
            return None
        if status != 200:
            self._failed(app, f"answered {status}")
            return None
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._failed(app, "answered something that is not JSON")
            return None
        if not isinstance(document, dict):
            self._failed(app, "answered something that is not a JSON object")
            return None
        outputs: dict[str, dict[str, Any]] = {}
        refused: list[str] = []
        for namespace, keys in document.items():
            if not isinstance(keys, dict):
                refused.append(str(namespace))
                continue
            for key, entry in keys.items():
                if (namespace, key) not in app.outputs or not isinstance(entry, dict) or "value" not in entry:
                    refused.append(f"{namespace}.{key}")
                    continue
                outputs.setdefault(namespace, {})[key] = {"value": entry["value"]}
        if refused:
            log.warning("session app %s: refused outputs it did not declare: %s", app.name, ", ".join(refused[:10]))
        return outputs

    def _failed(self, app: SessionApp, why: str) -> None:
        self.failures[app.name] += 1
        log.warning("session app %s %s: its last outputs stay", app.name, why)

    async def answers(self, engine: Engine, state: SessionState) -> list[tuple[SessionApp, str, dict[str, Any]]]:
        """One round: every app due for ``state`` called together; (app, inputs digest, outputs)
        of those that answered, in dependency order."""
        calls = []
        for app in self.apps:
            asked = due(app, state)
            if asked is not None:
                calls.append((app, asked, inputs_of(app, state)))
        results = await asyncio.gather(*(self.call(engine, app, body) for app, _, body in calls))
        return [
            (app, asked, outputs)
            for (app, asked, _), outputs in zip(calls, results, strict=True)
            if outputs is not None
        ]
