"""The contract's generated documents: the JSON Schema files and the OpenAPI event components.

``python -m schemas.jsonschema`` rewrites ``schemas/json/`` (draft 2020-12: one file per event type
and version, plus ``envelope.schema.json`` that accepts any current event) and the event part of
the ``components`` of ``streams/web/openapi.json`` (the ``Event`` union, one envelope per type and
version, the schemas of their ``data``), all from the Python types. Tests fail when the files and
the types drift apart.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from schemas import upcasters
from schemas.events import EVENT_TYPES, Envelope, Event, schema_version, type_name

DRAFT = "https://json-schema.org/draft/2020-12/schema"
FOLDER = Path(__file__).resolve().parent / "json"
OPENAPI_DOCUMENT = Path(__file__).resolve().parent.parent / "streams" / "web" / "openapi.json"
REF = "#/components/schemas/{name}"


def _versions() -> dict[tuple[str, int], type[Envelope]]:
    versions: dict[tuple[str, int], type[Envelope]] = {}
    for cls in EVENT_TYPES:
        versions[(type_name(cls), schema_version(cls))] = cls
        for number, older in enumerate(cls.previous, start=1):
            versions[(type_name(cls), number)] = older
    return versions


# (type, version) -> the struct of that version: the current ones and every older one still accepted.
VERSIONS: dict[tuple[str, int], type[Envelope]] = _versions()


def _pin_version(schema: dict[str, Any], event_type: str, version: int) -> dict[str, Any]:
    # Absent or null means "the current version" (the API stamps it); else the exact URI.
    envelope = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    envelope["properties"]["dataschema"] = {
        "anyOf": [{"const": upcasters.schema_uri(event_type, version)}, {"type": "null"}],
        "default": None,
    }
    return schema


def documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document."""
    files: dict[str, dict[str, Any]] = {}
    for (event_type, version), struct in sorted(VERSIONS.items()):
        schema = _pin_version(msgspec.json.schema(struct), event_type, version)
        files[f"{event_type}.v{version}.schema.json"] = {
            "$schema": DRAFT,
            "$id": upcasters.schema_uri(event_type, version),
            "title": f"{event_type} v{version}",
            **schema,
        }
    envelope = msgspec.json.schema(Event)
    for cls in EVENT_TYPES:
        envelope["$defs"][cls.__name__]["properties"]["dataschema"] = {
            "anyOf": [{"const": upcasters.schema_uri(type_name(cls), schema_version(cls))}, {"type": "null"}],
            "default": None,
        }
    files["envelope.schema.json"] = {
        "$schema": DRAFT,
        "$id": f"{upcasters.SCHEMA_PREFIX}envelope",
        "title": "any current session event (CloudEvents 1.0, structured JSON)",
        **envelope,
    }
    return files


def render(document: dict[str, Any]) -> bytes:
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


# --- OpenAPI: the intake's view of the same types ------------------------------------------------

# What the API does with an envelope attribute the emitter leaves out (the intake fills them in).
_INTAKE = {
    "specversion": "filled in (`1.0`) when left out",
    "id": "unique per event (de-duplication); a UUID is drawn when left out",
    "source": "filled in (`/api/events`) when left out",
    "subject": "the session id; may be left out when the request carries a valid session cookie",
    "time": "RFC 3339 with a UTC offset; the time of the request when left out",
}


_CURRENT_VERSION = "the schema version; absent or null means the current one"


def _undescribed(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "description"}


def _prose(docstring: str | None) -> str:
    """A docstring as one Markdown paragraph (rST ``code`` becomes `code`)."""
    return " ".join((docstring or "").split()).replace("``", "`")


def _event_component(struct: type[Envelope], current: type[Envelope], version: int) -> dict[str, Any]:
    name = type_name(struct)
    _, typed = msgspec.json.schema_components([struct], ref_template=REF)
    schema = typed[struct.__name__]
    is_current = struct is current
    title = name
    if current.previous:
        title += f" (v{version}, current)" if is_current else f" (v{version})"
    if not current.storefront:
        title += " (trusted)"
    uri = upcasters.schema_uri(name, version)
    properties = schema["properties"]
    attributes = {key: {**_undescribed(properties[key]), "description": text} for key, text in _INTAKE.items()}
    dataschema: dict[str, Any] = {"const": uri}
    if is_current:
        dataschema = {"anyOf": [dataschema, {"type": "null"}], "description": _CURRENT_VERSION}
    required = ["type", *(["data"] if "data" in schema["required"] else []), *([] if is_current else ["dataschema"])]
    return {
        "title": title,
        "description": _prose(struct.__doc__),
        "type": "object",
        "properties": {"type": {"const": name}, **attributes, "data": properties["data"], "dataschema": dataschema},
        "required": required,
    }


def openapi_components() -> dict[str, dict[str, Any]]:
    """The event components of the OpenAPI document: ``Event``, one envelope per type and version
    (current first), the schemas of their ``data``."""
    storefront = ", ".join(f"`{type_name(cls)}`" for cls in EVENT_TYPES if cls.storefront)
    events: dict[str, dict[str, Any]] = {}
    for cls in EVENT_TYPES:
        events[f"{cls.__name__}Event"] = _event_component(cls, cls, schema_version(cls))
        for version, older in reversed(list(enumerate(cls.previous, start=1))):
            events[f"{older.__name__}Event"] = _event_component(older, cls, version)
    order = [*EVENT_TYPES, *(older for cls in EVENT_TYPES for older in cls.previous)]
    data_types = [next(f.type for f in msgspec.structs.fields(s) if f.name == "data") for s in order]
    _, data = msgspec.json.schema_components(list(dict.fromkeys(data_types)), ref_template=REF)
    return {
        "Event": {
            "description": "A CloudEvents 1.0 envelope (structured JSON mode), tagged by `type`. Unknown members "
            f"are ignored. Storefronts may send {storefront}; the other types need a bearer key with the "
            "`events:trusted` scope.",
            "oneOf": [{"$ref": REF.format(name=name)} for name in events],
        },
        **events,
        **data,
    }


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def with_event_components(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with its event components replaced by the generated ones; the others
    (and their order) stay as they are, a new component goes after the generated one before it."""
    old = document["components"]["schemas"]
    owned, pending = set(), ["Event"]
    while pending:  # what the old ``Event`` reaches: generated last time
        name = pending.pop()
        if name in old and name not in owned:
            owned.add(name)
            pending.extend(_refs(old[name]))
    generated = openapi_components()
    kept = {name: schema for name, schema in old.items() if name in generated or name not in owned}
    schemas = {name: generated.get(name, schema) for name, schema in kept.items()}
    for previous, name in itertools.pairwise(generated):
        if name not in schemas:
            items = list(schemas.items())
            at = next(i for i, (key, _) in enumerate(items) if key == previous) + 1
            schemas = dict([*items[:at], (name, generated[name]), *items[at:]])
    return {**document, "components": {**document["components"], "schemas": schemas}}


def render_openapi(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()


def main() -> int:
    FOLDER.mkdir(exist_ok=True)
    for name, document in documents().items():
        (FOLDER / name).write_bytes(render(document))
        print(f"wrote {FOLDER / name}")
    openapi = with_event_components(json.loads(OPENAPI_DOCUMENT.read_bytes()))
    OPENAPI_DOCUMENT.write_bytes(render_openapi(openapi))
    print(f"wrote the event components of {OPENAPI_DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
